"""The reader's guards: what a file may cost, checked before (and while) a parser sees its bytes.

A file comes from outside and may be damaged or crafted, so every limit is checked before a
parser sees the bytes, and every failure is a :class:`ReadError` carrying one issue with a stable
code and a Chinese message — never a crash, never unbounded memory or time:

- a file larger than ``DUIKOU_MAX_UPLOAD_BYTES`` → ``FILE_TOO_LARGE``, before anything else;
- a "workbook" whose bytes are another format than its extension says (an HTML table, an MHT
  archive or text named .xls, a zip named .xls, a password-protected workbook) →
  ``FILE_UNREADABLE`` saying which;
- an .xlsx archive is inspected with :mod:`zipfile` first: members that expand beyond
  ``DUIKOU_MAX_UNCOMPRESSED_BYTES`` in total, or one that expands more than
  ``DUIKOU_MAX_COMPRESSION_RATIO`` times (a zip bomb), → ``FILE_UNSAFE`` from the declared
  sizes alone, without inflating anything; then each XML member is streamed through expat:
  a DOCTYPE or entity declaration (billion laughs, external entities), or more cells, rows
  and merged cells than ``DUIKOU_MAX_CELLS``, → ``FILE_UNSAFE``. openpyxl parses with
  ``defusedxml`` (a project dependency) as the second line of defence;
- a sheet whose used range exceeds ``DUIKOU_MAX_CELLS`` → ``FILE_UNSAFE`` (:func:`check_extent`;
  the CSV reader counts fields before parsing: ``tasks.forms.read_csv``).

One coercion is made here: a text cell longer than :data:`MAX_CELL_CHARS` is cut to that length
as it is read (:attr:`Grid.truncated` records where and how long it was; :func:`truncation_issues`
turns that into ``CELL_TRUNCATED`` for the receipt), so one 11-million-character cell is not
copied into receipts, the issue table, the correction workbook and every report.

The parsers themselves: ``tasks.forms.read`` (workbooks, and the entry points) and
``tasks.forms.read_csv``.
"""

from __future__ import annotations

import codecs
import io
import xml.parsers.expat
import zipfile
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from expectations.issues import Issue, issue
from tasks.forms.grid import Grid, column_letter

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


ZIP_MAGIC = b"PK\x03\x04"  # .xlsx is a zip archive
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls (BIFF) lives in an OLE2 compound file


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


def refuse_mislabelled_workbook(content: bytes, filename: str, suffix: str) -> None:
    """A workbook whose bytes are another format than its extension says is rejected, saying which.

    An .xls is a real workbook only as an OLE2 compound file (or, from Excel 2–5, a bare BIFF
    stream); anything else would reach xlrd and come back as its English "Expected BOF record",
    so it is named here in words a clerk can act on.
    """
    if content.startswith(OLE_MAGIC) and "EncryptionInfo".encode("utf-16-le") in content:
        raise ReadError(issue("FILE_UNREADABLE", f"文件{filename}设置了打开密码，无法读取；请取消密码后重报"))
    if content.startswith(ZIP_MAGIC):
        actual = (".xlsx", ".xlsx") if suffix == ".xls" else None
    elif content.startswith(OLE_MAGIC):
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


def unsafe(message: str) -> ReadError:
    return ReadError(issue("FILE_UNSAFE", message))


def unreadable_xlsx(filename: str, exc: BaseException) -> ReadError:
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


def inspect_archive(content: bytes, filename: str, limits: ReadLimits) -> None:
    """Refuse a zip bomb, an XML entity attack or an absurd cell count before openpyxl runs.

    Sizes are the ones the central directory declares; :mod:`zipfile` never inflates a member
    beyond its declared size (a member that lies fails its CRC check), so the checks hold for
    what openpyxl will read too. Only then are the members streamed, 1 MB at a time.
    """
    declared = _declared_member_count(content)
    if declared is not None and declared > MAX_ARCHIVE_MEMBERS:
        raise unsafe(f"文件{filename}声明含{declared}个压缩成员(上限{MAX_ARCHIVE_MEMBERS})，不是正常的Excel文件")
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ReadError(issue("FILE_UNREADABLE", f"无法读取Excel文件 {filename}: 文件已损坏或不完整({exc})")) from exc
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ARCHIVE_MEMBERS:
            raise unsafe(f"文件{filename}含{len(members)}个压缩成员(上限{MAX_ARCHIVE_MEMBERS})，已拒收")
        total = 0
        for member in members:
            total += member.file_size
            ratio = member.file_size / max(member.compress_size, 1)
            if member.file_size > RATIO_FLOOR_BYTES and ratio > limits.max_compression_ratio:
                raise unsafe(
                    f"文件{filename}中的{member.filename}解压后为{_size_text(member.file_size)}，压缩比{ratio:.0f}:1"
                    f"(上限{limits.max_compression_ratio:g}:1)，疑似压缩炸弹，已拒收"
                )
            if total > limits.max_uncompressed_bytes:
                raise unsafe(
                    f"文件{filename}解压后超过{_size_text(limits.max_uncompressed_bytes)}(上限)，"
                    "疑似压缩炸弹或含大量无关内容，已拒收；请只保留报表后重报"
                )
        budget = _Budget(limits.max_cells)
        for member in members:
            try:
                _scan_member(archive, member, budget)
            except _Unsafe as exc:
                raise unsafe(f"文件{filename}中的{member.filename}{exc}，已拒收") from None
            except Exception as exc:  # bad CRC, zlib.error, encrypted or unknown compression …
                raise unreadable_xlsx(filename, exc) from exc


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


# --------------------------------------------------------------------------------------------
# Every sheet: its used range, before a workbook's cells are copied into a grid
# --------------------------------------------------------------------------------------------


def check_extent(filename: str, sheet: str, rows: int, cols: int, limits: ReadLimits) -> None:
    if rows * cols > limits.max_cells:
        raise unsafe(
            f"文件{filename}的工作表“{sheet}”数据范围达到{rows}行×{cols}列，超过上限{limits.max_cells}个单元格；"
            "请删除表格以外的内容后重报"
        )
