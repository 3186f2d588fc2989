"""Generated variants of the declared county forms, each with its oracle.

Why: the pipeline will be judged on filled forms nobody here has seen. Every variant starts from
a department's declared form as :mod:`tasks.demo.form_writer` lays it out (``build_form_grid`` — the
demo's own writer), then combines perturbations real clerks make in Excel / WPS, and is written
as a real file: .xlsx (form_writer's renderer, then edited with openpyxl), .xls (xlwt), or CSV
in GBK, UTF-8 with a BOM or plain UTF-8. Formulas get their cached results from a real
spreadsheet (LibreOffice headless) when ``soffice`` is installed.

The generator knows the truth: every township's value in base units, and — for the
perturbations that must not load ("faults") — the outcome and the issue code with the row and
column it must name. :func:`variants` is deterministic for a seed; :data:`PERTURBATIONS` is the
list ``docs/departments.md`` documents (``tests/forms/test_form_variety.py`` checks the two agree).
"""

from __future__ import annotations

import io
import random
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import xlwt
from openpyxl.utils import get_column_letter

from expectations.declaration import Declaration, Indicator, load_declarations
from tasks.demo.form_render import FormColumn as WriterColumn
from tasks.demo.form_render import FormGrid, deterministic_zip, render_csv_text, render_xlsx
from tasks.demo.form_writer import (
    DEFAULT_SAVED_AT,
    _total_value,
    build_form_grid,
    form_title,
    period_start,
    reporting_unit_name,
    township_name_at,
)
from tasks.demo.values import demo_values
from tasks.forms.townships import TRADITIONAL_TO_SIMPLIFIED

KEY, SERIAL, REMARK, EXTRA = "__key__", "__serial__", "__remark__", "__extra__"
CODE, LABEL = "__code__", "__label__"  # a 区划代码 column beside 乡(镇); a 项目 column of line labels
#: division codes of the 2016–2017 townships (domain.md §2)
TOWNSHIP_CODES = ("513323100", "513323101", "513323102", "513323201", "513323202", "513323204", "513323205",
                  "513323206", "513323207", "513323208", "513323209", "513323210", "513323211", "513323212",
                  "513323213")
FORMATS = ("xlsx", "xls", "csv-gbk", "csv-utf8-bom", "csv-utf8")
#: periods the variants are drawn from (demo values exist for each); 01 and 10 make 2017.1 ambiguous
MONTHS = ("2016-08", "2017-01", "2017-05", "2017-10")
YEARS = ("2015", "2016")

#: every perturbation the generator applies: name → (kind, what it is). kind: "accept" (loads with
#: the true values, the coercion recorded where one is made) or the outcome a fault must get.
PERTURBATIONS: dict[str, tuple[str, str]] = {
    "title_rows": ("accept", "0–4 lines above the header: 附件 label, title,"
                             " 填报单位/单位/填报日期 line, 报告期 line, blank"),
    "title_styles": ("accept", "the period in the title as 2017年5月, 2017.5,"
                               " 2017年1-5月, 二〇一七年五月, or on a 报告期 line"),
    "info_above": ("accept", "填报人/审核人/联系电话/填报日期 lines between the title and the header"),
    "info_below": ("accept", "填报人/审核人/单位负责人/联系电话/报出日期/（盖章）/a bare date below the table"),
    "footnotes": ("accept", "注：… lines below the table"),
    "header_text": ("accept", "header cells with line breaks, spaces, full-width brackets and colons"),
    "unit_placement": ("accept", "units in the header (…（万元）, 适龄儿童少年数（人）)"
                                 " or left out of it, with a 单位：… line"),
    "header_merges": ("accept", "two-level headers merged, unmerged with the parent"
                                " once or repeated, key cell on the lower row"),
    "column_numbers": ("accept", "a 栏次 row (甲 / 1 / 2 …) under the header"),
    "serial_column": ("accept", "a 序号 column left of 乡(镇)"),
    "remark_column": ("accept", "a 备注 column with some text, on the right"),
    "key_merged_wide": ("accept", "乡(镇) and every township cell merged across two columns"),
    "shuffle_columns": ("accept", "indicator columns (and groups of a two-level header) in another order"),
    "total_position": ("accept", "合计 row at the top, at the bottom, or none"),
    "total_labels": ("accept", "合计 / 合 计 / 总计 / 全县合计 / 合计（15个乡镇） / merged across 序号 and 乡(镇)"),
    "blank_rows": ("accept", "blank rows between townships"),
    "shuffle_rows": ("accept", "townships in another order"),
    "hidden_rows": ("accept", "a township row hidden (read, ROWS_HIDDEN warning)"),
    "hidden_columns": ("accept", "an indicator column hidden (read, COLUMNS_HIDDEN warning)"),
    "extra_sheets": ("accept", "说明 / 封面 sheets before the form, one with a small"
                               " 乡(镇) table; form sheet named Sheet1 or 2017年5月"),
    "township_names": ("accept", "章谷 for 章谷镇, full-width or half-width spaces inside,"
                                 " trailing spaces, traditional characters"),
    "numbers_as_text": ("accept", "numbers stored as text: 1,234, full-width digits,"
                                  " 12人 in a 人 column, trailing spaces"),
    "null_optional": ("accept", "— / / / 无 / blank in an optional column (read as no value)"),
    "percent_cells": ("accept", "a rate column as 0.95 formatted 0%, as 95% text, or mixed with plain 95"),
    "formulas": ("accept", "合计 row and 在校学生数合计 as formulas; cached values from"
                           " LibreOffice (without it: VALUE_NOT_NUMBER)"),
    "float_noise": ("accept", "decimal values carrying binary noise (12.34 as 12.340000000000002)"),
    "formats": ("accept", ".xlsx, .xls, CSV in GBK, UTF-8 with BOM, UTF-8"),
    "missing_township": ("accept", "one township left out (loads, TOWNSHIP_MISSING warning)"),
    "fault_period_ambiguous": ("rejected", "title period 2017.1 (January or October?)"),
    "fault_period_mismatch": ("rejected", "title of another month or year"),
    "fault_wrong_department": ("rejected", "title of another department's form"),
    "fault_unit_header": ("quarantined", "a 万元 column headed (元)"),
    "fault_unit_line": ("quarantined", "单位 line says 元 where the form declares 万元"),
    "fault_township_unknown": ("rejected", "a typo (聂嘎乡), a Chenghua subdistrict, a former"
                                           " name, a place that does not exist"),
    "fault_township_duplicate": ("rejected", "one township on two rows"),
    "fault_excel_error": ("rejected", "#DIV/0! / #REF! in a cell"),
    "fault_text_value": ("rejected", "约600 / 12人次 in a 人 column / 不详"),
    "fault_null_required": ("rejected", "— or blank in a required column"),
    "fault_negative": ("rejected", "a negative count"),
    "fault_total_wrong": ("quarantined", "合计 differs from the sum of the townships"),
    "fault_unknown_column": ("quarantined", "an extra column (上月数) with data, maybe hidden"),
    "fault_rate_ambiguous": ("rejected", "a rate column mixing 0.95 and 95 as plain numbers"),
    "fault_two_forms": ("rejected", "a second visible sheet with the same form"),
    "sheets_after": ("accept", "empty Sheet2 / Sheet3, or a 备用 sheet, after the form"),
    "spacer_column": ("accept", "a blank column without header or data between two groups of columns"),
    "resaved": ("accept", "the workbook opened and saved again by LibreOffice (its own xlsx / BIFF8 writer)"),
    # issue 18: forms as counties really fill them, round two
    "code_column": ("accept", "a 区划代码 / 统计用区划代码 column beside 乡(镇) (9 digits as numbers, 12 as text),"
                              " or instead of it (COLUMN_ALIAS)"),
    "column_markers": ("accept", "the 栏次 row marked 甲/乙/丙 or A/B/C in the key and label columns, 1, 2, 3 …"
                                 " in the values, a blank line above it"),
    "flattened_header": ("accept", "the two-level header typed as one row: 在校学生数(小学), 在校学生数（初中）,"
                                   " 在校学生数-合计, 贫困劳动力农村劳动力"),
    "header_group_level": ("accept", "a group title as a third header level above the declared two"),
    "nil_marker": ("accept", "a return that may be nil: title, header and one 本月无数据 / 本期无 / 无 line"
                             " (NIL_RETURN, no facts)"),
    "sheet_per_month": ("accept", "one visible copy of the form per month, each titled with its own month"
                                  " (SHEET_CHOSEN names the others)"),
    "total_plain_sum": ("accept", "a per-capita or rate column's 合计 as the plain sum of the townships"
                                  " (TOTAL_IS_PLAIN_SUM warning, that 合计 ignored)"),
    "subline": ("accept", "a township's 其中 sub-line: merged name cell over it with a 项目 label, or 其中:… in"
                          " 乡(镇); declared ones read, undeclared ones SUBLINE_IGNORED"),
    "fault_code_mismatch": ("rejected", "a 区划代码 that belongs to another township than the name beside it"),
    "fault_nil_not_allowed": ("rejected", "本月无数据 on a return every township must report (ROWS_EMPTY)"),
    "fault_other_department_header": ("rejected", "another department's form without a telling title: one root"
                                                  " cause (TITLE_DEPARTMENT_MISMATCH), the rest caused_by it"),
}
#: faults that decide a file alone: every other issue must be folded under them (caused_by)
ROOT_CAUSE_FAULTS = frozenset({"fault_period_mismatch", "fault_period_ambiguous", "fault_wrong_department",
                               "fault_other_department_header"})


@dataclass(frozen=True)
class Want:
    """An issue the outcome must carry: code, and where (row key, column name) — None: names none."""

    code: str
    row: tuple[str, ...] | None = None  # ("town", code) | ("total",) | ("title",)
    column: str | None = None  # indicator name or KEY


@dataclass
class Col:
    name: str
    path: tuple[str, ...]
    hidden: bool = False


@dataclass
class Row:
    kind: str  # data | total | blank
    code: str | None = None
    label: Any = None
    cells: dict[str, Any] = field(default_factory=dict)
    hidden: bool = False
    formats: dict[str, str] = field(default_factory=dict)  # number formats (xlsx / xls)
    label_in_serial: bool = False  # the label sits in the 序号 cell, merged across 序号 and 乡(镇)
    #: kind "sub": the 其中 sub-line of the data row above (label = 其中:…); kind "marker": 本月无数据

@dataclass
class Variant:
    ident: str
    department: str
    period: str
    fmt: str
    perturbations: list[str]
    above: list[list[Any]]
    title_line: int | None  # index into ``above``
    columns: list[Col]
    header_style: str  # merged | once | repeated | key_bottom
    column_numbers: bool
    rows: list[Row]
    below: list[list[Any]]
    sheets_before: list[tuple[str, list[list[Any]]]]
    sheet_name: str
    truth: dict[str, dict[str, float | None]]  # township code → indicator → base-unit value
    expect: str = "loaded"
    wants: list[Want] = field(default_factory=list)
    #: further critical issues a fault may legitimately cause: (code, row key or None, column or None)
    tolerated: list[Want] = field(default_factory=list)
    formulas: bool = False
    key_wide: bool = False
    #: sheets after the form; ``None`` as the lines: a visible copy of the form itself
    sheets_after: list[tuple[str, list[list[Any]] | None]] = field(default_factory=list)
    resave: bool = False  # opened and saved again by LibreOffice
    decimals: dict[str, int] = field(default_factory=dict)
    #: issues that must NOT be reported (a misspelt township's nearest name reported missing)
    forbid: list[Want] = field(default_factory=list)
    #: 栏次 row markers: "" (甲 / 栏次 / 1 2 3 …), "letters" (甲 乙 丙), "abc" (A B C), with a blank line above
    column_markers: str = ""
    #: further visible copies of the form: (sheet name, period its title states)
    month_copies: list[tuple[str, str]] = field(default_factory=list)
    subline_style: str = ""  # "merged" (name cell merged down, 项目 label) | "key" (其中:… in 乡(镇))

    @property
    def suffix(self) -> str:
        return ".xlsx" if self.fmt == "xlsx" else ".xls" if self.fmt == "xls" else ".csv"

    @property
    def declaration(self) -> Declaration:
        return load_declarations()[self.department]


# --------------------------------------------------------------------------------------------
# Laying a variant out as a grid
# --------------------------------------------------------------------------------------------


@dataclass
class Laid:
    cells: list[list[Any]]
    merges: list[tuple[int, int, int, int]]
    kinds: list[str]
    row_of: dict[tuple[str, ...], int]  # 1-based
    letter_of: dict[str, str]
    hidden_rows: list[int]  # 0-based
    hidden_cols: list[int]
    formats: dict[tuple[int, int], str]
    formulas: dict[tuple[int, int], str]
    decimals: dict[int, int]


def lay_out(v: Variant) -> Laid:
    cols = v.columns
    width = len(cols) + (1 if v.key_wide else 0)
    index: dict[str, int] = {}
    c = 0
    for col in cols:
        index[col.name] = c
        c += 2 if (col.name == KEY and v.key_wide) else 1
    cells: list[list[Any]] = []
    kinds: list[str] = []
    merges: list[tuple[int, int, int, int]] = []
    row_of: dict[tuple[str, ...], int] = {}
    hidden_rows: list[int] = []
    formats: dict[tuple[int, int], str] = {}
    formulas: dict[tuple[int, int], str] = {}

    def add(kind: str, values: dict[int, Any] | None = None) -> int:
        line = [None] * width
        for k, val in (values or {}).items():
            line[k] = val
        cells.append(line)
        kinds.append(kind)
        return len(cells) - 1

    for i, line in enumerate(v.above):
        is_title = i == v.title_line
        r = add("title" if is_title else ("blank" if not any(x is not None for x in line) else "info"),
                {k: x for k, x in enumerate(line) if x is not None and k < width})
        if is_title:
            row_of[("title",)] = r + 1
            merges.append((r, 0, r, width - 1))
    depth = max(len(col.path) for col in cols)
    h0 = len(cells)
    for _ in range(depth):
        add("header")
    key_c = index[KEY]
    style = v.header_style
    for col in cols:
        j = index[col.name]
        path = col.path
        if len(path) == 1:
            level = depth - 1 if style == "key_bottom" else 0
            cells[h0 + level][j] = path[0] or None
            if style == "merged" and depth > 1:
                merges.append((h0, j, h0 + depth - 1, j))
        else:
            for lv, text in enumerate(path):
                cells[h0 + lv][j] = text
    if v.key_wide:
        if style == "merged" or depth == 1:
            merges.append((h0, key_c, h0 + depth - 1, key_c + 1))
            merges[:] = [m for m in merges if m != (h0, key_c, h0 + depth - 1, key_c)]
        else:
            level = depth - 1 if style == "key_bottom" else 0
            merges.append((h0 + level, key_c, h0 + level, key_c + 1))
    # parents: merged across their children, or written once, or repeated
    if depth > 1 and style != "repeated":
        j = 0
        names = [col.name for col in cols]
        while j < len(cols):
            col = cols[j]
            if len(col.path) < 2:
                j += 1
                continue
            end = j
            while end + 1 < len(cols) and len(cols[end + 1].path) >= 2 and cols[end + 1].path[0] == col.path[0]:
                end += 1
            first, last = index[names[j]], index[names[end]]
            for k in range(j + 1, end + 1):
                cells[h0][index[names[k]]] = None
            if style == "merged" and last > first:
                merges.append((h0, first, h0, last))
            j = end + 1
    if v.column_numbers:
        nums: dict[int, Any] = {}
        n = 0
        markers = iter("甲乙丙丁戊" if v.column_markers == "letters" else "ABCDE")
        for col in cols:
            if col.name in (KEY, SERIAL, CODE, LABEL) and v.column_markers:
                nums[index[col.name]] = next(markers)
            elif col.name == KEY:
                nums[index[KEY]] = "甲"
            elif col.name == SERIAL:
                nums[index[SERIAL]] = "栏次"
            else:
                n += 1
                nums[index[col.name]] = n
        if v.column_markers:
            add("blank")
        add("column_numbers", nums)
    first_data = last_data = None
    parent_r: int | None = None
    serial = 0
    for row in v.rows:
        values: dict[int, Any] = {}
        if row.kind == "blank":
            add("blank")
            continue
        if row.kind == "marker":  # 本月无数据: in 乡(镇), or merged across the table
            r = add("marker", {0 if row.label_in_serial else key_c: row.label})
            row_of[("marker",)] = r + 1
            if row.label_in_serial:
                merges.append((r, 0, r, width - 1))
            continue
        if row.kind == "sub":  # a 其中 sub-line of the township above
            sub_values: dict[int, Any] = {}
            if v.subline_style == "merged" and LABEL in index and parent_r is not None:
                sub_values[index[LABEL]] = row.label
                merges[:] = [m for m in merges if m[:2] != (parent_r, key_c)]
                merges.append((parent_r, key_c, len(cells), key_c))
            else:
                sub_values[key_c] = row.label
            for name, value in row.cells.items():
                if name in index:
                    sub_values[index[name]] = value
            r = add("data", sub_values)
            row_of[("sub", str(row.code), str(row.label))] = r + 1
            continue
        if row.kind == "data":
            serial += 1
            if SERIAL in index:
                values[index[SERIAL]] = serial
        if row.label_in_serial and SERIAL in index:
            values[index[SERIAL]] = row.label
        else:
            values[key_c] = row.label
        for name, value in row.cells.items():
            if name in index:
                values[index[name]] = value
        r = add("data" if row.kind == "data" else "total", values)
        if row.label_in_serial and SERIAL in index:
            merges.append((r, index[SERIAL], r, key_c + (1 if v.key_wide else 0)))
        elif v.key_wide:
            merges.append((r, key_c, r, key_c + 1))
        if row.hidden:
            hidden_rows.append(r)
        for name, fmt in row.formats.items():
            formats[(r, index[name])] = fmt
        if row.kind == "data":
            row_of[("town", str(row.code))] = r + 1
            first_data = r if first_data is None else first_data
            last_data = r
            parent_r = r
        else:
            row_of[("total",)] = r + 1
    if v.formulas and ("total",) in row_of and first_data is not None and last_data is not None:
        r = row_of[("total",)] - 1
        for col in cols:
            if col.name.startswith("__"):
                continue
            ind = _indicator(v, col.name)
            if ind is None or ind.aggregation != "sum" or cells[r][index[col.name]] is None:
                continue
            letter = get_column_letter(index[col.name] + 1)
            formulas[(r, index[col.name])] = f"=SUM({letter}{first_data + 1}:{letter}{last_data + 1})"
    if v.formulas and v.department == "education":
        parts = ("enrolled_primary_persons", "enrolled_junior_persons", "enrolled_total_persons")
        p, j, t = (index.get(n) for n in parts)
        if p is not None and j is not None and t is not None:
            for r, kind in enumerate(kinds):
                if kind == "data" and isinstance(cells[r][t], int | float) and isinstance(cells[r][p], int | float) \
                        and isinstance(cells[r][j], int | float):
                    formulas[(r, t)] = f"={get_column_letter(p + 1)}{r + 1}+{get_column_letter(j + 1)}{r + 1}"
    for line in v.below:
        add("note" if any(x is not None for x in line) else "blank",
            {k: x for k, x in enumerate(line) if x is not None and k < width})
    letter_of = {col.name: get_column_letter(index[col.name] + 1) for col in cols}
    hidden_cols = [index[col.name] for col in cols if col.hidden]
    decimals = {index[name]: d for name, d in v.decimals.items() if name in index}
    return Laid(cells, merges, kinds, row_of, letter_of, hidden_rows, hidden_cols, formats, formulas, decimals)


def _indicator(v: Variant, name: str) -> Indicator | None:
    try:
        return v.declaration.indicator(name)
    except KeyError:
        return None


# --------------------------------------------------------------------------------------------
# Writing files
# --------------------------------------------------------------------------------------------


def _csv_display(value: Any, fmt: str | None) -> Any:
    if fmt and "%" in fmt and isinstance(value, int | float) and not isinstance(value, bool):
        decimals = len(fmt.split(".")[1].rstrip("%")) if "." in fmt else 0
        return f"{value * 100:.{decimals}f}%"
    return value


def write_variant(v: Variant, directory: Path) -> tuple[Path, Laid]:
    """Write the file; formulas are left without cached values (see :func:`recalculate`)."""
    laid = lay_out(v)
    path = directory / f"{v.ident}{v.suffix}"
    if v.fmt == "xlsx":
        path.write_bytes(_xlsx(v, laid))
    elif v.fmt == "xls":
        path.write_bytes(_xls(v, laid))
    else:
        cells = [list(r) for r in laid.cells]
        for (r, c), fmt in laid.formats.items():
            cells[r][c] = _csv_display(cells[r][c], fmt)
        grid = FormGrid(cells=cells, merges=laid.merges, row_kinds=laid.kinds,  # type: ignore[arg-type]
                        decimals=laid.decimals, columns=())
        text = render_csv_text(grid)
        if v.fmt == "csv-gbk":
            data = text.encode("gbk")
        elif v.fmt == "csv-utf8-bom":
            data = b"\xef\xbb\xbf" + text.encode("utf-8")
        else:
            data = text.encode("utf-8")
        path.write_bytes(data)
    return path, laid


def _xlsx(v: Variant, laid: Laid) -> bytes:
    grid = FormGrid(cells=laid.cells, merges=laid.merges, row_kinds=laid.kinds,  # type: ignore[arg-type]
                    decimals=laid.decimals, columns=())
    data = render_xlsx(grid, v.sheet_name, DEFAULT_SAVED_AT, reporting_unit_name(v.department))
    if not (v.sheets_before or v.sheets_after or laid.hidden_rows or laid.hidden_cols or laid.formats
            or laid.formulas or v.month_copies):
        return data
    from openpyxl.writer.excel import ExcelWriter

    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb[v.sheet_name]
    for r in laid.hidden_rows:
        ws.row_dimensions[r + 1].hidden = True
    for c in laid.hidden_cols:
        ws.column_dimensions[get_column_letter(c + 1)].hidden = True
    for (r, c), fmt in laid.formats.items():
        ws.cell(row=r + 1, column=c + 1).number_format = fmt
    for (r, c), formula in laid.formulas.items():
        ws.cell(row=r + 1, column=c + 1).value = formula
    for position, (name, lines) in enumerate(v.sheets_before):
        extra = wb.create_sheet(name, position)
        for r, line in enumerate(lines, start=1):
            for c, value in enumerate(line, start=1):
                if value is not None:
                    extra.cell(row=r, column=c, value=value)
    for name, after in v.sheets_after:
        extra = wb.create_sheet(name)
        for r, line in enumerate(after if after is not None else laid.cells, start=1):
            for c, value in enumerate(line, start=1):
                if value is not None:
                    extra.cell(row=r, column=c, value=value)
    for name, lines in month_copy_cells(v, laid):
        extra = wb.create_sheet(name)
        for r, line in enumerate(lines, start=1):
            for c, value in enumerate(line, start=1):
                if value is not None:
                    extra.cell(row=r, column=c, value=value)
    wb.active = len(v.sheets_before)
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    return deterministic_zip(buffer.getvalue(), DEFAULT_SAVED_AT)


_XLS_ERRORS = frozenset({"#DIV/0!", "#REF!", "#N/A", "#VALUE!"})


def _xls(v: Variant, laid: Laid) -> bytes:
    wb = xlwt.Workbook(encoding="utf-8")
    for name, lines in v.sheets_before:
        extra = wb.add_sheet(name)
        for r, line in enumerate(lines):
            for c, value in enumerate(line):
                if value is not None:
                    extra.write(r, c, value)
    ws = wb.add_sheet(v.sheet_name)
    styles: dict[str, Any] = {}

    def style(fmt: str) -> Any:
        if fmt not in styles:
            styles[fmt] = xlwt.easyxf(num_format_str=fmt)
        return styles[fmt]

    covered: set[tuple[int, int]] = set()
    for r0, c0, r1, c1 in laid.merges:
        value = laid.cells[r0][c0]
        ws.write_merge(r0, r1, c0, c1, "" if value is None else value)
        covered.update((r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1))
    for r, line in enumerate(laid.cells):
        for c, value in enumerate(line):
            if (r, c) in covered or value is None:
                continue
            if isinstance(value, str) and value in _XLS_ERRORS:
                ws.row(r).set_cell_error(c, value)
            elif (r, c) in laid.formats:
                ws.write(r, c, value, style(laid.formats[(r, c)]))
            elif laid.kinds[r] in ("data", "total") and isinstance(value, float):
                ws.write(r, c, value, style("0." + "0" * laid.decimals.get(c, 2) if laid.decimals.get(c, 2) else "0"))
            else:
                ws.write(r, c, value)
    for r in laid.hidden_rows:
        ws.row(r).hidden = True
    for c in laid.hidden_cols:
        ws.col(c).hidden = True
    for name, after in [*v.sheets_after, *month_copy_cells(v, laid)]:
        extra = wb.add_sheet(name)
        for r, line in enumerate(after if after is not None else laid.cells):
            for c, value in enumerate(line):
                if value is not None:
                    extra.write(r, c, value)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def month_copy_cells(v: Variant, laid: Laid) -> list[tuple[str, list[list[Any]]]]:
    """The form's cells once per other period, its title saying that period (``sheet_per_month``)."""
    out = []
    title_r = laid.row_of.get(("title",))
    for name, period in v.month_copies:
        cells = [list(line) for line in laid.cells]
        if title_r is not None:
            cells[title_r - 1] = [form_title(v.declaration, period), *([None] * (len(cells[0]) - 1))]
        out.append((name, cells))
    return out


@lru_cache(maxsize=1)
def soffice() -> str | None:
    """LibreOffice's binary, looked up once per run: the variants built at collection and the files
    written at run time follow the same answer (installed between the two, it would not be used)."""
    return shutil.which("soffice") or shutil.which("libreoffice")


def recalculate(pairs: Iterable[tuple[Variant, Path]], directory: Path) -> dict[str, Path]:
    """Formula variants opened, recalculated and saved by LibreOffice: ident → the saved file.

    One ``soffice --headless --convert-to`` run per target format (a run costs seconds). The
    variants to become .xls are written as .xlsx with formulas first and converted to BIFF8.
    Empty when LibreOffice is not installed (the caller then expects uncached formulas).
    """
    binary = soffice()
    pairs = list(pairs)
    if binary is None or not pairs:
        return {}
    out: dict[str, Path] = {}
    profile = Path(tempfile.mkdtemp(prefix="duikou-lo-"))
    try:
        for target, filt in (("xlsx", "xlsx:Calc MS Excel 2007 XML"), ("xls", "xls:MS Excel 97")):
            sources = [p for v, p in pairs if v.fmt == target]
            if not sources:
                continue
            dest = directory / f"recalc-{target}"
            dest.mkdir(exist_ok=True)
            subprocess.run(
                [binary, f"-env:UserInstallation=file://{profile}", "--headless", "--norestore", "--calc",
                 "--convert-to", filt, "--outdir", str(dest), *map(str, sources)],
                check=True, capture_output=True, timeout=240,
            )
            for v, p in pairs:
                if v.fmt == target:
                    converted = dest / (p.stem + f".{target}")
                    if converted.is_file():
                        out[v.ident] = converted
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out


# --------------------------------------------------------------------------------------------
# Building variants
# --------------------------------------------------------------------------------------------

_SIMPLIFIED_TO_TRADITIONAL = {
    str(s): chr(t) for t, s in TRADITIONAL_TO_SIMPLIFIED.items() if chr(t) != s
}
_CN_DIGITS = "〇一二三四五六七八九"
_CN_MONTHS = ("", "一", "二", "三", "四", "五", "六", "七", "八", "九", "十", "十一", "十二")
_FULLWIDTH = str.maketrans("0123456789,.", "０１２３４５６７８９，．")


def _traditional(name: str) -> str:
    return "".join(_SIMPLIFIED_TO_TRADITIONAL.get(ch, ch) for ch in name)


def _title_text(decl: Declaration, period: str, style: str) -> tuple[str, str | None]:
    """(title, 报告期 line or None)."""
    year, _, month = period.partition("-")
    m = int(month) if month else None
    if style == "dotted" and m:  # 2017.01, not 2017.1 (that one is ambiguous: a fault)
        return f"丹巴县{year}.{m:02d}{decl.title_zh}" if m == 1 else f"丹巴县{year}.{m}{decl.title_zh}", None
    if style == "range" and m:
        return f"丹巴县{year}年1-{m}月{decl.title_zh}", None
    if style == "chinese":
        cn_year = "".join(_CN_DIGITS[int(d)] for d in year)
        return f"丹巴县{cn_year}年{_CN_MONTHS[m] + '月' if m else ''}{decl.title_zh}", None
    if style == "line":
        return f"丹巴县{decl.title_zh}", f"报告期：{year}年{str(m) + '月' if m else ''}"
    if style == "spaced":
        return f"丹巴县 {year} 年 {str(m) + ' 月 ' if m else ''}{decl.title_zh}", None
    return form_title(decl, period), None


def _form_value(ind: Indicator | None, value: Any, decimals: int) -> Any:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if ind is not None and ind.value_type == "integer":
        return round(float(value))
    return round(float(value), decimals)


def _base(ind: Indicator, value: Any) -> float | None:
    if value is None:
        return None
    return round(float(value) * ind.factor, 6)


def _recompute_total(v: Variant) -> None:
    """The 合计 row from the values as written (after null tokens and dropped townships)."""
    total = next((r for r in v.rows if r.kind == "total"), None)
    if total is None:
        return
    data = [r for r in v.rows if r.kind == "data"]
    for name in list(total.cells):
        ind = _indicator(v, name)
        if ind is None:
            continue
        frame = pd.DataFrame({
            name: [_numeric_truth(v, r, name) for r in data],
            **({ind.weight: [_numeric_truth(v, r, ind.weight) for r in data]} if ind.weight else {}),
        })
        col = WriterColumn(name, (name,), ind, v.decimals.get(name, 0))
        total.cells[name] = _total_value(col, frame, None)


def _numeric_truth(v: Variant, row: Row, name: str) -> float | None:
    value = v.truth.get(str(row.code), {}).get(name)
    ind = _indicator(v, name)
    if value is None or ind is None:
        return None
    return value / ind.factor


@lru_cache(maxsize=1)
def _story_values() -> dict[tuple[str, str], pd.DataFrame]:
    """The demo's values, read once: ``demo_values()`` copies every frame of the story at each call
    (4.5 s for the 240 variants every worker builds at collection); ``base_variant`` only reads one."""
    return demo_values()


def base_variant(ident: str, department: str, period: str, fmt: str) -> Variant:
    """The declared form as form_writer lays it out, as a :class:`Variant` with its truth."""
    decl = load_declarations()[department]
    frame = _story_values()[(department, period)].copy()
    grid = build_form_grid(decl, period, frame)
    cols = [Col(KEY, (decl.key.header,))] + [Col(c.name, c.path) for c in grid.columns]
    decimals = {c.name: c.decimals for c in grid.columns}
    rows: list[Row] = []
    truth: dict[str, dict[str, float | None]] = {}
    column_values = {c.name: frame[c.name].to_numpy() for c in grid.columns}  # not .iloc per cell: 35 000 cells
    for i, code in enumerate(frame["township_code"].astype(str)):
        cells = {}
        truth[code] = {}
        for c in grid.columns:
            ind = decl.indicator(c.name)
            value = _form_value(ind, column_values[c.name][i], c.decimals)
            cells[c.name] = value
            truth[code][c.name] = _base(ind, value)
        rows.append(Row("data", code, township_name_at(code, period_start(period)), cells))
    title, _ = _title_text(decl, period, "plain")
    info = f"填报单位：{reporting_unit_name(department)}"
    units = "、".join(dict.fromkeys(decl.indicator(c.name).unit for c in grid.columns))
    v = Variant(
        ident=ident, department=department, period=period, fmt=fmt, perturbations=[],
        above=[[title], [info, None, f"单位：{units}"]], title_line=0, columns=cols, header_style="merged",
        column_numbers=False, rows=rows,
        below=[[None], ["注：本表数据截至当月末。" if "-" in period else "注：本表数据截至年末。"]],
        sheets_before=[], sheet_name="Sheet1", truth=truth, decimals=decimals,
    )
    v.rows.append(Row("total", None, "合计", {c.name: None for c in grid.columns}))
    _recompute_total(v)
    return v


# --- accepted perturbations --------------------------------------------------------------------


def _units_line(v: Variant) -> str:
    units = dict.fromkeys(ind.unit for c in v.columns if (ind := _indicator(v, c.name)) is not None)
    return "单位：" + "、".join(units)


def p_title_rows(v: Variant, rng: random.Random) -> None:
    decl = v.declaration
    style = rng.choice(["plain", "plain", "dotted", "range", "chinese", "line", "spaced"] if "-" in v.period
                       else ["plain", "chinese", "line", "spaced"])
    title, period_line = _title_text(decl, v.period, style)
    n = rng.randint(0, 4)
    lines: list[list[Any]] = []
    title_line = None
    pool = ["attachment", "title", "info", "blank", "period"]
    chosen = [x for x in pool if x == "title"] if n else []
    while len(chosen) < n:
        extra = rng.choice(["attachment", "info", "blank", "period"])
        if extra not in chosen:
            chosen.append(extra)
    if period_line and "title" in chosen and "period" not in chosen:
        chosen.append("period")
    order = ["attachment", "title", "period", "info", "blank"]
    for kind in sorted(chosen, key=order.index):
        if kind == "attachment":
            lines.append([rng.choice(["附件2", "附表1", "表3"])])
        elif kind == "title":
            title_line = len(lines)
            lines.append([title])
        elif kind == "period":
            year, _, month = v.period.partition("-")
            stated = f"报告期：{year}年{int(month)}月" if month else f"报告期：{year}年"
            lines.append([period_line or stated])
        elif kind == "info":
            unit = f"填报单位：{reporting_unit_name(v.department)}"
            if rng.random() < 0.5:
                lines.append([f"{unit}　　{_units_line(v)}　　填报日期：2017年6月8日"])
            else:
                lines.append([unit, None, _units_line(v), None, "填报日期：2017年6月8日"])
        else:
            lines.append([None])
    v.above, v.title_line = lines, title_line
    v.perturbations.append(f"title_rows:{n}")
    if title_line is not None:
        v.perturbations.append(f"title_styles:{style}")


def p_info_above(v: Variant, rng: random.Random) -> None:
    at = (v.title_line + 1) if v.title_line is not None else len(v.above)
    if v.title_line is not None and rng.random() < 0.3:  # above the title itself
        at = v.title_line
        v.title_line += 1
    line = rng.choice([
        ["填报人：张敏", None, "审核人：李强", None, "联系电话：0836-3522101"],
        ["填报人：张敏　审核人：李强　联系电话：0836-3522101"],
        ["填报日期：2017年6月8日"],
    ])
    v.above.insert(at, line)
    v.perturbations.append("info_above")


def p_info_below(v: Variant, rng: random.Random) -> None:
    v.below.extend(rng.sample([
        ["填报人：张敏", None, "审核人：李强", None, "单位负责人：王建国"],
        ["联系电话：0836-3522101"],
        ["报出日期：2017年6月8日"],
        ["（盖章）"],
        [None, None, "2017年6月8日"],
        ["单位负责人：", None, "统计负责人：", None, "填表人："],
    ], k=rng.randint(1, 3)))
    v.perturbations.append("info_below")


def p_footnotes(v: Variant, rng: random.Random) -> None:
    v.below.append(["注：1.本表由各乡镇填报，县主管部门汇总；2.“—”表示无此项。"])
    if rng.random() < 0.5:
        v.below.append(["说明：数据以乡镇上报为准。"])
    v.perturbations.append("footnotes")


def p_header_text(v: Variant, rng: random.Random) -> None:
    full = str.maketrans({"(": "（", ")": "）", ":": "：", ",": "，"})

    def mess(text: str) -> str:
        choice = rng.random()
        if choice < 0.3:
            text = text.translate(full)
        if choice > 0.5 and len(text) > 4:
            cut = rng.randint(2, len(text) - 2)
            text = text[:cut] + rng.choice(["\n", " ", "　", "\r\n"]) + text[cut:]
        if rng.random() < 0.2:
            text = " " + text + " "
        return text

    for col in v.columns:
        if col.name != KEY or rng.random() < 0.5:
            col.path = tuple(mess(p) for p in col.path)
    v.perturbations.append("header_text")


def p_unit_placement(v: Variant, rng: random.Random) -> None:
    """Strip '(万元)' from headers (the unit line says it) or add '(人)' where the form has none."""
    import re

    mode = rng.choice(["strip", "add"])
    for col in v.columns:
        ind = _indicator(v, col.name)
        if ind is None:
            continue
        last = col.path[-1]
        if mode == "strip" and re.search(rf"[(（,，]\s*{re.escape(ind.unit)}\s*[)）]$", last):
            stripped = re.sub(rf"[,，]\s*{re.escape(ind.unit)}\s*([)）])$", r"\1", last)
            stripped = re.sub(rf"[(（]\s*{re.escape(ind.unit)}\s*[)）]$", "", stripped)
            col.path = (*col.path[:-1], stripped)
        elif mode == "add" and not re.search(r"[)）]$", last) and ind.unit not in ("%",):
            col.path = (*col.path[:-1], f"{last}（{ind.unit}）")
    if mode == "strip" and not any("单位：" in str(x) for line in v.above for x in line if x):
        at = (v.title_line + 1) if v.title_line is not None else len(v.above)
        v.above.insert(at, [_units_line(v)])
    v.perturbations.append(f"unit_placement:{mode}")


def p_header_merges(v: Variant, rng: random.Random) -> None:
    v.header_style = rng.choice(["merged", "once", "repeated", "key_bottom"])
    v.perturbations.append(f"header_merges:{v.header_style}")


def p_column_numbers(v: Variant, rng: random.Random) -> None:
    v.column_numbers = True
    v.perturbations.append("column_numbers")


def p_serial_column(v: Variant, rng: random.Random) -> None:
    v.columns.insert(0, Col(SERIAL, ("序号",)))
    v.perturbations.append("serial_column")


def p_remark_column(v: Variant, rng: random.Random) -> None:
    v.columns.append(Col(REMARK, ("备注",)))
    data = [r for r in v.rows if r.kind == "data"]
    rng.choice(data).cells[REMARK] = rng.choice(["含寄宿制学校", "已核实", "数据来源：乡政府"])
    v.perturbations.append("remark_column")


def p_key_merged_wide(v: Variant, rng: random.Random) -> None:
    v.key_wide = True
    v.perturbations.append("key_merged_wide")


def p_shuffle_columns(v: Variant, rng: random.Random) -> None:
    head = [c for c in v.columns if c.name in (SERIAL, KEY)]
    rest = [c for c in v.columns if c.name not in (SERIAL, KEY, REMARK)]
    tail = [c for c in v.columns if c.name == REMARK]
    groups: list[list[Col]] = []
    for col in rest:
        if len(col.path) > 1 and groups and len(groups[-1][0].path) > 1 and groups[-1][0].path[0] == col.path[0]:
            groups[-1].append(col)
        else:
            groups.append([col])
    rng.shuffle(groups)
    for g in groups:
        rng.shuffle(g)
    v.columns = head + [c for g in groups for c in g] + tail
    v.perturbations.append("shuffle_columns")


def p_total_position(v: Variant, rng: random.Random) -> None:
    where = rng.choice(["top", "bottom", "none"])
    total = next(r for r in v.rows if r.kind == "total")
    v.rows.remove(total)
    if where == "top":
        v.rows.insert(0, total)
    elif where == "bottom":
        v.rows.append(total)
    v.perturbations.append(f"total_position:{where}")


def p_total_labels(v: Variant, rng: random.Random) -> None:
    total = next((r for r in v.rows if r.kind == "total"), None)
    if total is None:
        return
    total.label = rng.choice(["合 计", "总计", "全县合计", "合计（15个乡镇）", "合　计", "全县"])
    if any(c.name == SERIAL for c in v.columns) and v.columns[0].name == SERIAL and v.columns[1].name == KEY \
            and rng.random() < 0.5:
        total.label_in_serial = True
    v.perturbations.append(f"total_labels:{total.label}")


def p_blank_rows(v: Variant, rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        data_positions = [i for i, r in enumerate(v.rows) if r.kind == "data"]
        at = rng.choice(data_positions[1:])
        v.rows.insert(at, Row("blank"))
    v.perturbations.append("blank_rows")


def p_shuffle_rows(v: Variant, rng: random.Random) -> None:
    data = [r for r in v.rows if r.kind == "data"]
    rng.shuffle(data)
    it = iter(data)
    v.rows = [next(it) if r.kind == "data" else r for r in v.rows]
    v.perturbations.append("shuffle_rows")


def p_hidden_rows(v: Variant, rng: random.Random) -> None:
    row = rng.choice([r for r in v.rows if r.kind == "data"])
    row.hidden = True
    if v.fmt in ("xlsx", "xls"):
        v.wants.append(Want("ROWS_HIDDEN"))
    v.perturbations.append("hidden_rows")


def p_hidden_columns(v: Variant, rng: random.Random) -> None:
    if rng.random() < 0.4:  # an empty helper column, hidden: carries nothing
        v.columns.insert(rng.randint(2, len(v.columns)), Col("__helper__", ("上月数",), hidden=True))
        v.perturbations.append("hidden_columns:empty")
        return
    col = rng.choice([c for c in v.columns if not c.name.startswith("__")])
    col.hidden = True
    if v.fmt in ("xlsx", "xls"):
        v.wants.append(Want("COLUMNS_HIDDEN"))
    v.perturbations.append("hidden_columns")


def p_extra_sheets(v: Variant, rng: random.Random) -> None:
    year, _, month = v.period.partition("-")
    sheets = []
    if rng.random() < 0.7:
        sheets.append(("说明", [["填表说明"], ["1. 乡镇按统计用区划代码顺序填写。"], [_units_line(v)]]))
    if rng.random() < 0.5:
        sheets.append(("封面", [[f"丹巴县{year}年报表"], [f"填报单位：{reporting_unit_name(v.department)}"]]))
    if rng.random() < 0.4:
        sheets.append(("乡镇代码", [["乡(镇)", "代码"], ["章谷镇", "513323100"], ["巴底镇", "513323101"]]))
    if not sheets:
        sheets.append(("说明", [["填表说明"]]))
    v.sheets_before = sheets
    v.sheet_name = rng.choice(["Sheet1", f"{int(month)}月" if month else f"{year}年", "报表"])
    v.perturbations.append("extra_sheets")


def p_sheets_after(v: Variant, rng: random.Random) -> None:
    v.sheets_after = [("Sheet2", []), ("Sheet3", [])] if rng.random() < 0.6 else [("备用", [["备注：无"]])]
    v.perturbations.append("sheets_after")


def p_spacer_column(v: Variant, rng: random.Random) -> None:
    """A blank column (no header, no data) between two groups of columns."""
    cols = v.columns
    bounds = [
        i for i in range(1, len(cols))
        if not (len(cols[i - 1].path) > 1 and len(cols[i].path) > 1 and cols[i - 1].path[0] == cols[i].path[0])
        and cols[i - 1].name != SERIAL
    ]
    cols.insert(rng.choice(bounds), Col("__spacer__", ("",)))
    v.perturbations.append("spacer_column")


def p_resaved(v: Variant, rng: random.Random) -> None:
    v.resave = True
    v.perturbations.append("resaved")


def p_township_names(v: Variant, rng: random.Random) -> None:
    data = [r for r in v.rows if r.kind == "data"]
    for row in rng.sample(data, k=rng.randint(1, 6)):
        name = str(row.label)
        how = rng.choice(["short", "fullwidth_spaces", "halfwidth_space", "trailing", "traditional"])
        if how == "short":
            short = name[:-1] if name.endswith(("乡", "镇")) else name
            row.label = short
        elif how == "fullwidth_spaces":
            row.label = "　".join(name)
        elif how == "halfwidth_space":
            row.label = name[:-1] + " " + name[-1]
        elif how == "trailing":
            row.label = name + rng.choice([" ", "　", "  "])
        else:
            row.label = _traditional(name)
        if str(row.label).strip() != name:  # surrounding spaces are stripped, not recorded
            v.wants.append(Want("TOWNSHIP_ALIAS", ("town", str(row.code)), KEY))
    v.perturbations.append("township_names")


def _count_columns(v: Variant, unit_ok: Iterable[str] | None = None) -> list[str]:
    out = []
    for col in v.columns:
        ind = _indicator(v, col.name)
        if ind is not None and ind.value_type == "integer" and (unit_ok is None or ind.unit in unit_ok):
            out.append(col.name)
    return out


def p_numbers_as_text(v: Variant, rng: random.Random) -> None:
    data = [r for r in v.rows if r.kind == "data"]
    counts = _count_columns(v)
    for _ in range(rng.randint(1, 5)):
        row = rng.choice(data)
        name = rng.choice(counts)
        value = row.cells.get(name)
        if not isinstance(value, int):
            continue
        ind = v.declaration.indicator(name)
        how = rng.choice(["thousands", "fullwidth", "unit", "trailing", "plain"])
        if how == "thousands":
            text = f"{value:,}"
        elif how == "fullwidth":
            text = str(value).translate(_FULLWIDTH)
        elif how == "unit":
            text = f"{value}{ind.unit}"
        elif how == "trailing":
            text = f"{value} "
        else:
            text = str(value)
        row.cells[name] = text
        if v.fmt in ("xlsx", "xls") or text.strip() != str(value):
            v.wants.append(Want("VALUE_COERCED", ("town", str(row.code)), name))
    v.perturbations.append("numbers_as_text")


def p_null_optional(v: Variant, rng: random.Random) -> None:
    optional = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None and not ind.required]
    if not optional:
        return
    name = rng.choice(optional)
    for row in rng.sample([r for r in v.rows if r.kind == "data"], k=rng.randint(1, 4)):
        token = rng.choice(["—", "/", "无", None, "-", "——"])
        row.cells[name] = token
        v.truth[str(row.code)][name] = None
        if token is not None:
            v.wants.append(Want("VALUE_NULL_TOKEN", ("town", str(row.code)), name))
    _recompute_total(v)
    v.perturbations.append("null_optional")


def p_percent_cells(v: Variant, rng: random.Random) -> None:
    rates = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None and ind.value_type == "rate"]
    if not rates:
        return
    name = rates[0]
    how = rng.choice(["format", "text", "format_mixed"])
    data = [r for r in v.rows if r.kind == "data"]
    mixed = set(map(id, rng.sample(data, k=len(data) // 2)))
    for row in data:
        value = row.cells.get(name)
        if not isinstance(value, int | float):
            continue
        if how == "text":
            row.cells[name] = f"{value:g}%"
        elif how == "format" or id(row) in mixed:
            row.cells[name] = round(value / 100, 6)
            row.formats[name] = "0%" if float(value).is_integer() else "0.0%"
    v.perturbations.append(f"percent_cells:{how}")


def p_formulas(v: Variant, rng: random.Random) -> None:
    v.formulas = True
    v.perturbations.append("formulas")


def p_float_noise(v: Variant, rng: random.Random) -> None:
    decimals = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None and ind.value_type == "decimal"]
    for row in (r for r in v.rows if r.kind == "data"):
        for name in decimals:
            value = row.cells.get(name)
            if isinstance(value, float) and rng.random() < 0.5:
                row.cells[name] = value + value * 2.2e-16 * rng.choice([1, -1, 2])
    v.perturbations.append("float_noise")


def p_missing_township(v: Variant, rng: random.Random) -> None:
    row = rng.choice([r for r in v.rows if r.kind == "data"])
    v.rows.remove(row)
    del v.truth[str(row.code)]
    _recompute_total(v)
    v.wants.append(Want("TOWNSHIP_MISSING"))
    v.perturbations.append("missing_township")



# --- issue 18: forms as counties really fill them, round two ----------------------------------

_SPECIAL = (KEY, SERIAL, REMARK, CODE, LABEL)


def _code_text(code: str, style: str) -> Any:
    return int(code) if style == "9" else code + "000"


def p_code_column(v: Variant, rng: random.Random) -> None:
    """A 区划代码 column beside 乡(镇) (9 digits as numbers / 12 as text), or keying the form alone."""
    style = rng.choice(["9", "12", "only"])
    data = _data(v)
    if style == "only":
        key = next(c for c in v.columns if c.name == KEY)
        key.path = (rng.choice(["区划代码", "统计用区划代码", "乡镇代码"]),)
        for row in data:
            row.label = _code_text(str(row.code), rng.choice(["9", "12"]))
        v.wants = [w for w in v.wants if w.code != "TOWNSHIP_ALIAS"]
        v.wants.append(Want("COLUMN_ALIAS", None, KEY))
    else:
        at = next(i for i, c in enumerate(v.columns) if c.name == KEY) + 1
        v.columns.insert(at, Col(CODE, ("区划代码" if style == "9" else "统计用区划代码",)))
        for row in data:
            row.cells[CODE] = _code_text(str(row.code), style)
    v.perturbations.append(f"code_column:{style}")


def p_column_markers(v: Variant, rng: random.Random) -> None:
    v.column_numbers = True
    v.column_markers = rng.choice(["letters", "abc"])
    v.perturbations.append(f"column_markers:{v.column_markers}")


def p_flattened_header(v: Variant, rng: random.Random) -> None:
    style = rng.choice(["paren", "fullwidth", "dash", "child_first"])
    flattened = False
    for col in v.columns:
        if col.name in _SPECIAL or len(col.path) != 2:
            continue
        parent, child = col.path
        if style == "child_first":
            text = child.removeprefix("其中:") + parent
        elif style == "paren":
            text = f"{parent}({child})"
        elif style == "fullwidth":
            text = f"{parent}（{child}）"
        else:
            text = f"{parent}-{child}"
        if rng.random() < 0.3:
            text = text.replace(parent, parent + "\n", 1)
        col.path = (text,)
        flattened = True
    if flattened:
        v.perturbations.append(f"flattened_header:{style}")


def p_header_group_level(v: Variant, rng: random.Random) -> None:
    group = rng.choice(["本月数据", "扶贫工作进展情况", "统计指标"])
    for col in v.columns:
        if col.name not in _SPECIAL and not col.name.startswith("__") and any(col.path):
            col.path = (group, *col.path)
    v.perturbations.append("header_group_level")


def _other_periods(period: str) -> list[str]:
    year, _, month = period.partition("-")
    if not month:
        return [str(int(year) - 1)]
    out, y, m = [], int(year), int(month)
    for _ in range(2):
        y, m = (y - 1, 12) if m == 1 else (y, m - 1)
        out.append(f"{y}-{m:02d}")
    return out


def _sheet_name_of(period: str) -> str:
    year, _, month = period.partition("-")
    return f"{int(month)}月" if month else f"{year}年"


def p_sheet_per_month(v: Variant, rng: random.Random) -> None:
    """Copies of the form for earlier months, each titled with its month, after (or before) the form."""
    if v.title_line is None or any("报告期" in str(x) for line in v.above for x in line if x):
        return  # a title that states the period is what tells the sheets apart
    v.month_copies = [(_sheet_name_of(p), p) for p in _other_periods(v.period)[: rng.randint(1, 2)]]
    v.sheet_name = _sheet_name_of(v.period)
    v.wants.append(Want("SHEET_CHOSEN"))
    v.perturbations.append("sheet_per_month")


def p_total_plain_sum(v: Variant, rng: random.Random) -> None:
    total = next((r for r in v.rows if r.kind == "total"), None)
    names = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None
             and (ind.aggregation == "weighted_mean" or ind.value_type == "rate")]
    if total is None or not names:
        return
    name = rng.choice(names)
    ind = v.declaration.indicator(name)
    values = [v.truth[str(r.code)].get(name) for r in _data(v)]
    known = [x for x in values if x is not None]
    if len(known) < 2:
        return
    total.cells[name] = round(sum(known) / ind.factor, v.decimals.get(name, 0) or 0)
    v.wants.append(Want("TOTAL_IS_PLAIN_SUM", ("total",), name))
    v.perturbations.append("total_plain_sum")


def p_subline(v: Variant, rng: random.Random) -> None:
    """A 其中 sub-line under townships: a declared one (subline_of) under every township, its column
    gone; or an undeclared one (其中:女性) under one township, reported and ignored."""
    decl = v.declaration
    present = {c.name for c in v.columns}
    declared = [ind for ind in decl.indicators if ind.subline_of and ind.name in present and ind.subline_of in present]
    v.subline_style = "merged" if v.fmt in ("xlsx", "xls") and not v.key_wide and rng.random() < 0.6 else "key"
    if v.subline_style == "merged":
        at = next(i for i, c in enumerate(v.columns) if c.name == KEY) + 1
        v.columns.insert(at, Col(LABEL, ("项目",)))
    data = _data(v)
    if declared and rng.random() < 0.8:
        ind = rng.choice(declared)
        v.columns = [c for c in v.columns if c.name != ind.name]
        label = ind.header[-1] if rng.random() < 0.5 else ind.header[-1].replace(":", "：")
        if not label.startswith("其中"):
            label = "其中:" + label
        for row in data:
            sub = Row("sub", row.code, label, {ind.subline_of: row.cells.pop(ind.name, None)})
            v.rows.insert(v.rows.index(row) + 1, sub)
        v.perturbations.append(f"subline:{v.subline_style}:{ind.name}")
        return
    row = rng.choice([r for r in data if not r.label_in_serial])
    count = next((c.name for c in v.columns if (i := _indicator(v, c.name)) is not None and i.value_type == "integer"),
                 None)
    if count is None:
        return
    label = rng.choice(["其中:女性", "其中：妇女"])
    v.rows.insert(v.rows.index(row) + 1, Row("sub", row.code, label, {count: 12}))
    v.wants.append(Want("SUBLINE_IGNORED", ("sub", str(row.code), label), KEY))
    v.perturbations.append(f"subline:{v.subline_style}:undeclared")


def make_nil(v: Variant, rng: random.Random) -> None:
    """The form with nothing below its header but a marker line: a nil return where the declaration
    allows one (NIL_RETURN, loaded, no facts), refused elsewhere (ROWS_EMPTY)."""
    decl = v.declaration
    marker = rng.choice(list(decl.nil_return.markers) if decl.nil_return.allowed else ["本月无数据", "本期无", "无"])
    merged = v.fmt in ("xlsx", "xls") and not v.key_wide and rng.random() < 0.5
    v.rows = [Row("marker", None, marker, label_in_serial=merged)]
    v.truth, v.formulas, v.forbid, v.tolerated = {}, False, [], []
    if decl.nil_return.allowed:
        v.wants = [Want("NIL_RETURN", ("marker",))]
        v.perturbations.append("nil_marker")
    else:
        v.expect, v.wants = "rejected", [Want("ROWS_EMPTY", ("marker",))]
        v.perturbations.append("fault_nil_not_allowed")


def f_code_mismatch(v: Variant, rng: random.Random) -> bool:
    key = next(c for c in v.columns if c.name == KEY)
    if key.path[0] in ("区划代码", "统计用区划代码", "乡镇代码"):
        return False  # keyed by the code alone: nothing to disagree with
    if not any(c.name == CODE for c in v.columns):
        p_code_column_beside(v, rng)
    row = rng.choice([r for r in _data(v) if not r.label_in_serial])
    style = "9" if isinstance(row.cells.get(CODE), int) else "12"
    other = rng.choice([c for c in TOWNSHIP_CODES if c != row.code])
    row.cells[CODE] = _code_text(other, style)
    v.wants.append(Want("TOWNSHIP_CODE_MISMATCH", ("town", str(row.code)), CODE))
    return True


def p_code_column_beside(v: Variant, rng: random.Random) -> None:
    at = next(i for i, c in enumerate(v.columns) if c.name == KEY) + 1
    v.columns.insert(at, Col(CODE, ("区划代码",)))
    for row in _data(v):
        row.cells[CODE] = int(str(row.code))


def f_other_department_header(v: Variant, rng: random.Random) -> bool:
    """Another department's form, its title not telling (none, or only the county's name)."""
    others = [d for d in load_declarations().values()
              if d.department != v.department and d.period_type == v.declaration.period_type]
    if not others:
        return False
    other = rng.choice(others)
    copy = base_variant(v.ident, other.department, v.period, v.fmt)
    v.columns, v.rows, v.decimals = copy.columns, copy.rows, copy.decimals
    v.subline_style, v.key_wide = "", False
    if v.title_line is not None:
        v.above[v.title_line] = [rng.choice([None, "丹巴县扶贫工作统计表"])]
        v.title_line = None
    v.month_copies = []
    v.wants = [Want("TITLE_DEPARTMENT_MISMATCH")]
    v.forbid = []
    return True


ACCEPTED = {
    "title_rows": (p_title_rows, 0.6), "info_above": (p_info_above, 0.25), "info_below": (p_info_below, 0.4),
    "footnotes": (p_footnotes, 0.3), "header_text": (p_header_text, 0.5), "unit_placement": (p_unit_placement, 0.3),
    "header_merges": (p_header_merges, 0.5), "column_numbers": (p_column_numbers, 0.25),
    "serial_column": (p_serial_column, 0.35), "remark_column": (p_remark_column, 0.3),
    "key_merged_wide": (p_key_merged_wide, 0.1), "shuffle_columns": (p_shuffle_columns, 0.25),
    "total_position": (p_total_position, 0.4), "total_labels": (p_total_labels, 0.35),
    "blank_rows": (p_blank_rows, 0.25), "shuffle_rows": (p_shuffle_rows, 0.15), "hidden_rows": (p_hidden_rows, 0.15),
    "hidden_columns": (p_hidden_columns, 0.1), "extra_sheets": (p_extra_sheets, 0.3),
    "township_names": (p_township_names, 0.4), "numbers_as_text": (p_numbers_as_text, 0.35),
    "null_optional": (p_null_optional, 0.3), "percent_cells": (p_percent_cells, 0.5),
    "formulas": (p_formulas, 0.12), "float_noise": (p_float_noise, 0.3), "missing_township": (p_missing_township, 0.08),
    "sheets_after": (p_sheets_after, 0.2), "spacer_column": (p_spacer_column, 0.1), "resaved": (p_resaved, 0.12),
    "code_column": (p_code_column, 0.15), "column_markers": (p_column_markers, 0.12),
    "flattened_header": (p_flattened_header, 0.3), "header_group_level": (p_header_group_level, 0.1),
    "sheet_per_month": (p_sheet_per_month, 0.15), "total_plain_sum": (p_total_plain_sum, 0.4),
    "subline": (p_subline, 0.15),
}
#: applied in this order (structure first, then cell contents)
ORDER = (
    "missing_township", "title_rows", "info_above", "serial_column", "remark_column", "key_merged_wide",
    "flattened_header", "header_group_level", "unit_placement", "header_text", "header_merges", "column_numbers",
    "column_markers", "shuffle_columns", "spacer_column", "total_position", "total_labels", "shuffle_rows",
    "blank_rows", "hidden_rows", "hidden_columns", "extra_sheets", "sheets_after", "sheet_per_month",
    "township_names", "code_column", "subline", "null_optional", "percent_cells", "float_noise", "total_plain_sum",
    "numbers_as_text", "formulas", "resaved", "info_below", "footnotes",
)
WORKBOOK_ONLY = {
    "hidden_rows", "hidden_columns", "extra_sheets", "sheets_after", "formulas", "key_merged_wide", "resaved",
    "sheet_per_month",
}


# --- faults -----------------------------------------------------------------------------------


def _title_row_present(v: Variant) -> bool:
    return v.title_line is not None


def _data(v: Variant) -> list[Row]:
    return [r for r in v.rows if r.kind == "data"]


def f_period_ambiguous(v: Variant, rng: random.Random) -> bool:
    if v.period[-3:] not in ("-01", "-10"):
        return False
    if v.title_line is None:
        v.above.insert(0, [""])
        v.title_line = 0
    v.above[v.title_line] = [f"丹巴县{v.period[:4]}.1{v.declaration.title_zh}"]
    v.wants.append(Want("PERIOD_AMBIGUOUS", ("title",)))
    return True


def f_period_mismatch(v: Variant, rng: random.Random) -> bool:
    if v.title_line is None:
        return False
    year, _, month = v.period.partition("-")
    other = f"{year}-{int(month) % 12 + 1:02d}" if month else str(int(year) - 1)
    v.above[v.title_line] = [form_title(v.declaration, other)]
    v.wants.append(Want("PERIOD_MISMATCH", ("title",)))
    return True


def f_wrong_department(v: Variant, rng: random.Random) -> bool:
    if v.title_line is None:
        return False
    others = [d for d in load_declarations().values() if d.department != v.department]
    other = rng.choice(others)
    v.above[v.title_line] = [form_title(other, v.period)]
    v.wants.append(Want("TITLE_DEPARTMENT_MISMATCH", ("title",)))
    return True


def _wan_yuan_columns(v: Variant) -> list[Col]:
    return [c for c in v.columns if (ind := _indicator(v, c.name)) is not None and ind.unit == "万元"]


def f_unit_header(v: Variant, rng: random.Random) -> bool:
    cols = [c for c in _wan_yuan_columns(v) if "万元" in "".join(c.path)]
    if not cols:
        return False
    col = rng.choice(cols)
    col.path = tuple(p.replace("万元", "元") for p in col.path)
    v.wants.append(Want("UNIT_MISMATCH", None, col.name))
    return True


def f_unit_line(v: Variant, rng: random.Random) -> bool:
    import re

    cols = _wan_yuan_columns(v)
    if not cols:
        return False
    units = dict.fromkeys(ind.unit for c in v.columns if (ind := _indicator(v, c.name)) is not None)
    line = "单位：" + "、".join("元" if u == "万元" else u for u in units)
    found = False
    for ln in v.above:
        for k, x in enumerate(ln):
            if isinstance(x, str) and re.search(r"(?<!填报)单位：", x):
                ln[k] = re.sub(r"(?<!填报)单位：[^\s　]*", line, x)
                found = True
    if not found:
        v.above.append([line])
    for col in cols:
        v.wants.append(Want("UNIT_MISMATCH", None, col.name))
    return True


#: Chenghua helper subdistricts whose pairing with a Danba township is verified [ART]
_VERIFIED_HELPERS = {"513323201": "猛追湾街道", "513323204": "府青路街道", "513323207": "建设路街道",
                     "513323213": "白莲池街道"}


def f_township_unknown(v: Variant, rng: random.Random) -> bool:
    """A township's own name misspelt (章谷乡 for 章谷镇), its former name out of date (巴底乡 in 2017), its
    verified helper subdistrict, or a place that does not exist: TOWNSHIP_UNKNOWN on its row, and —
    except for the place that does not exist — not also that township reported missing."""
    row = rng.choice(_data(v))
    code = str(row.code)
    name = township_name_at(code, period_start(v.period))
    kinds = ["typo", "typo", "nowhere"]
    if code == "513323101" and v.period[:4] >= "2013":
        kinds.append("former")
    if code in _VERIFIED_HELPERS:
        kinds.append("helper")
    kind = rng.choice(kinds)
    if kind == "typo":
        row.label = name.replace("呷", "嘎") if "呷" in name else name[:-1] + ("镇" if name.endswith("乡") else "乡")
    elif kind == "former":
        row.label = "巴底乡"
    elif kind == "helper":
        row.label = _VERIFIED_HELPERS[code]
    else:
        row.label = rng.choice(["新华乡", "和平镇"])
    v.wants = [w for w in v.wants if w.row != ("town", code)]
    v.wants.append(Want("TOWNSHIP_UNKNOWN", ("town", code), KEY))
    code_keyed = next(c for c in v.columns if c.name == KEY).path[0] != v.declaration.key.header
    if kind == "nowhere" or code_keyed:
        v.tolerated.append(Want("TOWNSHIP_MISSING"))
    elif not any(w.code == "TOWNSHIP_MISSING" for w in v.wants):
        v.forbid.append(Want("TOWNSHIP_MISSING"))  # the township it meant is named, not also missing
    return True


def f_township_duplicate(v: Variant, rng: random.Random) -> bool:
    a, b = rng.sample(_data(v), 2)
    b.label = a.label
    v.wants = [w for w in v.wants if w.row != ("town", str(b.code))]
    v.wants.append(Want("TOWNSHIP_DUPLICATE", ("town", str(a.code)), KEY))
    v.wants.append(Want("TOWNSHIP_DUPLICATE", ("town", str(b.code)), KEY))
    v.tolerated.append(Want("TOWNSHIP_MISSING"))
    v.tolerated.append(Want("TOWNSHIP_CODE_MISMATCH"))  # b's 区划代码 is still b's own
    return True


def _value_cell(v: Variant, rng: random.Random, required: bool | None = None) -> tuple[Row, str] | None:
    names = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None
             and (required is None or ind.required == required) and ind.value_type != "rate"]
    rows = [r for r in _data(v) if not r.label_in_serial]
    if not names or not rows:
        return None
    return rng.choice(rows), rng.choice(names)


def _tolerate_sum_effects(v: Variant, row: Row, name: str) -> None:
    """A cell that does not read leaves its row's rules and its column's 合计 unjudgeable.

    What an accepted perturbation had written into the cell is gone, and so is its want."""
    v.wants = [w for w in v.wants if not (w.row == ("town", str(row.code)) and w.column == name
                                          and w.code in ("VALUE_COERCED", "VALUE_NULL_TOKEN"))
               and not (w.code == "TOTAL_IS_PLAIN_SUM" and w.column == name)]
    v.tolerated.append(Want("TOTAL_MISMATCH", ("total",), None))
    v.tolerated.append(Want("RULE_FAILED", ("town", str(row.code)), None))


def f_excel_error(v: Variant, rng: random.Random) -> bool:
    picked = _value_cell(v, rng)
    if picked is None:
        return False
    row, name = picked
    row.cells[name] = rng.choice(["#DIV/0!", "#REF!"])
    v.wants.append(Want("VALUE_EXCEL_ERROR", ("town", str(row.code)), name))
    _tolerate_sum_effects(v, row, name)
    return True


def f_text_value(v: Variant, rng: random.Random) -> bool:
    picked = _value_cell(v, rng)
    if picked is None:
        return False
    row, name = picked
    ind = v.declaration.indicator(name)
    if ind.unit == "人":
        row.cells[name] = f"{row.cells.get(name) or 12}人次"
    else:
        row.cells[name] = rng.choice(["约600", "不详", "待统计"])
    v.wants.append(Want("VALUE_NOT_NUMBER", ("town", str(row.code)), name))
    _tolerate_sum_effects(v, row, name)
    return True


def f_null_required(v: Variant, rng: random.Random) -> bool:
    picked = _value_cell(v, rng, required=True)
    if picked is None:
        return False
    row, name = picked
    row.cells[name] = rng.choice(["—", None, "无"])
    v.wants.append(Want("VALUE_REQUIRED_MISSING", ("town", str(row.code)), name))
    _tolerate_sum_effects(v, row, name)
    return True


def f_negative(v: Variant, rng: random.Random) -> bool:
    counts = _count_columns(v)
    rows = _data(v)
    row = rng.choice(rows)
    name = rng.choice(counts)
    if not isinstance(row.cells.get(name), int):
        return False
    row.cells[name] = -abs(int(row.cells[name]) or 3)
    v.wants.append(Want("VALUE_NEGATIVE", ("town", str(row.code)), name))
    _tolerate_sum_effects(v, row, name)
    return True


def f_total_wrong(v: Variant, rng: random.Random) -> bool:
    total = next((r for r in v.rows if r.kind == "total"), None)
    if total is None or v.formulas:
        return False
    names = [n for n, x in total.cells.items() if isinstance(x, int | float) and _indicator(v, n) is not None
             and v.declaration.indicator(n).aggregation == "sum"]
    name = rng.choice(names)
    total.cells[name] = total.cells[name] + (10 if isinstance(total.cells[name], int) else 10.5)
    v.wants.append(Want("TOTAL_MISMATCH", ("total",), name))
    return True


def f_unknown_column(v: Variant, rng: random.Random) -> bool:
    col = Col(EXTRA, (rng.choice(["上月数", "同比增长(%)", "计划数"]),), hidden=rng.random() < 0.4)
    at = rng.randint(2, len(v.columns))
    v.columns.insert(at, col)
    for row in _data(v):
        row.cells[EXTRA] = rng.randint(1, 50)
    v.wants.append(Want("COLUMN_UNKNOWN", None, EXTRA))
    return True


def f_rate_ambiguous(v: Variant, rng: random.Random) -> bool:
    """One township's rate a bare fraction (0.97) in a column of percentages: plain 95, “99.8%” text or
    cells shown as 95% — refused, not guessed (0.97 % or 97 %?)."""
    rates = [c.name for c in v.columns if (ind := _indicator(v, c.name)) is not None and ind.value_type == "rate"]
    if not rates:
        return False
    name = rates[0]
    rows = [r for r in _data(v) if r.cells.get(name) is not None and not r.label_in_serial]
    if len(rows) < 2:
        return False
    plain = all(isinstance(r.cells.get(name), int | float) and not r.formats.get(name) for r in rows)
    if plain and rng.random() < 0.5:
        for r in rows:
            r.cells[name] = f"{r.cells[name]:g}%"
    row = rng.choice(rows)
    true = v.truth[str(row.code)].get(name) or 95.0
    row.cells[name] = round(true / 100, 4) if 0 < true < 100 else 0.95
    row.formats.pop(name, None)
    v.wants = [w for w in v.wants if not (w.row == ("town", str(row.code)) and w.column == name)]
    v.wants.append(Want("RATE_AMBIGUOUS", ("town", str(row.code)), name))
    return True


def f_two_forms(v: Variant, rng: random.Random) -> bool:
    if v.fmt not in ("xlsx", "xls") or v.title_line is None:
        return False  # a copy without a title claims no period: the form named 5月 would be read
    v.sheets_after.append(("上月", None))
    v.wants = [Want("SHEET_AMBIGUOUS")]  # the file is refused before anything else is looked at
    return True


FAULTS = {  # in turn per department (make_variant); one not applicable to a form passes its turn on
    "period_ambiguous": f_period_ambiguous, "period_mismatch": f_period_mismatch,
    "wrong_department": f_wrong_department, "other_department_header": f_other_department_header,
    "unit_header": f_unit_header, "unit_line": f_unit_line,
    "township_unknown": f_township_unknown, "township_duplicate": f_township_duplicate,
    "excel_error": f_excel_error, "text_value": f_text_value, "null_required": f_null_required,
    "negative": f_negative, "total_wrong": f_total_wrong, "unknown_column": f_unknown_column,
    "two_forms": f_two_forms, "rate_ambiguous": f_rate_ambiguous, "code_mismatch": f_code_mismatch,
}


def make_variant(i: int, seed: int) -> Variant:
    rng = random.Random(seed * 100_003 + i)
    department = ("education", "health", "labour", "tourism", "poverty")[i % 5]
    period = rng.choice(YEARS if department == "poverty" else MONTHS)
    fmt = rng.choice(FORMATS[:2] * 2 + FORMATS[2:])
    v = base_variant(f"v{i:03d}-{department}-{fmt}", department, period, fmt)
    applied: set[str] = set()
    for name in ORDER:
        fn, probability = ACCEPTED[name]
        if name in WORKBOOK_ONLY and fmt not in ("xlsx", "xls"):
            continue
        if name == "resaved" and (soffice() is None or "formulas" in applied):
            continue
        no_formula_cells = v.department != "education" and not any(r.kind == "total" for r in v.rows)
        if name == "formulas" and ((fmt != "xlsx" and soffice() is None) or "numbers_as_text" in applied
                                   or no_formula_cells or "subline" in applied):
            continue  # Excel's SUM skips numbers stored as text (and adds sub-lines): that total would be wrong
        if rng.random() < probability:
            fn(v, rng)
            applied.add(name)
    # i % 5 is the department and i // 5 its own count: every third of its variants carries a fault, the
    # faults taken in turn (so every fault meets every department), and every twelfth is a nil return
    slot = i // 5
    if slot % 12 == 2 and "subline" not in applied:  # nothing to report this period
        make_nil(v, rng)
        return v
    uncached = v.formulas and soffice() is None  # refused for its formulas: no fault on top
    if slot % 3 == 0 and not uncached:
        names = list(FAULTS)
        start = (slot // 3) % len(names)
        for name in names[start:] + names[:start]:
            if name == "total_wrong" and "formulas" in applied:
                continue
            if name in ("excel_error", "text_value", "null_required", "negative") and "formulas" in applied:
                continue
            if FAULTS[name](v, rng):
                v.expect = PERTURBATIONS[f"fault_{name}"][0]
                v.perturbations.append(f"fault_{name}")
                v.truth = {}
                break
    if v.formulas and soffice() is None:
        # without a spreadsheet to compute them, a formula has no cached value: it must not read as blank
        v.expect, v.truth = "rejected", {}
        v.wants = [Want("VALUE_NOT_NUMBER", ("total",) if v.department != "education" else None)]
        v.tolerated.append(Want("TOTAL_MISMATCH"))
        v.tolerated.append(Want("RULE_FAILED"))
    return v


def variants(n: int, seed: int = 2017) -> list[Variant]:
    return [make_variant(i, seed) for i in range(n)]
