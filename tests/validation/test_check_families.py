"""GX family expectations: one expectation validates a kind of check for many indicators, and each
check's outcome is what GX's own per-indicator expectation finds on the same frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from expectations.suite import CheckSpec
from tasks.validation.validate import CheckOutcome, run_gx


def _frame() -> pd.DataFrame:
    rows = pd.DataFrame({
        "township_code": ["a", "b", "c", "c", None, "f"],
        "x": [1.0, -2.0, np.nan, 4.0, 5.0, 600.0],
        "y": [0.0, 1.0, 2.0, np.nan, 7.0, -1.0],
        "z": [1.0, 1.0, 2.0, 3.0, 5.0, 600.0],
        "note": ["1", "2", "三", "4", "5", "6"],
    })
    rows.index = pd.Index([3, 4, 5, 6, 7, 8], name="source_row")  # the form's row numbers
    return rows


def _check(check_id: str, kind: str, severity: str = "critical", **kwargs: Any) -> CheckSpec:
    return CheckSpec(check_id=check_id, expectation_type=kind, kwargs=kwargs, severity=severity,  # type: ignore[arg-type]
                     action="reject", issue_code="RULE_FAILED", message_zh=check_id, columns=(), kind="row")


CHECKS = (
    _check("unique", "expect_column_values_to_be_unique", column="township_code"),
    _check("x_not_null", "expect_column_values_to_not_be_null", column="x"),
    _check("y_not_null", "expect_column_values_to_not_be_null", column="y"),
    _check("x_min", "expect_column_values_to_be_between", column="x", min_value=0.0),
    _check("y_band", "expect_column_values_to_be_between", severity="warning", column="y", min_value=0.0,
           max_value=2.0, strict_max=True),
    _check("z_band", "expect_column_values_to_be_between", severity="warning", column="z", min_value=1.0,
           max_value=100.0, strict_min=True),
    _check("x_sum", "expect_column_sum_to_be_between", column="x", min_value=600.0, max_value=610.0),
    _check("y_sum", "expect_column_sum_to_be_between", column="y", min_value=0.0, max_value=1.0),
    _check("x_eq_z", "expect_column_pair_values_to_be_equal", column_A="x", column_B="z",
           ignore_row_if="either_value_is_missing"),
    _check("z_ge_y", "expect_column_pair_values_a_to_be_greater_than_b", column_A="z", column_B="y", or_equal=True,
           ignore_row_if="either_value_is_missing"),
    _check("towns", "expect_column_distinct_values_to_contain_set", severity="warning", column="township_code",
           value_set=["a", "b", "g"]),
)


def _one_gx_expectation(frame: pd.DataFrame, check: CheckSpec) -> CheckOutcome:
    """GX's own per-indicator expectation for the check, validated alone (the reference)."""
    import great_expectations as gx
    from great_expectations.expectations.registry import get_expectation_impl

    from tasks.validation.validate import GX_LOCK, _gx_batch_definition, _row_of

    expectation = get_expectation_impl(check.expectation_type)(**check.kwargs)
    with GX_LOCK:
        batch = _gx_batch_definition().get_batch(batch_parameters={"dataframe": frame})
        result = batch.validate(gx.ExpectationSuite(name="one", expectations=[expectation]),
                                result_format={"result_format": "SUMMARY", "partial_unexpected_count": len(frame)})
    r = result.results[0]
    payload = r.result or {}
    return CheckOutcome(
        success=bool(r.success),
        failing_rows=tuple(_row_of(i) for i in payload.get("partial_unexpected_index_list") or ()),
        observed=payload.get("observed_value") if check.expectation_type.endswith("sum_to_be_between") else None,
        element_count=payload.get("element_count"),
        unexpected_count=payload.get("unexpected_count"),
    )


def test_each_check_of_a_family_has_the_outcome_of_gxs_own_expectation() -> None:
    frame = _frame()
    outcomes = run_gx(frame, CHECKS, "families")
    assert len(outcomes) == len(CHECKS)
    for check, outcome in zip(CHECKS, outcomes, strict=True):
        assert outcome == _one_gx_expectation(frame, check), check.check_id
    by_id = dict(zip((c.check_id for c in CHECKS), outcomes, strict=True))
    assert by_id["unique"].failing_rows == (5, 6)
    assert by_id["x_min"].failing_rows == (4,) and by_id["x_not_null"].failing_rows == (5,)
    assert by_id["y_band"].failing_rows == (5, 7, 8)  # 2.0 (strict_max), 7.0 and −1.0
    assert by_id["z_band"].failing_rows == (3, 4, 8)
    assert by_id["x_sum"].success and by_id["x_sum"].observed == pytest.approx(608.0)
    assert not by_id["towns"].success and by_id["towns"].failing_rows == ()


def test_a_check_that_cannot_run_reports_its_error_and_the_rest_of_its_family_still_runs() -> None:
    checks = (
        _check("note_min", "expect_column_values_to_be_between", column="note", min_value=0.0),
        _check("x_min", "expect_column_values_to_be_between", column="x", min_value=0.0),
        _check("gone_min", "expect_column_values_to_be_between", column="gone", min_value=0.0),
    )
    frame = _frame()
    note, x, gone = run_gx(frame.assign(gone=1.0), checks[:2], "errors") + run_gx(frame, checks[2:], "gone")
    assert not note.success and note.error and "TypeError" in note.error
    assert x == CheckOutcome(False, (4,), None, 6, 1)
    assert not gone.success and gone.error and "gone" in gone.error


def test_a_family_expectation_holds_one_kind_of_check_only() -> None:
    from expectations.custom_expectations import ExpectEachColumnValuesToNotBeNull

    with pytest.raises(ValueError, match="expect_column_values_to_not_be_null checks only"):
        ExpectEachColumnValuesToNotBeNull(checks=[{"check_id": "x_min", "expectation_type":
                                                   "expect_column_values_to_be_between", "column": "x",
                                                   "min_value": 0.0}])
