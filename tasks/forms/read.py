"""Bytes → grids of cells: the file format and text encoding layer.

A :class:`Grid` is one sheet (or one decoding of a CSV) as it is: cell values, merged ranges,
hidden rows and columns. Nothing is interpreted here; :mod:`tasks.forms.layout` finds the form in it.

It is also the safety layer. A file comes from outside and may be damaged or crafted, so every
limit is checked before a parser sees the bytes, and every failure is a :class:`ReadError`
carrying one issue with a stable code and a Chinese message — never a crash, never unbounded
memory or time:

- a file larger than ``DUIKOU_MAX_UPLOAD_BYTES`` → ``FILE_TOO_LARGE``, before anything else;
- an .xlsx archive is inspected with :mod:`zipfile` first: members that expand beyond
  ``DUIKOU_MAX_UNCOMPRESSED_BYTES`` in total, or one that expands more than
  ``DUIKOU_MAX_COMPRESSION_RATIO`` times (a zip bomb), → ``FILE_UNSAFE`` from the declared
  sizes alone, without inflating anything; then each XML member is streamed through expat:
  a DOCTYPE or entity declaration (billion laughs, external entities), or more cells, rows
  and merged cells than ``DUIKOU_MAX_CELLS``, → ``FILE_UNSAFE``. openpyxl parses with
  ``defusedxml`` (a project dependency) as the second line of defence;
- a sheet or CSV whose used range exceeds ``DUIKOU_MAX_CELLS`` → ``FILE_UNSAFE``;
- a CSV row with fewer fields than its header row, or a CSV that ends inside a quoted field →
  ``ROW_TRUNCATED`` naming the row (a cut file must not read as blanks).

One coercion is made here: a text cell longer than :data:`MAX_CELL_CHARS` is cut to that length
as it is read (:attr:`Grid.truncated` records where and how long it was; :func:`truncation_issues`
turns that into ``CELL_TRUNCATED`` for the receipt), so one 11-million-character cell is not
copied into receipts, the issue table, the correction workbook and every report.
"""

from __future__ import annotations

import codecs
import csv
import io
import xml.parsers.expat
import zipfile
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any

from expectations.issues import Issue, issue
from tasks.forms.grid import COLUMN_NUMBER_KEYS, CellValue, Grid, cell_text, column_letter, find_key_cell, is_footer

if TYPE_CHECKING:
    from duikou_settings import Settings


class ReadError(Exception):
    """The file cannot be read at all; carries the issue for the receipt."""

    def __init__(self, problem: Issue) -> None:
        super().__init__(problem.message)
        self.issue = problem


@dataclass(frozen=True)
class ReadLimits:
    """What one file may cost before and while it is parsed; defaults come from the settings."""

    max_bytes: int
    max_uncompressed_bytes: int
    max_compression_ratio: float
    max_cells: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> ReadLimits:
        if settings is None:
            from duikou_settings import get_settings

            settings = get_settings()
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_uncompressed_bytes=settings.max_uncompressed_bytes,
            max_compression_ratio=settings.max_compression_ratio,
            max_cells=settings.max_cells,
        )


#: characters kept of one text cell. The longest text a county form holds is its title or a 注：
#: note line — a few hundred characters; a township name is under 10, a number under 20. Excel
#: allows 32,767. 1,000 keeps every legitimate cell whole and bounds a hostile one to a few KB
#: wherever it is copied (receipt, issue table, correction workbook, report).
MAX_CELL_CHARS = 1_000
#: CELL_TRUNCATED issues listed one by one; the rest are counted in one more issue
MAX_TRUNCATION_ISSUES = 20

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
        _refuse_mislabelled_workbook(content, filename, suffix)
    if suffix == ".xlsx" or suffix == ".xlsm":
        _inspect_archive(content, filename, limits)
        grids = _read_xlsx(content, filename, limits)
    elif suffix == ".xls":
        grids = _read_xls(content, filename, limits)
    elif suffix in (".csv", ".txt"):
        return [cap_cells(g) for g in _read_csv(content, filename, limits)]
    else:
        raise ReadError(
            issue("FILE_FORMAT_UNSUPPORTED", f"不支持的文件格式 {suffix or '(无扩展名)'}: 请提交 .xlsx、.xls 或 .csv")
        )
    if not any(_has_content(g) for g in grids):
        raise ReadError(issue("FILE_EMPTY", f"工作簿中没有任何内容(所有工作表均为空): {filename}"))
    return [cap_cells(g) for g in grids]


def read_path(path: Path, filename: str | None = None, *, limits: ReadLimits | None = None) -> list[Grid]:
    """:func:`read_grids` of a file on disk; an oversized file is refused before it is read."""
    limits = limits or ReadLimits.from_settings()
    name = filename or path.name
    check_size(path.stat().st_size, name, limits.max_bytes)
    return read_grids(path.read_bytes(), name, limits=limits)


def check_size(size: int, filename: str, max_bytes: int) -> None:
    """``FILE_TOO_LARGE`` when ``size`` exceeds ``max_bytes`` (``DUIKOU_MAX_UPLOAD_BYTES``)."""
    if size > max_bytes:
        raise ReadError(
            issue(
                "FILE_TOO_LARGE",
                f"文件{filename}大小为{_size_text(size)}，超过上限{_size_text(max_bytes)}；"
                "一张报表通常不足1MB，请删除多余的工作表、图片后重报",
            )
        )


def cap_text(value: str, limit: int = MAX_CELL_CHARS) -> str:
    """``value`` cut to ``limit`` characters (unchanged when shorter)."""
    return value if len(value) <= limit else value[:limit]


def cap_cells(grid: Grid) -> Grid:
    """The grid with every text cell longer than :data:`MAX_CELL_CHARS` cut, recorded in ``truncated``."""
    cut: list[tuple[int, int, int]] = []
    rows = list(grid.rows)
    for r, row in enumerate(grid.rows):
        if not any(isinstance(v, str) and len(v) > MAX_CELL_CHARS for v in row):
            continue
        values = list(row)
        for c, v in enumerate(row):
            if isinstance(v, str) and len(v) > MAX_CELL_CHARS:
                cut.append((r, c, len(v)))
                values[c] = cap_text(v)
        rows[r] = tuple(values)
    return replace(grid, rows=tuple(rows), truncated=tuple(cut)) if cut else grid


def truncation_issues(grids: list[Grid], filename: str) -> list[Issue]:
    """One ``CELL_TRUNCATED`` per cut cell (sheet, row, column, original length), at most
    :data:`MAX_TRUNCATION_ISSUES` of them and one more counting the rest; a cell cut in two
    decodings of one CSV is named once."""
    seen: dict[tuple[str | None, int, int], int] = {}
    for grid in grids:
        for r, c, length in grid.truncated:
            seen.setdefault((grid.sheet, r, c), length)
    out = []
    for (sheet, r, c), length in list(seen.items())[:MAX_TRUNCATION_ISSUES]:
        letter = column_letter(c)
        where = f"工作表“{sheet}”" if sheet is not None else f"CSV文件{filename}"
        out.append(issue(
            "CELL_TRUNCATED",
            f"{where}第{r + 1}行{letter}列的单元格有{length}个字符，超过上限{MAX_CELL_CHARS}个，"
            f"只读取了前{MAX_CELL_CHARS}个字符；请删除该单元格中多余的内容后重报"
            f"(cell cut from {length} to {MAX_CELL_CHARS} characters)",
            sheet=sheet, row=r + 1, column=f"{letter}列",
        ))
    if len(seen) > MAX_TRUNCATION_ISSUES:
        out.append(issue(
            "CELL_TRUNCATED",
            f"另有{len(seen) - MAX_TRUNCATION_ISSUES}个单元格超过{MAX_CELL_CHARS}个字符，"
            f"均只读取了前{MAX_CELL_CHARS}个字符",
        ))
    return out


def _size_text(n: float) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f}MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f}KB"
    return f"{int(n)}字节"


_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip archive
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (BIFF) lives in an OLE2 compound file


#: the first two bytes of a bare BIFF2–BIFF5 stream (its BOF record), which xlrd reads without OLE
_BIFF_BOF = (b"\x09\x00", b"\x09\x02", b"\x09\x04", b"\x09\x08")
_HTML_STARTS = ("<!doctype html", "<html", "<table", "<head", "<body", "<meta", "<style", "<!--", "<div", "<?xml")


def _text_kind(content: bytes) -> tuple[str, str] | None:
    """(Chinese, English) name of the text format a "workbook" really is, None if it is not text.

    County web systems export "Excel" as an HTML table (with or without a BOM, sometimes UTF-16),
    an MHT web archive, XML Spreadsheet 2003, or tab-separated text, all named .xls.
    """
    head = content[:1024]
    for bom, encoding in ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")):
        if head.startswith(bom):
            text = head[len(bom):].decode(encoding, "ignore")
            break
    else:
        text = head.decode("utf-8", "ignore") if b"\x00" not in head else ""
    text = text.lstrip("\ufeff \t\r\n").lower()
    if text.startswith(_HTML_STARTS):
        return ("网页(HTML/XML)", "HTML/XML")
    if text.startswith("mime-version:"):
        return ("网页存档(MHT)", "an MHT web archive")
    if text and b"\x00" not in head and all(ch.isprintable() or ch in "\t\r\n" for ch in text[:200]):
        return ("纯文本(制表符或逗号分隔)", "plain text")
    return None


def _refuse_mislabelled_workbook(content: bytes, filename: str, suffix: str) -> None:
    """A workbook whose bytes are another format than its extension says is rejected, saying which.

    An .xls is a real workbook only as an OLE2 compound file (or, from Excel 2–5, a bare BIFF
    stream); anything else would reach xlrd and come back as its English "Expected BOF record",
    so it is named here in words a clerk can act on.
    """
    if content.startswith(_OLE_MAGIC) and "EncryptionInfo".encode("utf-16-le") in content:
        raise ReadError(issue("FILE_UNREADABLE", f"文件{filename}设置了打开密码，无法读取；请取消密码后重报"))
    if content.startswith(_ZIP_MAGIC):
        actual = (".xlsx", ".xlsx") if suffix == ".xls" else None
    elif content.startswith(_OLE_MAGIC):
        actual = (".xls", ".xls") if suffix != ".xls" else None
    else:
        actual = _text_kind(content)
        if actual is not None and actual[1] == "plain text" and suffix != ".xls":
            actual = None  # an .xlsx that is text: the zip reader says it is damaged
        if actual is None and suffix == ".xls" and not content.startswith(_BIFF_BOF):
            actual = ("未知", "in an unknown format")
    if actual is not None:
        zh, en = actual
        raise ReadError(
            issue(
                "FILE_UNREADABLE",
                f"文件{filename}的扩展名是{suffix}，但内容是{zh}格式，不是真正的Excel工作簿"
                "(常见于从网页或业务系统导出的“Excel”)；请用Excel或WPS打开它，另存为“Excel工作簿(.xlsx)”后重报"
                f" (the file is {en}, not an Excel {suffix} workbook: save it as .xlsx)",
            )
        )


def _has_content(grid: Grid) -> bool:
    """Any cell with something other than whitespace in it."""
    return any(v is not None and str(v).strip() != "" for row in grid.rows for v in row)


# --------------------------------------------------------------------------------------------
# .xlsx: the archive is inspected before openpyxl sees it
# --------------------------------------------------------------------------------------------

#: no workbook a county department fills in has more parts than this
MAX_ARCHIVE_MEMBERS = 10_000
#: a member smaller than this cannot hurt whatever its compression ratio (the total still counts)
RATIO_FLOOR_BYTES = 1 << 20
#: every XML element counts against this multiple of ``max_cells`` (bounds the scan's time)
ELEMENTS_PER_CELL = 20
_SCAN_CHUNK = 1 << 20


class _Unsafe(Exception):
    """Raised from inside the expat handlers; becomes FILE_UNSAFE."""


def _unsafe(message: str) -> ReadError:
    return ReadError(issue("FILE_UNSAFE", message))


def _unreadable_xlsx(filename: str, exc: BaseException) -> ReadError:
    return ReadError(issue("FILE_UNREADABLE", f"无法读取Excel文件 {filename}: {exc}"))


def _declared_member_count(content: bytes) -> int | None:
    """The number of entries the archive's end record declares, read without parsing anything else."""
    pos = content.rfind(b"PK\x05\x06", max(0, len(content) - (1 << 16) - 22))
    if pos < 0 or pos + 22 > len(content):
        return None
    count = int.from_bytes(content[pos + 10 : pos + 12], "little")
    if count == 0xFFFF and pos >= 20 and content[pos - 20 : pos - 16] == b"PK\x06\x07":  # zip64
        offset = int.from_bytes(content[pos - 12 : pos - 4], "little")
        if content[offset : offset + 4] == b"PK\x06\x06":
            return int.from_bytes(content[offset + 32 : offset + 40], "little")
    return count


def _inspect_archive(content: bytes, filename: str, limits: ReadLimits) -> None:
    """Refuse a zip bomb, an XML entity attack or an absurd cell count before openpyxl runs.

    Sizes are the ones the central directory declares; :mod:`zipfile` never inflates a member
    beyond its declared size (a member that lies fails its CRC check), so the checks hold for
    what openpyxl will read too. Only then are the members streamed, 1 MB at a time.
    """
    declared = _declared_member_count(content)
    if declared is not None and declared > MAX_ARCHIVE_MEMBERS:
        raise _unsafe(f"文件{filename}声明含{declared}个压缩成员(上限{MAX_ARCHIVE_MEMBERS})，不是正常的Excel文件")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ReadError(issue("FILE_UNREADABLE", f"无法读取Excel文件 {filename}: 文件已损坏或不完整({exc})")) from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise _unsafe(f"文件{filename}含{len(members)}个压缩成员(上限{MAX_ARCHIVE_MEMBERS})，已拒收")
        total = 0
        for member in members:
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
                raise _unsafe(
                    f"文件{filename}中的{member.filename}解压后为{_size_text(member.file_size)}，压缩比{ratio:.0f}:1"
                    f"(上限{limits.max_compression_ratio:g}:1)，疑似压缩炸弹，已拒收"
                )
            if total > limits.max_uncompressed_bytes:
                raise _unsafe(
                    f"文件{filename}解压后超过{_size_text(limits.max_uncompressed_bytes)}(上限)，"
                    "疑似压缩炸弹或含大量无关内容，已拒收；请只保留报表后重报"
                )
        budget = _Budget(limits.max_cells)
        for member in members:
            try:
                _scan_member(archive, member, budget)
            except _Unsafe as exc:
                raise _unsafe(f"文件{filename}中的{member.filename}{exc}，已拒收") from None
            except Exception as exc:  # bad CRC, zlib.error, encrypted or unknown compression …
                raise _unreadable_xlsx(filename, exc) from exc


@dataclass
class _Budget:
    """Cells (c and row elements, merged areas) and XML elements seen so far in one workbook."""

    max_cells: int
    cells: int = 0
    elements: int = 0

    def add(self, cells: int) -> None:
        self.cells += cells
        if self.cells > self.max_cells:
            raise _Unsafe(f"含单元格、行及合并单元格超过{self.max_cells}个(上限)")

    def element(self) -> None:
        self.elements += 1
        if self.elements > self.max_cells * ELEMENTS_PER_CELL:
            raise _Unsafe(f"含XML元素超过{self.max_cells * ELEMENTS_PER_CELL}个(上限)")


def _looks_like_xml(head: bytes) -> bool:
    for bom in (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        if head.startswith(bom):
            return True
    return head.lstrip()[:1] == b"<"


def _scan_member(archive: zipfile.ZipFile, member: zipfile.ZipInfo, budget: _Budget) -> None:
    """Stream one member through expat: no DTD, no entities, cells within the budget.

    A member that is not XML (an image) is skipped; one that is not well-formed is left to
    openpyxl, which parses with the same expat and reports it as unreadable if it reads it.
    """
    from openpyxl.utils.cell import range_boundaries

    def start(name: str, attrs: dict[str, str]) -> None:
        budget.element()
        local = name.rsplit(":", 1)[-1]
        if local in ("c", "row"):
            budget.add(1)
        elif local == "mergeCell" and attrs.get("ref"):
            try:
                c0, r0, c1, r1 = range_boundaries(attrs["ref"])
            except (ValueError, TypeError):
                return  # openpyxl fails on it too
            if c0 is not None and r0 is not None and c1 is not None and r1 is not None:
                budget.add((c1 - c0 + 1) * (r1 - r0 + 1))

    def doctype(*_: Any) -> None:
        raise _Unsafe("含DOCTYPE声明(XML实体攻击)")

    def entity(*_: Any) -> None:
        raise _Unsafe("含XML实体声明(XML实体攻击)")

    parser = xml.parsers.expat.ParserCreate()
    parser.StartDoctypeDeclHandler = doctype
    parser.EntityDeclHandler = entity
    parser.StartElementHandler = start
    with archive.open(member) as stream:
        first = True
        while True:
            chunk = stream.read(_SCAN_CHUNK)
            if first and not _looks_like_xml(chunk):
                return
            first = False
            try:
                parser.Parse(chunk, not chunk)
            except xml.parsers.expat.ExpatError:
                return
            if not chunk:
                return


def _value_extent(ws: Any) -> tuple[int, int]:
    """(rows, columns) of the smallest A1-anchored range holding every cell with a value."""
    rows = cols = 0
    for (r, c), cell in ws._cells.items():  # the parsed cells only, not the (maybe huge) used range
        if cell.value is not None:
            rows, cols = max(rows, r), max(cols, c)
    return rows, cols


def _check_extent(filename: str, sheet: str, rows: int, cols: int, limits: ReadLimits) -> None:
    if rows * cols > limits.max_cells:
        raise _unsafe(
            f"文件{filename}的工作表“{sheet}”数据范围达到{rows}行×{cols}列，超过上限{limits.max_cells}个单元格；"
            "请删除表格以外的内容后重报"
        )


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
            raise _unsafe(f"文件{filename}含XML实体或DTD声明(XML实体攻击)，已拒收") from exc
        raise _unreadable_xlsx(filename, exc) from exc
    grids = []
    for ws, fs in zip(workbook.worksheets, formulas.worksheets, strict=True):
        n_rows, n_cols = (max(a, b) for a, b in zip(_value_extent(ws), _value_extent(fs), strict=True))
        _check_extent(filename, ws.title, n_rows, n_cols, limits)
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
        _check_extent(filename, sheet.name, n_rows, n_cols, limits)
        merged_area = sum((rhi - rlo) * (chi - clo) for rlo, rhi, clo, chi in sheet.merged_cells)
        if merged_area > limits.max_cells:
            raise _unsafe(f"文件{filename}的工作表“{sheet.name}”合并单元格超过{limits.max_cells}个(上限)，已拒收")
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


# --------------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------------

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


#: appended after the last line: if it is swallowed into a field, the file ended inside quotes
_EOF_SENTINEL = "\x00duikou-end-of-file\x00"


#: rows named one by one in a message; the rest are counted (30 000 short rows made a 459 KB receipt)
MAX_ROWS_LISTED = 20


def line_breaks(text: str) -> int:
    """How many rows the CSV parser can make of ``text``: every line break it honours, counted once.

    :mod:`csv` (over ``io.StringIO(newline="")``) ends a row at ``\r\n``, a lone ``\r`` (old Mac
    exports) and a lone ``\n``; nothing else (``\x0b``, ``\x0c``, ``\x1c``–``\x1e``, ``\x85``,
    ``\u2028``/``\u2029``, which :meth:`str.splitlines` would split on, stay inside a field, and
    no code of the CSV path splits lines). Counting ``\n`` alone let a CR-only file of millions
    of one-field rows past the cell guard (issue 13, fault 5).
    """
    return text.count("\n") + text.count("\r") - text.count("\r\n")


def _read_csv(content: bytes, filename: str, limits: ReadLimits) -> list[Grid]:
    if content.startswith((_ZIP_MAGIC, _OLE_MAGIC)):
        actual = ".xlsx" if content.startswith(_ZIP_MAGIC) else ".xls"
        raise ReadError(
            issue("FILE_UNREADABLE", f"文件{filename}的扩展名是.csv，但内容是{actual}格式；请改回{actual}扩展名后重报")
        )
    grids = []
    line_ends: list[bool] = []
    for encoding, text in decode_candidates(content):
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
            delimiter = dialect.delimiter
        except csv.Error:
            delimiter = ","
        fields = text.count(delimiter) + line_breaks(text) + 1  # an upper bound, counted before parsing
        if fields > limits.max_cells:
            raise _unsafe(f"CSV文件{filename}含约{fields}个字段，超过上限{limits.max_cells}个；请只报送本表")
        rows, widths = _parse_csv(text, delimiter, filename)
        grids.append(Grid(sheet=None, rows=rows, encoding=encoding, row_widths=widths))
        line_ends.append(text.endswith(("\n", "\r")))
    if not any(_has_content(g) for g in grids):
        raise ReadError(issue("FILE_EMPTY", f"CSV文件没有任何内容: {filename}"))
    for grid, ends_with_newline in zip(grids, line_ends, strict=True):
        _refuse_short_rows(grid, ends_with_newline, filename)
    return grids


def _parse_csv(
    text: str, delimiter: str, filename: str
) -> tuple[tuple[tuple[CellValue, ...], ...], tuple[int, ...]]:
    ended = text if text.endswith(("\n", "\r")) or not text else text + "\r\n"
    reader = csv.reader(io.StringIO(ended + _EOF_SENTINEL, newline=""), delimiter=delimiter)
    parsed: list[list[str]] = []
    try:
        for row in reader:
            parsed.append(row)
    except csv.Error as exc:  # a field beyond csv.field_size_limit(): an unclosed quote ran on
        where = len(parsed) + 1
        raise ReadError(
            issue(
                "ROW_TRUNCATED",
                f"CSV文件{filename}第{where}行起有一个字段过长({exc})，通常是引号没有闭合：文件可能被截断或损坏；"
                "请重新导出完整的CSV后重报",
                row=where,
            )
        ) from exc
    if parsed and parsed[-1] == [_EOF_SENTINEL]:
        parsed.pop()
    else:  # the sentinel was swallowed: the last field's opening quote never closed
        where = len(parsed)
        last = parsed[-1] if parsed else []
        raise ReadError(
            issue(
                "ROW_TRUNCATED",
                f"CSV文件{filename}第{where}行{column_letter(max(len(last) - 1, 0))}列的引号没有闭合："
                "文件在这一行中途结束(被截断)；请重新导出完整的CSV后重报",
                row=where,
                column=f"{column_letter(max(len(last) - 1, 0))}列",
            )
        )
    rows = tuple(tuple(cell if cell != "" else None for cell in row) for row in parsed)
    return rows, tuple(len(row) for row in parsed)


@lru_cache(maxsize=1)
def _key_header_texts() -> tuple[str, ...]:
    """The key column's header (乡(镇)) of every declaration, then their aliases, normalised."""
    from expectations.declaration import load_declarations

    declarations = load_declarations().values()
    primary = [d.key.header_texts[0] for d in declarations]
    aliases = [t for d in declarations for t in d.key.header_texts[1:]]
    return tuple(dict.fromkeys([*primary, *aliases]))


def _refuse_short_rows(grid: Grid, ends_with_newline: bool, filename: str) -> None:
    """``ROW_TRUNCATED`` for a data row with fewer fields than the header row.

    Excel pads every CSV row to the table's width, so a township or 合计 row with fewer fields
    than the header was cut (the file was truncated, or the row damaged by hand); read as it
    is, its missing cells would pass for blanks. The header is the row with the key column
    (乡(镇)); data rows are the rows below it with something in the key column, up to the
    first note / signature line. The last line of a file that does not end with a line break
    counts too, whatever it holds. A decoding in which no key header is found is left to the
    layout step (HEADER_NOT_FOUND).
    """
    from expectations.declaration import normalise_header

    widths = grid.row_widths
    if widths is None:
        return
    found = find_key_cell(grid, _key_header_texts())
    if found is None:
        return
    key_row, key_col = found
    data_rows: list[int] = []
    last_row = len(grid.rows) - 1
    for r in range(key_row + 1, len(grid.rows)):
        raw = grid.rows[r]
        if is_footer(raw):
            last_row = r - 1
            break
        key = normalise_header(cell_text(grid.cell(r, key_col)))
        if key and key not in COLUMN_NUMBER_KEYS:
            data_rows.append(r)
    header_width = max(widths[key_row : data_rows[0]] if data_rows else widths[key_row : key_row + 1])
    short = [r for r in data_rows if widths[r] < header_width]
    final = len(grid.rows) - 1
    if (
        not ends_with_newline
        and final == last_row
        and final > key_row
        and final not in short
        and 0 < widths[final] < header_width
    ):
        short.append(final)
    if not short:
        return
    first = short[0]
    letter = column_letter(widths[first])
    listed = "、".join(str(r + 1) for r in short[1:MAX_ROWS_LISTED + 1])
    beyond = len(short) - 1 - MAX_ROWS_LISTED
    more = (f"；另有第{listed}行{f'等共{len(short) - 1}行' if beyond > 0 else ''}字段不全" if len(short) > 1 else "")
    raise ReadError(
        issue(
            "ROW_TRUNCATED",
            f"CSV文件{filename}第{first + 1}行只有{widths[first]}个字段，表头有{header_width}个(从{letter}列起缺失)："
            f"文件可能被截断或该行不完整{more}；请重新导出完整的CSV后重报",
            row=first + 1,
            column=f"{letter}列",
        )
    )
