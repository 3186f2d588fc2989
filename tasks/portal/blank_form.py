"""空白报表: the fill-in workbook of one return for one period, generated from its declaration.

What the clerk downloads from the portal: the title with the period
(``丹巴县2017年5月教育扶贫工作进展月报表``), the 填报单位 / 单位 line, the declared headers
(two levels merged where the declaration has them), one row per township valid in the period in
official (code) order, a 合计 row, and nothing to guess:

* number cells carry data validation (non-negative; whole numbers where the unit counts people,
  households or person-times; 0–100 for rates) and a number format of the unit's precision;
* the title, headers and township names are protected (the sheet is protected without a password;
  only the number cells are unlocked), so the form comes back in the shape it left;
* a very hidden sheet (``tasks/forms/template_mark.py``) carries the department, the period and
  the declaration's version, so a returned form is recognised for certain — sent for another
  period or department, it is refused naming that mark.

Filled with plain numbers and sent back, it loads with no coercion and no note: that is tested
(``tests/portal/test_blank_form.py``) through the same reader and validation every upload meets.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from expectations.declaration import Declaration, Indicator
from tasks.forms.periods import parse_declared_period
from tasks.forms.template_mark import MARK_SHEET, TemplateMark
from warehouse.refdata import REFERENCE_DIR, ReferenceFrames

COUNTY_NAME = "丹巴县"
TOTAL_LABEL = "合计"
#: number formats by unit where the unit decides the precision; counts are whole numbers
UNIT_DECIMALS = {"万元": 2, "亿元": 4, "万人次": 4, "万人": 4, "元": 2}
_THIN = Side(style="thin", color="808080")
_BORDER = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
_HEADER_FILL = PatternFill(fill_type="solid", start_color="F2F2F2", end_color="F2F2F2")
_INPUT_FILL = PatternFill(fill_type="solid", start_color="FFFFFF", end_color="FFFFFF")


@dataclass(frozen=True)
class BlankForm:
    file_name: str  # 丹巴县2017年5月教育扶贫工作进展月报表.xlsx
    content: bytes
    mark: TemplateMark
    townships: tuple[tuple[str, str], ...]  # (code, name written) in the order of the form
    header_rows: int  # rows taken by the title, unit line and headers: township rows start below


def declaration_version(declaration: Declaration) -> str:
    """First 12 hex digits of the declaration file's SHA-256: changes whenever the declaration does."""
    source = Path(declaration.source_file) if declaration.source_file else None
    data = source.read_bytes() if source is not None and source.exists() else repr(declaration).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:12]


def period_words(label: str) -> str:
    """``2017-05`` → ``2017年5月``; ``2016`` → ``2016年``."""
    year, _, month = label.partition("-")
    return f"{year}年{int(month)}月" if month else f"{year}年"


def townships_at(reference: ReferenceFrames, start: date, end: date) -> tuple[tuple[str, str], ...]:
    """Townships valid during [start, end] in official (code) order, each with the name valid then
    (the official alias of the period, else a former name still valid, else the township's name)."""
    townships = reference.townships.sort_values("township_code")
    aliases = reference.aliases
    out = []
    for row in townships.itertuples(index=False):
        if not _overlaps(row.valid_from, row.valid_to, start, end):
            continue
        code = str(row.township_code)
        mine = aliases[aliases["township_code"].astype(str) == code]
        name = str(row.name_zh)
        for kind in ("official", "former"):
            valid = [str(a.alias) for a in mine.itertuples(index=False)
                     if a.alias_kind == kind and _covers(a.valid_from, a.valid_to, end)]
            if valid:
                name = valid[0]
                break
        out.append((code, name))
    return tuple(out)


def _as_date(value: object) -> date | None:
    if value is None or (isinstance(value, float) and value != value):
        return None
    if isinstance(value, date):
        return value
    text = str(value)
    return None if text in ("", "NaT", "None", "nan") else date.fromisoformat(text[:10])


def _overlaps(valid_from: object, valid_to: object, start: date, end: date) -> bool:
    first, last = _as_date(valid_from), _as_date(valid_to)
    return (first is None or first <= end) and (last is None or last >= start)


def _covers(valid_from: object, valid_to: object, on: date) -> bool:
    first, last = _as_date(valid_from), _as_date(valid_to)
    return (first is None or first <= on) and (last is None or last >= on)


@lru_cache(maxsize=1)
def department_names() -> dict[str, str]:
    """department → its Chinese name (``县教育局``), from the reference data's departments.csv."""
    with (REFERENCE_DIR / "departments.csv").open(encoding="utf-8") as fh:
        return {row["department"]: row["name_zh"] for row in csv.DictReader(fh)}


def reporting_unit(department: str) -> str:
    """``县教育局`` → ``丹巴县教育局`` as written on the 填报单位 line."""
    name = department_names().get(department, department)
    return COUNTY_NAME + name[1:] if name.startswith("县") else name


def _units(declaration: Declaration) -> list[str]:
    return list(dict.fromkeys(ind.unit for ind in declaration.indicators))


def _number_format(ind: Indicator) -> str:
    if ind.value_type == "integer":
        return "0"
    decimals = UNIT_DECIMALS.get(ind.unit, 2)
    return "0." + "0" * decimals


def _validation(ind: Indicator) -> DataValidation:
    if ind.value_type == "integer":
        rule = DataValidation(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
        rule.error = f"“{ind.label_zh}”以{ind.unit}计，请填不小于0的整数"
    elif ind.value_type == "rate":
        rule = DataValidation(type="decimal", operator="between", formula1="0", formula2="100", allow_blank=True)
        rule.error = f"“{ind.label_zh}”请填0到100之间的百分数(如95表示95%)"
    else:
        rule = DataValidation(type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
        rule.error = f"“{ind.label_zh}”以{ind.unit}计，请填不小于0的数"
    rule.errorTitle = "数值不符合要求"
    rule.errorStyle = "stop"
    rule.showErrorMessage = True
    return rule


def blank_form(declaration: Declaration, period: str, reference: ReferenceFrames) -> BlankForm:
    """The fill-in workbook of ``declaration`` for ``period`` (``2017-05``, ``2017年5月``, ``2016``).

    Raises ``ValueError`` (a :class:`tasks.forms.periods.PeriodError`) for a period that is not one
    of this return's period type.
    """
    parsed = parse_declared_period(period, declaration.period_type)
    label = parsed.label
    towns = townships_at(reference, parsed.start, parsed.end)
    mark = TemplateMark(declaration.department, label, declaration_version(declaration))
    title = f"{COUNTY_NAME}{period_words(label)}{declaration.title_zh}"

    workbook = Workbook()
    ws = workbook.active
    assert isinstance(ws, Worksheet)
    ws.title = "报表"
    indicators = declaration.indicators
    n_cols = 1 + len(indicators)
    levels = max(len(ind.header) for ind in indicators)
    first_header = 3
    last_header = first_header + levels - 1

    ws.cell(row=1, column=1, value=title).font = Font(bold=True, size=14)
    ws.cell(row=1, column=1).alignment = Alignment(horizontal="center", vertical="center")
    ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=n_cols)
    ws.row_dimensions[1].height = 28
    unit_line = f"填报单位：{reporting_unit(declaration.department)}　单位：{'、'.join(_units(declaration))}"
    ws.cell(row=2, column=1, value=unit_line)
    ws.merge_cells(start_row=2, start_column=1, end_row=2, end_column=n_cols)

    _header_cell(ws, first_header, 1, declaration.key.header)
    if levels > 1:
        ws.merge_cells(start_row=first_header, start_column=1, end_row=last_header, end_column=1)
    col = 2
    while col <= n_cols:
        ind = indicators[col - 2]
        if len(ind.header) == 1:
            _header_cell(ws, first_header, col, ind.header[0])
            if levels > 1:
                ws.merge_cells(start_row=first_header, start_column=col, end_row=last_header, end_column=col)
            col += 1
            continue
        group = ind.header[0]  # consecutive indicators under one top-level header share one merged cell
        span = 0
        while col + span <= n_cols and len(indicators[col + span - 2].header) > 1 \
                and indicators[col + span - 2].header[0] == group:
            _header_cell(ws, first_header + 1, col + span, indicators[col + span - 2].header[1])
            span += 1
        _header_cell(ws, first_header, col, group)
        if span > 1:
            ws.merge_cells(start_row=first_header, start_column=col, end_row=first_header, end_column=col + span - 1)
        col += span
    for r in range(first_header, last_header + 1):  # borders on merged parts too
        for c in range(1, n_cols + 1):
            ws.cell(row=r, column=c).border = _BORDER

    body = last_header + 1
    rows = [name for _, name in towns] + [TOTAL_LABEL]
    rules = {ind.name: _validation(ind) for ind in indicators}
    for rule in rules.values():
        ws.add_data_validation(rule)
    for offset, name in enumerate(rows):
        r = body + offset
        key = ws.cell(row=r, column=1, value=name)
        key.border = _BORDER
        key.fill = _HEADER_FILL
        if name == TOTAL_LABEL:
            key.font = Font(bold=True)
        for c, ind in enumerate(indicators, start=2):
            cell = ws.cell(row=r, column=c)
            cell.number_format = _number_format(ind)
            cell.protection = Protection(locked=False)
            cell.border = _BORDER
            cell.fill = _INPUT_FILL
        for c, ind in enumerate(indicators, start=2):
            rules[ind.name].add(f"{get_column_letter(c)}{r}")
    ws.column_dimensions["A"].width = 14
    for c, ind in enumerate(indicators, start=2):
        longest = max(len(part) for part in ind.header)
        ws.column_dimensions[get_column_letter(c)].width = max(10, min(22, longest * 2 + 2))
    ws.freeze_panes = ws.cell(row=body, column=2)
    ws.protection.sheet = True  # no password: it keeps the shape, it is not a secret
    ws.protection.formatColumns = False  # widths may still be changed
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = f"{first_header}:{last_header}"

    hidden = workbook.create_sheet(MARK_SHEET)
    for r, (key_text, value) in enumerate(mark.rows(), start=1):
        hidden.cell(row=r, column=1, value=key_text)
        hidden.cell(row=r, column=2, value=value).data_type = "s"
    hidden.sheet_state = "veryHidden"  # not offered by Excel's 取消隐藏
    hidden.protection.sheet = True
    workbook.active = 0
    workbook.properties.creator = "duikou"
    buffer = io.BytesIO()
    workbook.save(buffer)
    return BlankForm(file_name=f"{title}.xlsx", content=buffer.getvalue(), mark=mark, townships=towns,
                     header_rows=last_header)


def _header_cell(ws: Worksheet, row: int, col: int, text: str) -> None:
    cell = ws.cell(row=row, column=col, value=text)
    cell.font = Font(bold=True)
    cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    cell.fill = _HEADER_FILL
    cell.border = _BORDER
