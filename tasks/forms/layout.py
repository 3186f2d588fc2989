"""Grid → form table: find the county form inside a sheet.

Handles what county forms look like: a merged title row, a 填报单位 / 单位 line, a key column
``乡(镇)`` heading one- to three-level merged headers, an optional 栏次 row (甲 / 1 / 2 …), a 合计
row at the top or the bottom (kept aside, never a township), and signature / 注 lines below.
Pure functions: no I/O.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace

from openpyxl.utils import get_column_letter

from expectations.declaration import Declaration, load_units, normalise_header
from tasks.forms.grid import (
    COLUMN_NUMBER_KEYS,
    DATE_LINE,
    FOOTER_PREFIXES,
    CellValue,
    Grid,
    cell_text,
    find_key_cell,
    is_footer,
)

TOTAL_LABELS = frozenset({"合计", "总计", "小计", "全县合计", "全县", "丹巴县", "全县总计", "总合计"})
#: lines above the title that are not the title: 附件2, 附表1, 表3
_ATTACHMENT_LABEL = re.compile(r"(附件|附表|表)[\d一二三四五六七八九十\-—]*:?")
#: the 填报单位 / 单位 / 填报日期 line is not the title either
INFO_PREFIXES = ("填报单位", "报送单位", "制表单位", "单位", "填报日期", "计量单位")
#: 合计（15个乡镇）, 合计: …, 镇小计 are totals too; no township name starts or ends like this
TOTAL_PREFIXES = ("合计", "总计", "小计", "全县")
TOTAL_SUFFIXES = ("合计", "小计")
IGNORED_COLUMNS = frozenset({"序号", "编号", "备注"})
#: a column naming each line of a township (章谷镇 / 其中:贫困劳动力): labels, never an indicator
LABEL_COLUMNS = frozenset({"项目", "类别", "指标", "指标名称", "分项", "栏目"})
#: a township's sub-line starts like this (其中:贫困劳动力, 其中：过夜游客)
SUBLINE_PREFIX = "其中"
#: the 栏次 row's markers in key and label columns: 甲 乙 丙 丁 …, A B C …
_COLUMN_MARKER = re.compile(r"[甲乙丙丁戊己庚辛壬癸]|[A-Za-z]|栏次|栏号|\(?\d{1,3}\)?|[①-⑳]")
#: a template row that carries only its serial number is an unused row, not a township
SERIAL_COLUMNS = frozenset({"序号", "编号"})
MAX_HEADER_LEVELS = 4


@dataclass(frozen=True)
class FormColumn:
    index: int
    path: tuple[str, ...]

    @property
    def letter(self) -> str:
        return get_column_letter(self.index + 1)

    @property
    def label(self) -> str:
        return f"{self.letter}列 {'/'.join(self.path)}" if self.path else f"{self.letter}列"


@dataclass(frozen=True)
class FormRow:
    row_number: int  # 1-based, as Excel shows it
    key: str
    cells: tuple[CellValue, ...]
    hidden: bool = False
    code: str = ""  # the division-code column's text, when the form has one beside the name


@dataclass(frozen=True)
class SubLine:
    """A township's 其中 sub-line: the row below it, its key cell merged into the township's or
    carrying ``其中:…`` itself; ``label`` is the sub-line's own text (其中:贫困劳动力)."""

    row: FormRow
    parent_row: int  # 1-based row of the township it belongs to
    label: str


@dataclass(frozen=True)
class FormTable:
    sheet: str | None
    encoding: str | None
    title: str
    preamble: tuple[str, ...]
    key_column: FormColumn
    columns: tuple[FormColumn, ...]
    rows: tuple[FormRow, ...]
    total_row: FormRow | None
    total_position: str | None  # "top" | "bottom" | None
    extra_total_rows: tuple[FormRow, ...]
    notes: tuple[str, ...]
    header_rows: tuple[int, int]  # 1-based first and last header row
    column_numbers_row: int | None
    hidden_cols: frozenset[int]
    sheet_hidden: bool
    title_row: int | None = None  # 1-based row of the title, None when the form has none
    #: (1-based row, 0-based column) of number cells the workbook shows as a percentage
    percent_cells: frozenset[tuple[int, int]] = frozenset()
    #: the 区划代码 column beside the name (None when there is none, or when it is the key itself)
    code_column: FormColumn | None = None
    key_is_code: bool = False  # no 乡(镇) column: townships are keyed by their division code
    sublines: tuple[SubLine, ...] = ()
    #: rows below the header holding only a nil-return marker (本月无数据 / 无): 1-based row, text
    marker_rows: tuple[tuple[int, str], ...] = ()


def _is_number_like(value: CellValue) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return True
    text = normalise_header(cell_text(value))
    return bool(re.fullmatch(r"[-+]?[\d,]+(\.\d+)?%?", text))


def _merged_lookup(grid: Grid) -> dict[tuple[int, int], tuple[int, int]]:
    """(row, col) of every cell inside a merged range → its top-left anchor."""
    lookup: dict[tuple[int, int], tuple[int, int]] = {}
    for r0, c0, r1, c1 in grid.merged:
        for r in range(r0, r1 + 1):
            for c in range(c0, c1 + 1):
                lookup[(r, c)] = (r0, c0)
    return lookup


def _header_extent(grid: Grid, key_row: int, key_col: int) -> int:
    """Last header row (0-based, inclusive)."""
    for r0, c0, r1, c1 in grid.merged:
        if r0 == key_row and c0 <= key_col <= c1 and r1 > r0:
            return min(r1, key_row + MAX_HEADER_LEVELS - 1)
    last = key_row
    for r in range(key_row + 1, min(len(grid.rows), key_row + MAX_HEADER_LEVELS)):
        row = grid.rows[r]
        if cell_text(grid.cell(r, key_col)):
            break
        values = [v for v in row if cell_text(v)]
        if not values or any(_is_number_like(v) for v in values):
            break
        last = r
    return last


def _header_paths(
    grid: Grid, first: int, last: int, known: frozenset[tuple[str, ...]] = frozenset()
) -> list[tuple[str, ...]]:
    """Each column's header path (normalised text per level, repeats dropped).

    ``known`` (the declared paths) keeps a parent from being carried over a column whose own
    text is a declared one-level header (其中:建档立卡… right of 在校学生数's children).
    """
    merged = _merged_lookup(grid)
    own_headers = {_without_unit(p[0]) for p in known if len(p) == 1}
    known_pairs = {tuple(_without_unit(t) for t in p[:2]) for p in known if len(p) >= 2}
    n_cols = grid.n_cols
    levels: list[list[str]] = []
    for r in range(first, last + 1):
        level = []
        for c in range(n_cols):
            anchor = merged.get((r, c), (r, c))
            level.append(normalise_header(cell_text(grid.cell(*anchor))))
        levels.append(level)
    # CSV and unmerged sheets: a parent label written once over its children is carried right
    # while the cells below it continue a group of children.
    for i in range(len(levels) - 1):
        upper, lower = levels[i], levels[i + 1]
        for c in range(1, n_cols):
            if not upper[c] and upper[c - 1] and lower[c] and lower[c - 1] and not _merged_anchor_differs(
                merged, first + i, c
            ) and not (
                _without_unit(lower[c]) in own_headers
                and (_without_unit(upper[c - 1]), _without_unit(lower[c])) not in known_pairs
            ):
                upper[c] = upper[c - 1]
    paths = []
    for c in range(n_cols):
        path: list[str] = []
        for level in levels:
            text = level[c]
            if text and (not path or path[-1] != text):
                path.append(text)
        paths.append(tuple(path))
    return paths


def _merged_anchor_differs(merged: dict[tuple[int, int], tuple[int, int]], row: int, col: int) -> bool:
    return (row, col) in merged and merged[(row, col)] != (row, col)


def _is_column_numbers_row(grid: Grid, r: int, key_col: int) -> bool:
    """The 栏次 row: 甲 / 乙 / A / 栏次 in the key and label columns, 1, 2, 3 … in the value columns
    (or the other way round), never a township. Without a marker in the key cell, its numbers must
    count up one by one (1 2 3 …), so no row of values is taken for it."""
    texts = [(c, normalise_header(cell_text(v))) for c, v in enumerate(grid.rows[r]) if cell_text(v)]
    if len(texts) < 2 or not all(_COLUMN_MARKER.fullmatch(t) for _, t in texts):
        return False
    key = normalise_header(cell_text(grid.cell(r, key_col)))
    numbers = [int(t.strip("()")) for _, t in texts if t.strip("()").isdigit()]
    if key in COLUMN_NUMBER_KEYS or (key and not key.strip("()").isdigit()):
        return bool(numbers) or len(texts) >= 3
    return len(numbers) >= 3 and all(b - a == 1 for a, b in itertools.pairwise(numbers))


def _title_line(lines: list[tuple[int, str]]) -> tuple[int, str] | None:
    """The title among the lines above the header: not an attachment label, not the 填报单位 line,
    not a 填报人 / 审核人 / 联系电话 / 填报日期 line (clerks put those above the title too)."""
    for r, text in lines:
        folded = normalise_header(text)
        if _ATTACHMENT_LABEL.fullmatch(folded) or folded.startswith(INFO_PREFIXES):
            continue
        if folded.startswith(FOOTER_PREFIXES) or DATE_LINE.fullmatch(folded):
            continue  # 填报人 / 审核人 / 联系电话 / a date written above the title is not the title
        return r, text
    return None


def is_total_label(text: str) -> bool:
    folded = normalise_header(text)
    return folded in TOTAL_LABELS or folded.startswith(TOTAL_PREFIXES) or folded.endswith(TOTAL_SUFFIXES)


def _is_subtotal(label: str) -> bool:
    return "小计" in normalise_header(label)


def _row_key(grid: Grid, merged: dict[tuple[int, int], tuple[int, int]], r: int, key_col: int) -> str:
    """The key cell's text; a 合计 merged across 序号 and 乡(镇), or written in 序号, counts too."""
    key = cell_text(grid.cell(r, key_col))
    if key:
        return key
    if (r, key_col) in merged:
        key = cell_text(grid.cell(*merged[(r, key_col)]))
        if key:
            return key
    left = next((cell_text(v) for v in grid.rows[r][:key_col] if cell_text(v)), "")
    return left if is_total_label(left) else ""


def _row_text(row: tuple[CellValue, ...]) -> str:
    return "  ".join(cell_text(v) for v in row if cell_text(v))


def locate_form(grid: Grid, declaration: Declaration) -> FormTable | None:
    """The form table in ``grid``, or None when the declared key header is nowhere in it.

    The key is the township name column (乡(镇) or an alias); a 区划代码 column beside it is read
    as each row's code, and a form keyed by the division code alone is keyed by that column.
    """
    found = find_key_cell(grid, declaration.key.header_texts)
    key_is_code = False
    if found is None:
        found = find_key_cell(grid, declaration.key.code_header_texts)
        if found is None:
            return None
        key_is_code = True
    key_row, key_col = found
    header_last = _header_extent(grid, key_row, key_col)
    known = frozenset(p for ind in declaration.indicators for p in ind.header_paths)
    header_first = _header_start(grid, key_row, key_col, header_last, known)
    paths = _header_paths(grid, header_first, header_last, known)
    lines = [(r, text) for r, text in ((r, _row_text(grid.rows[r])) for r in range(header_first)) if text]
    preamble = tuple(text for _, text in lines)
    title_line = _title_line(lines)
    title = title_line[1] if title_line else ""

    first_data = header_last + 1
    column_numbers_row = None
    # the 栏次 row sits anywhere between the header and the first township (blank lines around it)
    probe = first_data
    while probe < len(grid.rows) and not any(cell_text(v) for v in grid.rows[probe]):
        probe += 1
    if probe < len(grid.rows) and _is_column_numbers_row(grid, probe, key_col):
        column_numbers_row = probe + 1
        first_data = probe + 1

    merged = _merged_lookup(grid)
    key_span = _key_span(merged, key_row, key_col)
    code_col = None if key_is_code else _code_column(paths, key_span, declaration)
    serial_cols = {c for c, path in enumerate(paths) if c != key_col and path and path[-1] in SERIAL_COLUMNS}
    markers = declaration.nil_return.marker_texts
    rows: list[FormRow] = []
    sublines: list[SubLine] = []
    marker_rows: list[tuple[int, str]] = []
    totals: list[tuple[FormRow, str]] = []
    notes: list[str] = []
    in_footer = False
    for r in range(first_data, len(grid.rows)):
        raw = grid.rows[r]
        if in_footer or is_footer(raw):
            in_footer = True
            text = _row_text(raw)
            if text:
                notes.append(text)
            continue
        if all(c in serial_cols for c, v in enumerate(raw) if cell_text(v)):
            continue  # blank, or only a pre-printed 序号
        texts = [normalise_header(cell_text(v)).strip("。.!！()（）") for v in raw if cell_text(v)]
        if len(set(texts)) == 1 and texts[0] in markers:
            marker_rows.append((r + 1, cell_text(next(v for v in raw if cell_text(v)))))
            continue  # 本月无数据 / 无: a nil return's marker line, never a township
        key = _row_key(grid, merged, r, key_col)
        code = cell_text(grid.cell(r, code_col.index)) if code_col is not None else ""
        row = FormRow(row_number=r + 1, key=key, cells=raw, hidden=r in grid.hidden_rows, code=code)
        label = _subline_label(grid, merged, r, key_col, key_span, paths)
        if label is not None and rows:
            sublines.append(SubLine(row=replace(row, key=rows[-1].key, code=rows[-1].code),
                                    parent_row=rows[-1].row_number, label=label))
            continue
        if is_total_label(key):
            totals.append((row, "top" if not rows else "bottom"))
        else:
            rows.append(row)

    columns = tuple(
        FormColumn(index=c, path=paths[c]) for c in range(len(paths))
        if c not in key_span and (code_col is None or c != code_col.index)
    )
    # the county 合计 is the total; a 镇小计 / 乡小计 between the townships covers only some of them
    totals.sort(key=lambda t: _is_subtotal(t[0].key))
    total_row, total_position = (totals[0] if totals else (None, None))
    return FormTable(
        sheet=grid.sheet,
        encoding=grid.encoding,
        title=title,
        preamble=preamble,
        key_column=FormColumn(index=key_col, path=paths[key_col]),
        columns=columns,
        rows=tuple(rows),
        total_row=total_row,
        total_position=total_position,
        extra_total_rows=tuple(t for t, _ in totals[1:]),
        notes=tuple(notes),
        header_rows=(header_first + 1, header_last + 1),
        column_numbers_row=column_numbers_row,
        hidden_cols=grid.hidden_cols,
        sheet_hidden=grid.sheet_hidden,
        title_row=title_line[0] + 1 if title_line else None,
        percent_cells=frozenset((r + 1, c) for r, c in grid.percent_cells),
        code_column=code_col,
        key_is_code=key_is_code,
        sublines=tuple(sublines),
        marker_rows=tuple(marker_rows),
    )


_BRACKETS = re.compile(r"\([^()]*\)")


def _code_column(
    paths: list[tuple[str, ...]], key_span: set[int], declaration: Declaration
) -> FormColumn | None:
    """The 区划代码 / 乡镇代码 column beside the township name (its header with or without a note in
    brackets: 区划代码(12位))."""
    wanted = set(declaration.key.code_header_texts)
    for c, path in enumerate(paths):
        if c in key_span or not path:
            continue
        if any(t in wanted or _BRACKETS.sub("", t) in wanted for t in path):
            return FormColumn(index=c, path=path)
    return None


def _subline_label(
    grid: Grid, merged: dict[tuple[int, int], tuple[int, int]], r: int, key_col: int, key_span: set[int],
    paths: list[tuple[str, ...]],
) -> str | None:
    """The label of a township's 其中 sub-line, or None when row ``r`` is a row of its own.

    A sub-line either writes 其中:… in the key cell (or in a label column beside it, its key cell
    blank), or sits under a township whose name cell is merged down over it (the label, if any, in
    a label column).
    """
    own = cell_text(grid.rows[r][key_col]) if key_col < len(grid.rows[r]) else ""
    if normalise_header(own).startswith(SUBLINE_PREFIX):
        return own
    anchor = merged.get((r, key_col))
    under_merged_name = anchor is not None and anchor[0] < r and bool(cell_text(grid.cell(*anchor)))
    if own and not under_merged_name:
        return None
    labels = [
        cell_text(v) for c, v in enumerate(grid.rows[r])
        if c not in key_span and cell_text(v) and not _is_number_like(v)
        and (normalise_header(cell_text(v)).startswith(SUBLINE_PREFIX)
             or (paths[c][-1] if c < len(paths) and paths[c] else "") in LABEL_COLUMNS)
    ]
    if labels:
        return labels[0]
    return "" if under_merged_name else None


def _key_span(merged: dict[tuple[int, int], tuple[int, int]], key_row: int, key_col: int) -> set[int]:
    """The key column, and the columns its header cell is merged across (乡(镇) over A:B)."""
    anchor = merged.get((key_row, key_col), (key_row, key_col))
    span = {key_col}
    for (r, c), other in merged.items():
        if r == key_row and other == anchor:
            span.add(c)
    return span


def _header_start(grid: Grid, key_row: int, key_col: int, header_last: int, known: frozenset[tuple[str, ...]]) -> int:
    """First header row: the key's row, or the row above when the form's parent labels sit there.

    A re-typed two-level header may carry 乡(镇) (and the one-level columns) on its lower row,
    under the parents 在校学生数 / 农村劳动力. The row above is taken as part of the header only
    when it leaves the key column empty and the declared header paths then match more columns —
    a 填报单位 / 单位 line above a one-level header never does.
    """
    above = key_row - 1
    if above < 0 or cell_text(grid.cell(above, key_col)):
        return key_row
    values = [v for v in grid.rows[above] if cell_text(v)]
    if not values or any(_is_number_like(v) for v in values):
        return key_row

    stems = {tuple(_without_unit(t) for t in p) for p in known}

    def matches(first: int) -> int:
        paths = _header_paths(grid, first, header_last, known)
        return sum(1 for c, path in enumerate(paths)
                   if c != key_col and (path in known or tuple(_without_unit(t) for t in path) in stems))

    return above if matches(above) > matches(key_row) else key_row


_BRACKETED_TAIL = re.compile(r"(.*?)\(([^()]*)\)")


def _without_unit(text: str) -> str:
    """``合计(人)`` → ``合计``, ``资助金额(本年累计,万元)`` → ``资助金额(本年累计)``: a unit in brackets dropped."""
    match = _BRACKETED_TAIL.fullmatch(text)
    if not match:
        return text
    parts = match.group(2).split(",")
    if parts[-1].removeprefix("单位:") not in load_units():
        return text
    rest = ",".join(parts[:-1])
    return match.group(1) + (f"({rest})" if rest else "")


def header_match_count(form: FormTable, declaration: Declaration) -> int:
    """How many of the form's columns carry a declared header path — used to choose a sheet."""
    known = {p for ind in declaration.indicators for p in ind.header_paths}
    return sum(1 for col in form.columns if col.path in known)
