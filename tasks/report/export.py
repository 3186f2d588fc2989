"""Downloadable copies of the report's tables: .xlsx, .csv (UTF-8 with BOM) and Parquet.

A ``SiteTable`` is one table as the site shows it: a file stem (a township's is ``章谷镇_各年指标``),
a Chinese title (the sheet's name), an optional caption line above the header in the .xlsx, typed columns
(Chinese header, unit, English header) and the raw rows (base units, unrounded: an export read
back equals the warehouse). The HTML page formats the same rows for display.

Formula injection (CSV/Excel "DDE"): a *text* cell whose first character is ``=``, ``+``, ``-``,
``@``, a tab or a carriage return is written with a single quote ``'`` in front, in .xlsx and
.csv alike, so a spreadsheet shows it as text and never evaluates it (``=HYPERLINK("http://x","y")``
is exported as ``'=HYPERLINK("http://x","y")``). Numbers stay numbers — a negative number is a
number, not text — and are never quoted or prefixed. Parquet keeps values as they are (it is
read by programs, not spreadsheets).

``cells`` and ``neutralise`` are pure; ``write_csv``, ``write_xlsx``, ``write_parquet`` and
``export_table`` write files.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Font

from tasks.files import write_atomically, write_bytes_atomically

#: first characters that make a spreadsheet treat a text cell as a formula or a command
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
NEUTRALISER = "'"
ColumnKind = Literal["text", "number"]
_SHEET_TITLE_MAX = 31  # Excel's limit
_SHEET_FORBIDDEN = str.maketrans({c: "_" for c in "[]:*?/\\"})


def neutralise(text: str) -> str:
    """``text`` with a leading ``'`` when its first character could start a formula."""
    return NEUTRALISER + text if text.startswith(FORMULA_TRIGGERS) else text


@dataclass(frozen=True)
class Column:
    """One column: ``key`` in the rows; header ``header_zh(unit)``; ``kind`` decides the cell type."""

    key: str
    header_zh: str
    unit: str | None = None
    kind: ColumnKind = "text"
    header_en: str | None = None

    @property
    def header(self) -> str:
        """The export header: Chinese label with the unit in brackets, e.g. ``旅游总收入(元)``."""
        return f"{self.header_zh}({self.unit})" if self.unit else self.header_zh


@dataclass(frozen=True)
class SiteTable:
    """A table of the site. ``name`` is the file stem (letters — Chinese too —, digits, ``_``, ``-``);
    ``rows`` holds raw values."""

    name: str
    title_zh: str
    columns: tuple[Column, ...]
    rows: pd.DataFrame
    #: a line above the header row in the .xlsx (e.g. whose figures these are)
    caption: str | None = None

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"table name {self.name!r}: use letters (Chinese too), digits, _ and - only")
        missing = [c.key for c in self.columns if c.key not in self.rows.columns]
        if missing:
            raise ValueError(f"table {self.name}: rows lack columns {missing}")

    @property
    def headers(self) -> list[str]:
        return [c.header for c in self.columns]


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NaT:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # arrays and other containers
        return False


def _number(value: Any, where: str) -> int | float | None:
    """A number cell's value as int or float; bool counts as 1/0; text that is a number is parsed."""
    if _is_missing(value):
        return None
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
    elif hasattr(value, "item"):  # numpy scalars
        return _number(value.item(), where)
    else:
        try:
            number = float(str(value))
        except ValueError:
            raise ValueError(f"{where}: {value!r} is not a number") from None
    if math.isinf(number):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    return number


def _text(value: Any) -> str | None:
    if _is_missing(value):
        return None
    if hasattr(value, "item") and not isinstance(value, str):  # numpy scalars
        value = value.item()
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    if isinstance(value, date):
        return value.isoformat()
    return neutralise(str(value))


def cells(table: SiteTable) -> Iterator[list[str | int | float | None]]:
    """Each row as export cells: numbers as int/float, text neutralised, missing as None."""
    converters: list[Callable[[Any, str], str | int | float | None]] = []
    for column in table.columns:
        if column.kind == "number":
            converters.append(_number)
        else:
            converters.append(lambda value, _where: _text(value))
    keys = [c.key for c in table.columns]
    for index, record in enumerate(table.rows.loc[:, keys].itertuples(index=False, name=None), start=1):
        yield [
            convert(value, f"table {table.name}, row {index}, column {column.header}")
            for convert, value, column in zip(converters, record, table.columns, strict=True)
        ]


def _csv_field(value: str | int | float | None) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)
    return str(value)


def csv_text(table: SiteTable) -> str:
    """The table as CSV text (header row first; no BOM — ``write_csv`` adds it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(h) for h in table.headers])
    for row in cells(table):
        writer.writerow([_csv_field(v) for v in row])
    return buffer.getvalue()


def write_csv(table: SiteTable, path: Path) -> Path:
    """UTF-8 with a BOM (Excel on Chinese Windows then reads it as UTF-8), CRLF line ends."""
    write_bytes_atomically(path, csv_text(table).encode("utf-8-sig"))
    return path


def sheet_title(title: str) -> str:
    """An Excel-legal sheet title: no ``[]:*?/\\``, at most 31 characters, not empty."""
    cleaned = title.translate(_SHEET_FORBIDDEN).strip("'") or "Sheet1"
    return cleaned[:_SHEET_TITLE_MAX]


def write_xlsx(table: SiteTable, path: Path) -> Path:
    """One sheet named after the table's title; the caption (if any) and the header row in bold;
    numbers as numeric cells."""

    def write(tmp: Path) -> None:
        book = Workbook(write_only=True)
        sheet = book.create_sheet(sheet_title(table.title_zh))
        bold = Font(bold=True)
        if table.caption:
            caption = WriteOnlyCell(sheet, value=neutralise(table.caption))
            caption.font = bold
            sheet.append([caption])
        header = []
        for text in table.headers:
            cell = WriteOnlyCell(sheet, value=neutralise(text))
            cell.font = bold
            header.append(cell)
        sheet.append(header)
        for row in cells(table):
            # openpyxl stores a str starting with "=" as a formula; neutralise() made sure none does
            sheet.append(row)
        book.save(tmp)

    write_atomically(path, write)
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """A mart as Parquet, columns and types as read from the warehouse (no neutralising)."""
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    write_atomically(path, lambda tmp: pq.write_table(arrow, tmp))
    return path


def export_table(table: SiteTable, directory: Path) -> dict[str, Path]:
    """``<directory>/<name>.xlsx`` and ``.csv``; returns {"xlsx": path, "csv": path}."""
    return {
        "xlsx": write_xlsx(table, Path(directory) / f"{table.name}.xlsx"),
        "csv": write_csv(table, Path(directory) / f"{table.name}.csv"),
    }


def export_tables(tables: Sequence[SiteTable], directory: Path) -> dict[str, dict[str, Path]]:
    """Every table's .xlsx and .csv under ``directory``; names must be unique."""
    names = [t.name for t in tables]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"table names used twice: {duplicates}")
    return {t.name: export_table(t, directory) for t in tables}
