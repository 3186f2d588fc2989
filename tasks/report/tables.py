"""Tables as the site shows them: the exported ``SiteTable`` (raw values) beside its display cells.

Every table on a page is a ``ShownTable``; the page links its .xlsx and .csv (written by
``tasks.report.export``) under ``data/<name>``. The display may scale units (万元) or pivot; the export keeps
base units and says so in each header.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from tasks.report.export import Column, SiteTable
from tasks.report.style import zh_punct
from tasks.report.view import DASH, KpiIndex, number, period_label_zh


@dataclass(frozen=True)
class Cell:
    text: str
    cls: str = ""
    href: str | None = None
    title: str = ""
    data_kpi: str = ""  # lets a reader (and the browser test) find a KPI's figure
    verbatim: bool = False  # data shown exactly as received (a file's name): no typesetting


@dataclass(frozen=True)
class ShownTable:
    table: SiteTable
    head: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""
    #: columns run over time (oldest → latest): on a phone the box opens at the latest column
    latest_first: bool = False

    @property
    def name(self) -> str:
        return self.table.name


def num_cell(text: str, *, incomplete: bool = False, title: str = "", data_kpi: str = "") -> Cell:
    cls = "num incomplete" if incomplete else "num"
    return Cell(text + ("*" if incomplete and text != DASH else ""), cls, title=title, data_kpi=data_kpi)


def count_text(value: object) -> str:
    result = number(value)
    return DASH if result is None else f"{result:.0f}"


KPI_EXPORT_COLUMNS = (
    Column("year", "年份", kind="number", header_en="year"),
    Column("kpi", "指标代码", header_en="kpi"),
    Column("label_zh", "指标", header_en="label"),
    Column("value", "数值", kind="number", header_en="value (unit column)"),
    Column("unit", "单位", header_en="unit"),
    Column("source", "来源部门", header_en="source department"),
    Column("coverage_used", "已报送乡镇期数", "个", "number"),
    Column("coverage_expected", "应报送乡镇期数", "个", "number"),
    Column("coverage", "覆盖率", "比例", "number"),
    Column("publishable", "可发布"),
    Column("definition_zh", "口径", header_en="definition"),
)


def kpi_table(
    kpis: pd.DataFrame, departments: dict[str, str], *, name: str = "county_kpis", index: type[KpiIndex] = KpiIndex,
    title: str = "县级指标（各年）", caption: str | None = None,
) -> ShownTable:
    """KPI × year for display (display units, incomplete marked); exported long, in base units.
    ``name`` is the download's file stem, ``title`` its sheet's, ``caption`` a line above its header."""
    idx = index(kpis, departments)
    frame = kpis.assign(source=kpis["department"].map(lambda d: departments.get(str(d), str(d))))
    frame = frame.assign(publishable=frame["publishable"].map(lambda v: None if v is None or v is pd.NA else v))
    export = SiteTable(name, title, KPI_EXPORT_COLUMNS, frame.reset_index(drop=True), caption)
    years = idx.years()
    rows = []
    for kpi in idx.kpi_order():
        head = Cell(zh_punct(f"{idx.label(kpi)}({idx.display(kpi).unit})"),
                    title=zh_punct(f"口径:{idx.definition(kpi)}"))
        cells = [
            num_cell(idx.text(kpi, y, with_unit=False), incomplete=idx.incomplete(kpi, y),
                     title=idx.coverage_text(kpi, y))
            for y in years
        ]  # fmt: skip
        rows.append((head, Cell(idx.source(kpi)), *cells))
    head_row = ("指标(单位)", "来源部门", *(f"{y}年" for y in years))
    note = "* 数据不完整(覆盖不足或未达发布条件);鼠标悬停可见覆盖情况。下载文件为长表,数值为基本单位。"
    return ShownTable(export, head_row, tuple(rows), note, latest_first=True)


#: text columns holding data exactly as received (file names, ids): shown verbatim, never typeset
VERBATIM_KEYS = frozenset({"original_name", "submission_id", "followup_id", "receipt"})


def frame_table(
    name: str, title: str, frame: pd.DataFrame, columns: Sequence[Column], *, note: str = ""
) -> ShownTable:
    """A table shown as exported (counts, text, periods in Chinese), one cell per column."""
    export = SiteTable(name, title, tuple(columns), frame.reset_index(drop=True))
    rows = []
    for record in export.rows.to_dict("records"):
        cells = []
        for c in columns:
            value = record[c.key]
            if c.kind == "number":
                result = number(value)
                text = DASH if result is None else (f"{result:.0f}" if float(result).is_integer() else f"{result:.2f}")
                cells.append(Cell(text, "num"))
            elif c.key in ("period", "month"):
                cells.append(Cell(period_label_zh(value) if isinstance(value, str) else DASH, "nowrap"))
            else:
                text = DASH if value is None or value is pd.NA or value != value else str(value)
                cells.append(Cell(text, verbatim=c.key in VERBATIM_KEYS))
        rows.append(tuple(cells))
    return ShownTable(export, tuple(c.header for c in columns), tuple(rows), note)
