"""duikou's own GX Core 1.x expectations: the history-aware checks, and the check families.

The two history-aware checks GX has no built-in for are multicolumn map expectations over
columns the suite derives from the warehouse's history (see :mod:`expectations.history_checks`),
so a failing row is reported by GX itself with its index (the form's row number):

- ``expect_values_within_modified_z_score_of_history`` — column_list ``[value, centre, scale]``:
  ``|value − centre| ≤ threshold × scale``. With centre the median of the series' history and
  scale its robust spread (MAD / 0.6745), the left side over scale is the modified z-score
  (Iglewicz & Hoaglin), so a row fails when its modified z-score is above ``threshold``.
- ``expect_increment_to_equal_cumulative_difference`` — column_list ``[month, ytd, previous_ytd]``:
  ``|month − (ytd − previous_ytd)| ≤ tolerance``: a 本月 figure equals the change of its 本年累计
  figure since the previous month (January: previous_ytd is 0).

Rows where any listed column is missing are skipped (no history, no previous month): GX's
``ignore_row_if="any_value_is_missing"``, fixed here. Pandas only: duikou validates a submission
in memory.

The check families (``expect_each_…``, one per kind of check) are what a submission's suite
validates: GX's cost is per expectation, so the ~60 per-indicator checks of a monthly return go to
GX as ~9 family expectations whose one metric evaluates every check of the family (see the
section below). Importing this module registers all of them with GX (class definition registers
them).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider


def within_scaled_distance(columns: pd.DataFrame, threshold: float) -> pd.Series:
    """Per row of ``[value, centre, scale]``: ``|value − centre| ≤ threshold × scale``."""
    value, centre, scale = (columns.iloc[:, i].astype("float64") for i in range(3))
    return (value - centre).abs() <= threshold * scale


def increment_equals_difference(columns: pd.DataFrame, tolerance: float) -> pd.Series:
    """Per row of ``[month, ytd, previous_ytd]``: ``|month − (ytd − previous_ytd)| ≤ tolerance``."""
    month, ytd, previous = (columns.iloc[:, i].astype("float64") for i in range(3))
    return (month - (ytd - previous)).abs() <= tolerance


class MulticolumnValuesWithinScaledDistance(MulticolumnMapMetricProvider):
    """Row condition: ``|column_list[0] − column_list[1]| ≤ threshold × column_list[2]``."""

    condition_metric_name = "multicolumn_values.within_scaled_distance"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
    condition_value_keys = ("threshold",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        return within_scaled_distance(column_list, float(kwargs["threshold"]))


class MulticolumnIncrementEqualsDifference(MulticolumnMapMetricProvider):
    """Row condition: ``|column_list[0] − (column_list[1] − column_list[2])| ≤ tolerance``."""

    condition_metric_name = "multicolumn_values.increment_equals_difference"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
    condition_value_keys = ("tolerance",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        return increment_equals_difference(column_list, float(kwargs["tolerance"]))


class ExpectValuesWithinModifiedZScoreOfHistory(MulticolumnMapExpectation):
    """Expect each value within ``threshold`` modified z-scores of its series' history.

    ``column_list``: ``[value, centre, scale]`` — the value, the median of the series' history
    and its robust spread (MAD / 0.6745; 1.2533 × mean absolute deviation when the MAD is 0).
    """

    threshold: float
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "any_value_is_missing"

    map_metric = "multicolumn_values.within_scaled_distance"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "threshold")
    args_keys = ("column_list", "threshold")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "history"]}


class ExpectIncrementToEqualCumulativeDifference(MulticolumnMapExpectation):
    """Expect a 本月 value to equal its 本年累计 value minus the previous month's.

    ``column_list``: ``[month, ytd, previous_ytd]``; ``tolerance`` in base units.
    """

    tolerance: float = 0.0
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "any_value_is_missing"

    map_metric = "multicolumn_values.increment_equals_difference"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "tolerance")
    args_keys = ("column_list", "tolerance")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "history"]}


# --- check families: one GX expectation validates every check of one kind -----------------------
#
# GX plans a metric graph per expectation (~5–6 ms each, independent of a county form's 15 rows),
# so a submission's ~60 per-indicator checks are validated as ~9 family expectations: each holds
# its checks (``checks``: the per-indicator expectation's type and kwargs, with the check's id) and
# its one metric evaluates them all on the batch, vectorised, reporting per check the failing rows
# (row checks) or the observed aggregate and its success (table checks) in ``result.details``.
# Per check, the semantics are those of the per-indicator GX expectation it stands for: row checks
# skip missing values (pair and multicolumn checks: rows missing any of their columns), the
# 合计 check sums the non-missing values. A check that cannot be evaluated reports its error
# without failing the family's other checks.

ROW_CHECK_TYPES = frozenset({
    "expect_column_values_to_be_unique",
    "expect_column_values_to_not_be_null",
    "expect_column_values_to_be_between",
    "expect_column_pair_values_to_be_equal",
    "expect_column_pair_values_a_to_be_greater_than_b",
    "expect_values_within_modified_z_score_of_history",
    "expect_increment_to_equal_cumulative_difference",
})
TABLE_CHECK_TYPES = frozenset({"expect_column_sum_to_be_between", "expect_column_distinct_values_to_contain_set"})


def _between(values: pd.Series, check: dict[str, Any]) -> pd.Series:
    ok = pd.Series(True, index=values.index)
    lo, hi = check.get("min_value"), check.get("max_value")
    if lo is None and hi is None:
        raise ValueError("a range needs a bound")
    if lo is not None:
        ok &= values > lo if check.get("strict_min") else values >= lo
    if hi is not None:
        ok &= values < hi if check.get("strict_max") else values <= hi
    return ok


def _row_condition(frame: pd.DataFrame, check: dict[str, Any]) -> pd.Series:
    """Per row of ``frame``: True where the check holds (evaluated on the rows it applies to)."""
    kind = check["expectation_type"]
    if check.get("ignore_row_if", "any_value_is_missing") not in ("either_value_is_missing", "any_value_is_missing"):
        raise ValueError(f"ignore_row_if={check['ignore_row_if']!r}: family checks skip rows missing a value")
    if kind == "expect_column_values_to_not_be_null":
        return frame[check["column"]].notna()
    if kind == "expect_column_values_to_be_unique":
        column = frame[check["column"]].dropna()
        return ~column.duplicated(keep=False)
    if kind == "expect_column_values_to_be_between":
        return _between(frame[check["column"]].dropna(), check)
    if kind in ("expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"):
        pair = frame[[check["column_A"], check["column_B"]]].dropna()
        a, b = pair.iloc[:, 0], pair.iloc[:, 1]
        if kind == "expect_column_pair_values_to_be_equal":
            return a == b
        return a >= b if check.get("or_equal") else a > b
    rows = frame[list(check["column_list"])].dropna()
    if kind == "expect_values_within_modified_z_score_of_history":
        return within_scaled_distance(rows, float(check["threshold"]))
    if kind == "expect_increment_to_equal_cumulative_difference":
        return increment_equals_difference(rows, float(check.get("tolerance", 0.0)))
    raise ValueError(f"no row check {kind}")


def evaluate_check(frame: pd.DataFrame, check: dict[str, Any]) -> dict[str, Any]:
    """One check of a family on the batch: failing row indices, or the observed aggregate."""
    kind = check["expectation_type"]
    if kind == "expect_column_sum_to_be_between":
        total = frame[check["column"]].sum()
        return {"success": bool(check["min_value"] <= total <= check["max_value"]), "observed_value": total}
    if kind == "expect_column_distinct_values_to_contain_set":
        missing = set(check["value_set"]) - set(frame[check["column"]].dropna())
        return {"success": not missing, "missing_values": sorted(missing)}
    holds = _row_condition(frame, check)
    failing = holds.index[~holds.astype(bool)].tolist()
    return {"success": not failing, "element_count": len(frame), "unexpected_count": len(failing),
            "unexpected_index_list": failing}


def evaluate_column_checks_at_once(frame: pd.DataFrame, checks: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A not-null or range family on the block of its columns at once; the same outcomes as
    :func:`evaluate_check` per check. Raises for other families and for a non-numeric range column."""
    kinds = {c["expectation_type"] for c in checks}
    columns = [c["column"] for c in checks]
    block = frame[columns]
    if kinds == {"expect_column_values_to_not_be_null"}:
        bad = block.isna().to_numpy()
    elif kinds == {"expect_column_values_to_be_between"}:
        values = block.astype("float64").to_numpy()
        if any(c.get("min_value") is None and c.get("max_value") is None for c in checks):
            raise ValueError("a range needs a bound")
        lo = np.array([-np.inf if c.get("min_value") is None else c["min_value"] for c in checks], dtype="float64")
        hi = np.array([np.inf if c.get("max_value") is None else c["max_value"] for c in checks], dtype="float64")
        strict_min = np.array([bool(c.get("strict_min")) for c in checks])
        strict_max = np.array([bool(c.get("strict_max")) for c in checks])
        with np.errstate(invalid="ignore"):
            ok = np.where(strict_min, values > lo, values >= lo) & np.where(strict_max, values < hi, values <= hi)
        bad = ~ok & ~np.isnan(values)
    else:
        raise ValueError(f"no one-block evaluation for {sorted(kinds)}")
    outcomes: dict[str, dict[str, Any]] = {}
    for j, check in enumerate(checks):
        failing = frame.index[bad[:, j]].tolist()
        outcomes[check["check_id"]] = {"success": not failing, "element_count": len(frame),
                                       "unexpected_count": len(failing), "unexpected_index_list": failing}
    return outcomes


class CheckFamilyOutcomes(TableMetricProvider):
    """Every check of a family evaluated on the batch: ``{check_id: outcome}`` (see :func:`evaluate_check`)."""

    metric_name = "duikou.check_family_outcomes"
    value_keys = ("checks",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls, execution_engine: PandasExecutionEngine, metric_domain_kwargs: dict[str, Any],
        metric_value_kwargs: dict[str, Any], metrics: dict[str, Any], runtime_configuration: dict[str, Any],
    ) -> dict[str, dict[str, Any]]:
        frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        checks = metric_value_kwargs["checks"]
        try:  # the one-column families at once, as one block of the frame
            return evaluate_column_checks_at_once(frame, checks)
        except (TypeError, ValueError, KeyError):
            pass  # a column that is not numeric, or missing: check by check, so the error is that check's
        outcomes: dict[str, dict[str, Any]] = {}
        for check in checks:
            try:
                outcomes[check["check_id"]] = evaluate_check(frame, check)
            except Exception as exc:  # reported for this check alone, like GX's catch_exceptions
                outcomes[check["check_id"]] = {"success": False, "exception_message": f"{type(exc).__name__}: {exc}"}
        return outcomes


class CheckFamilyExpectation(BatchExpectation):
    """Base of the family expectations: ``checks`` are one kind of per-indicator check.

    Each check is a dict: ``check_id``, ``expectation_type`` (the family's :attr:`member_type`)
    and that expectation's kwargs. Succeeds when every check holds; ``result.details.checks``
    gives each check's outcome.
    """

    checks: list[dict[str, Any]]

    member_type: ClassVar[str] = ""
    metric_dependencies = ("duikou.check_family_outcomes",)
    domain_keys: ClassVar[tuple[str, ...]] = ("batch_id", "row_condition", "condition_parser")
    success_keys: ClassVar[tuple[str, ...]] = ("checks",)
    args_keys = ("checks",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "family"]}

    @pydantic.validator("checks")
    @classmethod
    def _checks_of_this_family(cls, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wrong = [c.get("check_id") for c in checks if c.get("expectation_type") != cls.member_type]
        if wrong or not checks:
            raise ValueError(f"{cls.__name__} holds {cls.member_type} checks only (got {wrong or 'none'})")
        return checks

    def _validate(
        self, metrics: dict[str, Any], runtime_configuration: dict[str, Any] | None = None,
        execution_engine: Any = None,
    ) -> dict[str, Any]:
        outcomes = metrics["duikou.check_family_outcomes"]
        failed = sorted(check_id for check_id, outcome in outcomes.items() if not outcome["success"])
        return {"success": not failed, "result": {"observed_value": {"checks": len(outcomes), "failed": failed},
                                                  "details": {"checks": outcomes}}}


class ExpectEachColumnValuesToBeUnique(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_values_to_be_unique"


class ExpectEachColumnDistinctValuesToContainSet(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_distinct_values_to_contain_set"


class ExpectEachColumnValuesToNotBeNull(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_values_to_not_be_null"


class ExpectEachColumnValuesToBeBetween(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_values_to_be_between"


class ExpectEachColumnSumToBeBetween(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_sum_to_be_between"


class ExpectEachColumnPairValuesToBeEqual(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_pair_values_to_be_equal"


class ExpectEachColumnPairValuesAToBeGreaterThanB(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_column_pair_values_a_to_be_greater_than_b"


class ExpectEachValueWithinModifiedZScoreOfHistory(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_values_within_modified_z_score_of_history"


class ExpectEachIncrementToEqualCumulativeDifference(CheckFamilyExpectation):
    member_type: ClassVar[str] = "expect_increment_to_equal_cumulative_difference"


FAMILY_OF: dict[str, type[CheckFamilyExpectation]] = {
    cls.member_type: cls for cls in CheckFamilyExpectation.__subclasses__()
}
