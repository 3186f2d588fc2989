"""Issue 18's corpus files that load, read to exactly the true values (test_corpus checks their
receipts): a 区划代码 column beside or instead of 乡(镇), 栏次 rows with letter markers, flattened and
three-level headers, one sheet per month, per-capita / rate 合计 that are plain sums, and 其中
sub-lines under merged township cells. Also the receipt's root cause.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.demo.values import demo_values
from tasks.submission.journey import build_receipt, parse, receive, validate
from warehouse.refdata import ReferenceFrames, reference_frames

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.mark.parametrize(
    ("name", "department", "period"),
    [
        ("townships/education_code_column.xlsx", "education", "2017-05"),
        ("townships/health_code_only.xls", "health", "2017-05"),
        ("layout/education_letter_column_numbers.xlsx", "education", "2017-05"),
        ("layout/tourism_abc_column_numbers.csv", "tourism", "2016-08"),
        ("headers/education_flattened.xlsx", "education", "2017-05"),
        ("headers/labour_flattened_child_first.csv", "labour", "2017-05"),
        ("headers/labour_three_levels.xlsx", "labour", "2017-05"),
        ("formats/education_sheet_per_month.xlsx", "education", "2017-05"),
        ("totals/poverty_income_total_is_sum.xlsx", "poverty", "2016"),
        ("totals/health_rate_total_is_sum.xlsx", "health", "2017-05"),
        ("layout/labour_sublines_merged.xlsx", "labour", "2017-05"),
        ("layout/labour_sublines_undeclared.xlsx", "labour", "2017-05"),
        ("layout/tourism_subline_in_key.xlsx", "tourism", "2016-08"),
    ],
)
def test_loads_the_true_values(name: str, department: str, period: str, reference: ReferenceFrames) -> None:
    parsed = parse(receive(CORPUS / name, department, period), reference)  # the outcome: test_corpus
    assert parsed.form is not None and not [i for i in parsed.form.issues if i.severity == "critical"]
    wide = parsed.form.wide.set_index("township_code")
    truth = demo_values()[(department, period)].set_index("township_code")
    truth.index = truth.index.astype(str)
    assert sorted(wide.index) == sorted(truth.index)  # every township once: no sub-line read as one
    declared = [c for c in truth.columns if c in wide.columns]
    assert len(declared) >= len(truth.columns) - 2, (declared, list(truth.columns))
    for column in declared:
        factor = _factor(department, column)
        expected = truth[column].astype(float) * factor
        pd.testing.assert_series_equal(wide.loc[truth.index, column].astype(float), expected, check_names=False,
                                       rtol=1e-6, atol=1e-4)


def _factor(department: str, column: str) -> float:
    from expectations.declaration import load_declarations

    return load_declarations()[department].indicator(column).factor


def test_the_sublines_carry_the_poor_labour(reference: ReferenceFrames) -> None:
    parsed = parse(receive(CORPUS / "layout/labour_sublines_merged.xlsx", "labour", "2017-05"), reference)
    assert parsed.form is not None
    assert {"rural_labour_poor_persons", "transferred_ytd_poor_persons"} <= set(parsed.form.wide.columns)
    assert "其中:贫困劳动力" in parsed.form.column_labels["rural_labour_poor_persons"]


def test_the_receipt_names_one_root_cause(reference: ReferenceFrames) -> None:
    received = receive(CORPUS / "department/tourism_form_as_labour.xlsx", "labour", "2017-05")
    parsed = parse(received, reference)
    validation = validate(parsed)
    receipt = build_receipt(received, parsed, validation, status=validation.outcome)
    assert receipt["issues"][0]["code"] == "TITLE_DEPARTMENT_MISMATCH"
    assert receipt["root_cause"]["code"] == "TITLE_DEPARTMENT_MISMATCH"
    assert receipt["root_cause"]["dependent_issues"] == len(receipt["issues"]) - 1
    assert all(i["caused_by"] == "TITLE_DEPARTMENT_MISMATCH" for i in receipt["issues"][1:])
    assert "根本原因" in receipt["summary_zh"]
