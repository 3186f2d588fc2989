"""The KPI report's view model: pure functions from the report's frames to formatted text.

Formatting follows each KPI's declaration in kpis.yaml: ``decimals`` apply to the base unit; when
a ``display_unit`` scales the value (元 → 亿元, 人次 → 万人次) it is shown with 2 decimals, the
factor coming from reference/units.csv. Nothing here touches the database; the only files read are
the committed declarations (cached).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Any
from urllib.parse import quote

import pandas as pd
from markupsafe import Markup

from expectations.declaration import Kpi, load_declarations, load_kpis, load_units
from tasks.report_charts import Point, bar_chart, line_chart
from warehouse.schema import SUBMISSION_STATUSES

NO_DATA = "暂无数据"
DASH = "—"
SCALED_DECIMALS = 2
HEADLINE_KPI = "net_income_per_capita_yuan"
TOWNSHIP_INDICATORS: dict[str, tuple[str, ...]] = {
    "poverty": (
        "net_income_per_capita_yuan",
        "registered_poor_year_end_persons",
        "agricultural_population_persons",
    ),
    "tourism": ("tourism_revenue_yuan",),
}
STATUS_LABELS = {
    "loaded": "已入库",
    "superseded": "已被更正替代",
    "rejected": "已拒收",
    "quarantined": "已隔离待查",
    "duplicate": "重复报送",
}
PROBLEM_STATUSES = ("rejected", "quarantined")
GRAIN_LABELS = {"month": "乡镇·月", "year": "乡镇·年"}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


@dataclass(frozen=True)
class Display:
    """How a KPI is shown: in ``unit``, base value divided by ``factor``, ``decimals`` places."""

    unit: str
    factor: float
    decimals: int

    def text(self, value: Any, *, with_unit: bool = True, signed: bool = False) -> str:
        number = _number(value)
        if number is None:
            return DASH
        scaled = round(number / self.factor, self.decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        body = f"{scaled:{'+' if signed else ''}.{self.decimals}f}"
        if not with_unit:
            return body
        return f"{body}%" if self.unit == "%" else f"{body} {self.unit}"


def display_for(spec: Kpi | None, unit: str) -> Display:
    """The display rule of a KPI; a KPI missing from kpis.yaml shows its stored unit, 2 decimals."""
    if spec is None:
        return Display(unit, 1.0, SCALED_DECIMALS)
    shown = spec.display_unit or spec.unit
    if shown == spec.unit:
        return Display(shown, 1.0, spec.decimals)
    units = load_units()
    if units[shown].base_unit != units[spec.unit].base_unit:
        raise ValueError(f"{spec.kpi}: display unit {shown} does not convert from {spec.unit}")
    return Display(shown, units[shown].factor / units[spec.unit].factor, SCALED_DECIMALS)


class KpiIndex:
    """Rows of mart_county_kpi_yearly keyed by (kpi, year), with each KPI's display rule.

    Labels and 口径 come from the mart rows when present (what was computed), else kpis.yaml.
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        records = frame.to_dict("records")
        self.rows = {(str(r["kpi"]), int(r["year"])): r for r in records}
        self.specs = {k.kpi: k for k in load_kpis()}
        self.meta = {str(r["kpi"]): r for r in records}

    def row(self, kpi: str, year: int | None) -> dict[Any, Any] | None:
        return None if year is None else self.rows.get((kpi, year))

    def value(self, kpi: str, year: int | None) -> float | None:
        row = self.row(kpi, year)
        return None if row is None else _number(row["value"])

    def display(self, kpi: str) -> Display:
        return display_for(self.specs.get(kpi), str(self.meta.get(kpi, {}).get("unit", "")))

    def text(self, kpi: str, year: int | None, *, with_unit: bool = True, signed: bool = False) -> str:
        return self.display(kpi).text(self.value(kpi, year), with_unit=with_unit, signed=signed)

    def incomplete(self, kpi: str, year: int | None) -> bool:
        row = self.row(kpi, year)
        return row is not None and (_number(row["coverage"]) or 0.0) < 1.0

    def coverage_text(self, kpi: str, year: int | None) -> str:
        row = self.row(kpi, year)
        if row is None:
            return NO_DATA
        decl = load_declarations().get(str(row["department"]))
        grain = GRAIN_LABELS.get(decl.period_type if decl else "", "乡镇·期")
        return f"覆盖 {int(row['coverage_used'])}/{int(row['coverage_expected'])} {grain}"

    def _text_of(self, kpi: str, field: str) -> str:
        spec = self.specs.get(kpi)
        fallback = getattr(spec, field) if spec else kpi
        return str(self.meta.get(kpi, {}).get(field, fallback))

    def label(self, kpi: str) -> str:
        return self._text_of(kpi, "label_zh")

    def definition(self, kpi: str) -> str:
        return self._text_of(kpi, "definition_zh")

    def years(self) -> list[int]:
        return sorted({year for _, year in self.rows})

    def kpi_order(self) -> list[str]:
        """KPIs in kpis.yaml order, then any the mart has that the declaration does not."""
        declared = [k for k in self.specs if k in self.meta]
        return declared + sorted(set(self.meta) - set(declared))

    def base_year(self) -> int:
        spec = self.specs.get("net_income_multiple_of_2011")
        return spec.base_year if spec and spec.base_year else 2011


# ---------------------------------------------------------------- headline cards
@dataclass(frozen=True)
class Card:
    label: str
    value: str
    details: tuple[str, ...]
    definition: str
    coverage: str
    incomplete: bool


def _card(idx: KpiIndex, kpi: str, year: int, value: str, details: list[str], label: str = "") -> Card:
    return Card(
        label=label or idx.label(kpi),
        value=value,
        details=tuple(details),
        definition=idx.definition(kpi),
        coverage=idx.coverage_text(kpi, year),
        incomplete=idx.incomplete(kpi, year),
    )


def _detail(idx: KpiIndex, prefix: str, kpi: str, year: int, *, signed: bool = False) -> list[str]:
    return [] if idx.value(kpi, year) is None else [f"{prefix} {idx.text(kpi, year, signed=signed)}"]


def _income_card(idx: KpiIndex, year: int) -> Card:
    base, kpi = idx.base_year(), HEADLINE_KPI
    details = _detail(idx, f"为{base}年的倍数", "net_income_multiple_of_2011", year)
    details += _detail(idx, "年均增长", "net_income_cagr_since_2011_pct", year)
    return _card(idx, kpi, year, idx.text(kpi, year), details)


def _poverty_card(idx: KpiIndex, year: int) -> Card:
    kpi, base = "poverty_incidence_pct", idx.base_year()
    now, then = idx.value(kpi, year), idx.value(kpi, base)
    if now is None or then is None or year == base:
        return _card(idx, kpi, year, idx.text(kpi, year), [])
    shown = idx.display(kpi)
    change = shown.text(now - then, with_unit=False, signed=True)
    details = [f"{base}年 → {year}年", f"变化 {change} 个百分点"]
    return _card(idx, kpi, year, f"{shown.text(then)} → {shown.text(now)}", details)


def _job_fair_card(idx: KpiIndex, year: int) -> Card:
    posts, hires = "job_fair_posts", "job_fair_hires_person_times"
    value = f"{idx.text(posts, year)} / {idx.text(hires, year)}"
    details = ["提供岗位 / 达成就业", *_detail(idx, "就业达成率", "job_fair_hire_rate_pct", year)]
    card = _card(idx, posts, year, value, details, label="招聘会提供岗位/达成就业")
    return replace(card, incomplete=card.incomplete or idx.incomplete(hires, year))


def _plain_card(idx: KpiIndex, kpi: str, year: int, details: list[str] | None = None) -> Card:
    return _card(idx, kpi, year, idx.text(kpi, year), details or [])


def headline_cards(kpis: pd.DataFrame, year: int | None) -> list[Card]:
    """The headline KPI cards for ``year``; [] when there is no year to show."""
    if year is None:
        return []
    idx = KpiIndex(kpis)
    yoy = _detail(idx, "同比", "tourism_revenue_yoy_pct", year, signed=True)
    return [
        _income_card(idx, year),
        _poverty_card(idx, year),
        _plain_card(idx, "tourism_revenue_yuan", year, yoy),
        _plain_card(idx, "tourism_visitors_person_times", year),
        _plain_card(idx, "skills_training_person_times", year),
        _job_fair_card(idx, year),
    ]


# ---------------------------------------------------------------- charts and tables
@dataclass(frozen=True)
class Chart:
    title: str
    svg: Markup


@dataclass(frozen=True)
class Cell:
    text: str
    incomplete: bool
    coverage: str


def _series(idx: KpiIndex, kpi: str) -> list[Point]:
    shown = idx.display(kpi)
    points = []
    for year in idx.years():
        value = idx.value(kpi, year)
        if value is not None:
            label = shown.text(value, with_unit=False)
            points.append(Point(year, value / shown.factor, label, idx.incomplete(kpi, year)))
    return points


def _charts(idx: KpiIndex) -> list[Chart]:
    charts = []
    kinds = (
        (HEADLINE_KPI, line_chart),
        ("poverty_incidence_pct", line_chart),
        ("tourism_revenue_yuan", bar_chart),
    )
    for kpi, draw in kinds:
        unit = idx.display(kpi).unit
        title = f"{idx.label(kpi)}({unit})"
        # the chart functions escape every text they draw, so their markup is safe to embed
        charts.append(Chart(title, Markup(draw(_series(idx, kpi), title=title, y_label=unit))))
    return charts


def _kpi_table(idx: KpiIndex) -> list[tuple[str, list[Cell]]]:
    rows = []
    for kpi in idx.kpi_order():
        cells = [
            Cell(idx.text(kpi, y, with_unit=False), idx.incomplete(kpi, y), idx.coverage_text(kpi, y))
            for y in idx.years()
        ]
        rows.append((f"{idx.label(kpi)}({idx.display(kpi).unit})", cells))
    return rows


def _township_rows(idx: KpiIndex, values: pd.DataFrame, year: int | None) -> list[tuple[str, str, str, str]]:
    frame = values[values["year"] == year]
    if frame.empty:
        return []
    keys = ["township_code", "township_name", "indicator"]
    wanted = [name for names in TOWNSHIP_INDICATORS.values() for name in names]
    # min_count=1: a township with no value stays blank ("—") instead of showing 0
    wide = frame.groupby(keys)["value"].sum(min_count=1).unstack("indicator").reindex(columns=wanted)
    income, incidence = idx.display(HEADLINE_KPI), idx.display("poverty_incidence_pct")
    wan_yuan = Display("万元", 1e4, SCALED_DECIMALS)
    rows = []
    for (_, name), row in wide.iterrows():
        pop = _number(row["agricultural_population_persons"])
        poor = _number(row["registered_poor_year_end_persons"])
        rate = poor / pop * 100 if poor is not None and pop else None
        revenue = wan_yuan.text(row["tourism_revenue_yuan"], with_unit=False)
        income_text = income.text(row["net_income_per_capita_yuan"], with_unit=False)
        rows.append((str(name), income_text, incidence.text(rate, with_unit=False), revenue))
    return rows


def _status_counts(subs: pd.DataFrame) -> list[tuple[str, list[int], int]]:
    if subs.empty:
        return []
    counts = pd.crosstab(subs["department_name"], subs["status"]).reindex(
        columns=list(SUBMISSION_STATUSES), fill_value=0
    )
    return [(str(name), [int(n) for n in row], int(row.sum())) for name, row in counts.iterrows()]


def _day(value: Any) -> str:
    if isinstance(value, date):  # datetime, pandas Timestamp, and NaT (a datetime too)
        return DASH if value is pd.NaT else value.isoformat()[:10]
    return value[:10] if isinstance(value, str) and value else DASH


def _receipt_href(path: Any) -> str | None:
    if not isinstance(path, str) or not path:
        return None
    return "../../" + quote(path.replace("\\", "/").lstrip("/"))


def _problems(subs: pd.DataFrame) -> list[dict[str, Any]]:
    bad = subs[subs["status"].isin(PROBLEM_STATUSES)]
    return [
        {
            "department": r["department_name"],
            "period": r["period"],
            "name": r["original_name"],
            "status": STATUS_LABELS.get(str(r["status"]), str(r["status"])),
            "critical": int(_number(r["critical_issues"]) or 0),
            "received": _day(r["received_at"]),
            "href": _receipt_href(r["receipt_path"]),
        }
        for r in bad.to_dict("records")
    ]


def page_context(
    kpis: pd.DataFrame, submissions: pd.DataFrame, township_values: pd.DataFrame, year: int | None
) -> dict[str, Any]:
    """Everything the page template shows, formatted, for ``year`` (None: no headline year)."""
    idx = KpiIndex(kpis)
    return {
        "year": year,
        "no_data": NO_DATA,
        "cards": headline_cards(kpis, year),
        "charts": _charts(idx),
        "years": idx.years(),
        "kpi_rows": _kpi_table(idx),
        "township_rows": _township_rows(idx, township_values, year),
        "statuses": [STATUS_LABELS[s] for s in SUBMISSION_STATUSES],
        "status_counts": _status_counts(submissions),
        "problems": _problems(submissions),
    }
