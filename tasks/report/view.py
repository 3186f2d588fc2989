"""The county KPIs as the site shows them: pure functions from the KPI mart to formatted text.

Formatting follows each KPI's declaration in kpis.yaml: ``decimals`` apply to the base unit and are
one per figure kind (``expectations.declaration.FIGURE_DECIMALS``: shares 2, growth 1, amounts and
counts 0), the same on cards, tables and in the narrative (no trailing zeros dropped); when a
``display_unit`` scales the value (元 → 亿元, 人次 → 万人次) it is shown with 2 decimals, the
factor coming from reference/units.csv. A KPI is *incomplete* when its coverage is below 1 or the
mart says it is not ``publishable`` (that column arrives with the completeness work; absent = NA,
and coverage decides alone). Nothing here touches the database.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import pandas as pd

from expectations.declaration import Kpi, load_declarations, load_kpis, load_units

NO_DATA = "暂无数据"
DASH = "—"
SCALED_DECIMALS = 2
HEADLINE_KPI = "net_income_per_capita_yuan"
BASE_METHODS = ("sum", "period_end", "weighted_mean", "ratio")
#: methods whose KPI is a total of one indicator (a ratio's parts may be such KPIs)
TOTAL_METHODS = ("sum", "period_end")
DERIVED_PREFIX = {"multiple_of_base": "为{base}年的", "cagr": "年均增长", "yoy": "同比"}
GRAIN_LABELS = {"month": "乡镇·月", "year": "乡镇·年"}
QUARTERS_ZH = "一二三四"
_PERIOD = re.compile(r"^(\d{4})(?:-(?:(\d{2})|Q([1-4])))?$")


def number(value: Any) -> float | None:
    """``value`` as a finite float, else None (None, NaN, NA, text)."""
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) or math.isinf(result) else result


def period_label_zh(period: Any) -> str:
    """``2017-05`` → 2017年5月, ``2017-Q2`` → 2017年第二季度, ``2017`` → 2017年; else unchanged."""
    text = str(period)
    match = _PERIOD.match(text)
    if not match:
        return text
    year, month, quarter = match.groups()
    if month:
        return f"{year}年{int(month)}月"
    if quarter:
        return f"{year}年第{QUARTERS_ZH[int(quarter) - 1]}季度"
    return f"{year}年"


@dataclass(frozen=True)
class Display:
    """How a KPI is shown: in ``unit``, base value divided by ``factor``, ``decimals`` places."""

    unit: str
    factor: float
    decimals: int

    def number_text(self, value: Any, *, signed: bool = False) -> str:
        result = number(value)
        if result is None:
            return DASH
        scaled = round(result / self.factor, self.decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
        return f"{scaled:{'+' if signed else ''}.{self.decimals}f}"

    def text(self, value: Any, *, with_unit: bool = True, signed: bool = False) -> str:
        body = self.number_text(value, signed=signed)
        if not with_unit or body == DASH:
            return body
        return f"{body}%" if self.unit == "%" else f"{body} {self.unit}"

    def prose(self, value: Any) -> str:
        """Narrative style: no blank before the unit, the card's precision (10827元, 26.20%)."""
        body = self.number_text(value)
        return body if body == DASH else f"{body}{self.unit}"


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

    def __init__(self, frame: pd.DataFrame, departments: dict[str, str] | None = None) -> None:
        records = frame.to_dict("records")
        self.rows = {(str(r["kpi"]), int(r["year"])): r for r in records}
        self.specs = {k.kpi: k for k in load_kpis()}
        self.meta = {str(r["kpi"]): r for r in records}
        self.departments = departments or {}

    def row(self, kpi: str, year: int | None) -> dict[Any, Any] | None:
        return None if year is None else self.rows.get((kpi, year))

    def value(self, kpi: str, year: int | None) -> float | None:
        row = self.row(kpi, year)
        return None if row is None else number(row["value"])

    def display(self, kpi: str) -> Display:
        return display_for(self.specs.get(kpi), str(self.meta.get(kpi, {}).get("unit", "")))

    def text(self, kpi: str, year: int | None, *, with_unit: bool = True, signed: bool = False) -> str:
        return self.display(kpi).text(self.value(kpi, year), with_unit=with_unit, signed=signed)

    def prose(self, kpi: str, year: int | None) -> str:
        return self.display(kpi).prose(self.value(kpi, year))

    def publishable(self, kpi: str, year: int | None) -> bool | None:
        row = self.row(kpi, year)
        flag = None if row is None else row.get("publishable")
        return None if flag is None or flag is pd.NA or (isinstance(flag, float) and math.isnan(flag)) else bool(flag)

    def incomplete(self, kpi: str, year: int | None) -> bool:
        row = self.row(kpi, year)
        if row is None:
            return False
        return (number(row["coverage"]) or 0.0) < 1.0 or self.publishable(kpi, year) is False

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

    def source(self, kpi: str) -> str:
        department = self._text_of(kpi, "department")
        return self.departments.get(department, department)

    def years(self) -> list[int]:
        return sorted({year for _, year in self.rows})

    def kpi_years(self, kpi: str) -> list[int]:
        return sorted(year for name, year in self.rows if name == kpi and self.value(kpi, year) is not None)

    def kpi_order(self) -> list[str]:
        """KPIs in kpis.yaml order, then any the mart has that the declaration does not."""
        declared = [k for k in self.specs if k in self.meta]
        return declared + sorted(set(self.meta) - set(declared))

    def base_kpis(self) -> list[str]:
        """KPIs computed from indicators (not derived from another KPI), in declaration order."""
        return [k for k in self.kpi_order() if k not in self.specs or self.specs[k].method in BASE_METHODS]

    def derived_of(self, kpi: str) -> list[Kpi]:
        return [s for s in self.specs.values() if s.of == kpi and s.method in DERIVED_PREFIX]

    def base_year(self) -> int:
        bases = [s.base_year for s in self.specs.values() if s.base_year]
        return min(bases) if bases else 2011


# ---------------------------------------------------------------- headline cards
@dataclass(frozen=True)
class Card:
    kpi: str
    year: int
    label: str
    value: str
    raw: float | None
    details: tuple[str, ...]
    definition: str
    unit: str
    source: str
    coverage: str
    incomplete: bool
    publishable: bool | None
    department: str = ""
    article_figure: bool = True  # false: the article gives no figure to compare with


def _details(idx: KpiIndex, kpi: str, year: int) -> list[str]:
    details = []
    for spec in idx.derived_of(kpi):
        if idx.value(spec.kpi, year) is not None:
            prefix = DERIVED_PREFIX[spec.method].format(base=spec.base_year)
            details.append(f"{prefix} {idx.text(spec.kpi, year, signed=spec.method == 'yoy')}")
    ratio = idx.specs.get(kpi)
    if ratio is not None and ratio.method == "ratio":  # the parts, when they are KPIs themselves
        parts = [k for k in idx.kpi_order() if k in idx.specs and idx.specs[k].indicator in
                 (ratio.numerator, ratio.denominator) and idx.specs[k].method in TOTAL_METHODS]  # fmt: skip
        details += [f"{idx.label(k)} {idx.text(k, year)}" for k in parts if idx.value(k, year) is not None]
    base, first = idx.base_year(), idx.kpi_years(kpi)
    if first and first[0] < year and idx.display(kpi).unit == "%" and idx.value(kpi, year) is not None:
        then = base if base in first else first[0]  # the base year, else the earliest with data
        versions = {str((idx.row(kpi, y) or {}).get("definition_version") or "v1") for y in (then, year)}
        if len(versions) > 1:  # two definitions (口径): the change between them is not a figure
            details.append(f"{then}年 {idx.text(kpi, then)}，口径不同，不计算变化")
        else:
            change = idx.value(kpi, year) - (idx.value(kpi, then) or 0.0)  # type: ignore[operator]
            shown = idx.display(kpi).number_text(change, signed=True)
            details.append(f"{then}年 {idx.text(kpi, then)}，变化 {shown} 个百分点")
    return details


def headline_cards(kpis: pd.DataFrame, year: int | None, departments: dict[str, str] | None = None) -> list[Card]:
    """One card per base KPI that has a value in ``year``; derived KPIs become its details."""
    if year is None:
        return []
    idx = KpiIndex(kpis, departments)
    cards = []
    for kpi in idx.base_kpis():
        if idx.row(kpi, year) is None:
            continue
        cards.append(
            Card(
                kpi=kpi, year=year, label=idx.label(kpi), value=idx.text(kpi, year), raw=idx.value(kpi, year),
                details=tuple(_details(idx, kpi, year)), definition=idx.definition(kpi),
                unit=idx.display(kpi).unit, source=idx.source(kpi), coverage=idx.coverage_text(kpi, year),
                incomplete=idx.incomplete(kpi, year), publishable=idx.publishable(kpi, year),
                department=idx._text_of(kpi, "department"),
                article_figure=idx.specs[kpi].article_figure if kpi in idx.specs else True,
            )
        )  # fmt: skip
    return cards


def card_groups(cards: list[Card], departments: dict[str, str]) -> list[tuple[str, list[Card]]]:
    """Cards by source department (in the order the KPIs are declared), each group titled by its name."""
    groups: dict[str, list[Card]] = {}
    for card in cards:
        groups.setdefault(card.department, []).append(card)
    return [(departments.get(d, d), group) for d, group in groups.items()]


def default_year(kpis: pd.DataFrame) -> int | None:
    """The latest year with a per-capita net income, else the latest year of any KPI."""
    if kpis.empty:
        return None
    with_income = kpis[(kpis["kpi"] == HEADLINE_KPI) & kpis["value"].notna()]
    years = with_income["year"] if not with_income.empty else kpis["year"]
    return int(years.max())
