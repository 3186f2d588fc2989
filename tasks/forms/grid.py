"""The grid a file is read into, and what reading and layout both ask of it.

tasks/forms/read.py turns bytes into :class:`Grid` objects; tasks/forms/layout.py finds the county form in
one. Both need the same view of a cell's text, of the key column's header (乡(镇)), of the 栏次
row's key and of a note / signature line, so those live here and neither module borrows from the
other. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from expectations.declaration import normalise_header

CellValue = object
#: (first_row, first_col, last_row, last_col), 0-based, inclusive
MergedRange = tuple[int, int, int, int]

FOOTER_PREFIXES = (
    "注", "备注", "说明", "填表", "填报人", "审核", "负责人", "单位负责人", "制表", "联系电话", "填报日期",
    "统计负责人", "主管", "分管", "报出日期", "报送日期", "日期", "联系人", "电话", "经办人", "签字", "签章",
    "(盖章)", "盖章", "单位(盖章)", "单位盖章",
)
#: a line that is only a date (签署日期 under the signatures): 2017年6月5日, 2017.6.5, 2017-06-05
DATE_LINE = re.compile(r"\d{4}\s*[年.\-/]\s*\d{1,2}\s*[月.\-/]\s*\d{1,2}\s*日?")
#: the key cell of the 栏次 row under the header (甲 / 1 / 2 …)
COLUMN_NUMBER_KEYS = frozenset({"甲", "乙", "丙", "丁", "A", "B", "C", "D", "栏次", "栏号"})


@dataclass(frozen=True)
class Grid:
    sheet: str | None
    rows: tuple[tuple[CellValue, ...], ...]
    merged: tuple[MergedRange, ...] = ()
    hidden_rows: frozenset[int] = frozenset()
    hidden_cols: frozenset[int] = frozenset()
    sheet_hidden: bool = False
    encoding: str | None = None
    #: CSV only: how many fields each row had as written (a workbook row has no such count)
    row_widths: tuple[int, ...] | None = None
    #: workbooks: (row, col) of number cells shown as a percentage (0.95 formatted 0% shows 95%)
    percent_cells: frozenset[tuple[int, int]] = frozenset()
    #: (row, col, original length in characters) of each text cell cut to MAX_CELL_CHARS, 0-based
    truncated: tuple[tuple[int, int, int], ...] = ()
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def n_cols(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def cell(self, row: int, col: int) -> CellValue:
        if row < len(self.rows) and col < len(self.rows[row]):
            return self.rows[row][col]
        return None


def cell_text(value: CellValue) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def find_key_cell(grid: Grid, key_texts: tuple[str, ...]) -> tuple[int, int] | None:
    """First (row, col) whose normalised text is the declared key header (乡(镇) or an alias).

    The declared header is looked for first, then each alias in turn: an alias such as 单位 may
    also stand alone on the 填报单位 / 单位 line above the real header.
    """
    folded: dict[tuple[int, int], str] = {
        (r, c): normalise_header(cell_text(value))
        for r, row in enumerate(grid.rows)
        for c, value in enumerate(row)
        if value is not None
    }
    for wanted in key_texts:
        for position, text in folded.items():
            if text == wanted:
                return position
    return None


def has_content(grid: Grid) -> bool:
    """Any cell with something other than whitespace in it."""
    return any(v is not None and str(v).strip() != "" for row in grid.rows for v in row)


def is_footer(row: tuple[CellValue, ...]) -> bool:
    """A note / signature / date line below the form (注：…, 填报人, 2017年6月5日)."""
    first = normalise_header(next((cell_text(v) for v in row if cell_text(v)), ""))
    return first.startswith(FOOTER_PREFIXES) or bool(DATE_LINE.fullmatch(first))


#: openpyxl's get_column_letter stops at ZZZ; a CSV may be wider (Excel itself stops at XFD, 16,384)
_LAST_LETTERED_COLUMN = 18_278


def column_letter(index: int) -> str:
    """0-based column index → Excel letters (0 → A, 26 → AA), as the messages say ``{letter}列``.

    Beyond ZZZ, where openpyxl has no letters, the column is numbered instead (``第18279`` →
    ``第18279列``), so a hostile CSV that wide still gets its message, not a ValueError.
    """
    from openpyxl.utils import get_column_letter  # openpyxl is heavy; read.py imports it lazily too

    if index < _LAST_LETTERED_COLUMN:
        return get_column_letter(index + 1)
    return f"第{index + 1}"
