"""空白报表: generated from the declaration, filled with openpyxl as a clerk would, read back by the
same reader and validation every upload meets — it loads with no coercion; sent for another period
its hidden mark refuses it."""

from __future__ import annotations

import io
from pathlib import Path

import openpyxl
import pytest

from expectations.declaration import load_declarations
from tasks.forms.template_mark import MARK_SHEET
from tasks.portal.blank_form import blank_form
from tasks.submission.journey import parse, receive, validate
from tests.helpers.blank_forms import fill_blank
from warehouse.refdata import reference_frames

EDU = load_declarations()["education"]
NAMES = [ind.name for ind in EDU.indicators]


@pytest.fixture(scope="module")
def may() -> bytes:
    return blank_form(EDU, "2017年5月", reference_frames()).content


def _check(tmp_path: Path, content: bytes, period: str) -> tuple[str, list[tuple[str, str]]]:
    path = tmp_path / "教育扶贫月报.xlsx"
    path.write_bytes(content)
    validation = validate(parse(receive(path, "education", period), reference_frames()))
    return validation.outcome, [(i.code, str(i.action)) for i in validation.issues]


def test_the_blank_form_carries_title_unit_line_headers_townships_and_its_mark(may: bytes) -> None:
    form = blank_form(EDU, "2017-05", reference_frames())
    assert form.content == may or form.file_name == "丹巴县2017年5月教育扶贫工作进展月报表.xlsx"
    workbook = openpyxl.load_workbook(io.BytesIO(may))
    ws = workbook.worksheets[0]
    assert ws["A1"].value == "丹巴县2017年5月教育扶贫工作进展月报表"
    assert ws["A2"].value == "填报单位：丹巴县教育局　单位：人、人次、万元"
    assert (ws["A3"].value, ws["C3"].value, ws["C4"].value, ws["E4"].value) == ("乡(镇)", "在校学生数", "小学", "合计")
    names = [ws.cell(row=r, column=1).value for r in range(5, 5 + 16)]
    assert names[0] == "章谷镇" and names[-1] == "合计" and len(set(names)) == 16  # 15 townships in 2017
    assert ws.protection.sheet and ws["A5"].protection.locked and ws["C3"].protection.locked
    assert not ws["B5"].protection.locked and ws["B5"].number_format == "0" and ws["K5"].number_format == "0.00"
    rules = {str(dv.sqref).split()[0]: (dv.type, dv.operator, dv.formula1) for dv in ws.data_validations.dataValidation}
    assert rules["B5"] == ("whole", "greaterThanOrEqual", "0")  # persons: whole numbers ≥ 0
    assert rules["K5"] == ("decimal", "greaterThanOrEqual", "0")  # 万元
    mark = workbook[MARK_SHEET]
    assert mark.sheet_state == "veryHidden"
    assert [(r[0], r[1]) for r in mark.iter_rows(values_only=True)][:2] == [
        ("department", "education"), ("period", "2017-05")]
    assert ws.print_title_rows == "$3:$4"


def test_townships_are_those_valid_in_the_period() -> None:
    form = blank_form(EDU, "2011-05", reference_frames())
    assert "巴底乡" in dict(form.townships).values()  # 巴底镇 only from 2013
    assert "巴底镇" in dict(blank_form(EDU, "2017-05", reference_frames()).townships).values()


def test_a_filled_blank_form_loads_with_no_coercion_and_no_note(tmp_path: Path, may: bytes) -> None:
    outcome, issues = _check(tmp_path, fill_blank(may, NAMES), "2017-05")
    assert outcome == "loaded"
    assert issues == []  # no SHEET_CHOSEN for the hidden mark, no COLUMN_ALIAS, no VALUE_COERCED


def test_a_blank_form_of_may_sent_as_june_is_refused_by_its_mark(tmp_path: Path, may: bytes) -> None:
    outcome, issues = _check(tmp_path, fill_blank(may, NAMES), "2017-06")
    assert outcome == "rejected"
    assert ("PERIOD_MISMATCH", "reject") in issues
    path = tmp_path / "教育扶贫月报.xlsx"
    found = validate(parse(receive(path, "education", "2017-06"), reference_frames())).issues
    assert any(i.code == "PERIOD_MISMATCH" and i.sheet == MARK_SHEET for i in found)
