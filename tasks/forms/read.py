"""Bytes → grids of cells: the file format and text encoding layer.

A :class:`Grid` is one sheet (or one decoding of a CSV) as it is: cell values, merged ranges,
hidden rows and columns. Nothing is interpreted here; :mod:`tasks.forms.layout` finds the form in it.

:func:`read_grids` (bytes) and :func:`read_path` (a file on disk) are the entry points; they
read .xlsx/.xlsm with openpyxl and .xls (BIFF) with xlrd here, and CSV in
:mod:`tasks.forms.read_csv`. Every limit is checked before a parser sees the bytes, by the
guards of :mod:`tasks.forms.file_safety` (size, mislabelled workbooks, zip bombs, XML entities,
cell counts, long cells); every failure is a :class:`ReadError` (defined there, importable from
here too) carrying one issue with a stable code and a Chinese message.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path, PurePath
from typing import Any

from expectations.issues import issue
from tasks.forms.file_safety import (
    ReadError,
    ReadLimits,
    cap_cells,
    check_extent,
    check_size,
    inspect_archive,
    refuse_mislabelled_workbook,
    unreadable_xlsx,
    unsafe,
)
from tasks.forms.grid import CellValue, Grid, has_content
from tasks.forms.read_csv import read_csv

__all__ = ["EXCEL_ERROR_CODES", "ReadError", "ReadLimits", "read_grids", "read_path"]


EXCEL_ERROR_CODES = {
    0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!",
    0x1D: "#NAME?", 0x24: "#NUM!", 0x2A: "#N/A",
}


def read_grids(
    content: bytes, filename: str, max_bytes: int | None = None, *, limits: ReadLimits | None = None
) -> list[Grid]:
    """All candidate grids of a file: each sheet of a workbook, or each plausible decoding of a CSV.

    ``max_bytes`` overrides ``limits.max_bytes``; ``limits`` default to the settings
    (``DUIKOU_MAX_*``). Raises :class:`ReadError` for an empty, too large, unsafe, unreadable,
    truncated or unsupported file.
    """
    limits = limits or ReadLimits.from_settings()
    if max_bytes is not None:
        limits = replace(limits, max_bytes=max_bytes)
    suffix = PurePath(filename).suffix.lower()
    if not content:
        raise ReadError(issue("FILE_EMPTY", f"文件为空(0字节): {filename}"))
    check_size(len(content), filename, limits.max_bytes)
    if suffix in (".xlsx", ".xlsm", ".xls"):
        refuse_mislabelled_workbook(content, filename, suffix)
    if suffix == ".xlsx" or suffix == ".xlsm":
        inspect_archive(content, filename, limits)
        grids = _read_xlsx(content, filename, limits)
    elif suffix == ".xls":
        grids = _read_xls(content, filename, limits)
    elif suffix in (".csv", ".txt"):
        return [cap_cells(g) for g in read_csv(content, filename, limits)]
    else:
        raise ReadError(
            issue("FILE_FORMAT_UNSUPPORTED", f"不支持的文件格式 {suffix or '(无扩展名)'}: 请提交 .xlsx、.xls 或 .csv")
        )
    if not any(has_content(g) for g in grids):
        raise ReadError(issue("FILE_EMPTY", f"工作簿中没有任何内容(所有工作表均为空): {filename}"))
    return [cap_cells(g) for g in grids]


def read_path(path: Path, filename: str | None = None, *, limits: ReadLimits | None = None) -> list[Grid]:
    """:func:`read_grids` of a file on disk; an oversized file is refused before it is read."""
    limits = limits or ReadLimits.from_settings()
    name = filename or path.name
    check_size(path.stat().st_size, name, limits.max_bytes)
    return read_grids(path.read_bytes(), name, limits=limits)


# --------------------------------------------------------------------------------------------
# .xlsx / .xlsm (the archive was inspected first: file_safety.inspect_archive)
# --------------------------------------------------------------------------------------------


def _value_extent(ws: Any) -> tuple[int, int]:
    """(rows, columns) of the smallest A1-anchored range holding every cell with a value."""
    rows = cols = 0
    for (r, c), cell in ws._cells.items():  # the parsed cells only, not the (maybe huge) used range
        if cell.value is not None:
            rows, cols = max(rows, r), max(cols, c)
    return rows, cols


def _read_xlsx(content: bytes, filename: str, limits: ReadLimits) -> list[Grid]:
    import openpyxl  # heavy import, only when needed
    from defusedxml import DefusedXmlException
    from openpyxl.utils import column_index_from_string

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), data_only=True)
        # a second look at the formulas: a formula whose result was never saved (the file was
        # written by a program, not saved by Excel) has no value; it must not read as a blank
        formulas = openpyxl.load_workbook(io.BytesIO(content), data_only=False)
    except Exception as exc:  # bad zip, missing parts, broken XML inside (ParseError), bad styles …
        if _caused_by(exc, DefusedXmlException):  # openpyxl wraps it in a ValueError
            raise unsafe(f"文件{filename}含XML实体或DTD声明(XML实体攻击)，已拒收") from exc
        raise unreadable_xlsx(filename, exc) from exc
    grids = []
    for ws, fs in zip(workbook.worksheets, formulas.worksheets, strict=True):
        n_rows, n_cols = (max(a, b) for a, b in zip(_value_extent(ws), _value_extent(fs), strict=True))
        check_extent(filename, ws.title, n_rows, n_cols, limits)
        bounds = {"min_row": 1, "max_row": n_rows, "min_col": 1, "max_col": n_cols, "values_only": True}
        rows = tuple(
            tuple(v if v is not None else _uncached_formula(f) for v, f in zip(r, fr, strict=False))
            for r, fr in zip(ws.iter_rows(**bounds), fs.iter_rows(**bounds), strict=False)
        ) if n_rows and n_cols else ()
        merged = tuple(
            (rng.min_row - 1, rng.min_col - 1, rng.max_row - 1, rng.max_col - 1) for rng in ws.merged_cells.ranges
        )
        percent_cells = frozenset(
            (r - 1, c - 1)
            for (r, c), cell in ws._cells.items()
            if isinstance(cell.value, int | float) and not isinstance(cell.value, bool)
            and "%" in str(cell.number_format or "")
        )
        hidden_rows = frozenset(idx - 1 for idx, dim in ws.row_dimensions.items() if dim.hidden)
        hidden_cols: set[int] = set()
        for letter, dim in ws.column_dimensions.items():
            if dim.hidden:
                first = column_index_from_string(letter) - 1
                last = (dim.max or first + 1) - 1
                hidden_cols.update(range(first, max(first, last) + 1))
        grids.append(
            Grid(
                sheet=ws.title,
                rows=rows,
                merged=merged,
                hidden_rows=hidden_rows,
                hidden_cols=frozenset(hidden_cols),
                sheet_hidden=ws.sheet_state != "visible",
                percent_cells=percent_cells,
            )
        )
    return grids


def _caused_by(exc: BaseException, kind: type[BaseException]) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _uncached_formula(value: CellValue) -> CellValue:
    """The formula text (``=SUM(B5:B19)``) of a cell without a saved result, else None."""
    text = getattr(value, "text", value)  # ArrayFormula keeps its text in .text
    return text if isinstance(text, str) and text.startswith("=") else None


# --------------------------------------------------------------------------------------------
# .xls (BIFF)
# --------------------------------------------------------------------------------------------


def _read_xls(content: bytes, filename: str, limits: ReadLimits) -> list[Grid]:
    import xlrd

    try:
        # ragged rows: a lone cell at IV65536 costs one cell, not 65536 × 256 of them
        book = xlrd.open_workbook(file_contents=content, formatting_info=True, ragged_rows=True)
    except Exception as exc:  # xlrd raises its own XLRDError and struct errors alike
        raise ReadError(issue(
            "FILE_UNREADABLE",
            f"无法读取Excel(.xls)文件{filename}：文件已损坏或不是Excel工作簿；请用Excel或WPS打开它，"
            f"另存为“Excel工作簿(.xlsx)”后重报 (xlrd: {exc})",
        )) from exc
    grids = []
    for sheet in book.sheets():
        n_rows = n_cols = 0
        for r in range(sheet.nrows):
            for c in range(sheet.row_len(r)):
                if sheet.cell_type(r, c) not in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    n_rows, n_cols = r + 1, max(n_cols, c + 1)
        check_extent(filename, sheet.name, n_rows, n_cols, limits)
        merged_area = sum((rhi - rlo) * (chi - clo) for rlo, rhi, clo, chi in sheet.merged_cells)
        if merged_area > limits.max_cells:
            raise unsafe(f"文件{filename}的工作表“{sheet.name}”合并单元格超过{limits.max_cells}个(上限)，已拒收")
        rows = []
        percent: set[tuple[int, int]] = set()
        for r in range(n_rows):
            values: list[CellValue] = []
            width = sheet.row_len(r)
            for c in range(n_cols):
                if c >= width:
                    values.append(None)
                    continue
                cell = sheet.cell(r, c)
                if cell.ctype == xlrd.XL_CELL_ERROR:
                    values.append(EXCEL_ERROR_CODES.get(cell.value, "#ERROR"))
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    values.append(None)
                else:
                    values.append(cell.value)
                    if cell.ctype == xlrd.XL_CELL_NUMBER and "%" in _xls_format(book, cell.xf_index):
                        percent.add((r, c))
            rows.append(tuple(values))
        merged = tuple((rlo, clo, rhi - 1, chi - 1) for rlo, rhi, clo, chi in sheet.merged_cells)
        hidden_rows = frozenset(r for r, info in sheet.rowinfo_map.items() if info.hidden)
        hidden_cols = frozenset(c for c, info in sheet.colinfo_map.items() if info.hidden)
        grids.append(
            Grid(
                sheet=sheet.name,
                rows=tuple(rows),
                merged=merged,
                hidden_rows=hidden_rows,
                hidden_cols=hidden_cols,
                sheet_hidden=bool(sheet.visibility),
                percent_cells=frozenset(percent),
            )
        )
    return grids


def _xls_format(book: Any, xf_index: int | None) -> str:
    """The number format string of a BIFF cell's XF record ("" when there is none)."""
    try:
        xf = book.xf_list[xf_index]
        return str(book.format_map[xf.format_key].format_str)
    except (IndexError, KeyError, TypeError, AttributeError):
        return ""
