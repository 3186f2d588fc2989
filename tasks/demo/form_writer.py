"""Write county return forms (.xlsx / .xls / .csv) the way Danba's departments really send them.

Why this module exists: the demo generator and the reader's test fixtures both need files that
look like real submissions — a merged title row, a 填报单位/单位/填报日期 line, multi-level merged
headers, an optional 栏次 row, a 合计 row at the top or the bottom, notes and signatures below —
without anyone hand-crafting workbooks. Everything here is driven by a
:class:`~expectations.declaration.Declaration` (header paths, aliases, units, value types,
aggregation); nothing is department-specific, so a sixth return needs no code here.

The layout is first built as a plain grid (:func:`build_form_grid`) and then rendered to one of
the formats; a CSV is exactly what Excel's "Save as CSV" makes of the workbook (merged cells
keep their text in the top-left cell only, numbers appear as displayed).

Output is deterministic: CSV and .xls bytes depend only on the arguments, and .xlsx archives
get fixed document properties and zip entry times (``saved_at``), so the same call gives the
same bytes. The grid's type and its three renderers: :mod:`tasks.demo.form_render`.
"""

from __future__ import annotations

import csv
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from expectations.declaration import UNITS_FILE, Declaration, Indicator, normalise_header
from tasks.demo.form_render import FormColumn, FormGrid, RowKind, render_csv_text, render_xls, render_xlsx
from warehouse.load import parse_period

FormFormat = Literal["xlsx", "xls", "csv-gbk", "csv-utf8-bom", "csv-utf8"]
TotalPosition = Literal["bottom", "top"]
HeaderStyle = Literal["declared", "fullwidth", "wrapped", "messy", "alias"]

FORM_FORMATS: tuple[FormFormat, ...] = ("xlsx", "xls", "csv-gbk", "csv-utf8-bom", "csv-utf8")
HEADER_STYLES: tuple[HeaderStyle, ...] = ("declared", "fullwidth", "wrapped", "messy", "alias")
FORMAT_SUFFIX: dict[FormFormat, str] = {
    "xlsx": ".xlsx",
    "xls": ".xls",
    "csv-gbk": ".csv",
    "csv-utf8-bom": ".csv",
    "csv-utf8": ".csv",
}

COUNTY_NAME = "丹巴县"
TOTAL_LABEL = "合计"
#: what the 栏次 row carries under the key column (columns after it are numbered 1, 2, 3, …)
COLUMN_NUMBERS_KEY = "甲"
#: document properties / zip entry times when the caller gives no ``saved_at``
DEFAULT_SAVED_AT = datetime(2018, 1, 1, 9, 0, 0)
DEFAULT_SIGNATORIES = ("张敏", "李强", "王建国")
REFERENCE_DIR = UNITS_FILE.parent

#: form precision of decimal indicators by unit; others are inferred from the values
UNIT_DECIMALS: dict[str, int] = {"万元": 2, "亿元": 4, "万人次": 4, "万人": 4}
_FULLWIDTH = str.maketrans({"(": "（", ")": "）", ":": "：", ",": "，"})


# --------------------------------------------------------------------------------------------
# Reference data: township names valid at a date, department names
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TownshipAlias:
    alias: str
    township_code: str
    valid_from: date
    valid_to: date
    alias_kind: str


#: the day whose boundaries the demo's 2011–2017 story uses: the 15 townships before the 2019 reform
STORY_BOUNDARIES = date(2017, 12, 31)


@lru_cache(maxsize=4)
def township_codes(on: date = STORY_BOUNDARIES) -> tuple[str, ...]:
    """The codes of the townships valid ``on`` that day, in the order of ``townships.csv`` (code
    order, as forms list them): the 15 of 2016–2019 by default, the 12 units from 2020 on."""
    with (REFERENCE_DIR / "townships.csv").open(encoding="utf-8") as fh:
        return tuple(
            row["township_code"]
            for row in csv.DictReader(fh)
            if date.fromisoformat(row["valid_from"]) <= on
            and (not row["valid_to"] or date.fromisoformat(row["valid_to"]) >= on)
        )


@lru_cache(maxsize=1)
def _township_official_names() -> dict[str, str]:
    with (REFERENCE_DIR / "townships.csv").open(encoding="utf-8") as fh:
        return {row["township_code"]: row["name_zh"] for row in csv.DictReader(fh)}


@lru_cache(maxsize=1)
def township_aliases() -> tuple[TownshipAlias, ...]:
    with (REFERENCE_DIR / "township_aliases.csv").open(encoding="utf-8") as fh:
        return tuple(
            TownshipAlias(
                alias=row["alias"],
                township_code=row["township_code"],
                valid_from=date.fromisoformat(row["valid_from"]),
                valid_to=date.fromisoformat(row["valid_to"]),
                alias_kind=row["alias_kind"],
            )
            for row in csv.DictReader(fh)
        )


def township_name_at(code: str, on: date) -> str:
    """The name a department would write for ``code`` on ``on``: official if valid, else former.

    Dated aliases matter: 巴底乡 is right for 2011 and wrong for 2017; 革什扎镇 only exists from
    2015-09, so a January 2015 form says 革什扎乡.
    """
    valid = [
        a
        for a in township_aliases()
        if a.township_code == code
        and a.valid_from <= on <= a.valid_to
        and a.alias_kind in ("official", "former")
    ]
    for kind in ("official", "former"):
        for alias in valid:
            if alias.alias_kind == kind:
                return alias.alias
    return _township_official_names()[code]


@lru_cache(maxsize=1)
def _department_names() -> dict[str, str]:
    with (REFERENCE_DIR / "departments.csv").open(encoding="utf-8") as fh:
        return {row["department"]: row["name_zh"] for row in csv.DictReader(fh)}


def reporting_unit_name(department: str) -> str:
    """``县教育局`` in departments.csv → ``丹巴县教育局`` as written on the 填报单位 line."""
    name = _department_names().get(department, "")
    return COUNTY_NAME + name[1:] if name.startswith("县") else name


# --------------------------------------------------------------------------------------------
# Periods and titles
# --------------------------------------------------------------------------------------------


def period_start(period: str) -> date:
    year, month = parse_period(period)
    return date(year, month or 1, 1)


def form_title(declaration: Declaration, period: str) -> str:
    """``丹巴县2017年5月就业扶贫工作进展月报表`` / ``丹巴县2016年贫困人口及农牧民收入年报表``."""
    year, month = parse_period(period)
    when = f"{year}年{month}月" if month else f"{year}年"
    return f"{COUNTY_NAME}{when}{declaration.title_zh}"


def _default_filled_on(period: str, due_day: int) -> date:
    year, month = parse_period(period)
    if month is None:
        return date(year + 1, 1, min(due_day, 28))
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return nxt + timedelta(days=min(due_day, 28) - 3)


# --------------------------------------------------------------------------------------------
# Header text as people write it
# --------------------------------------------------------------------------------------------


def render_header_text(text: str, *, fullwidth: bool = False, wrapped: bool = False) -> str:
    """Write a declared header the way a person would, without changing what it normalises to.

    ``fullwidth`` turns ASCII brackets, colons and commas into full-width ones (NFKC folds them
    back); ``wrapped`` puts a line break before a bracketed qualifier or after ``其中:`` in long
    headers (the reader strips whitespace). ``normalise_header`` of the result equals that of
    ``text``.
    """
    out = text.translate(_FULLWIDTH) if fullwidth else text
    if wrapped and len(out) > 6:
        for opener in ("（", "("):
            i = out.find(opener)
            if i > 0:
                return out[:i] + "\n" + out[i:]
        for prefix in ("其中：", "其中:"):
            if out.startswith(prefix) and len(out) > len(prefix):
                return prefix + "\n" + out[len(prefix) :]
    return out


def _style_flags(style: HeaderStyle) -> tuple[bool, bool]:
    return {
        "declared": (False, False),
        "fullwidth": (True, False),
        "wrapped": (False, True),
        "messy": (True, True),
        "alias": (True, False),
    }[style]


# --------------------------------------------------------------------------------------------
# Numbers
# --------------------------------------------------------------------------------------------


def _is_blank(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float) and math.isnan(value)


def _numeric(value: Any) -> float | None:
    """What a reader would make of a cell: numbers as is, ``"1,234"``/full-width digits coerced."""
    if _is_blank(value):
        return None
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).replace(",", "").strip()
        try:
            return float(text)
        except ValueError:
            return None
    result = float(value)
    return None if math.isnan(result) else result


def _needed_decimals(values: Sequence[float], cap: int = 4) -> int:
    needed = 0
    for v in values:
        for d in range(cap + 1):
            if abs(round(v, d) - v) < 1e-9:
                needed = max(needed, d)
                break
        else:
            needed = cap
    return needed


def _cell_value(value: Any, decimals: int) -> Any:
    """A python scalar for the cell: blank → None, text kept, whole counts as ``int``."""
    if _is_blank(value):
        return None
    if isinstance(value, str):
        return value
    number = float(value)
    if decimals == 0 and number.is_integer():
        return int(number)
    return number


def _round_half_up(value: float, decimals: int) -> float:
    scaled = Fraction(value) * 10**decimals
    rounded = math.floor(scaled + Fraction(1, 2))
    return float(Fraction(rounded, 10**decimals))


# --------------------------------------------------------------------------------------------
# The grid (its type and renderers: tasks.demo.form_render)
# --------------------------------------------------------------------------------------------


def _header_path(
    ind: Indicator | None, name: str, style: HeaderStyle, override: Mapping[str, Sequence[str]] | None
) -> tuple[str, ...]:
    if override and name in override:
        return tuple(override[name])
    if ind is None:
        return (name,)
    if style == "alias" and ind.aliases:
        return ind.aliases[0]
    return ind.header


def _total_value(col: FormColumn, rows: pd.DataFrame, override: Mapping[str, Any] | None) -> Any:
    if override and col.name in override:
        return _cell_value(override[col.name], col.decimals)
    values = [_numeric(v) for v in rows[col.name]]
    aggregation = col.indicator.aggregation if col.indicator else "sum"
    if aggregation == "none":
        return None
    if aggregation == "weighted_mean":
        assert col.indicator is not None and col.indicator.weight is not None
        if col.indicator.weight not in rows.columns:
            return None
        weights = [_numeric(w) for w in rows[col.indicator.weight]]
        pairs = [
            (Fraction(v), Fraction(w)) for v, w in zip(values, weights, strict=True) if v is not None and w
        ]
        if not pairs or sum(w for _, w in pairs) == 0:
            return None
        mean = sum(v * w for v, w in pairs) / sum(w for _, w in pairs)
        return _cell_value(_round_half_up(float(mean), col.decimals), col.decimals)
    present = [Fraction(v) for v in values if v is not None]
    if not present:
        return None
    return _cell_value(_round_half_up(float(sum(present)), col.decimals), col.decimals)


def _township_labels(
    rows: pd.DataFrame, period: str, township_names: Mapping[str, str] | Sequence[str] | None
) -> list[str]:
    if township_names is not None and not isinstance(township_names, Mapping):
        labels = [str(n) for n in township_names]
        if len(labels) != len(rows):
            raise ValueError(f"{len(labels)} township names for {len(rows)} rows")
        return labels
    if "township" in rows.columns and township_names is None:
        return [str(n) for n in rows["township"]]
    if "township_code" not in rows.columns:
        raise ValueError("rows need a township_code (or township) column, or township_names")
    on = period_start(period)
    mapping = township_names or {}
    return [mapping.get(str(code), township_name_at(str(code), on)) for code in rows["township_code"]]


def build_form_grid(
    declaration: Declaration,
    period: str,
    rows: pd.DataFrame,
    *,
    total_position: TotalPosition | None = "bottom",
    column_numbers_row: bool = False,
    title_period: str | None = None,
    title: str | None = None,
    township_names: Mapping[str, str] | Sequence[str] | None = None,
    header_style: HeaderStyle = "declared",
    header_paths: Mapping[str, Sequence[str]] | None = None,
    totals: Mapping[str, Any] | None = None,
    decimals: Mapping[str, int] | None = None,
    reporting_unit: str | None = None,
    filled_on: date | None = None,
    signatories: tuple[str, str, str] = DEFAULT_SIGNATORIES,
    total_label: str = TOTAL_LABEL,
) -> FormGrid:
    """Lay a form out as a grid; see :func:`write_form` for the arguments."""
    if header_style not in HEADER_STYLES:
        raise ValueError(f"header_style must be one of {HEADER_STYLES}")
    fullwidth, wrapped = _style_flags(header_style)
    known = {i.name: i for i in declaration.indicators}
    columns: list[FormColumn] = []
    for name in rows.columns:
        if name in ("township_code", "township"):
            continue
        ind = known.get(str(name))
        if decimals and name in decimals:
            places = decimals[name]
        elif ind is not None and ind.value_type == "integer":
            places = 0
        else:
            numbers = [n for n in (_numeric(v) for v in rows[name]) if n is not None]
            places = _needed_decimals(numbers)
            if ind is not None and ind.unit in UNIT_DECIMALS:
                places = max(places, UNIT_DECIMALS[ind.unit])
        path = _header_path(ind, str(name), header_style, header_paths)
        path = tuple(render_header_text(p, fullwidth=fullwidth, wrapped=wrapped) for p in path)
        columns.append(FormColumn(str(name), path, ind, places))
    if not columns:
        raise ValueError("no indicator columns to write")

    key_text = (
        declaration.key.aliases[0]
        if header_style == "alias" and declaration.key.aliases
        else (declaration.key.header)
    )
    key_text = render_header_text(key_text, fullwidth=fullwidth)
    ncols = 1 + len(columns)
    depth = max(len(c.path) for c in columns)
    cells: list[list[Any]] = []
    kinds: list[RowKind] = []
    merges: list[tuple[int, int, int, int]] = []

    def add(kind: RowKind, values: Sequence[Any] = ()) -> int:
        row = [*values, *([None] * (ncols - len(values)))]
        cells.append(row)
        kinds.append(kind)
        return len(cells) - 1

    # Row 1: merged title
    r = add("title", [title or form_title(declaration, title_period or period)])
    merges.append((r, 0, r, ncols - 1))
    # Row 2: 填报单位 … 单位 … 填报日期
    unit_names: list[str] = []
    for col in columns:
        if col.indicator is not None and col.indicator.unit not in unit_names:
            unit_names.append(col.indicator.unit)
    filled = filled_on or _default_filled_on(period, declaration.due_day)
    unit_name = reporting_unit if reporting_unit is not None else reporting_unit_name(declaration.department)
    left = f"填报单位：{unit_name}"
    unit_text = f"单位：{'、'.join(unit_names)}"
    date_text = f"填报日期：{filled.year}年{filled.month}月{filled.day}日"
    r = add("info")
    if ncols >= 4:
        c_date, c_unit = ncols - 2, ncols - 3
        cells[r][0], cells[r][c_unit], cells[r][c_date] = left, unit_text, date_text
        if c_unit > 1:
            merges.append((r, 0, r, c_unit - 1))
        merges.append((r, c_date, r, ncols - 1))
    else:
        cells[r][0] = "　　".join((left, unit_text, date_text))
    # Header rows
    h0 = len(cells)
    for _ in range(depth):
        add("header")
    cells[h0][0] = key_text
    if depth > 1:
        merges.append((h0, 0, h0 + depth - 1, 0))
    for j, col in enumerate(columns, start=1):
        last = len(col.path) - 1
        cells[h0 + last][j] = col.path[last]
        if last < depth - 1:
            merges.append((h0 + last, j, h0 + depth - 1, j))
    for level in range(depth - 1):
        j = 1
        while j < ncols:
            col = columns[j - 1]
            if len(col.path) <= level + 1:
                j += 1
                continue
            key = tuple(normalise_header(p) for p in col.path[: level + 1])
            end = j
            while end + 1 < ncols:
                nxt = columns[end]
                if (
                    len(nxt.path) <= level + 1
                    or tuple(normalise_header(p) for p in nxt.path[: level + 1]) != key
                ):
                    break
                end += 1
            cells[h0 + level][j] = col.path[level]
            if end > j:
                merges.append((h0 + level, j, h0 + level, end))
            j = end + 1
    if column_numbers_row:
        add("column_numbers", [COLUMN_NUMBERS_KEY, *range(1, ncols)])

    labels = _township_labels(rows, period, township_names)
    total_row: list[Any] | None = None
    if total_position is not None:
        total_row = [total_label, *(_total_value(c, rows, totals) for c in columns)]
    if total_position == "top":
        assert total_row is not None
        add("total", total_row)
    for i, label in enumerate(labels):
        add("data", [label, *(_cell_value(rows[c.name].iloc[i], c.decimals) for c in columns)])
    if total_position == "bottom":
        assert total_row is not None
        add("total", total_row)
    elif total_position not in (None, "top"):
        raise ValueError("total_position must be 'bottom', 'top' or None")
    add("blank")
    add("note", ["注：本表数据截至当月末。" if parse_period(period)[1] else "注：本表数据截至年末。"])
    preparer, reviewer, head = signatories
    add("note", [f"填表人：{preparer}    审核人：{reviewer}    单位负责人：{head}"])
    return FormGrid(
        cells=cells,
        merges=merges,
        row_kinds=kinds,
        decimals={j: c.decimals for j, c in enumerate(columns, start=1)},
        columns=tuple(columns),
    )


def write_form(
    path: Path,
    declaration: Declaration,
    period: str,
    rows: pd.DataFrame,
    *,
    fmt: FormFormat = "xlsx",
    total_position: TotalPosition | None = "bottom",
    column_numbers_row: bool = False,
    title_period: str | None = None,
    township_names: Mapping[str, str] | Sequence[str] | None = None,
    header_style: HeaderStyle = "declared",
    header_paths: Mapping[str, Sequence[str]] | None = None,
    title: str | None = None,
    totals: Mapping[str, Any] | None = None,
    decimals: Mapping[str, int] | None = None,
    reporting_unit: str | None = None,
    filled_on: date | None = None,
    signatories: tuple[str, str, str] = DEFAULT_SIGNATORIES,
    total_label: str = TOTAL_LABEL,
    sheet_name: str = "Sheet1",
    saved_at: datetime | None = None,
) -> Path:
    """Write one return form to ``path`` and return it.

    ``rows`` has one row per township: a ``township_code`` column (or ``township`` with the
    names to write) and then the indicator columns **in form units** (万元, 万人次 … as
    declared), in the order to write them. Columns the declaration does not know are written
    too (header = ``header_paths[name]`` or the column name) — that is how a fixture makes an
    unknown column; leaving a declared indicator out makes a missing one. Values may be text
    (``"1,234"``, ``"—"``, ``"#DIV/0!"``): text is written as text.

    - ``fmt``: xlsx (openpyxl), xls (BIFF8 via xlwt), csv-gbk (Chinese Windows Excel, no BOM),
      csv-utf8-bom (Excel's "CSV UTF-8"), csv-utf8.
    - ``total_position``: where the 合计 row goes; ``None`` leaves it out. Its values are the
      column sums (weighted means for ``aggregation: weighted_mean``, rounded to the column's
      precision) unless ``totals`` overrides some of them — e.g. to make a wrong total.
    - ``title_period`` puts another period in the title than the one delivered (a stale
      template); ``title`` replaces the whole title.
    - ``township_names``: a code → name mapping (others get the name valid at the period), or
      one name per row. Default: the official name valid at the start of the period.
    - ``header_style``: declared text, ``fullwidth`` punctuation, ``wrapped`` (line breaks in
      long headers), ``messy`` (both) or ``alias`` (first declared alias of each indicator and
      of the key column). ``header_paths`` overrides single columns.
    - ``decimals``: display precision per column (default by unit: 万元 2, 万人次 4; counts 0).
    """
    if fmt not in FORM_FORMATS:
        raise ValueError(f"fmt must be one of {FORM_FORMATS}")
    grid = build_form_grid(
        declaration,
        period,
        rows,
        total_position=total_position,
        column_numbers_row=column_numbers_row,
        title_period=title_period,
        title=title,
        township_names=township_names,
        header_style=header_style,
        header_paths=header_paths,
        totals=totals,
        decimals=decimals,
        reporting_unit=reporting_unit,
        filled_on=filled_on,
        signatories=signatories,
        total_label=total_label,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "xlsx":
        author = reporting_unit if reporting_unit is not None else reporting_unit_name(declaration.department)
        data = render_xlsx(grid, sheet_name, saved_at or DEFAULT_SAVED_AT, author)
    elif fmt == "xls":
        data = render_xls(grid, sheet_name)
    else:
        text = render_csv_text(grid)
        if fmt == "csv-gbk":
            data = text.encode("gbk")
        elif fmt == "csv-utf8-bom":
            data = b"\xef\xbb\xbf" + text.encode("utf-8")
        else:
            data = text.encode("utf-8")
    path.write_bytes(data)
    return path
