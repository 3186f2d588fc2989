"""Reader → layout → normalise → validate, stressed the way county departments stress it.

Every test writes small files into ``tmp_path`` — with :func:`tasks.demo.form_writer.write_form`, or
by hand with openpyxl / xlwt / plain bytes when a layout needs something the writer does not
make — and runs them through ``validate(parse(receive(path, department, period), reference))``.
Assertions are on the outcome (loaded / rejected / quarantined) and on the exact issue codes
with the row and column each one names. Rows are 1-based as Excel shows them; a standard
education form (2-level header, no 栏次 row) has its title on row 1, the 填报单位 line on row 2,
the header on rows 3–4, townships on rows 5–19 and 合计 on row 20.
"""

from __future__ import annotations

import codecs
import csv
import io
import zipfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import xlwt

from expectations.declaration import Declaration, load_declarations
from expectations.issues import Issue
from tasks.demo.form_writer import build_form_grid, write_form
from tasks.demo.values import demo_values
from tasks.forms.grid import Grid
from tasks.forms.layout import locate_form
from tasks.forms.normalise import NormalisedForm
from tasks.forms.read import read_grids
from tasks.forms.read_csv import decode_candidates
from tasks.forms.townships import TownshipResolver
from tasks.submission.journey import parse, receive, validate
from tasks.validation.validate import Validation
from warehouse.refdata import ReferenceFrames, reference_frames

EDU, MAY = "education", "2017-05"
CODES = (
    "513323100", "513323101", "513323102", "513323201", "513323202", "513323204", "513323205",
    "513323206", "513323207", "513323208", "513323209", "513323210", "513323211", "513323212",
    "513323213",
)
#: education columns as the receipt names them (letter + normalised header path)
COL_SCHOOL_AGE = "B列 适龄儿童少年数"
COL_PRIMARY = "C列 在校学生数/小学"
COL_DROPOUTS = "G列 辍学学生数"
COL_RETURNED = "H列 劝返复学人数(本年累计)"
COL_TEACHERS = "L列 教师培训人次"
FIRST_ROW, TOTAL_ROW = 5, 20  # standard education form: townships on rows 5–19, 合计 on row 20


# --------------------------------------------------------------------------------------------
# Running a submission
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    form: NormalisedForm | None
    validation: Validation

    @property
    def outcome(self) -> str:
        return self.validation.outcome

    @property
    def issues(self) -> tuple[Issue, ...]:
        return self.validation.issues

    @property
    def codes(self) -> Counter[str]:
        return Counter(i.code for i in self.issues)

    def where(self, code: str) -> list[tuple[int | None, str | None]]:
        """(row, column) of every issue with ``code``, in report order."""
        return [(i.row, i.column) for i in self.issues if i.code == code]

    def one(self, code: str) -> Issue:
        found = [i for i in self.issues if i.code == code]
        assert len(found) == 1, (code, self.issues)
        return found[0]

    @property
    def facts(self) -> pd.DataFrame:
        """Township rows in base units, indexed by township code (as the warehouse gets them)."""
        assert self.form is not None
        return self.form.wide.drop(columns="township_text").set_index("township_code")


Submit = Callable[[Path, str, str], Outcome]


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.fixture(scope="module")
def submit(reference: ReferenceFrames) -> Submit:
    def run(path: Path, department: str, period: str) -> Outcome:
        parsed = parse(receive(path, department, period), reference)
        return Outcome(parsed.form, validate(parsed))

    return run


@pytest.fixture(scope="module")
def values() -> dict[tuple[str, str], pd.DataFrame]:
    return demo_values()


def decl(department: str) -> Declaration:
    return load_declarations()[department]


def base_units(frame: pd.DataFrame, department: str) -> pd.DataFrame:
    """Form-unit values (as demo_values gives them) → what the reader should store."""
    declaration = decl(department)
    out = pd.DataFrame(index=pd.Index(frame["township_code"].astype(str), name="township_code"))
    for ind in declaration.indicators:
        if ind.name in frame.columns:
            out[ind.name] = [round(float(v) * ind.factor, 6) for v in frame[ind.name]]
    return out


def as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).copy()


# --------------------------------------------------------------------------------------------
# Hand-made workbooks: the writer's grid, edited, rendered by openpyxl / xlwt
# --------------------------------------------------------------------------------------------


XLS_ERRORS = frozenset({"#DIV/0!", "#REF!", "#N/A", "#VALUE!"})


def in_memory(sheet: Sheet) -> Grid:
    return Grid(sheet="Sheet1", rows=tuple(tuple(r) for r in sheet.cells), merged=tuple(sheet.merges))


@dataclass
class Sheet:
    cells: list[list[Any]]
    merges: list[tuple[int, int, int, int]] = field(default_factory=list)  # 0-based, inclusive
    hidden_rows: Sequence[int] = ()  # 0-based
    hidden_cols: Sequence[str] = ()  # column letters
    hidden: bool = False


def form_sheet(department: str, period: str, rows: pd.DataFrame, **options: Any) -> tuple[Sheet, list[str]]:
    """The writer's layout of a form as an editable sheet, and the kind of each row."""
    grid = build_form_grid(decl(department), period, rows, **options)
    return Sheet([list(r) for r in grid.cells], list(grid.merges)), list(grid.row_kinds)


def save_xlsx(path: Path, sheets: Mapping[str, Sheet]) -> Path:
    wb = openpyxl.Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    for name, sheet in sheets.items():
        ws = wb.create_sheet(name)
        for r, row in enumerate(sheet.cells, start=1):
            for c, value in enumerate(row, start=1):
                if value is not None:
                    ws.cell(row=r, column=c, value=value)
        for r0, c0, r1, c1 in sheet.merges:
            ws.merge_cells(start_row=r0 + 1, start_column=c0 + 1, end_row=r1 + 1, end_column=c1 + 1)
        for r in sheet.hidden_rows:
            ws.row_dimensions[r + 1].hidden = True
        for letter in sheet.hidden_cols:
            ws.column_dimensions[letter].hidden = True
        if sheet.hidden:
            ws.sheet_state = "hidden"
    wb.save(path)
    return path


def save_xls(path: Path, sheets: Mapping[str, Sheet]) -> Path:
    """BIFF8 via xlwt; the texts in :data:`XLS_ERRORS` become real error cells."""
    wb = xlwt.Workbook(encoding="utf-8")
    for name, sheet in sheets.items():
        ws = wb.add_sheet(name)
        covered: set[tuple[int, int]] = set()
        for r0, c0, r1, c1 in sheet.merges:
            value = sheet.cells[r0][c0]
            ws.write_merge(r0, r1, c0, c1, "" if value is None else value)
            covered.update((r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1))
        for r, row in enumerate(sheet.cells):
            for c, value in enumerate(row):
                if (r, c) in covered or value is None:
                    continue
                if isinstance(value, str) and value in XLS_ERRORS:
                    ws.row(r).set_cell_error(c, value)
                else:
                    ws.write(r, c, value)
        for r in sheet.hidden_rows:
            ws.row(r).hidden = True
    wb.save(str(path))
    return path


# --------------------------------------------------------------------------------------------
# Layout: the form as county departments really fill it in
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total_position", "column_numbers_row", "first_row", "total_row"),
    [
        ("bottom", True, 6, 21),  # 栏次 row 5, townships 6–20, 合计 21
        ("top", True, 7, 6),  # 栏次 row 5, 合计 6, townships 7–21
        ("top", False, 6, 5),
        (None, False, 5, None),
    ],
)
def test_xlsx_form_with_title_merged_headers_and_total(
    tmp_path: Path,
    submit: Submit,
    values: dict[tuple[str, str], pd.DataFrame],
    total_position: Any,
    column_numbers_row: bool,
    first_row: int,
    total_row: int | None,
) -> None:
    rows = values[(EDU, MAY)]
    path = write_form(
        tmp_path / "教育.xlsx", decl(EDU), MAY, rows,
        total_position=total_position, column_numbers_row=column_numbers_row,
    )
    result = submit(path, EDU, MAY)

    assert result.outcome == "loaded"
    if total_row is None:
        assert result.codes == Counter({"TOTAL_ROW_MISSING": 1})
        assert result.one("TOTAL_ROW_MISSING").severity == "info"
    else:
        assert result.issues == ()
    form = result.form
    assert form is not None
    # townships are the 15 data rows, in order; the 合计 row and the notes are not data
    assert list(form.wide.index) == list(range(first_row, first_row + 15))
    assert list(form.wide["township_code"]) == list(CODES)
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))
    assert form.total_row_number == total_row
    if total_row is not None:
        assert form.total_label == "合计"
        assert form.totals["enrolled_primary_persons"] == rows["enrolled_primary_persons"].sum()
        assert form.totals["student_aid_ytd_yuan"] == pytest.approx(rows["student_aid_ytd_yuan"].sum() * 10000)
    assert result.validation.flagged_rows == frozenset()
    assert {r.check_id for r in result.validation.results if not r.success} == set()

    table = locate_form(read_grids(path.read_bytes(), path.name)[0], decl(EDU))
    assert table is not None
    assert table.title == "丹巴县2017年5月教育扶贫工作进展月报表" and table.title_row == 1
    assert table.header_rows == (3, 4)
    assert table.column_numbers_row == (5 if column_numbers_row else None)
    assert table.total_position == total_position
    enrolled = [("在校学生数", "小学"), ("在校学生数", "初中"), ("在校学生数", "合计")]
    assert [c.path for c in table.columns[1:4]] == enrolled
    assert table.notes[0] == "注：本表数据截至当月末。"
    assert table.notes[1].startswith("填表人：")


def test_xls_loads_the_same_facts_as_xlsx(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("health", MAY)]
    options: dict[str, Any] = {"column_numbers_row": True, "header_style": "messy", "total_position": "top"}
    xlsx = submit(write_form(tmp_path / "h.xlsx", decl("health"), MAY, rows, **options), "health", MAY)
    xls = submit(write_form(tmp_path / "h.xls", decl("health"), MAY, rows, fmt="xls", **options), "health", MAY)

    assert xlsx.outcome == xls.outcome == "loaded"
    assert xlsx.issues == xls.issues == ()
    assert xls.form is not None and xlsx.form is not None
    pd.testing.assert_frame_equal(xls.form.wide, xlsx.form.wide)
    assert xls.form.totals == xlsx.form.totals
    assert xls.form.total_row_number == xlsx.form.total_row_number == 5  # header 3, 栏次 4, 合计 5
    pd.testing.assert_frame_equal(xls.facts, base_units(rows, "health"))


def test_xls_error_cell_and_hidden_row(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """A real BIFF error cell (#REF!) and a hidden row survive xlrd and are reported where they are."""
    sheet, _ = form_sheet(EDU, MAY, values[(EDU, MAY)], total_position=None)
    sheet.cells[FIRST_ROW - 1 + 2][1] = "#REF!"  # 革什扎镇, 适龄儿童少年数
    sheet.hidden_rows = [FIRST_ROW - 1 + 5]  # 边耳乡
    result = submit(save_xls(tmp_path / "edu.xls", {"Sheet1": sheet}), EDU, MAY)

    assert result.outcome == "rejected"
    assert result.where("VALUE_EXCEL_ERROR") == [(7, COL_SCHOOL_AGE)]
    assert result.one("VALUE_EXCEL_ERROR").value == "#REF!"
    assert result.where("VALUE_REQUIRED_MISSING") == []  # the error already explains the blank
    assert "第10行" in result.one("ROWS_HIDDEN").message
    assert result.codes == Counter(
        {"VALUE_EXCEL_ERROR": 1, "ROWS_HIDDEN": 1, "TOTAL_ROW_MISSING": 1}
    )
    assert result.validation.rejected_rows == frozenset({7})


def _with_serial_and_remarks(sheet: Sheet, kinds: list[str]) -> Sheet:
    """Insert a 序号 column left of 乡(镇) and add a 备注 column on the right, as many forms have."""
    first_header = kinds.index("header")
    depth = kinds.count("header")
    serial = 0
    cells = []
    for r, (row, kind) in enumerate(zip(sheet.cells, kinds, strict=True)):
        if kind in ("title", "info", "blank", "note"):
            cells.append([*row, None, None])
            continue
        lead: Any = None
        tail: Any = None
        if r == first_header:
            lead, tail = "序号", "备注"
        elif kind == "column_numbers":
            lead = "栏次"
        elif kind == "data":
            serial += 1
            lead = serial
            tail = "含寄宿制学校" if serial == 1 else None
        cells.append([lead, *row, tail])
    width = len(cells[0])
    merges = [m if m[0] < first_header else (m[0], m[1] + 1, m[2], m[3] + 1) for m in sheet.merges]
    last_header = first_header + depth - 1
    merges += [(first_header, 0, last_header, 0), (first_header, width - 1, last_header, width - 1)]
    return Sheet(cells, merges)


def test_serial_and_remarks_columns_are_ignored(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    sheet, kinds = form_sheet(EDU, MAY, rows, column_numbers_row=True)
    path = save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": _with_serial_and_remarks(sheet, kinds)})
    result = submit(path, EDU, MAY)

    assert result.outcome == "loaded"
    assert result.issues == ()
    assert result.form is not None
    assert list(result.form.wide.index) == list(range(6, 21))  # the 栏次 row (栏次 / 甲 / 1 …) is not a township
    assert result.form.column_labels["school_age_children_persons"] == "C列 适龄儿童少年数"
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))


@pytest.mark.parametrize("label", ["合计", "合计（15个乡镇）"])
def test_unused_template_rows_and_a_total_merged_across_serial_and_key(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame], label: str
) -> None:
    """序号 pre-printed 1–18 with three rows unused, then 合计 written across 序号 and 乡(镇)."""
    rows = values[(EDU, MAY)]
    sheet, kinds = form_sheet(EDU, MAY, rows)
    sheet = _with_serial_and_remarks(sheet, kinds)
    total = kinds.index("total")
    width = len(sheet.cells[0])
    unused = [[n, *([None] * (width - 1))] for n in (16, 17, 18)]
    sheet.cells[total][0:2] = [label, None]
    sheet.cells[total:total] = unused
    shifted = [(r0 + 3, c0, r1 + 3, c1) if r0 >= total else (r0, c0, r1, c1) for r0, c0, r1, c1 in sheet.merges]
    sheet.merges = [*shifted, (total + 3, 0, total + 3, 1)]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)

    assert result.outcome == "loaded"
    assert result.issues == ()
    assert result.form is not None
    assert list(result.form.wide.index) == list(range(FIRST_ROW, FIRST_ROW + 15))
    assert result.form.total_row_number == TOTAL_ROW + 3 and result.form.total_label == label
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))


def test_a_lone_unit_cell_above_the_header_is_not_the_key(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """单位 is a declared alias of the key column, and also what the 单位 line says, in its own cell."""
    rows = values[(EDU, MAY)]
    sheet, kinds = form_sheet(EDU, MAY, rows)
    info = kinds.index("info")
    sheet.cells[info] = ["填报单位：", "丹巴县教育局", *[None] * 6, "单位", "人、人次、万元",
                         "填报日期：", "2017年6月8日"]
    sheet.merges = [m for m in sheet.merges if m[0] != info]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)
    assert result.outcome == "loaded" and result.issues == ()
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))


def test_a_subtotal_between_townships_is_not_the_county_total(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    sheet, kinds = form_sheet(EDU, MAY, rows)
    towns = kinds.index("data") + 3  # after 章谷镇, 巴底镇, 革什扎镇
    subtotal = ["镇小计", *(sum(sheet.cells[r][c] for r in range(towns - 3, towns)) for c in range(1, 12))]
    sheet.cells.insert(towns, subtotal)
    sheet.merges = [(r0 + 1, c0, r1 + 1, c1) if r0 >= towns else (r0, c0, r1, c1) for r0, c0, r1, c1 in sheet.merges]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)

    assert result.outcome == "loaded"
    assert result.where("TOTAL_ROW_MISSING") == [(8, None)]  # reported as not read, never a township
    assert result.codes == Counter({"TOTAL_ROW_MISSING": 1})
    assert result.form is not None and result.form.total_row_number == TOTAL_ROW + 1
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))


def test_hidden_columns(tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]) -> None:
    """A hidden empty helper column is ignored; a hidden column with figures in it is not."""
    sheet, kinds = form_sheet(EDU, MAY, values[(EDU, MAY)])
    first_header, first_data = kinds.index("header"), kinds.index("data")
    for r, row in enumerate(sheet.cells):
        row += [None, None]
        if r == first_header:
            row[-2:] = ["辅助列", "测算人数"]
        elif kinds[r] == "data":
            row[-1] = r - first_data + 1
    sheet.hidden_cols = ["M", "N"]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)
    assert result.outcome == "quarantined"
    assert [(i.code, i.column) for i in result.issues] == [("COLUMN_UNKNOWN", "N列 测算人数")]


def test_unmerged_two_level_header_carries_the_parent_label(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """Some forms write 在校学生数 once over 小学/初中/合计 without merging any header cell."""
    rows = values[(EDU, MAY)]
    sheet, kinds = form_sheet(EDU, MAY, rows)
    first_header = kinds.index("header")
    sheet.merges = [m for m in sheet.merges if m[0] < first_header]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)
    assert result.outcome == "loaded" and result.issues == ()
    assert result.form is not None and result.form.column_labels["enrolled_total_persons"] == "E列 在校学生数/合计"
    pd.testing.assert_frame_equal(result.facts, base_units(rows, EDU))


@pytest.mark.parametrize("label", ["合 计", "全县合计", "总计", "丹巴县"])
def test_total_row_labels(values: dict[tuple[str, str], pd.DataFrame], label: str) -> None:
    sheet, _ = form_sheet(EDU, MAY, values[(EDU, MAY)], total_position="top", total_label=label)
    table = locate_form(in_memory(sheet), decl(EDU))
    assert table is not None and table.total_row is not None
    assert (table.total_row.row_number, table.total_position) == (5, "top")
    assert [r.row_number for r in table.rows] == list(range(6, 21))


@pytest.mark.parametrize(
    "footer",
    [
        ["注：1.本表由县教育局汇总。"],
        ["填表人：张敏", None, None, "审核人：李强"],
        ["单位负责人：", None, "统计负责人：", None, "填表人：", None, "报出日期：2017年6月5日"],
        [None, None, None, None, None, None, None, None, None, "报出日期：2017年6月5日"],
        ["（盖章）"],
        [None, None, None, None, None, None, None, None, None, "2017年6月5日"],
        ["联系人：张敏", None, None, "联系电话：0836-3522xxx"],
    ],
)
def test_signature_and_note_lines_below_are_not_data(
    values: dict[tuple[str, str], pd.DataFrame], footer: list[Any]
) -> None:
    sheet, kinds = form_sheet(EDU, MAY, values[(EDU, MAY)])
    sheet.cells = [*sheet.cells[: kinds.index("total") + 1], footer]  # straight after 合计, no 注 line before
    table = locate_form(in_memory(sheet), decl(EDU))
    assert table is not None
    assert [r.row_number for r in table.rows] == list(range(FIRST_ROW, FIRST_ROW + 15))
    assert table.total_row is not None and table.total_row.row_number == TOTAL_ROW
    assert len(table.notes) == 1


# --------------------------------------------------------------------------------------------
# CSV: encodings as Chinese Windows, Excel's "CSV UTF-8" and "Unicode text" write them
# --------------------------------------------------------------------------------------------


def _utf16_tab_text(utf8_csv: Path, target: Path) -> Path:
    """Excel's "Unicode text": UTF-16 with a BOM, tab-separated."""
    rows = list(csv.reader(io.StringIO(utf8_csv.read_text(encoding="utf-8"), newline="")))
    buffer = io.StringIO()
    csv.writer(buffer, delimiter="\t", lineterminator="\r\n").writerows(rows)
    target.write_bytes(buffer.getvalue().encode("utf-16"))
    return target


@pytest.mark.parametrize(
    ("fmt", "encoding", "starts_with"),
    [
        ("csv-gbk", "gb18030", b"\xb5\xa4\xb0\xcd"),  # 丹巴 in GBK, no BOM
        ("csv-utf8-bom", "utf-8-sig", codecs.BOM_UTF8),
        ("csv-utf8", "utf-8", "丹巴".encode()),
        ("utf-16", "utf-16", codecs.BOM_UTF16_LE),
    ],
)
def test_csv_encodings_load_identical_values(
    tmp_path: Path,
    submit: Submit,
    values: dict[tuple[str, str], pd.DataFrame],
    fmt: str,
    encoding: str,
    starts_with: bytes,
) -> None:
    rows = values[("labour", MAY)]
    # wrapped headers put line breaks inside quoted CSV cells, full-width brackets and colons too
    options: dict[str, Any] = {"header_style": "messy", "column_numbers_row": True}
    if fmt == "utf-16":
        utf8 = write_form(tmp_path / "utf8.csv", decl("labour"), MAY, rows, fmt="csv-utf8", **options)
        path = _utf16_tab_text(utf8, tmp_path / "labour.csv")
    else:
        path = write_form(tmp_path / "labour.csv", decl("labour"), MAY, rows, fmt=fmt, **options)  # type: ignore[arg-type]
    content = path.read_bytes()
    assert content.startswith(starts_with)
    if fmt == "csv-gbk":
        with pytest.raises(UnicodeDecodeError):
            content.decode("utf-8")

    result = submit(path, "labour", MAY)
    assert result.outcome == "loaded"
    assert result.codes == Counter({"ENCODING_DETECTED": 1})
    detected = result.one("ENCODING_DETECTED")
    assert detected.severity == "info" and encoding in detected.message
    assert result.form is not None and result.form.encoding == encoding
    assert list(result.form.wide.index) == list(range(6, 21))
    pd.testing.assert_frame_equal(result.facts, base_units(rows, "labour"))
    assert result.form.total_row_number == 21


def test_short_utf8_csv_that_is_also_valid_gb18030_is_read_as_utf8(tmp_path: Path, submit: Submit) -> None:
    # even runs of Chinese characters make UTF-8 bytes that GB18030 decodes too (to mojibake)
    text = (
        "乡镇,农业户籍人口,建档立卡贫困人口(年末),当年脱贫人数,农牧民人均纯收入(元）\r\n"
        "章谷,5811,507,147,13476\r\n"
        "革什扎镇,3798,521,158,10349\r\n"
        "半扇门乡,2950,402,121,9870\r\n"
    )
    content = text.encode("utf-8")
    assert content.decode("gb18030") != text  # precondition: both decodings succeed
    assert [enc for enc, _ in decode_candidates(content)] == ["utf-8", "gb18030"]
    path = tmp_path / "贫困.csv"
    path.write_bytes(content)

    result = submit(path, "poverty", "2016")
    assert result.outcome == "loaded"
    assert "utf-8" in result.one("ENCODING_DETECTED").message
    assert result.form is not None and result.form.encoding == "utf-8"
    assert list(result.form.wide["township_code"]) == ["513323100", "513323102", "513323212"]
    assert list(result.form.wide["net_income_per_capita_yuan"]) == [13476.0, 10349.0, 9870.0]
    assert result.where("TOWNSHIP_ALIAS") == [(2, "A列 乡镇")]
    assert result.codes == Counter(
        {"ENCODING_DETECTED": 1, "TOWNSHIP_ALIAS": 1, "TOTAL_ROW_MISSING": 1, "TOWNSHIP_MISSING": 1}
    )


@pytest.mark.parametrize(
    "content",
    [
        b"\x80\x80\xff\xfa,1,2\r\n",  # neither UTF-8 nor GB18030
        codecs.BOM_UTF8 + "乡(镇)".encode("gbk"),  # a UTF-8 BOM on GBK bytes
    ],
)
def test_undecodable_csv_is_rejected(tmp_path: Path, submit: Submit, content: bytes) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    result = submit(path, EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({"ENCODING_UNDECODABLE": 1})
    assert result.form is None


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def test_messy_headers_match_and_aliases_are_reported(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    messy = submit(write_form(tmp_path / "messy.xlsx", decl(EDU), MAY, rows, header_style="messy"), EDU, MAY)
    assert messy.outcome == "loaded" and messy.issues == ()
    raw = read_grids((tmp_path / "messy.xlsx").read_bytes(), "messy.xlsx")[0]
    assert "（" in str(raw.cell(2, 7)) and "\n" in str(raw.cell(2, 7))  # 劝返复学人数\n（本年累计）

    alias = submit(write_form(tmp_path / "alias.xlsx", decl(EDU), MAY, rows, header_style="alias"), EDU, MAY)
    assert alias.outcome == "loaded"
    assert alias.codes == Counter({"COLUMN_ALIAS": 3})
    assert alias.where("COLUMN_ALIAS") == [
        (None, "E列 在校学生数/小计"),
        (None, "F列 建档立卡贫困家庭学生"),
        (None, "K列 资助金额(万元)"),
    ]
    assert all(i.severity == "info" for i in alias.issues)
    assert "资助金额(本年累计,万元)" in alias.issues[2].message
    assert alias.form is not None and messy.form is not None
    pd.testing.assert_frame_equal(alias.form.wide, messy.form.wide)


@pytest.mark.parametrize(
    ("change", "outcome", "expected"),
    [
        ("drop_required", "rejected", [("COLUMN_MISSING", None, None)]),
        ("drop_optional", "loaded", [("COLUMN_OPTIONAL_MISSING", None, None)]),
        ("extra_column", "quarantined", [("COLUMN_UNKNOWN", None, "M列 控辍保学工作人员数")]),
        ("repeated_column", "rejected", [("COLUMN_DUPLICATE", None, "M列 辍学学生数")]),
    ],
)
def test_missing_and_unknown_columns(
    tmp_path: Path,
    submit: Submit,
    values: dict[tuple[str, str], pd.DataFrame],
    change: str,
    outcome: str,
    expected: list[tuple[str, int | None, str | None]],
) -> None:
    rows = values[(EDU, MAY)].copy()
    if change == "drop_required":
        rows = rows.drop(columns="dropouts_persons")
    elif change == "drop_optional":
        rows = rows.drop(columns="teacher_training_person_times")
    elif change == "extra_column":
        rows["控辍保学工作人员数"] = 2
    else:
        rows["again"] = rows["dropouts_persons"]
    paths = {"again": ["辍学学生数"]}
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, header_paths=paths), EDU, MAY)
    assert result.outcome == outcome
    assert [(i.code, i.row, i.column) for i in result.issues] == expected
    if change == "drop_required":
        assert "辍学学生数" in result.issues[0].message
        assert result.issues[0].action == "reject"


# --------------------------------------------------------------------------------------------
# Sheets and hidden rows
# --------------------------------------------------------------------------------------------


def test_the_sheet_with_the_form_is_chosen_and_hidden_rows_are_reported(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    form, _ = form_sheet(EDU, MAY, values[(EDU, MAY)])
    form.hidden_rows = [7]  # row 8, 巴旺乡
    notes = Sheet([["填表说明"], ["1. 乡镇按统计用区划代码顺序填写"], ["2. 单位：人、人次、万元"]])
    path = save_xlsx(tmp_path / "edu.xlsx", {"填表说明": notes, "5月": form})
    result = submit(path, EDU, MAY)

    assert result.outcome == "loaded"
    assert result.codes == Counter({"SHEET_CHOSEN": 1, "ROWS_HIDDEN": 1})
    chosen = result.one("SHEET_CHOSEN")
    assert chosen.sheet == "5月" and "填表说明" in chosen.message
    hidden = result.one("ROWS_HIDDEN")
    assert hidden.severity == "warning" and "第8行" in hidden.message
    assert result.form is not None and 8 in result.form.wide.index  # read, never dropped


def test_a_hidden_stale_copy_gives_way_to_the_visible_form(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    stale, _ = form_sheet(EDU, "2017-04", values[(EDU, "2017-04")])
    stale.hidden = True
    current, _ = form_sheet(EDU, MAY, values[(EDU, MAY)])
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"4月": stale, "5月": current}), EDU, MAY)
    assert result.outcome == "loaded"
    assert result.codes == Counter({"SHEET_CHOSEN": 1})
    assert result.one("SHEET_CHOSEN").sheet == "5月" and "隐藏: 4月" in result.one("SHEET_CHOSEN").message


def test_one_sheet_per_month_takes_the_declared_month(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    april, _ = form_sheet(EDU, "2017-04", values[(EDU, "2017-04")])
    may, _ = form_sheet(EDU, MAY, values[(EDU, MAY)])
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"4月": april, "5月": may}), EDU, MAY)
    assert result.outcome == "loaded"
    assert result.codes == Counter({"SHEET_CHOSEN": 1})
    chosen = result.one("SHEET_CHOSEN").message
    assert "读取工作表“5月”" in chosen and "“4月”是其他报告期" in chosen and "未读取" in chosen


def test_two_sheets_claiming_the_period_are_ambiguous(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    may, _ = form_sheet(EDU, MAY, values[(EDU, MAY)])
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"5月": may, "5月(2)": may}), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({"SHEET_AMBIGUOUS": 1})
    assert "5月、5月(2)都是2017年5月" in result.one("SHEET_AMBIGUOUS").message


# --------------------------------------------------------------------------------------------
# Township keys
# --------------------------------------------------------------------------------------------


def test_township_variants_that_resolve(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    names = {
        "513323100": "章谷",  # short name
        "513323101": "巴底乡",  # right in 2011 (巴底镇 from 2013)
        "513323201": "巴旺乡\u3000",  # trailing full-width space
        "513323202": " 聂呷乡 ",
        "513323205": "丹东\u3000乡",  # full-width space inside
    }
    path = write_form(tmp_path / "p.xlsx", decl("poverty"), "2011", values[("poverty", "2011")], township_names=names)
    result = submit(path, "poverty", "2011")
    assert result.outcome == "loaded"
    # rows 4–18 (one header row); 革什扎乡 is the name valid in 2011 and the writer's default
    assert result.where("TOWNSHIP_ALIAS") == [(row, "A列 乡(镇)") for row in (4, 5, 6, 10)]
    assert result.codes == Counter({"TOWNSHIP_ALIAS": 4})
    assert "巴底镇(513323101)" in result.issues[1].message
    assert result.form is not None and list(result.form.wide["township_code"]) == list(CODES)


def test_township_names_that_do_not_resolve(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    names = {"513323101": "巴底乡", "513323202": "聂嘎乡", "513323204": "府青路街道"}
    path = write_form(tmp_path / "p.xlsx", decl("poverty"), "2017", values[("poverty", "2016")], township_names=names)
    result = submit(path, "poverty", "2017")

    assert result.outcome == "rejected"
    assert result.where("TOWNSHIP_UNKNOWN") == [(5, "A列 乡(镇)"), (8, "A列 乡(镇)"), (9, "A列 乡(镇)")]
    former, typo, helper = (i.message for i in result.issues if i.code == "TOWNSHIP_UNKNOWN")
    assert "巴底镇" in former and "2017年" in former
    assert "聂呷乡" in typo
    assert "边耳乡" in helper and "帮扶单位" in helper
    # each unknown name points at one township (the former name's, the closest, the verified pair):
    # that township is not also reported missing — one root cause per row
    assert result.codes == Counter({"TOWNSHIP_UNKNOWN": 3})
    assert result.validation.rejected_rows == frozenset({5, 8, 9})


def test_a_township_listed_twice_is_rejected_on_both_rows(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    names = {"513323201": "革什扎镇"}  # 巴旺乡's row says 革什扎镇 again
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, township_names=names), EDU, MAY)
    assert result.outcome == "rejected"
    assert [row for row, _ in result.where("TOWNSHIP_DUPLICATE")] == [7, 8]
    assert result.one("TOWNSHIP_MISSING").message.endswith("巴旺乡")
    assert result.codes == Counter({"TOWNSHIP_DUPLICATE": 2, "TOWNSHIP_MISSING": 1})
    assert result.validation.rejected_rows == frozenset({7, 8})


def test_a_missing_township_warns_but_loads(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    rows = rows[rows["township_code"] != "513323213"].reset_index(drop=True)  # no 太平桥乡
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows), EDU, MAY)
    assert result.outcome == "loaded"
    assert result.codes == Counter({"TOWNSHIP_MISSING": 1})
    assert result.one("TOWNSHIP_MISSING").message.endswith("太平桥乡")
    assert result.form is not None and result.form.rows_read == 14


def test_open_ended_alias_dates_do_not_break_the_resolver(reference: ReferenceFrames) -> None:
    extra = pd.DataFrame(
        [
            {"alias": "甲居镇", "valid_from": date(2020, 1, 1), "valid_to": None, "township_code": "513323202",
             "alias_kind": "official", "source": "assumed", "note": None},
            {"alias": "老章谷", "valid_from": None, "valid_to": date(1999, 12, 31), "township_code": "513323100",
             "alias_kind": "former", "source": "assumed", "note": None},
        ]
    )
    aliases = pd.concat([reference.aliases, extra], ignore_index=True)

    def resolver(start: date, end: date) -> TownshipResolver:
        return TownshipResolver(reference.townships, aliases, reference.helper_units, reference.pairings, start, end)

    in_2021 = resolver(date(2021, 3, 1), date(2021, 3, 31))
    assert in_2021.resolve("甲居镇").township_code == "513323202"
    in_2017 = resolver(date(2017, 5, 1), date(2017, 5, 31))
    future = in_2017.resolve("甲居镇")
    assert future.township_code is None and "2020年起" in (future.problem or "") and "聂呷乡" in (future.problem or "")
    past = in_2017.resolve("老章谷")
    assert past.township_code is None and "1999年及以前" in (past.problem or "") and "2017年5月" in (past.problem or "")


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def test_numbers_as_text_are_coerced_and_recorded(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    numeric = values[(EDU, MAY)].copy()
    numeric.loc[0, "school_age_children_persons"] = 1234
    rows = as_text(numeric)
    rows.loc[0, "school_age_children_persons"] = "1,234"
    rows.loc[1, "school_age_children_persons"] = str(numeric.loc[1, "school_age_children_persons"]).translate(
        str.maketrans("0123456789", "０１２３４５６７８９")
    )
    rows.loc[2, "school_age_children_persons"] = f"{numeric.loc[2, 'school_age_children_persons']}人"
    rows.loc[3, "teacher_training_person_times"] = "—"  # optional column: a null token loads
    rows.loc[4, "teacher_training_person_times"] = "/"
    rows.loc[5, "teacher_training_person_times"] = "无"
    totals = {"school_age_children_persons": int(numeric["school_age_children_persons"].sum())}
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, totals=totals), EDU, MAY)

    assert result.outcome == "loaded"
    assert result.where("VALUE_COERCED") == [(5, COL_SCHOOL_AGE), (6, COL_SCHOOL_AGE), (7, COL_SCHOOL_AGE)]
    assert result.where("VALUE_NULL_TOKEN") == [(8, COL_TEACHERS), (9, COL_TEACHERS), (10, COL_TEACHERS)]
    assert result.codes == Counter({"VALUE_COERCED": 3, "VALUE_NULL_TOKEN": 3})
    coerced = [i.message for i in result.issues if i.code == "VALUE_COERCED"]
    assert "千位分隔符" in coerced[0] and "全角" in coerced[1] and "去掉单位“人”" in coerced[2]
    expected = base_units(numeric, EDU)
    expected.iloc[3:6, expected.columns.get_loc("teacher_training_person_times")] = float("nan")
    pd.testing.assert_frame_equal(result.facts, expected)


@pytest.mark.parametrize("token", ["—", "/", "无"])
def test_null_token_in_a_required_column_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame], token: str
) -> None:
    rows = as_text(values[(EDU, MAY)])
    rows.loc[2, "dropouts_persons"] = token
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_NULL_TOKEN") == [(7, COL_DROPOUTS)]
    assert result.where("VALUE_REQUIRED_MISSING") == [(7, COL_DROPOUTS)]
    assert result.codes == Counter({"VALUE_NULL_TOKEN": 1, "VALUE_REQUIRED_MISSING": 1})
    assert result.validation.rejected_rows == frozenset({7})


def test_excel_error_is_rejected_without_a_spurious_total_mismatch(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    good = values[(EDU, MAY)]
    rows = as_text(good)
    rows.loc[1, "school_age_children_persons"] = "#DIV/0!"  # openpyxl stores it as an error cell
    totals = {"school_age_children_persons": int(good["school_age_children_persons"].sum())}  # typed in before
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, totals=totals), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_EXCEL_ERROR") == [(6, COL_SCHOOL_AGE)]
    assert result.one("VALUE_EXCEL_ERROR").value == "#DIV/0!"
    # the cell has no value, so the not-null check names it too; the 合计 of that column is not checked
    assert result.where("VALUE_REQUIRED_MISSING") == []  # not a second, untrue "为空"
    assert result.codes == Counter({"VALUE_EXCEL_ERROR": 1})


def test_fraction_in_a_count_column_is_not_an_integer(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = as_text(values[(EDU, MAY)])
    rows.loc[2, "school_age_children_persons"] = 12.5
    path = write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, total_position=None)
    result = submit(path, EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_NOT_INTEGER") == [(7, COL_SCHOOL_AGE)]
    assert "12.5" in result.one("VALUE_NOT_INTEGER").message
    # only the fraction is reported: the cell is not blank
    assert result.codes == Counter({"VALUE_NOT_INTEGER": 1, "TOTAL_ROW_MISSING": 1})
    assert result.validation.rejected_rows == frozenset({7})


def test_negative_count_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)].copy()
    rows.loc[3, "returned_to_school_ytd_persons"] = -3
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_NEGATIVE") == [(8, COL_RETURNED)]
    assert result.codes == Counter({"VALUE_NEGATIVE": 1})
    assert "-3" in result.one("VALUE_NEGATIVE").message


def test_text_that_is_no_number_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = as_text(values[(EDU, MAY)])
    rows.loc[0, "school_age_children_persons"] = "12人次"  # 人次 is not the column's unit 人
    rows.loc[1, "school_age_children_persons"] = "约600"
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, total_position=None), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_NOT_NUMBER") == [(5, COL_SCHOOL_AGE), (6, COL_SCHOOL_AGE)]
    assert result.codes["VALUE_NOT_NUMBER"] == 2


# --------------------------------------------------------------------------------------------
# Units and totals
# --------------------------------------------------------------------------------------------


def test_form_units_are_stored_in_base_units(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("tourism", "2016-08")]
    result = submit(write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-08", rows), "tourism", "2016-08")
    assert result.outcome == "loaded" and result.issues == ()
    facts = result.facts
    zhanggu = rows.iloc[0]
    # 万元 → 元, 万人次 → 人次
    assert facts.at["513323100", "tourism_revenue_yuan"] == round(zhanggu["tourism_revenue_yuan"] * 10000, 6)
    assert facts.at["513323100", "visitors_person_times"] == round(zhanggu["visitors_person_times"] * 10000, 6)
    assert facts.at["513323100", "beds"] == zhanggu["beds"]  # 张 stays
    pd.testing.assert_frame_equal(facts, base_units(rows, "tourism"))


def test_revenue_typed_in_yuan_in_a_wan_yuan_column_is_flagged(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """元 for 万元: 10000 times too much per visit; the declared warning catches it, the row is flagged."""
    rows = values[("tourism", "2016-08")].copy()
    rows.loc[1, "tourism_revenue_yuan"] = round(float(rows.loc[1, "tourism_revenue_yuan"]) * 10000, 2)
    result = submit(write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-08", rows), "tourism", "2016-08")
    assert result.outcome == "loaded"
    flagged = result.one("RULE_FAILED")
    assert (flagged.rule_id, flagged.severity, flagged.row) == ("tourism_revenue_per_visit", "warning", 5)
    assert flagged.message.startswith("巴底镇") and "万元" in flagged.message
    assert result.codes == Counter({"RULE_FAILED": 1})
    assert result.validation.flagged_rows == frozenset({5})


@pytest.mark.parametrize(("position", "total_row"), [("bottom", 20), ("top", 5)])
def test_total_that_disagrees_with_the_rows_is_quarantined(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame], position: str, total_row: int
) -> None:
    rows = values[(EDU, MAY)]
    totals = {"enrolled_primary_persons": int(rows["enrolled_primary_persons"].sum()) + 40}
    path = write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, totals=totals, total_position=position)  # type: ignore[arg-type]
    result = submit(path, EDU, MAY)
    assert result.outcome == "quarantined"
    assert result.one("TOTAL_MISMATCH").action == "quarantine"
    assert result.where("TOTAL_MISMATCH") == [(total_row, COL_PRIMARY)]
    assert result.codes == Counter({"TOTAL_MISMATCH": 1})
    message = result.one("TOTAL_MISMATCH").message
    assert f"{int(rows['enrolled_primary_persons'].sum()) + 40:,}" in message
    assert f"{int(rows['enrolled_primary_persons'].sum()):,}" in message
    assert "相差-40" in message  # the difference per column


@pytest.mark.parametrize(("delta", "outcome"), [(0.01, "loaded"), (-0.01, "loaded"), (0.05, "quarantined")])
def test_total_agrees_within_the_forms_rounding(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame], delta: float, outcome: str
) -> None:
    rows = values[("tourism", "2016-08")]
    total = round(float(rows["tourism_revenue_yuan"].sum()) + delta, 2)  # 万元, two decimals on the form
    path = write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-08", rows, totals={"tourism_revenue_yuan": total})
    result = submit(path, "tourism", "2016-08")
    assert result.outcome == outcome
    if outcome == "loaded":
        assert result.issues == ()
    else:
        assert result.where("TOTAL_MISMATCH") == [(20 - 1, "D列 旅游总收入(万元)")]
        assert "万元" in result.one("TOTAL_MISMATCH").message


def test_an_empty_total_row_is_reported_not_checked(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    totals = {ind.name: None for ind in decl(EDU).indicators}
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, totals=totals), EDU, MAY)
    assert result.outcome == "loaded"
    assert result.where("TOTAL_ROW_MISSING") == [(TOTAL_ROW, None)]
    assert result.codes == Counter({"TOTAL_ROW_MISSING": 1})


def test_formulas_without_saved_results_are_not_blanks(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """A workbook written by a program (not saved by Excel) has formulas but no values for them."""
    sheet, kinds = form_sheet(EDU, MAY, values[(EDU, MAY)])
    total = kinds.index("total")
    sheet.cells[total][1] = f"=SUM(B{FIRST_ROW}:B{TOTAL_ROW - 1})"
    sheet.cells[FIRST_ROW - 1][4] = f"=C{FIRST_ROW}+D{FIRST_ROW}"  # 在校学生数/合计 of 章谷镇
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": sheet}), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("VALUE_NOT_NUMBER") == [(FIRST_ROW, "E列 在校学生数/合计"), (TOTAL_ROW, COL_SCHOOL_AGE)]
    assert all("公式" in i.message for i in result.issues if i.code == "VALUE_NOT_NUMBER")
    assert result.where("VALUE_REQUIRED_MISSING") == []
    assert result.codes == Counter({"VALUE_NOT_NUMBER": 2})


# --------------------------------------------------------------------------------------------
# Period and department in the title
# --------------------------------------------------------------------------------------------


def test_title_of_another_month_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("labour", MAY)]
    path = write_form(tmp_path / "l.xlsx", decl("labour"), MAY, rows, title_period="2017-04")
    result = submit(path, "labour", MAY)
    assert result.outcome == "rejected"
    assert result.where("PERIOD_MISMATCH") == [(1, None)]
    assert result.codes == Counter({"PERIOD_MISMATCH": 1})
    assert "2017年4月" in result.issues[0].message and "2017年5月" in result.issues[0].message


def test_title_of_another_year_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    path = write_form(tmp_path / "p.xlsx", decl("poverty"), "2016", values[("poverty", "2016")], title_period="2015")
    result = submit(path, "poverty", "2016")
    assert result.outcome == "rejected"
    assert result.codes == Counter({"PERIOD_MISMATCH": 1})


def test_title_below_an_attachment_label_is_still_checked(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    sheet, _ = form_sheet(EDU, MAY, values[(EDU, MAY)], title_period="2017-04")
    cells = [["附件2"], *sheet.cells]
    merges = [(r0 + 1, c0, r1 + 1, c1) for r0, c0, r1, c1 in sheet.merges]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": Sheet(cells, merges)}), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.where("PERIOD_MISMATCH") == [(2, None)]
    assert result.codes == Counter({"PERIOD_MISMATCH": 1})


def test_a_form_without_title_is_not_dated_by_its_filling_date(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    """填报日期：2017年6月8日 on the 填报单位 line is not the report period."""
    sheet, _ = form_sheet(EDU, MAY, values[(EDU, MAY)])
    assert any("填报日期：2017年6月" in str(v) for v in sheet.cells[1])
    merges = [(r0 - 1, c0, r1 - 1, c1) for r0, c0, r1, c1 in sheet.merges if r0 > 0]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": Sheet(sheet.cells[1:], merges)}), EDU, MAY)
    assert result.outcome == "loaded"
    assert result.issues == ()


def test_another_departments_form_is_rejected_saying_what_was_expected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    path = write_form(tmp_path / "health.xlsx", decl("health"), MAY, values[("health", MAY)])
    result = submit(path, EDU, MAY)
    assert result.outcome == "rejected"
    mismatch = result.one("TITLE_DEPARTMENT_MISMATCH")
    assert mismatch.row == 1 and mismatch.action == "reject"
    assert "健康扶贫工作进展月报表" in mismatch.message and "教育扶贫工作进展月报表" in mismatch.message
    assert result.codes == Counter(
        {"TITLE_DEPARTMENT_MISMATCH": 1, "COLUMN_MISSING": 10, "COLUMN_OPTIONAL_MISSING": 1,
         "COLUMN_UNKNOWN": len(decl("health").indicators)}
    )


def test_another_departments_csv_without_title_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    path = write_form(tmp_path / "t.csv", decl("tourism"), MAY, values[("tourism", MAY)], fmt="csv-gbk")
    lines = path.read_bytes().split(b"\r\n")
    path.write_bytes(b"\r\n".join(lines[2:]))  # header first: no title to compare
    result = submit(path, "health", MAY)
    assert result.outcome == "rejected"
    assert "表头与申报表一致" not in result.one("ENCODING_DETECTED").message
    assert "COLUMN_MISSING" in result.codes and "TITLE_DEPARTMENT_MISMATCH" not in result.codes


# --------------------------------------------------------------------------------------------
# Files that are not forms at all
# --------------------------------------------------------------------------------------------


def _broken_sheet_xml(tmp_path: Path, values: dict[tuple[str, str], pd.DataFrame]) -> bytes:
    good = write_form(tmp_path / "good.xlsx", decl(EDU), MAY, values[(EDU, MAY)]).read_bytes()
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(good)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, data[: len(data) // 2] if info.filename.endswith("sheet1.xml") else data)
    return out.getvalue()


def _empty_workbook(tmp_path: Path) -> bytes:
    return save_xlsx(tmp_path / "blank.xlsx", {"Sheet1": Sheet([]), "Sheet2": Sheet([[None, "  "]])}).read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "code"),
    [
        ("教育.xlsx", lambda tmp, vals: b"", "FILE_EMPTY"),
        ("教育.csv", lambda tmp, vals: b"\r\n,,\r\n \r\n", "FILE_EMPTY"),
        ("教育.xlsx", lambda tmp, vals: _empty_workbook(tmp), "FILE_EMPTY"),
        ("教育.pdf", lambda tmp, vals: b"%PDF-1.4\n", "FILE_FORMAT_UNSUPPORTED"),
        ("教育", lambda tmp, vals: b"PK\x03\x04", "FILE_FORMAT_UNSUPPORTED"),
        ("教育.xlsx", lambda tmp, vals: b"PK\x03\x04 this is not a zip", "FILE_UNREADABLE"),
        ("教育.xlsx", _broken_sheet_xml, "FILE_UNREADABLE"),
        ("教育.xls", lambda tmp, vals: b"\xd0\xcf\x11\xe0" + b"\x00" * 60, "FILE_UNREADABLE"),
    ],
)
def test_unreadable_files_are_rejected(
    tmp_path: Path,
    submit: Submit,
    values: dict[tuple[str, str], pd.DataFrame],
    name: str,
    make: Callable[[Path, dict[tuple[str, str], pd.DataFrame]], bytes],
    code: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(make(tmp_path, values))
    result = submit(path, EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({code: 1})
    assert result.form is None


OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def _written(tmp_path: Path, values: dict[tuple[str, str], pd.DataFrame], fmt: Any) -> bytes:
    return write_form(tmp_path / f"form.{fmt}", decl(EDU), MAY, values[(EDU, MAY)], fmt=fmt).read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "says"),
    [
        ("教育.xls", lambda tmp, vals: _written(tmp, vals, "xlsx"), ".xlsx"),
        ("教育.xlsx", lambda tmp, vals: _written(tmp, vals, "xls"), ".xls格式"),
        ("教育.xls", lambda tmp, vals: "<html><body><table><tr><td>乡(镇)</td></tr></table>".encode(), "HTML"),
        # a password-protected .xlsx is an OLE2 file holding EncryptionInfo and EncryptedPackage
        ("教育.xlsx", lambda tmp, vals: OLE + bytes(504) + "EncryptionInfo".encode("utf-16-le"), "密码"),
    ],
)
def test_a_workbook_in_another_format_than_its_extension_is_rejected_saying_which(
    tmp_path: Path,
    submit: Submit,
    values: dict[tuple[str, str], pd.DataFrame],
    name: str,
    make: Callable[[Path, dict[tuple[str, str], pd.DataFrame]], bytes],
    says: str,
) -> None:
    path = tmp_path / name
    path.write_bytes(make(tmp_path, values))
    result = submit(path, EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({"FILE_UNREADABLE": 1})
    assert says in result.issues[0].message


def test_header_nowhere_is_rejected_saying_what_was_expected(tmp_path: Path, submit: Submit) -> None:
    cells: list[list[Any]] = [
        ["丹巴县2017年5月教育扶贫工作进展月报表"], ["村名", "适龄儿童少年数"], ["牙科村", 35], ["党岭村", 21],
    ]
    result = submit(save_xlsx(tmp_path / "edu.xlsx", {"Sheet1": Sheet(cells)}), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({"HEADER_NOT_FOUND": 1})
    message = result.one("HEADER_NOT_FOUND").message
    assert "乡(镇)" in message and "适龄儿童少年数" in message


def test_header_without_township_rows_is_rejected(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)].iloc[:0]
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows, total_position=None), EDU, MAY)
    assert result.outcome == "rejected"
    assert result.codes == Counter({"ROWS_EMPTY": 1, "TOTAL_ROW_MISSING": 1})


# --------------------------------------------------------------------------------------------
# Declared rules: warnings load with flagged rows, critical ones quarantine
# --------------------------------------------------------------------------------------------


def test_a_dropout_warns_and_flags_its_row(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)].copy()
    assert rows["dropouts_persons"].sum() == 0
    rows.loc[3, "dropouts_persons"] = 1  # 巴旺乡, row 8
    result = submit(write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows), EDU, MAY)
    assert result.outcome == "loaded"
    warning = result.one("RULE_FAILED")
    assert (warning.rule_id, warning.severity, warning.row, warning.column) == (
        "edu_no_dropouts", "warning", 8, COL_DROPOUTS,
    )
    assert warning.message.startswith("巴旺乡")
    assert result.codes == Counter({"RULE_FAILED": 1})
    assert result.validation.flagged_rows == frozenset({8})
    assert result.validation.rejected_rows == frozenset()


def test_more_overnight_visitors_than_visitors_is_quarantined(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("tourism", "2016-08")].copy()
    suopo = CODES.index("513323209")
    rows.loc[suopo, "overnight_visitors_person_times"] = round(float(rows.loc[suopo, "visitors_person_times"]) * 1.3, 4)
    result = submit(write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-08", rows), "tourism", "2016-08")
    assert result.outcome == "quarantined"
    failed = result.one("RULE_FAILED")
    assert (failed.rule_id, failed.severity, failed.action, failed.row) == (
        "tourism_overnight_le_visitors", "critical", "quarantine", 4 + suopo,
    )
    assert failed.message.startswith("梭坡乡") and "万人次" in failed.message
    assert result.codes == Counter({"RULE_FAILED": 1})
    assert result.validation.rejected_rows == frozenset({4 + suopo})


# --------------------------------------------------------------------------------------------
# Units written in headers
# --------------------------------------------------------------------------------------------


def test_headers_with_or_without_their_unit_still_match(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("tourism", "2016-05")]
    paths = {
        "visitors_person_times": ["接待游客"],
        "beds": ["床位数（张）"],
        "tourism_revenue_yuan": ["旅游总收入(单位:万元)"],
    }
    path = write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-05", rows, header_paths=paths)
    result = submit(path, "tourism", "2016-05")
    assert result.outcome == "loaded"
    aliases = [i.message for i in result.issues if i.code == "COLUMN_ALIAS"]
    assert len(aliases) == 3 and any("未注明单位" in m for m in aliases)
    assert result.facts["visitors_person_times"].sum() == pytest.approx(rows["visitors_person_times"].sum() * 10000)


def test_a_header_in_another_unit_is_quarantined_not_converted(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("tourism", "2016-05")].copy()
    rows["tourism_revenue_yuan"] = rows["tourism_revenue_yuan"] * 10000
    paths = {"tourism_revenue_yuan": ["旅游总收入(元)"]}
    path = write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-05", rows, header_paths=paths)
    result = submit(path, "tourism", "2016-05")
    assert result.outcome == "quarantined"
    mismatch = result.one("UNIT_MISMATCH")
    assert "元" in mismatch.message and "10000倍" in mismatch.message and mismatch.action == "quarantine"
    assert "COLUMN_MISSING" not in result.codes and "COLUMN_UNKNOWN" not in result.codes


def test_person_times_never_become_persons(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[("labour", "2016-05")]
    paths = {"local_employment_person_times": ["就近就业人次(人)"]}
    path = write_form(tmp_path / "l.xlsx", decl("labour"), "2016-05", rows, header_paths=paths)
    result = submit(path, "labour", "2016-05")
    assert result.outcome == "rejected"
    assert "不能互相换算" in result.one("UNIT_MISMATCH").message


# --------------------------------------------------------------------------------------------
# Rates, traditional characters, ambiguous periods, hidden columns
# --------------------------------------------------------------------------------------------

RATE = "insurance_rate_pct"


@pytest.mark.parametrize(
    ("written", "outcome", "stored", "codes"),
    [
        (lambda r: r, "loaded", lambda r: r, {}),  # 95.3 as a number: already a percentage
        (lambda r: [f"{v:g}%" for v in r], "loaded", lambda r: r, {"VALUE_COERCED": 15}),  # "95.3%" text
        (lambda r: [round(v / 100, 4) for v in r], "loaded", lambda r: r, {"VALUE_COERCED": 15}),  # 0.953
        (lambda r: [round(v / 100, 4) if i == 2 else v for i, v in enumerate(r)], "rejected", None,
         {"RATE_AMBIGUOUS": 1}),
    ],
    ids=["percent-number", "percent-text", "fractions", "mixed"],
)
def test_rates_have_one_convention_per_column(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame],
    written: Callable[[list[float]], list[Any]], outcome: str,
    stored: Callable[[list[float]], list[float]] | None, codes: dict[str, int],
) -> None:
    rows = values[("health", MAY)].copy()
    rates = [float(v) for v in rows[RATE]]
    rows[RATE] = written(rates)
    path = write_form(tmp_path / "h.xlsx", decl("health"), MAY, rows, totals={RATE: None})
    result = submit(path, "health", MAY)
    assert result.outcome == outcome
    relevant = Counter(i.code for i in result.issues if i.code in ("VALUE_COERCED", "RATE_AMBIGUOUS"))
    assert relevant == Counter(codes)
    if stored is not None:
        assert result.facts[RATE].tolist() == pytest.approx(stored(rates))
    else:
        assert result.where("RATE_AMBIGUOUS")[0][0] == 6  # third township row (one header row: data from row 4)


def test_traditional_characters_resolve_and_are_recorded(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    rows = values[(EDU, MAY)]
    names = [("聶呷鄉" if code == "513323202" else None) for code in rows["township_code"]]
    official = {c: n for c, n in zip(reference_frames().townships["township_code"],
                                     reference_frames().townships["name_zh"], strict=True)}
    path = write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, rows,
                      township_names=[n or official[c] for n, c in zip(names, rows["township_code"], strict=True)])
    result = submit(path, EDU, MAY)
    assert result.outcome == "loaded"
    alias = result.one("TOWNSHIP_ALIAS")
    assert "聶呷鄉" in alias.message and "513323202" in alias.message


@pytest.mark.parametrize(
    ("title", "declared", "code"),
    [
        ("丹巴县教育扶贫工作进展月报表(2017.1)", "2017-10", "PERIOD_AMBIGUOUS"),
        ("丹巴县教育扶贫工作进展月报表(2017.1)", "2017-01", "PERIOD_AMBIGUOUS"),
        ("丹巴县教育扶贫工作进展月报表(2017.5)", "2017-05", None),
        ("丹巴县教育扶贫工作进展月报表 2017-05-01", "2017-05", None),
        ("丹巴县教育扶贫工作进展月报表 2017-05-01", "2017-06", "PERIOD_MISMATCH"),
        ("丹巴县二〇一七年五月教育扶贫工作进展月报表", "2017-05", None),
    ],
)
def test_title_periods(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame],
    title: str, declared: str, code: str | None,
) -> None:
    path = write_form(tmp_path / "edu.xlsx", decl(EDU), declared, values[(EDU, MAY)], title=title)
    result = submit(path, EDU, declared)
    if code is None:
        assert result.outcome == "loaded", result.issues
    else:
        assert result.outcome == "rejected"
        assert result.one(code).row == 1


def test_hidden_columns_with_data_are_read_and_reported(tmp_path: Path, submit: Submit,
                                                        values: dict[tuple[str, str], pd.DataFrame]) -> None:
    path = write_form(tmp_path / "edu.xlsx", decl(EDU), MAY, values[(EDU, MAY)])
    workbook = openpyxl.load_workbook(path)
    workbook.active.column_dimensions["G"].hidden = True
    workbook.save(path)
    result = submit(path, EDU, MAY)
    assert result.outcome == "loaded"
    assert result.one("COLUMNS_HIDDEN").column is None and "G列" in result.one("COLUMNS_HIDDEN").message


def test_unit_line_in_yuan_where_wan_yuan_is_declared_is_quarantined(
    tmp_path: Path, submit: Submit, values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    path = write_form(tmp_path / "t.xlsx", decl("tourism"), "2016-05", values[("tourism", "2016-05")])
    workbook = openpyxl.load_workbook(path)
    sheet = workbook.active
    replaced = 0
    for row in sheet.iter_rows(min_row=1, max_row=3):
        for cell in row:
            if isinstance(cell.value, str) and "单位" in cell.value and "填报单位" not in cell.value:
                cell.value = "单位：万人次、元、户"
                replaced += 1
    assert replaced == 1
    workbook.save(path)
    result = submit(path, "tourism", "2016-05")
    assert result.outcome == "quarantined"
    columns = sorted(column or "" for _, column in result.where("UNIT_MISMATCH"))
    assert [c.split("列")[0] for c in columns] == ["D", "E"]  # 旅游总收入, 门票收入 (万元 on the form)
    assert all("10000倍" in i.message for i in result.issues if i.code == "UNIT_MISMATCH")


def test_unit_line_parsing() -> None:
    from tasks.forms.normalise import units_on_unit_line

    assert units_on_unit_line(("填报单位：丹巴县旅游局", "单位：万人次、万元、户")) == {"万人次", "万元", "户"}
    assert units_on_unit_line(("填报单位:丹巴县教育局  单位:人  填报日期:2017年6月8日",)) == {"人"}
    assert units_on_unit_line(("填报单位：丹巴县教育局",)) == frozenset()
