"""The correction workbook: the department's form with every problem cell marked.

Fixtures are real forms from :func:`tasks.demo.form_writer.write_form` (xlsx, BIFF .xls, GBK CSV) with
the demo's education values; the standard form has its header on rows 3–4, townships on rows 5–19
and 合计 on row 20.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
from openpyxl.worksheet.worksheet import Worksheet

from expectations.advice import advice_for
from expectations.declaration import Declaration, load_declarations
from expectations.issues import Issue, issue
from tasks.demo.form_writer import FormFormat, write_form
from tasks.demo.values import demo_values
from tasks.forms.read import read_grids
from tasks.submission.correction_workbook import FILL_COLOURS, SUMMARY_SHEET, write_correction_workbook
from tasks.submission.journey import build_receipt, parse, receive, validate
from warehouse.refdata import reference_frames

EDU, MAY = "education", "2017-05"
SUFFIX = {"xlsx": ".xlsx", "xls": ".xls", "csv-gbk": ".csv"}
SUMMARY: dict[str, Any] = {"title_zh": "教育扶贫工作进展月报表", "period": MAY, "status": "rejected"}
RED, YELLOW, BLUE = (FILL_COLOURS[s] for s in ("critical", "warning", "info"))


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return demo_values()[(EDU, MAY)]


def decl() -> Declaration:
    return load_declarations()[EDU]


def form(tmp_path: Path, rows: pd.DataFrame, fmt: FormFormat = "xlsx", **kwargs: Any) -> Path:
    return write_form(tmp_path / f"edu{SUFFIX[fmt]}", decl(), MAY, rows, fmt=fmt, **kwargs)


def sheet_of(path: Path, fmt: str) -> str | None:
    return None if fmt.startswith("csv") else "Sheet1"


def typical_issues(sheet: str | None) -> list[Issue]:
    return [
        issue("VALUE_COERCED", "“1,234”按1234读取(去掉千位分隔符)", sheet=sheet, row=5, column="B列 适龄儿童少年数"),
        issue("TOTAL_MISMATCH", "合计行“在校学生数(小学)”与各乡镇之和不一致", sheet=sheet, row=20,
              column="C列 在校学生数/小学"),
        issue("RULE_FAILED", "辍学学生数应为0(辍学学生数=2人)", sheet=sheet, row=7, column="G列 辍学学生数"),
        issue("TOWNSHIP_MISSING", "表中缺少本报告期应报的乡镇: 太平桥乡", sheet=sheet),
    ]


def run(source: Path, sheet: str | None, issues: Sequence[Issue], tmp_path: Path,
        summary: dict[str, Any] | None = None) -> openpyxl.Workbook:
    out = tmp_path / "out" / "correction.xlsx"
    result = write_correction_workbook(source.read_bytes(), source.name, sheet, issues, out,
                                       summary=summary or SUMMARY)
    assert result == out and out.is_file()
    return openpyxl.load_workbook(out)


def data_sheet(workbook: openpyxl.Workbook) -> Worksheet:
    ws = workbook.worksheets[1]
    assert isinstance(ws, Worksheet)
    return ws


def fill(ws: Worksheet, coordinate: str) -> str:
    return str(ws[coordinate].fill.start_color.rgb)[-6:]


def comments(ws: Worksheet) -> dict[str, str]:
    return {c.coordinate: c.comment.text for row in ws.iter_rows() for c in row if c.comment is not None}


def summary_rows(workbook: openpyxl.Workbook) -> list[tuple[Any, ...]]:
    """The issue table of 问题汇总, below its header row."""
    ws = workbook[SUMMARY_SHEET]
    all_rows = list(ws.iter_rows(values_only=True))
    header = next(n for n, r in enumerate(all_rows) if r[0] == "序号")
    return [r for r in all_rows[header + 1 :] if r[0] is not None]


def source_values(path: Path, fmt: str) -> dict[tuple[int, int], Any]:
    """What the department sent, cell by cell (1-based), as the pipeline reads it."""
    grid = read_grids(path.read_bytes(), path.name)[0]
    return {(r, c): v for r, row in enumerate(grid.rows, 1) for c, v in enumerate(row, 1) if v is not None}


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "csv-gbk"])
def test_each_format_gives_a_workbook_with_the_same_marks(tmp_path: Path, rows: pd.DataFrame, fmt: str) -> None:
    source = form(tmp_path, rows, fmt)  # type: ignore[arg-type]
    sheet = sheet_of(source, fmt)
    workbook = run(source, sheet, typical_issues(sheet), tmp_path)

    assert workbook.sheetnames[0] == SUMMARY_SHEET and workbook.active.title == SUMMARY_SHEET  # type: ignore[union-attr]
    ws = data_sheet(workbook)
    marked = comments(ws)
    assert set(marked) == {"B5", "C20", "G7"}
    assert "VALUE_COERCED" in marked["B5"] and "【提示】" in marked["B5"]
    assert "TOTAL_MISMATCH" in marked["C20"] and "【严重】" in marked["C20"]
    assert "RULE_FAILED" in marked["G7"] and "辍学学生数=2人" in marked["G7"]
    assert all(ws[c].comment.author == "duikou" for c in marked)  # type: ignore[union-attr]
    assert (fill(ws, "B5"), fill(ws, "C20"), fill(ws, "G7")) == (BLUE, RED, YELLOW)
    assert fill(ws, "B6") not in (RED, YELLOW, BLUE)

    # every value the department sent is still there, unchanged
    expected = source_values(source, fmt)
    got = {(c.row, c.column): c.value for row in ws.iter_rows() for c in row if c.value is not None}
    assert got == expected
    # the file-level issue is only in the summary
    assert not any("TOWNSHIP_MISSING" in text for text in marked.values())
    assert "TOWNSHIP_MISSING" in [r[2] for r in summary_rows(workbook)]


def test_xlsx_keeps_the_departments_formatting_and_merges(tmp_path: Path, rows: pd.DataFrame) -> None:
    source = form(tmp_path, rows)
    original = openpyxl.load_workbook(source).active
    assert isinstance(original, Worksheet)
    ws = data_sheet(run(source, "Sheet1", typical_issues("Sheet1"), tmp_path))
    assert {str(r) for r in ws.merged_cells.ranges} == {str(r) for r in original.merged_cells.ranges}
    assert ws["A1"].font.bold and ws["A1"].font.sz == original["A1"].font.sz
    assert ws["C20"].number_format == original["C20"].number_format


def test_xls_merges_are_rebuilt(tmp_path: Path, rows: pd.DataFrame) -> None:
    ws = data_sheet(run(form(tmp_path, rows, "xls"), "Sheet1", [], tmp_path))
    assert {"A1:L1", "C3:E3", "A3:A4"} <= {str(r) for r in ws.merged_cells.ranges}
    assert ws["A1"].font.bold


def test_summary_sheet_lists_every_issue_critical_first(tmp_path: Path, rows: pd.DataFrame) -> None:
    workbook = run(form(tmp_path, rows), "Sheet1", typical_issues("Sheet1"), tmp_path)
    ws = workbook[SUMMARY_SHEET]
    head = [ws.cell(row=r, column=1).value for r in range(1, 6)]
    assert head[0] == "教育扶贫工作进展月报表 2017-05 数据核查结果"
    assert "已退回" in head[2]
    assert head[3] == "问题数: 严重1项，警告2项，提示1项"
    assert "重新报送整张报表" in head[4] and "提示" in head[4] and "无需处理" in head[4]

    table = summary_rows(workbook)
    assert [r[1] for r in table] == ["严重", "警告", "警告", "提示"]
    assert [r[0] for r in table] == [1, 2, 3, 4]
    assert table[0][2:7] == ("TOTAL_MISMATCH", "Sheet1", 20, "C列 在校学生数/小学",
                             "合计行“在校学生数(小学)”与各乡镇之和不一致")
    assert table[2][2:6] == ("TOWNSHIP_MISSING", "Sheet1", None, None)
    header_row = next(r for r in range(1, 20) if ws.cell(row=r, column=1).value == "序号")
    assert [ws.cell(row=header_row, column=c).value for c in range(1, 9)] == [
        "序号", "严重程度", "代码", "工作表", "行", "列", "说明", "怎样改正"]
    assert all(ws.cell(row=header_row, column=c).font.bold for c in range(1, 9))
    # the advice is in cells (comments do not print), from expectations/advice.py like the receipt page
    assert ws.cell(row=header_row + 1, column=8).value == advice_for("TOTAL_MISMATCH") != ""
    for sheet in (ws, data_sheet(workbook)):  # A4 landscape, one page wide
        assert str(sheet.page_setup.paperSize) == sheet.PAPERSIZE_A4 == "9"
        assert sheet.page_setup.orientation == "landscape"
        assert sheet.page_setup.fitToWidth == 1 and sheet.sheet_properties.pageSetUpPr.fitToPage
    assert ws.print_title_rows == f"${header_row}:${header_row}"  # the table's header on every page
    assert ws.freeze_panes == f"A{header_row + 1}"
    assert ws.column_dimensions["G"].width > 40 and ws.cell(row=header_row + 1, column=7).alignment.wrap_text
    link = ws.cell(row=header_row + 1, column=6).hyperlink
    assert link is not None and link.location == "'Sheet1'!C20"


@pytest.mark.parametrize(("status", "text"), [("loaded", "已入库"), ("quarantined", "待核")])
def test_status_in_chinese(tmp_path: Path, rows: pd.DataFrame, status: str, text: str) -> None:
    workbook = run(form(tmp_path, rows), "Sheet1", [], tmp_path, {**SUMMARY, "status": status})
    assert text in str(workbook[SUMMARY_SHEET]["A3"].value)
    assert summary_rows(workbook) == []


def test_several_issues_on_one_cell_share_one_comment_in_the_worst_colour(tmp_path: Path, rows: pd.DataFrame) -> None:
    issues = [
        issue("RULE_FAILED", "辍学学生数应为0", sheet="Sheet1", row=7, column="G列 辍学学生数"),
        issue("VALUE_NEGATIVE", "辍学学生数不能为负数", sheet="Sheet1", row=7, column="G列 辍学学生数"),
        issue("VALUE_COERCED", "按数字读取", sheet="Sheet1", row=7, column="G列 辍学学生数"),
    ]
    ws = data_sheet(run(form(tmp_path, rows), "Sheet1", issues, tmp_path))
    marked = comments(ws)
    assert list(marked) == ["G7"]
    text = marked["G7"]
    assert text.index("VALUE_NEGATIVE") < text.index("RULE_FAILED") < text.index("VALUE_COERCED")  # worst first
    assert fill(ws, "G7") == RED


def test_an_issue_naming_two_columns_marks_both(tmp_path: Path, rows: pd.DataFrame) -> None:
    both = issue("RULE_FAILED", "合计应等于小学加初中", sheet="Sheet1", row=8,
                 column="E列 在校学生数/合计；C列 在校学生数/小学；D列 在校学生数/初中")
    ws = data_sheet(run(form(tmp_path, rows), "Sheet1", [both], tmp_path))
    assert set(comments(ws)) == {"C8", "D8", "E8"}


def test_row_and_column_only_issues(tmp_path: Path, rows: pd.DataFrame) -> None:
    issues = [
        issue("PERIOD_MISMATCH", "标题中的期间与报送期间不一致", sheet="Sheet1", row=1),  # the merged title
        issue("ROWS_HIDDEN", "第9行被隐藏", sheet="Sheet1", row=9),  # a township row: its key cell
        issue("COLUMN_UNKNOWN", "无法识别的列", sheet="Sheet1", column="C列 在校学生数/小学"),  # its header
        issue("COLUMN_ALIAS", "按别名识别", sheet="Sheet1", column="B列 适龄儿童少年数"),  # merged B3:B4
        issue("COLUMN_UNKNOWN", "M列没有表头却有数据", sheet="Sheet1", column="M列"),  # nothing to point at
        issue("SHEET_CHOSEN", "读取了工作表Sheet1", sheet="其他"),
    ]
    source = form(tmp_path, rows)
    hidden = openpyxl.load_workbook(source)
    hidden["Sheet1"].row_dimensions[9].hidden = True
    hidden.save(source)
    workbook = run(source, "Sheet1", issues, tmp_path)
    ws = data_sheet(workbook)
    marked = comments(ws)
    assert set(marked) == {"A1", "A9", "C4", "B3"}
    assert not ws.row_dimensions[9].hidden  # a marked row is shown
    assert "PERIOD_MISMATCH" in marked["A1"] and "ROWS_HIDDEN" in marked["A9"]
    assert len(summary_rows(workbook)) == len(issues)


def test_text_that_looks_like_a_formula_stays_text(tmp_path: Path, rows: pd.DataFrame) -> None:
    text_rows = rows.astype(object)
    text_rows.loc[0, "teacher_training_person_times"] = "=1+1"
    text_rows.loc[1, "teacher_training_person_times"] = "-2+3"
    text_rows.loc[2, "teacher_training_person_times"] = "@SUM(A1)"
    source = form(tmp_path, text_rows, "csv-gbk")
    evil = issue("VALUE_NOT_NUMBER", "=HYPERLINK(\"http://x\")不是数字", row=5, column="L列 教师培训人次")
    out = tmp_path / "out.xlsx"
    write_correction_workbook(source.read_bytes(), source.name, None, [evil], out, summary=SUMMARY)

    ws = data_sheet(openpyxl.load_workbook(out))
    for coordinate, text in (("L5", "=1+1"), ("L6", "-2+3"), ("L7", "@SUM(A1)")):
        assert ws[coordinate].value == text and ws[coordinate].data_type == "s"
        assert ws[coordinate].quotePrefix
    with zipfile.ZipFile(out) as archive:
        assert not any(b"<f>" in archive.read(n) for n in archive.namelist() if n.startswith("xl/worksheets/"))


def test_a_broken_file_raises_value_error(tmp_path: Path, rows: pd.DataFrame) -> None:
    out = tmp_path / "out.xlsx"
    broken = form(tmp_path, rows).read_bytes()[:500]
    with pytest.raises(ValueError, match=r"edu\.xlsx"):
        write_correction_workbook(broken, "edu.xlsx", "Sheet1", [], out, summary=SUMMARY)
    with pytest.raises(ValueError, match="工作表"):
        write_correction_workbook(form(tmp_path, rows).read_bytes(), "edu.xlsx", "不存在", [], out, summary=SUMMARY)
    with pytest.raises(ValueError):
        write_correction_workbook(b"\x00" * 64, "edu.xls", "Sheet1", [], out, summary=SUMMARY)
    with pytest.raises(ValueError, match="不支持"):
        write_correction_workbook(b"abc", "edu.pdf", None, [], out, summary=SUMMARY)
    assert not out.exists() and list(tmp_path.glob(".*")) == []  # no temporary left behind


def test_an_existing_workbook_is_replaced_whole(tmp_path: Path, rows: pd.DataFrame) -> None:
    source = form(tmp_path, rows)
    out = tmp_path / "out" / "correction.xlsx"
    out.parent.mkdir()
    out.write_bytes(b"old")
    write_correction_workbook(source.read_bytes(), source.name, "Sheet1", [], out, summary=SUMMARY)
    assert openpyxl.load_workbook(out).sheetnames == [SUMMARY_SHEET, "Sheet1"]
    assert [p.name for p in out.parent.iterdir()] == ["correction.xlsx"]


@pytest.mark.parametrize("fmt", ["xlsx", "csv-gbk"])
def test_the_pipelines_own_issues_mark_the_offending_cells(tmp_path: Path, rows: pd.DataFrame, fmt: str) -> None:
    totals = {"enrolled_primary_persons": int(rows["enrolled_primary_persons"].sum()) + 7}
    source = form(tmp_path, rows, fmt, township_names={"513323202": "聂嘎乡"}, totals=totals)  # type: ignore[arg-type]
    received = receive(source, EDU, MAY)
    parsed = parse(received, reference_frames())
    validation = validate(parsed)
    receipt = build_receipt(received, parsed, validation, status=validation.outcome)
    assert {i.code for i in validation.issues} >= {"TOWNSHIP_UNKNOWN", "TOTAL_MISMATCH"}

    workbook = run(source, receipt["sheet"], validation.issues, tmp_path, receipt)
    ws = data_sheet(workbook)
    marked = comments(ws)
    assert ws["A9"].value == "聂嘎乡" and "TOWNSHIP_UNKNOWN" in marked["A9"] and "聂呷乡" in marked["A9"]
    assert "TOTAL_MISMATCH" in marked["C20"] and fill(ws, "C20") == RED
    assert "已退回" in str(workbook[SUMMARY_SHEET]["A3"].value)
    assert len(summary_rows(workbook)) == len(validation.issues)


def test_without_a_sheet_name_the_first_sheet_is_marked(tmp_path: Path, rows: pd.DataFrame) -> None:
    ws = data_sheet(run(form(tmp_path, rows), None, typical_issues("Sheet1"), tmp_path))
    assert set(comments(ws)) == {"B5", "C20", "G7"}
