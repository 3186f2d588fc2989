"""Township views: KPIs per township (the county formulas applied to one township), the league
table, small multiples per KPI, and one page per township with its paired Chenghua unit.

``township_kpis`` runs ``warehouse.marts.compute_kpis_by_township`` — the same kpis.yaml methods as
the county mart (cumulative 本年累计 indicators counted once, weighted means, ratios, coverage) — on
each township's facts alone, so a township figure means what the county figure means (all townships
in one pivot per KPI: one county computation per township cost ~20 s of every report build).
Grain of its result: one row per township × year × KPI. Pure: frames in, frames out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from markupsafe import Markup

from expectations.declaration import load_declarations, load_kpis
from tasks.report.breaks import CURRENT_BASIS_NOTE, TOWNSHIP_BASIS_NOTE, definition_breaks
from tasks.report.charts import Break, Point, line_chart, sparkline
from tasks.report.export import Column, SiteTable
from tasks.report.style import zh_punct
from tasks.report.tables import Cell, ShownTable, kpi_table, num_cell
from tasks.report.view import DASH, Display, KpiIndex, number
from warehouse.marts import compute_kpis_by_township

LEAGUE_KPI = "net_income_per_capita_yuan"
#: a township's money is reported in 万元 where the county's is in 亿元 (0.27 亿元 reads badly)
TOWNSHIP_UNITS = {"亿元": Display("万元", 1e4, 2)}


class TownshipKpiIndex(KpiIndex):
    """A township's KPI rows: county display rules, with 亿元 shown as 万元."""

    def display(self, kpi: str) -> Display:
        shown = super().display(kpi)
        return TOWNSHIP_UNITS.get(shown.unit, shown)


def township_kpis(values: pd.DataFrame, townships: pd.DataFrame) -> pd.DataFrame:
    """KPI rows (``township_code`` + ``KPI_COLUMNS``) for every township with facts."""
    return compute_kpis_by_township(values, townships, load_kpis(), load_declarations())


def pairing_text(row: dict[str, Any]) -> tuple[str, str]:
    """(paired unit, verified/assumed wording) of a ``townships`` row."""
    unit = row.get("helper_unit_name")
    if not isinstance(unit, str) or not unit:
        return DASH, "无结对记录"
    if row.get("pairing_verified"):
        return unit, "已核实·报道明确"
    return unit, "推定·未核实"


def township_href(code: str, root: str = "") -> str:
    return f"{root}townships/{code}.html"


@dataclass(frozen=True)
class Multiple:
    """One KPI's small multiples: a sparkline per township on one shared scale."""

    kpi: str
    title: str
    panels: tuple[tuple[str, str, Markup], ...]  # (township name, href, svg)


@dataclass(frozen=True)
class TownshipPage:
    code: str
    name: str
    township_type: str
    helper_unit: str
    pairing: str
    verified: bool
    table: ShownTable
    charts: tuple[tuple[str, Markup], ...]
    basis_notes: tuple[str, ...] = ()


class TownshipViews:
    """Everything the township pages show, built once from the report's frames. ``current``: the
    township KPIs on current boundaries (mart_township_kpi_yearly); a unit the reform created gets a
    second set of charts on that basis, the reform drawn as a break."""

    def __init__(
        self, values: pd.DataFrame, townships: pd.DataFrame, departments: dict[str, str],
        current: pd.DataFrame | None = None,
    ) -> None:  # fmt: skip
        self.current = current
        self.townships = townships.sort_values("township_code").reset_index(drop=True)
        self.departments = departments
        self.kpis = township_kpis(values, townships)
        self.names = dict(zip(self.townships["township_code"], self.townships["township_name"], strict=True))
        self.index = {
            code: TownshipKpiIndex(frame.drop(columns="township_code").assign(publishable=pd.NA), departments)
            for code, frame in self.kpis.groupby("township_code")
        }
        self.base = TownshipKpiIndex(self.kpis.drop(columns="township_code").assign(publishable=pd.NA), departments)

    def _base_unit(self, kpi: str) -> str:
        spec = self.base.specs.get(kpi)
        return spec.unit if spec else self.base.display(kpi).unit

    def kpis_shown(self) -> list[str]:
        """Base KPIs (computed from indicators) that some township has."""
        return self.base.base_kpis()

    def league(self, year: int | None) -> ShownTable:
        """Townships ranked by net income in ``year``; display units on the page, base units exported."""
        kpis = self.kpis_shown()
        records = []
        for row in self.townships.to_dict("records"):
            code = str(row["township_code"])
            idx = self.index.get(code)
            unit, how = pairing_text(row)
            record: dict[str, Any] = {"township_code": code, "township_name": row["township_name"],
                                      "helper_unit": unit, "pairing": how}  # fmt: skip
            for kpi in kpis:
                record[kpi] = idx.value(kpi, year) if idx else None
            records.append(record)
        frame = pd.DataFrame(records, columns=["township_code", "township_name", "helper_unit", "pairing", *kpis])
        if LEAGUE_KPI in frame:
            frame["rank"] = frame[LEAGUE_KPI].rank(ascending=False, method="min")
            frame = frame.sort_values(["rank", "township_code"], na_position="last", kind="stable")
        else:
            frame["rank"] = None
        columns = [Column("rank", "排名", kind="number"), Column("township_code", "乡镇代码"),
                   Column("township_name", "乡镇"), Column("helper_unit", "成华区结对单位"),
                   Column("pairing", "结对依据")]  # fmt: skip
        columns += [Column(k, self.base.label(k), self._base_unit(k), "number") for k in kpis]
        export = SiteTable(f"township_league_{year}", f"乡镇指标排名{year}年", tuple(columns), frame)
        rows = []
        for record in frame.to_dict("records"):
            code = str(record["township_code"])
            idx = self.index.get(code)
            rank = number(record["rank"])
            cells = [Cell(DASH if rank is None else f"{rank:.0f}", "num"),
                     Cell(str(record["township_name"]), href=township_href(code)),
                     _pairing_cell(str(record["helper_unit"]), str(record["pairing"]))]
            for kpi in kpis:
                text = self.base.display(kpi).text(record[kpi], with_unit=False)
                incomplete = bool(idx and idx.incomplete(kpi, year))
                cells.append(num_cell(text, incomplete=incomplete, title=idx.coverage_text(kpi, year) if idx else ""))
            rows.append(tuple(cells))
        head = ("排名", "乡镇", "结对单位", *(f"{self.base.label(k)}({self.base.display(k).unit})" for k in kpis))
        note = "排名按农牧民人均纯收入;结对单位:实线为报道明确(已核实),虚线为推定(未核实)。* 数据不完整。"
        return ShownTable(export, head, tuple(rows), note)

    def multiples(self) -> list[Multiple]:
        out = []
        for kpi in self.kpis_shown():
            shown = self.base.display(kpi)
            series = {code: _points(idx, kpi) for code, idx in self.index.items()}
            top = max((p.value for points in series.values() for p in points), default=0.0)
            panels = tuple(
                (self.names.get(code, code), township_href(code),
                 Markup(sparkline(series.get(code, []), title=f"{self.names.get(code, code)} {self.base.label(kpi)}",
                                  top=top)))
                for code in self.townships["township_code"]
            )  # fmt: skip
            out.append(Multiple(kpi, zh_punct(f"{self.base.label(kpi)}({shown.unit})"), panels))
        return out

    def pages(self) -> list[TownshipPage]:
        pages = []
        repeated = set(self.townships["township_name"][self.townships["township_name"].duplicated()].astype(str))
        for row in self.townships.to_dict("records"):
            code = str(row["township_code"])
            frame = self.kpis[self.kpis["township_code"] == code].drop(columns="township_code")
            frame = frame.assign(publishable=pd.NA)
            name = str(row["township_name"])
            # a name two units bear on either side of a boundary change (巴旺乡 before and from 2020):
            # its files and titles say which, so no download overwrites another
            label = f"{name}（{_span_zh(row)}）" if name in repeated else name
            stem = f"{name}_{_span_zh(row).replace('—', '-')}" if name in repeated else name
            table = kpi_table(frame, self.departments, name=f"{stem}_各年指标", index=TownshipKpiIndex,
                              title=f"{label}各年指标",
                              caption=f"丹巴县{label}（{code}）各年指标：按县级口径计算，数值为基本单位")  # fmt: skip
            idx = self.index.get(code)
            charts = []
            for kpi in self.kpis_shown() if idx else []:
                points = _points(idx, kpi)  # type: ignore[arg-type]
                if points:
                    title = zh_punct(f"{self.base.label(kpi)}({self.base.display(kpi).unit})")
                    svg = line_chart(points, title=title, y_label=self.base.display(kpi).unit,
                                     breaks=definition_breaks(frame, kpi))  # fmt: skip
                    charts.append((title, Markup(svg)))
            notes = [TOWNSHIP_BASIS_NOTE]
            recut = self._current_charts(code, row)
            if recut:
                charts += recut
                notes.append(CURRENT_BASIS_NOTE.format(year=pd.Timestamp(row["valid_from"]).year))
            unit, how = pairing_text(row)
            pages.append(TownshipPage(code, str(row["township_name"]), str(row["township_type"]), unit, how,
                                      bool(row.get("pairing_verified")), table, tuple(charts),
                                      tuple(notes)))  # fmt: skip
        return pages

    def _current_charts(self, code: str, row: dict[str, Any]) -> list[tuple[str, Markup]]:
        """Charts on current boundaries for a unit with re-aggregated years before it began."""
        if self.current is None or self.current.empty:
            return []
        began = pd.Timestamp(row["valid_from"]).year
        own = self.current[self.current["township_code"] == code]
        if own.empty or own["year"].min() >= began:
            return []
        frame = own.drop(columns=[c for c in ("basis", "township_code", "assumed") if c in own.columns])
        frame = frame.assign(label_zh="", unit="", department="", coverage=0.0, definition_zh="", publishable=pd.NA)
        idx = TownshipKpiIndex(frame, self.departments)
        reform = Break(began - 1, f"{began - 1}年末乡镇区划调整(此前为折算值)")
        charts = []
        for kpi in self.kpis_shown():
            points = _points(idx, kpi)
            if points:
                title = f"{self.base.label(kpi)}({self.base.display(kpi).unit}，按现行区划)"
                svg = line_chart(points, title=title, y_label=self.base.display(kpi).unit,
                                 breaks=[reform, *definition_breaks(own, kpi)])  # fmt: skip
                charts.append((title, Markup(svg)))
        return charts

    def pairing_table(self) -> ShownTable:
        records = []
        for row in self.townships.to_dict("records"):
            unit, how = pairing_text(row)
            records.append({"township_code": row["township_code"], "township_name": row["township_name"],
                            "helper_unit": unit, "source": row.get("pairing_source"), "pairing": how})  # fmt: skip
        columns = (Column("township_code", "乡镇代码"), Column("township_name", "乡镇"),
                   Column("helper_unit", "成华区结对单位"), Column("source", "来源"),
                   Column("pairing", "结对依据"))  # fmt: skip
        frame = pd.DataFrame(records, columns=[c.key for c in columns])
        export = SiteTable("township_pairing", "乡镇结对情况", columns, frame)
        rows = tuple(
            (Cell(str(r["township_name"]), href=township_href(str(r["township_code"]))),
             Cell(str(r["helper_unit"])), _pairing_cell(str(r["pairing"]), str(r["pairing"])))
            for r in records
        )  # fmt: skip
        return ShownTable(export, ("乡镇", "成华区结对单位", "结对依据"), rows,
                          "只有报道中明确的结对为“已核实”;其余为演示或工作假设,须核实后方可引用。")


def _pairing_cell(text: str, pairing: str) -> Cell:
    """Verified and assumed pairings differ by border *and* by a word (colour is not enough)."""
    verified = pairing.startswith("已核实")
    mark = "" if text in (pairing, DASH) else ("（已核实）" if verified else "（推定）")
    return Cell(text + mark, "verified" if verified else "assumed", title=pairing)


def _points(idx: KpiIndex, kpi: str) -> list[Point]:
    shown = idx.display(kpi)
    return [
        Point(year, (idx.value(kpi, year) or 0.0) / shown.factor, shown.text(idx.value(kpi, year), with_unit=False),
              idx.incomplete(kpi, year))
        for year in idx.kpi_years(kpi)
    ]  # fmt: skip


def _span_zh(row: dict[str, Any]) -> str:
    """``2020年起`` / ``至2019年`` / ``2016—2019年``: a unit's validity in years."""
    begins = pd.Timestamp(row["valid_from"]).year if row.get("valid_from") is not None else None
    ended = row.get("valid_to")
    ends = None if ended is None or pd.isna(ended) else pd.Timestamp(ended).year
    if ends is None:
        return f"{begins}年起"
    return f"至{ends}年" if begins is None or begins <= 2000 else f"{begins}—{ends}年"
