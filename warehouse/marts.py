"""County KPIs: ``mart_county_kpi_yearly`` (grain: one row per year × KPI).

``compute_county_kpis`` is pure: current facts in, KPI rows out, following the methods in
``expectations/kpis.yaml``. ``refresh_marts`` reads ``v_indicator_value`` (current versions
only) and ``ref_township``, computes, and replaces the mart in one transaction.

Caveats:

* Base KPIs (sum, weighted_mean, ratio) use the township-periods where *all* their input
  indicators have a value; a township-month missing one input is left out of numerator and
  denominator alike, and shows in the coverage.
* Each input adds up as its declared kind says (expectations/declarations, ``kind``): a flow
  (人次, 元 per month) is summed over townships and periods; a stock (head counts) and a
  cumulative (本年累计) count once per township — its latest period with a value in the year —
  summed over townships; a rate is never summed (weighted_mean takes each township's latest
  period). A stock or cumulative is undercounted when that latest period is early; the coverage
  shows it. ``load_kpis`` refuses a method that goes against a kind; ``aggregate`` refuses it
  again here (ValueError).
* Derived KPIs (multiple_of_base, cagr, yoy) exist for a year only when the KPI they derive from
  exists both in that year and in the comparison year; multiple_of_base and cagr only for years
  after ``base_year``. Their coverage adds up the coverage of the two years.
* A value that cannot be computed (zero denominator, non-positive CAGR base) is stored NULL.
* Values are unrounded; ``Kpi.decimals`` and ``display_unit`` are for presentation.
* ``publishable`` is true only when the coverage is complete (used = expected township-periods;
  derived KPIs: in both years): a county figure from part of the townships is shown, not published.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, delete, insert, select

from expectations.declaration import Declaration, Kpi, load_declarations, load_kpis
from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.completeness import refresh_completeness
from warehouse.current_facts import VALUE_COLUMNS, read_current_values
from warehouse.engine import advisory_lock
from warehouse.scorecard import refresh_dq_scorecard
from warehouse.skipped import note_skipped

KPI_COLUMNS = (
    "year",
    "kpi",
    "label_zh",
    "value",
    "unit",
    "department",
    "coverage_used",
    "coverage_expected",
    "coverage",
    "publishable",
    "definition_zh",
)
_PERIODS_PER_YEAR = {"month": 12, "year": 1}


@dataclass(frozen=True)
class _Point:
    """One KPI in one year, before it becomes a row."""

    value: float | None
    used: int
    expected: int


def _finite(value: float) -> float | None:
    return None if pd.isna(value) or value in (float("inf"), float("-inf")) else float(value)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else _finite(numerator / denominator)


def _townships_valid(townships: pd.DataFrame, year: int) -> int:
    """Townships whose validity interval overlaps the calendar year."""
    start, end = date(year, 1, 1), date(year, 12, 31)
    count = 0
    intervals = townships.loc[:, ["valid_from", "valid_to"]].itertuples(index=False, name=None)
    for valid_from, valid_to in intervals:
        begins = pd.Timestamp(valid_from).date()
        ends = None if valid_to is None or pd.isna(valid_to) else pd.Timestamp(valid_to).date()
        if begins <= end and (ends is None or ends >= start):
            count += 1
    return count


def _inputs(kpi: Kpi) -> tuple[str, ...]:
    if kpi.method in ("sum", "period_end"):
        return (str(kpi.indicator),)
    if kpi.method == "weighted_mean":
        return (str(kpi.indicator), str(kpi.weight))
    if kpi.method == "ratio":
        return (str(kpi.numerator), str(kpi.denominator))
    raise ValueError(f"{kpi.kpi}: {kpi.method} is not a base method")


def aggregate(used: pd.DataFrame, column: pd.Series, kind: str) -> float:
    """A year's county total of ``column`` over the township-periods ``used``, as ``kind`` allows:
    a flow sums every township-period; a stock or cumulative sums each township's latest period.
    A rate is never summed: ValueError (recompute it from its parts, or weight it)."""
    if kind == "flow":
        return float(column.sum())
    if kind in ("stock", "cumulative"):
        latest = used.groupby("township_code")["period"].transform("max") == used["period"]
        return float(column[latest].sum())
    raise ValueError(f"a {kind} is never summed; recompute it from its numerator and denominator, or weight it")


def _base_points(
    kpi: Kpi, values: pd.DataFrame, decl: Declaration, townships: pd.DataFrame
) -> dict[int, _Point]:
    inputs = _inputs(kpi)
    kinds = {name: decl.indicator(name).kind for name in inputs}
    rows = values[(values["department"] == kpi.department) & values["indicator"].isin(inputs)]
    rows = rows[rows["value"].notna()]
    if rows.empty:
        return {}
    keys = ["year", "township_code", "period"]
    # one value per township-period and indicator (the first, should a frame repeat one): pivot, not
    # pivot_table, which is ~10× slower and runs once per KPI and township for the report
    wide = rows.drop_duplicates([*keys, "indicator"]).pivot(index=keys, columns="indicator", values="value")
    if any(name not in wide.columns for name in inputs):
        return {}
    wide = wide.loc[:, list(inputs)].dropna().reset_index()
    points: dict[int, _Point] = {}
    for year, used in wide.groupby("year", sort=True):
        year = int(year)
        expected = _townships_valid(townships, year) * _PERIODS_PER_YEAR[decl.period_type]
        if kpi.method == "sum":
            if kinds[inputs[0]] != "flow":
                raise ValueError(f"method sum adds {inputs[0]} over months, but it is a {kinds[inputs[0]]}")
            value = _finite(aggregate(used, used[inputs[0]], "flow"))
        elif kpi.method == "period_end":
            if kinds[inputs[0]] not in ("stock", "cumulative"):
                raise ValueError(f"method period_end takes a stock or cumulative, {inputs[0]} is a {kinds[inputs[0]]}")
            value = _finite(aggregate(used, used[inputs[0]], kinds[inputs[0]]))
        elif kpi.method == "weighted_mean":
            name, weight = inputs
            # a rate and its weight are states: each township's latest period in the year
            product = used[name] * used[weight]
            value = _ratio(aggregate(used, product, "stock"), aggregate(used, used[weight], "stock"))
        else:  # ratio
            numerator, denominator = inputs
            quotient = _ratio(
                aggregate(used, used[numerator], kinds[numerator]),
                aggregate(used, used[denominator], kinds[denominator]),
            )
            value = None if quotient is None else quotient * kpi.scale
        points[year] = _Point(value, len(used), expected)
    return points


def _derived_points(kpi: Kpi, base: Mapping[int, _Point]) -> dict[int, _Point]:
    points: dict[int, _Point] = {}
    for year, point in sorted(base.items()):
        if kpi.method == "yoy":
            other_year = year - 1
        else:
            if kpi.base_year is None or year <= kpi.base_year:
                continue
            other_year = kpi.base_year
        other = base.get(other_year)
        if other is None:
            continue
        value: float | None = None
        if point.value is not None and other.value is not None:
            if kpi.method == "multiple_of_base":
                value = _ratio(point.value, other.value)
            elif kpi.method == "yoy":
                quotient = _ratio(point.value, other.value)
                value = None if quotient is None else (quotient - 1) * 100
            elif other.value > 0 and point.value >= 0:  # cagr
                value = ((point.value / other.value) ** (1 / (year - other_year)) - 1) * 100
        points[year] = _Point(value, point.used + other.used, point.expected + other.expected)
    return points


def compute_county_kpis(
    values: pd.DataFrame,
    townships: pd.DataFrame,
    kpis: Sequence[Kpi],
    declarations: Mapping[str, Declaration],
    skipped: list[str] | None = None,
) -> pd.DataFrame:
    """County KPI rows (``KPI_COLUMNS``), one per year × KPI, sorted by KPI order then year.

    ``values``: current facts, columns ``VALUE_COLUMNS`` (as in ``v_indicator_value``; values in
    base units, NaN = no value). ``townships``: ``ref_township`` rows (``valid_from``,
    ``valid_to``) for the expected coverage. ``kpis`` in declaration order: a derived KPI's
    ``of`` must come earlier. Pure: the inputs are not modified.

    A KPI that cannot be computed from the facts (a year a date cannot hold, from a row loaded
    before every door checked periods) is left out — and the KPIs derived from it — and named in
    ``skipped`` (when given) and the log; the other KPIs are computed.
    """
    missing = [c for c in VALUE_COLUMNS if c not in values.columns]
    if missing:
        raise ValueError(f"values frame lacks columns {missing}")
    computed: dict[str, dict[int, _Point]] = {}
    failed: set[str] = set()
    records: list[dict[str, Any]] = []
    for kpi in kpis:
        if kpi.method in ("multiple_of_base", "cagr", "yoy"):
            if kpi.of in failed:
                failed.add(kpi.kpi)
                note_skipped(skipped, f"KPI {kpi.kpi} skipped: it derives from {kpi.of}, which was skipped")
                continue
            if kpi.of not in computed:
                raise ValueError(f"{kpi.kpi}: derives from {kpi.of!r}, which is not computed before it")
            points = _derived_points(kpi, computed[str(kpi.of)])
        else:
            try:
                points = _base_points(kpi, values, declarations[kpi.department], townships)
            except (ValueError, OverflowError) as exc:  # one department's bad facts must not stop the others
                failed.add(kpi.kpi)
                note_skipped(skipped, f"KPI {kpi.kpi} ({kpi.department}) skipped: {type(exc).__name__}: {exc}")
                continue
        computed[kpi.kpi] = points
        for year, point in sorted(points.items()):
            records.append(
                {
                    "year": year,
                    "kpi": kpi.kpi,
                    "label_zh": kpi.label_zh,
                    "value": point.value,
                    "unit": kpi.unit,
                    "department": kpi.department,
                    "coverage_used": point.used,
                    "coverage_expected": point.expected,
                    "coverage": point.used / point.expected if point.expected else 0.0,
                    "publishable": bool(point.expected) and point.used >= point.expected,
                    "definition_zh": kpi.definition_zh,
                }
            )
    frame = pd.DataFrame(records, columns=list(KPI_COLUMNS))
    return frame.astype(
        {"year": "int64", "coverage_used": "int64", "coverage_expected": "int64", "publishable": "bool"}
    )




def _mart_row(record: Mapping[str, Any], refreshed_at: datetime) -> dict[str, Any]:
    """Plain Python scalars for the driver (psycopg does not adapt numpy types)."""
    value = record["value"]
    return {
        "year": int(record["year"]),
        "kpi": str(record["kpi"]),
        "label_zh": str(record["label_zh"]),
        "value": None if value is None or pd.isna(value) else float(value),
        "unit": str(record["unit"]),
        "department": str(record["department"]),
        "coverage_used": int(record["coverage_used"]),
        "coverage_expected": int(record["coverage_expected"]),
        "coverage": float(record["coverage"]),
        "publishable": bool(record["publishable"]),
        "definition_zh": str(record["definition_zh"]),
        "refreshed_at": refreshed_at,
    }


@dataclass(frozen=True)
class MartRefresh:
    """What one refresh wrote, and what it left out (each named: a ledger row, a department, a KPI)."""

    rows: int
    skipped: tuple[str, ...] = ()


def refresh_marts(engine: Engine, *, today: date | None = None) -> int:
    """:func:`refresh_marts_checked`; returns the KPI rows written."""
    return refresh_marts_checked(engine, today=today).rows


def refresh_marts_checked(engine: Engine, *, today: date | None = None) -> MartRefresh:
    """Recompute ``mart_county_kpi_yearly`` from the current facts; returns the rows written and
    what was left out (a ledger row the calendar cannot place, a KPI that cannot be computed: one
    bad row or department never stops the others').

    Reading, computing and replacing happen in one write transaction, so the mart always
    matches one consistent state of the facts, and readers see the old or the new mart. The
    completeness marts (``warehouse.completeness``, judged at ``today``: default the settings'
    ``as_of`` or today in county time) and ``mart_dq_scorecard`` (``warehouse.scorecard``) are
    refreshed in the same transaction.
    """
    township = schema.ref_township
    mart = schema.mart_county_kpi_yearly
    with begin_write(engine) as conn:
        advisory_lock(conn, "mart_county_kpi_yearly")
        values = read_current_values(conn)
        town_rows = conn.execute(
            select(township.c.township_code, township.c.valid_from, township.c.valid_to)
        ).all()
        townships = pd.DataFrame(
            [tuple(r) for r in town_rows], columns=["township_code", "valid_from", "valid_to"]
        )
        skipped: list[str] = []
        kpis = compute_county_kpis(values, townships, load_kpis(), load_declarations(), skipped)
        refreshed_at = datetime.now(UTC)
        rows = [_mart_row(rec, refreshed_at) for rec in kpis.to_dict(orient="records")]
        conn.execute(delete(mart))
        if rows:
            conn.execute(insert(mart), rows)
        refresh_completeness(conn, today=today, values=values, skipped=skipped)
        refresh_dq_scorecard(conn, refreshed_at, skipped)  # mart_dq_scorecard, same transaction
    return MartRefresh(len(rows), tuple(skipped))
