"""County KPIs: ``mart_county_kpi_yearly`` (grain: one row per year × KPI), and the same formulas
per township on two bases: ``mart_township_kpi_yearly`` (basis × township × year × KPI).

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
* Each year is computed with the definition (口径) valid that year (``expectations/definitions.py``);
  ``definition_version`` names it. A derived KPI across a change of its base's definition is
  NULL, its 口径 saying why: a growth rate between two definitions is never computed.
* Township KPIs come on both bases: ``as_reported`` (each period on the units it was reported
  for) and ``current_boundaries`` (re-aggregated through the crosswalk, ``warehouse.boundaries``).
  County KPIs need no basis: a predecessor's shares add up to 1, so county totals are the same.
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
from warehouse.boundaries import BASES, shares_on_current_boundaries, to_current_boundaries
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
    "definition_version",
)
_PERIODS_PER_YEAR = {"month": 12, "year": 1}


@dataclass(frozen=True)
class _Point:
    """One KPI in one year, before it becomes a row."""

    value: float | None
    used: int
    expected: int
    version: str = "v1"  # the definition the value was computed with (see _version_tag)
    definition_zh: str = ""


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


def _spans(townships: pd.DataFrame) -> dict[str, tuple[date, date | None]]:
    """township code → (valid_from, valid_to or None), as dates."""
    out: dict[str, tuple[date, date | None]] = {}
    for code, valid_from, valid_to in townships.loc[:, ["township_code", "valid_from", "valid_to"]].itertuples(
        index=False, name=None
    ):
        ends = None if valid_to is None or pd.isna(valid_to) else pd.Timestamp(valid_to).date()
        out[str(code)] = (pd.Timestamp(valid_from).date(), ends)
    return out


def _inputs(kpi: Kpi) -> tuple[str, ...]:
    if kpi.method in ("sum", "period_end"):
        return (str(kpi.indicator),)
    if kpi.method == "weighted_mean":
        return (str(kpi.indicator), str(kpi.weight))
    if kpi.method == "ratio":
        return (str(kpi.numerator), str(kpi.denominator))
    raise ValueError(f"{kpi.kpi}: {kpi.method} is not a base method")


def _version_tag(kpi: Kpi, year: int, decl: Declaration) -> tuple[str, str] | None:
    """(version tag, 口径 text) of a base KPI in ``year``: the KPI's own version and, for each input
    indicator with more than one dated definition, that indicator's version. Two years with the
    same tag are comparable; None when no version of the KPI covers the year."""
    shaped = kpi.for_year(year)
    version = kpi.version_for(year)
    if shaped is None or version is None:
        return None
    tag, text = [version], [shaped.definition_zh]
    for name in _inputs(shaped):
        indicator = decl.indicator(name)
        if len(indicator.definitions) > 1:
            own = indicator.definition_for(year)
            if own is None:
                return None
            tag.append(f"{name}@{own.version}")
            text.append(f"{indicator.label_zh}口径({own.version}，{own.span_zh()}): {own.definition_zh}")
    return " ".join(tag), "；".join(text)


def _dated_base_points(
    kpi: Kpi, values: pd.DataFrame, decl: Declaration, townships: pd.DataFrame, by_township: bool = False
) -> dict[Any, _Point]:
    """Base points, each year computed with the definition valid that year (its inputs included)."""
    years = sorted({int(y) for y in values["year"].dropna()}) if len(values) else []
    by_shape: dict[tuple[str, str], list[int]] = {}
    tags: dict[int, tuple[str, str]] = {}
    for year in years:
        tagged = _version_tag(kpi, year, decl)
        if tagged is None:
            continue
        tags[year] = tagged
        by_shape.setdefault(tagged, []).append(year)
    points: dict[Any, _Point] = {}
    for (tag, text), covered in by_shape.items():
        shaped = kpi.for_year(covered[0])
        assert shaped is not None  # _version_tag returned a tag for this year
        computed = _base_points(shaped, values[values["year"].isin(covered)], decl, townships, by_township)
        for key, point in computed.items():
            points[key] = _Point(point.value, point.used, point.expected, tag, text)
    return dict(sorted(points.items()))


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
    kpi: Kpi, values: pd.DataFrame, decl: Declaration, townships: pd.DataFrame, by_township: bool = False
) -> dict[Any, _Point]:
    """Points by year (the county), or by (township, year) when ``by_township``: one pivot for all."""
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
    points: dict[Any, _Point] = {}
    spans = _spans(townships) if by_township else {}
    for group, used in wide.groupby(["township_code", "year"] if by_township else "year", sort=True):
        if by_township:
            code, year = str(group[0]), int(group[1])  # type: ignore[index]
            begins, ends = spans.get(code, (date.max, None))
            valid = int(begins.year <= year and (ends is None or ends.year >= year))
        else:
            code, year = "", int(group)  # type: ignore[call-overload]
            valid = _townships_valid(townships, year)
        expected = valid * _PERIODS_PER_YEAR[decl.period_type]
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
        points[(code, year) if by_township else year] = _Point(value, len(used), expected)
    return points


def _derived_points(kpi: Kpi, base: Mapping[int, _Point]) -> dict[int, _Point]:
    """Derived points; across a change of the base KPI's definition the value is refused (NULL,
    the 口径 says why): a growth rate between two definitions is a wrong figure."""
    points: dict[int, _Point] = {}
    for year, point in sorted(base.items()):
        own = kpi.for_year(year)
        if own is None:
            continue
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
        tag = f"{kpi.version_for(year)} of {point.version}"
        text = own.definition_zh
        if point.version != other.version:
            tag = f"{kpi.version_for(year)} of {other.version} → {point.version}"
            text = (
                f"{own.definition_zh}。口径不一致，不予计算: {other_year}年按{other.version}"
                f"，{year}年按{point.version}(不跨口径比较)"
            )
        elif point.value is not None and other.value is not None:
            if kpi.method == "multiple_of_base":
                value = _ratio(point.value, other.value)
            elif kpi.method == "yoy":
                quotient = _ratio(point.value, other.value)
                value = None if quotient is None else (quotient - 1) * 100
            elif other.value > 0 and point.value >= 0:  # cagr
                value = ((point.value / other.value) ** (1 / (year - other_year)) - 1) * 100
        points[year] = _Point(value, point.used + other.used, point.expected + other.expected, tag, text)
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
                points = _dated_base_points(kpi, values, declarations[kpi.department], townships)
            except (ValueError, OverflowError) as exc:  # one department's bad facts must not stop the others
                failed.add(kpi.kpi)
                note_skipped(skipped, f"KPI {kpi.kpi} ({kpi.department}) skipped: {type(exc).__name__}: {exc}")
                continue
        computed[kpi.kpi] = points
        records.extend(_kpi_record(kpi, year, point) for year, point in sorted(points.items()))
    return _kpi_frame(records, list(KPI_COLUMNS))


def _kpi_record(kpi: Kpi, year: int, point: _Point) -> dict[str, Any]:
    """One ``KPI_COLUMNS`` row of ``kpi`` in ``year``."""
    return {
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
        "definition_zh": point.definition_zh or kpi.definition_zh,
        "definition_version": point.version,
    }


def _kpi_frame(records: list[dict[str, Any]], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(records, columns=columns)
    return frame.astype(
        {"year": "int64", "coverage_used": "int64", "coverage_expected": "int64", "publishable": "bool"}
    )




TOWNSHIP_KPI_COLUMNS = (
    "basis", "township_code", "year", "kpi", "value", "unit", "coverage_used", "coverage_expected",
    "definition_version", "assumed",
)  # fmt: skip


def _current_spans(townships: pd.DataFrame, shares: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Each current unit as if it had existed since its earliest predecessor began (the coverage a
    re-aggregated series is expected to have)."""
    began: dict[str, Any] = {}
    for row in townships.itertuples(index=False):
        for unit in shares.get(str(row.township_code), {}):
            if unit not in began or pd.Timestamp(row.valid_from) < pd.Timestamp(began[unit]):
                began[unit] = row.valid_from
    return pd.DataFrame(
        [(code, start, None) for code, start in sorted(began.items())],
        columns=["township_code", "valid_from", "valid_to"],
    )


def _township_points(
    facts: pd.DataFrame,
    spans: pd.DataFrame,
    kpis: Sequence[Kpi],
    declarations: Mapping[str, Declaration],
    skipped: list[str] | None,
    basis: str,
) -> dict[str, dict[tuple[str, int], _Point]]:
    """KPI → {(township code, year): point}: every township in one pivot per KPI (not one county
    computation per township), derived KPIs from each township's own base series."""
    computed: dict[str, dict[tuple[str, int], _Point]] = {}
    for kpi in kpis:
        if kpi.method in ("multiple_of_base", "cagr", "yoy"):
            base = computed.get(str(kpi.of))
            if base is None:
                continue
            by_code: dict[str, dict[int, _Point]] = {}
            for (code, year), point in base.items():
                by_code.setdefault(code, {})[year] = point
            points = {
                (code, year): point
                for code, series in by_code.items()
                for year, point in _derived_points(kpi, series).items()
            }
        else:
            try:
                points = _dated_base_points(kpi, facts, declarations[kpi.department], spans, by_township=True)
            except (ValueError, OverflowError) as exc:
                note_skipped(skipped, f"township KPI {kpi.kpi} ({basis}) skipped: {type(exc).__name__}: {exc}")
                continue
        computed[kpi.kpi] = points
    return computed


def compute_kpis_by_township(
    values: pd.DataFrame,
    townships: pd.DataFrame,
    kpis: Sequence[Kpi],
    declarations: Mapping[str, Declaration],
    skipped: list[str] | None = None,
) -> pd.DataFrame:
    """``township_code`` + ``KPI_COLUMNS``: the county formulas on each township's own facts, each
    period on its own boundaries — the rows ``compute_county_kpis`` gives for one township's facts
    and ``ref_township`` row, for every township with facts at once. Sorted by township, then KPI
    order, then year. Pure."""
    computed = _township_points(values, townships, kpis, declarations, skipped, "as_reported")
    records = [
        {"township_code": code, **_kpi_record(kpi, year, point)}
        for kpi in kpis
        for (code, year), point in computed.get(kpi.kpi, {}).items()
    ]
    frame = _kpi_frame(records, ["township_code", *KPI_COLUMNS])
    return frame.sort_values("township_code", kind="stable").reset_index(drop=True)


def compute_township_kpis(
    values: pd.DataFrame,
    townships: pd.DataFrame,
    crosswalk: pd.DataFrame,
    kpis: Sequence[Kpi],
    declarations: Mapping[str, Declaration],
    skipped: list[str] | None = None,
) -> pd.DataFrame:
    """The county formulas on each township's facts, on both bases (``TOWNSHIP_KPI_COLUMNS``).

    ``as_reported``: every unit with facts, each period on its own boundaries. ``current_boundaries``:
    the facts re-aggregated onto today's units (``warehouse.boundaries``); ``assumed`` marks a
    year of a unit that rests on an unverified crosswalk row (a year before the unit existed).
    Derived KPIs (growth, multiples) are computed on each basis from that basis's own series.
    """
    shares = shares_on_current_boundaries(townships, crosswalk)
    began = {str(r.township_code): pd.Timestamp(r.valid_from).year for r in townships.itertuples(index=False)}
    unverified = {str(r.successor_code) for r in crosswalk.itertuples(index=False) if not bool(r.verified)}
    records: list[dict[str, Any]] = []
    for basis in BASES:
        if basis == "as_reported":
            facts, spans = values, townships
        else:
            facts = to_current_boundaries(values, townships, crosswalk, declarations)
            spans = _current_spans(townships, shares)
        computed = _township_points(facts, spans, kpis, declarations, skipped, basis)
        for kpi in kpis:
            for (code, year), point in computed.get(kpi.kpi, {}).items():
                records.append({
                    "basis": basis, "township_code": code, "year": year, "kpi": kpi.kpi, "value": point.value,
                    "unit": kpi.unit, "coverage_used": point.used, "coverage_expected": point.expected,
                    "definition_version": point.version,
                    "assumed": basis == "current_boundaries" and code in unverified and year < began.get(code, 0),
                })  # fmt: skip
    frame = pd.DataFrame(records, columns=list(TOWNSHIP_KPI_COLUMNS))
    return frame.sort_values(["basis", "township_code", "kpi", "year"], kind="stable").reset_index(drop=True)


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
        "definition_version": str(record["definition_version"]),
        "refreshed_at": refreshed_at,
    }


def _township_rows(frame: pd.DataFrame, refreshed_at: datetime) -> list[dict[str, Any]]:
    """Plain Python scalars for the driver."""
    return [
        {
            "basis": str(r.basis), "township_code": str(r.township_code), "year": int(r.year), "kpi": str(r.kpi),
            "value": None if r.value is None or pd.isna(r.value) else float(r.value), "unit": str(r.unit),
            "coverage_used": int(r.coverage_used), "coverage_expected": int(r.coverage_expected),
            "definition_version": str(r.definition_version), "assumed": bool(r.assumed),
            "refreshed_at": refreshed_at,
        }
        for r in frame.itertuples(index=False)
    ]


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
        crosswalk = pd.DataFrame(
            [tuple(r) for r in conn.execute(select(schema.ref_township_crosswalk)).all()],
            columns=[c.name for c in schema.ref_township_crosswalk.columns],
        )
        by_township = compute_township_kpis(values, townships, crosswalk, load_kpis(), load_declarations(), skipped)
        conn.execute(delete(schema.mart_township_kpi_yearly))
        if len(by_township):
            conn.execute(insert(schema.mart_township_kpi_yearly), _township_rows(by_township, refreshed_at))
        refresh_completeness(conn, today=today, values=values, skipped=skipped)
        refresh_dq_scorecard(conn, refreshed_at, skipped)  # mart_dq_scorecard, same transaction
    return MartRefresh(len(rows), tuple(skipped))
