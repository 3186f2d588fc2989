"""Bytes → grids of cells: the file format and text encoding layer.

A :class:`Grid` is one sheet (or one decoding of a CSV) as it is: cell values, merged ranges,
hidden rows and columns. Nothing is interpreted here; :mod:`tasks.layout` finds the form in it.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass, field
from pathlib import PurePath

from expectations.issues import Issue, issue

CellValue = object
#: (first_row, first_col, last_row, last_col), 0-based, inclusive
MergedRange = tuple[int, int, int, int]


class ReadError(Exception):
    """The file cannot be read at all; carries the issue for the receipt."""

    def __init__(self, problem: Issue) -> None:
        super().__init__(problem.message)
        self.issue = problem


@dataclass(frozen=True)
class Grid:
    sheet: str | None
    rows: tuple[tuple[CellValue, ...], ...]
    merged: tuple[MergedRange, ...] = ()
    hidden_rows: frozenset[int] = frozenset()
    hidden_cols: frozenset[int] = frozenset()
    sheet_hidden: bool = False
    encoding: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def n_cols(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def cell(self, row: int, col: int) -> CellValue:
        if row < len(self.rows) and col < len(self.rows[row]):
            return self.rows[row][col]
        return None


EXCEL_ERROR_CODES = {
    0x00: "#NULL!", 0x07: "#DIV/0!", 0x0F: "#VALUE!", 0x17: "#REF!",
    0x1D: "#NAME?", 0x24: "#NUM!", 0x2A: "#N/A",
}


def read_grids(content: bytes, filename: str) -> list[Grid]:
    """All candidate grids of a file: each sheet of a workbook, or each plausible decoding of a CSV.

    Raises :class:`ReadError` for an empty, unreadable or unsupported file.
    """
    suffix = PurePath(filename).suffix.lower()
    if not content:
        raise ReadError(issue("FILE_EMPTY", f"文件为空(0字节): {filename}"))
    if suffix in (".xlsx", ".xlsm", ".xls"):
        _refuse_mislabelled_workbook(content, filename, suffix)
    if suffix == ".xlsx" or suffix == ".xlsm":
        grids = _read_xlsx(content, filename)
    elif suffix == ".xls":
        grids = _read_xls(content, filename)
    elif suffix in (".csv", ".txt"):
        return _read_csv(content, filename)
    else:
        raise ReadError(
            issue("FILE_FORMAT_UNSUPPORTED", f"不支持的文件格式 {suffix or '(无扩展名)'}: 请提交 .xlsx、.xls 或 .csv")
        )
    if not any(_has_content(g) for g in grids):
        raise ReadError(issue("FILE_EMPTY", f"工作簿中没有任何内容(所有工作表均为空): {filename}"))
    return grids


_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip archive
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (BIFF) lives in an OLE2 compound file


def _refuse_mislabelled_workbook(content: bytes, filename: str, suffix: str) -> None:
    """A workbook whose bytes are another format than its extension says is rejected, saying which."""
    head = content[:512].lstrip().lower()
    if content.startswith(_OLE_MAGIC) and "EncryptionInfo".encode("utf-16-le") in content:
        raise ReadError(issue("FILE_UNREADABLE", f"文件{filename}设置了打开密码，无法读取；请取消密码后重报"))
    if content.startswith(_ZIP_MAGIC):
        actual = ".xlsx" if suffix == ".xls" else None
    elif content.startswith(_OLE_MAGIC):
        actual = ".xls" if suffix != ".xls" else None
    elif head.startswith((b"<!doctype html", b"<html", b"<table", b"<?xml")):
        actual = "网页(HTML/XML)"  # what many systems export as "Excel"
    else:
        actual = None
    if actual is not None:
        raise ReadError(
            issue(
                "FILE_UNREADABLE",
                f"文件{filename}的扩展名是{suffix}，但内容是{actual}格式；请在Excel中另存为.xlsx后重报",
            )
        )


def _has_content(grid: Grid) -> bool:
    """Any cell with something other than whitespace in it."""
    return any(v is not None and str(v).strip() != "" for row in grid.rows for v in row)


def _read_xlsx(content: bytes, filename: str) -> list[Grid]:
    import openpyxl  # heavy import, only when needed
    from openpyxl.utils import column_index_from_string

    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), data_only=True)
        # a second look at the formulas: a formula whose result was never saved (the file was
        # written by a program, not saved by Excel) has no value; it must not read as a blank
        formulas = openpyxl.load_workbook(io.BytesIO(content), data_only=False)
    except Exception as exc:  # bad zip, missing parts, broken XML inside (ParseError), bad styles …
        raise ReadError(issue("FILE_UNREADABLE", f"无法读取Excel文件 {filename}: {exc}")) from exc
    grids = []
    for ws, fs in zip(workbook.worksheets, formulas.worksheets, strict=True):
        rows = tuple(
            tuple(v if v is not None else _uncached_formula(f) for v, f in zip(r, fr, strict=False))
            for r, fr in zip(ws.iter_rows(values_only=True), fs.iter_rows(values_only=True), strict=False)
        )
        merged = tuple(
            (rng.min_row - 1, rng.min_col - 1, rng.max_row - 1, rng.max_col - 1) for rng in ws.merged_cells.ranges
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
            )
        )
    return grids


def _uncached_formula(value: CellValue) -> CellValue:
    """The formula text (``=SUM(B5:B19)``) of a cell without a saved result, else None."""
    text = getattr(value, "text", value)  # ArrayFormula keeps its text in .text
    return text if isinstance(text, str) and text.startswith("=") else None


def _read_xls(content: bytes, filename: str) -> list[Grid]:
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=content, formatting_info=True)
    except Exception as exc:  # xlrd raises its own XLRDError and struct errors alike
        raise ReadError(issue("FILE_UNREADABLE", f"无法读取Excel(.xls)文件 {filename}: {exc}")) from exc
    grids = []
    for sheet in book.sheets():
        rows = []
        for r in range(sheet.nrows):
            values: list[CellValue] = []
            for c in range(sheet.ncols):
                cell = sheet.cell(r, c)
                if cell.ctype == xlrd.XL_CELL_ERROR:
                    values.append(EXCEL_ERROR_CODES.get(cell.value, "#ERROR"))
                elif cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
                    values.append(None)
                else:
                    values.append(cell.value)
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
            )
        )
    return grids


_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def decode_candidates(content: bytes) -> list[tuple[str, str]]:
    """Plausible (encoding, text) decodings of CSV bytes, most likely first.

    A BOM decides. Otherwise strict UTF-8 first, then GB18030 (a superset of GBK); both are kept
    when both succeed, and the layout step keeps the one whose header matches the declaration —
    a short UTF-8 file can also be valid GB18030 and must not be misread.
    """
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            try:
                return [(encoding, content.decode(encoding))]
            except UnicodeDecodeError as exc:
                raise ReadError(
                    issue("ENCODING_UNDECODABLE", f"文件以{encoding} BOM开头但无法按{encoding}解码: {exc}")
                ) from exc
    out = []
    for encoding in ("utf-8", "gb18030"):
        try:
            out.append((encoding, content.decode(encoding)))
        except UnicodeDecodeError:
            continue
    if not out:
        raise ReadError(issue("ENCODING_UNDECODABLE", "CSV文件既不是UTF-8也不是GBK/GB18030编码，无法解码"))
    return out


def _read_csv(content: bytes, filename: str) -> list[Grid]:
    grids = []
    for encoding, text in decode_candidates(content):
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
            delimiter = dialect.delimiter
        except csv.Error:
            delimiter = ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        rows = tuple(tuple(cell if cell != "" else None for cell in row) for row in reader)
        grids.append(Grid(sheet=None, rows=rows, encoding=encoding))
    if not any(_has_content(g) for g in grids):
        raise ReadError(issue("FILE_EMPTY", f"CSV文件没有任何内容: {filename}"))
    return grids
