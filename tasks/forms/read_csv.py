"""CSV bytes → grids: decoding (BOM, UTF-8, GB18030), parsing, and the CSV's own guards.

Every plausible decoding becomes a grid (the layout step keeps the one whose header matches the
declaration). Before parsing, the fields are counted against ``DUIKOU_MAX_CELLS`` (every line
break the parser honours, :func:`line_breaks`); after, a CSV row with fewer fields than its header
row, or a CSV that ends inside a quoted field, → ``ROW_TRUNCATED`` naming the row (a cut file must
not read as blanks). Called from :func:`tasks.forms.read.read_grids`.
"""

from __future__ import annotations

import codecs
import csv
import io
from functools import lru_cache

from expectations.declaration import DEFAULT_NIL_MARKERS, normalise_header
from expectations.issues import issue
from tasks.forms.file_safety import OLE_MAGIC, ZIP_MAGIC, ReadError, ReadLimits, unsafe
from tasks.forms.grid import (
    COLUMN_NUMBER_KEYS,
    CellValue,
    Grid,
    cell_text,
    column_letter,
    find_key_cell,
    has_content,
    is_footer,
)

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


def read_csv(content: bytes, filename: str, limits: ReadLimits) -> list[Grid]:
    if content.startswith((ZIP_MAGIC, OLE_MAGIC)):
        actual = ".xlsx" if content.startswith(ZIP_MAGIC) else ".xls"
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
            raise unsafe(f"CSV文件{filename}含约{fields}个字段，超过上限{limits.max_cells}个；请只报送本表")
        rows, widths = _parse_csv(text, delimiter, filename)
        grids.append(Grid(sheet=None, rows=rows, encoding=encoding, row_widths=widths))
        line_ends.append(text.endswith(("\n", "\r")))
    if not any(has_content(g) for g in grids):
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


_NIL_MARKERS = frozenset(normalise_header(m) for m in DEFAULT_NIL_MARKERS)


@lru_cache(maxsize=1)
def _key_header_texts() -> tuple[str, ...]:
    """The key column's header (乡(镇)) of every declaration, then their aliases, then the division-code
    headers (a form keyed by 区划代码 alone), normalised."""
    from expectations.declaration import load_declarations

    declarations = load_declarations().values()
    primary = [d.key.header_texts[0] for d in declarations]
    aliases = [t for d in declarations for t in d.key.header_texts[1:]]
    codes = [t for d in declarations for t in d.key.code_header_texts]
    return tuple(dict.fromkeys([*primary, *aliases, *codes]))


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
        if key and key not in COLUMN_NUMBER_KEYS and key not in _NIL_MARKERS:
            data_rows.append(r)  # a lone 本月无数据 line (a nil return) is not a short township row
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
