"""The county form as a grid of cells, rendered to .xlsx (openpyxl), .xls (BIFF8, xlwt) or CSV.

:func:`tasks.demo.form_writer.build_form_grid` lays a return out as a :class:`FormGrid`; this
module turns that grid into bytes. A CSV is exactly what Excel's "Save as CSV" makes of the
workbook (merged cells keep their text in the top-left cell only, numbers appear as displayed).
Output is deterministic: CSV and .xls bytes depend only on the grid, and .xlsx archives get fixed
document properties and zip entry times (:func:`deterministic_zip`), so the same call gives the
same bytes.
"""

from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from expectations.declaration import Indicator

RowKind = Literal["title", "info", "header", "column_numbers", "data", "total", "blank", "note"]


# --------------------------------------------------------------------------------------------
# The grid
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormColumn:
    """One indicator column: the frame column it comes from and the header path written."""

    name: str
    path: tuple[str, ...]
    indicator: Indicator | None
    decimals: int


@dataclass
class FormGrid:
    """The sheet as a rectangle of cells, before it becomes xlsx, xls or CSV.

    ``merges`` are ``(first_row, first_col, last_row, last_col)``, 0-based and inclusive;
    ``row_kinds`` says what each row is; ``decimals[col]`` is the display precision of numbers
    in data and total rows.
    """

    cells: list[list[Any]]
    merges: list[tuple[int, int, int, int]]
    row_kinds: list[RowKind]
    decimals: dict[int, int]
    columns: tuple[FormColumn, ...]

    @property
    def ncols(self) -> int:
        return len(self.cells[0])


# --------------------------------------------------------------------------------------------
# Renderers
# --------------------------------------------------------------------------------------------


def _number_format(decimals: int) -> str:
    return "0" if decimals == 0 else "0." + "0" * decimals


def deterministic_zip(data: bytes, when: datetime) -> bytes:
    """Rewrite a zip with every entry dated ``when`` so equal workbooks give equal bytes."""
    stamp = (max(when.year, 1980), when.month, when.day, when.hour, when.minute, when.second)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            entry = zipfile.ZipInfo(info.filename, date_time=stamp)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o600 << 16
            dst.writestr(entry, src.read(info.filename))
    return out.getvalue()


def render_xlsx(grid: FormGrid, sheet_name: str, saved_at: datetime, author: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Border, Font, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.writer.excel import ExcelWriter

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.title = sheet_name
    wb.properties.creator = author
    wb.properties.lastModifiedBy = author
    wb.properties.created = saved_at
    wb.properties.modified = saved_at
    thin = Side(style="thin")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    centre = Alignment(horizontal="center", vertical="center", wrap_text=True)
    title_font = Font(name="宋体", size=16, bold=True)
    header_font = Font(name="宋体", size=10, bold=True)
    body_font = Font(name="宋体", size=10)
    table_kinds = {"header", "column_numbers", "data", "total"}
    for r, (row, kind) in enumerate(zip(grid.cells, grid.row_kinds, strict=True), start=1):
        for c, value in enumerate(row, start=1):
            in_table = kind in table_kinds
            if value is None and not in_table:
                continue
            cell = ws.cell(row=r, column=c)
            if value is not None:
                cell.value = value
            if kind == "title":
                cell.font = title_font
                cell.alignment = Alignment(horizontal="center", vertical="center")
            elif kind == "info":
                cell.font = body_font
                cell.alignment = Alignment(horizontal="left" if c == 1 else "right")
            elif kind in ("header", "column_numbers"):
                cell.font = header_font
                cell.alignment = centre
                cell.border = border
            elif in_table:
                cell.font = header_font if kind == "total" else body_font
                cell.border = border
                if c == 1:
                    cell.alignment = Alignment(horizontal="center", vertical="center")
                elif isinstance(value, int | float):
                    cell.number_format = _number_format(grid.decimals.get(c, 0))
            else:
                cell.font = body_font
    for r0, c0, r1, c1 in grid.merges:
        ws.merge_cells(start_row=r0 + 1, start_column=c0 + 1, end_row=r1 + 1, end_column=c1 + 1)
    ws.row_dimensions[1].height = 30
    for r, kind in enumerate(grid.row_kinds, start=1):
        if kind == "header":
            ws.row_dimensions[r].height = 36
    ws.column_dimensions["A"].width = 12
    for c in range(2, grid.ncols + 1):
        ws.column_dimensions[get_column_letter(c)].width = 13
    buffer = io.BytesIO()
    ExcelWriter(wb, zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED)).save()
    return deterministic_zip(buffer.getvalue(), saved_at)


def render_xls(grid: FormGrid, sheet_name: str) -> bytes:
    import xlwt

    wb = xlwt.Workbook(encoding="utf-8")
    ws = wb.add_sheet(sheet_name)
    borders = "borders: left thin, right thin, top thin, bottom thin"
    centred = "align: wrap on, horiz center, vert center"
    styles: dict[tuple[str, int], Any] = {}

    def style(kind: str, decimals: int = 0) -> Any:
        key = (kind, decimals)
        if key not in styles:
            spec = {
                "title": "font: name 宋体, bold on, height 320; align: horiz center, vert center",
                "info": "font: name 宋体, height 200",
                "header": f"font: name 宋体, bold on, height 200; {centred}; {borders}",
                "label": f"font: name 宋体, height 200; align: horiz center, vert center; {borders}",
                "number": f"font: name 宋体, height 200; {borders}",
                "note": "font: name 宋体, height 200",
            }[kind]
            styles[key] = xlwt.easyxf(spec, num_format_str=_number_format(decimals))
        return styles[key]

    def cell_style(kind: RowKind, c: int, value: Any) -> Any:
        if kind in ("title", "info", "note", "blank"):
            return style("note" if kind == "blank" else kind)
        if kind in ("header", "column_numbers"):
            return style("header")
        if c == 0 or not isinstance(value, int | float):
            return style("label")
        return style("number", grid.decimals.get(c, 0))

    covered: set[tuple[int, int]] = set()
    for r0, c0, r1, c1 in grid.merges:
        value = grid.cells[r0][c0]
        ws.write_merge(
            r0, r1, c0, c1, "" if value is None else value, cell_style(grid.row_kinds[r0], c0, value)
        )
        covered.update((r, c) for r in range(r0, r1 + 1) for c in range(c0, c1 + 1))
    table_kinds = {"header", "column_numbers", "data", "total"}
    for r, (row, kind) in enumerate(zip(grid.cells, grid.row_kinds, strict=True)):
        for c, value in enumerate(row):
            if (r, c) in covered or (value is None and kind not in table_kinds):
                continue
            if value is None:
                ws.write(r, c, None, cell_style(kind, c, value))
            else:
                ws.write(r, c, value, cell_style(kind, c, value))
    ws.col(0).width = 12 * 256
    for c in range(1, grid.ncols):
        ws.col(c).width = 13 * 256
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


def _csv_text(value: Any, decimals: int, is_body: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) or not is_body:
        return str(value)
    return f"{value:.{decimals}f}"


def render_csv_text(grid: FormGrid) -> str:
    """What Excel's "Save as CSV" writes: every row padded to the used width, CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    for row, kind in zip(grid.cells, grid.row_kinds, strict=True):
        is_body = kind in ("data", "total")
        writer.writerow([_csv_text(v, grid.decimals.get(c, 0), is_body) for c, v in enumerate(row)])
    return buffer.getvalue()
