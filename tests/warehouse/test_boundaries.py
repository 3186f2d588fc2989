"""Boundaries and definitions that change without losing history (issue 21).

Loading across the December 2019 reform (15 townships in 2019, 12 units in 2020), completeness
counting the units of each period, the two views of a series (as reported / on current
boundaries: county totals equal, township series different, a rate re-aggregated from numerators
and denominators checked by hand), and a definition (口径) change: the break and the refusal to mix.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pytest
import yaml
from sqlalchemy import Engine, select, text

from expectations.declaration import KPIS_FILE, DeclarationError, load_declarations, load_kpis
from tests.helpers.ledger_helpers import TOWNSHIPS, record
from warehouse import schema
from warehouse.boundaries import shares_on_current_boundaries, to_current_boundaries
from warehouse.current_facts import VALUE_COLUMNS
from warehouse.marts import compute_county_kpis, refresh_marts
from warehouse.refdata import crosswalk_problems, reference_frames

CST = timezone(timedelta(hours=8))
BAWANG, NIEXIA, BAWANG_2020, JIAJU = "513323201", "513323202", "513323R02", "513323R01"
UNITS_2020 = ("513323100", "513323101", "513323102", "513323204", "513323207", "513323213",
              "513323R01", "513323R02", "513323R03", "513323R04", "513323R05", "513323R06")  # fmt: skip


def _poverty(codes: tuple[str, ...], special: dict[str, tuple[float, float, float]]) -> dict[str, dict[str, float]]:
    """Population 8000, poor 1000, income 9000 元 per unit, except ``special`` (population, poor, income)."""
    rows = {c: special.get(c, (8000.0, 1000.0, 9000.0)) for c in codes}
    return {"agricultural_population_persons": {c: v[0] for c, v in rows.items()},
            "registered_poor_year_end_persons": {c: v[1] for c, v in rows.items()},
            "net_income_per_capita_yuan": {c: v[2] for c, v in rows.items()},
            "exited_poverty_persons": {c: 100.0 for c in codes}}  # fmt: skip


#: 2019: 巴旺乡 (20 % poor, 12000 元) and 聂呷乡 (10 %, 9000 元) differ from the rest
SPECIAL_2019 = {BAWANG: (10000.0, 2000.0, 12000.0), NIEXIA: (6000.0, 600.0, 9000.0)}


def _tourism(codes: tuple[str, ...], base: float) -> dict[str, dict[str, float]]:
    return {"tourism_revenue_yuan": {c: base + 1000.0 * i for i, c in enumerate(codes)},
            "visitors_person_times": {c: 100.0 + i for i, c in enumerate(codes)}}  # fmt: skip


def load_across_the_reform(engine: Engine) -> None:
    record(engine, "poverty", "2019", _poverty(TOWNSHIPS, SPECIAL_2019), datetime(2020, 1, 20, 10, tzinfo=CST))
    record(engine, "poverty", "2020", _poverty(UNITS_2020, {}), datetime(2021, 1, 20, 10, tzinfo=CST))
    record(engine, "tourism", "2019-12", _tourism(TOWNSHIPS, 50_000.0), datetime(2020, 1, 5, 10, tzinfo=CST))
    record(engine, "tourism", "2020-01", _tourism(UNITS_2020, 60_000.0), datetime(2020, 2, 5, 10, tzinfo=CST))
    refresh_marts(engine, today=date(2021, 2, 1))


def test_the_crosswalk_is_whole_and_checked() -> None:
    ref = reference_frames()
    assert crosswalk_problems(ref.townships, ref.crosswalk) == []
    shares = shares_on_current_boundaries(ref.townships, ref.crosswalk)
    assert shares[BAWANG] == {JIAJU: 0.2, BAWANG_2020: 0.8} and shares["513323100"] == {"513323100": 1.0}
    assert set().union(*(s.keys() for s in shares.values())) == set(UNITS_2020)
    broken = ref.crosswalk.assign(weight=ref.crosswalk["weight"].where(ref.crosswalk["successor_code"] != JIAJU, 0.5))
    assert "the weights of 513323201 add up to 1.3, not 1" in "; ".join(crosswalk_problems(ref.townships, broken))


def test_loading_across_the_reform_and_its_two_views(warehouse_engine: Engine) -> None:
    """One warehouse (SQLite, and PostgreSQL when configured) for both halves: it is the slow part."""
    load_across_the_reform(warehouse_engine)
    _counts_the_units_of_each_period(warehouse_engine)
    _two_views_equal_county_totals_and_different_township_series(warehouse_engine)


def _counts_the_units_of_each_period(across_the_reform: Engine) -> None:
    with across_the_reform.connect() as conn:
        rows = {(r.department, r.period): r for r in conn.execute(select(schema.mart_completeness))}
        towns = conn.execute(text(
            "SELECT period, COUNT(*), SUM(CASE WHEN reported THEN 1 ELSE 0 END) FROM mart_completeness_township "
            "WHERE department = 'tourism' AND period IN ('2019-12', '2020-01') GROUP BY period ORDER BY period"
        )).all()  # fmt: skip
    assert (rows[("poverty", "2019")].townships_expected, rows[("poverty", "2019")].townships_reported) == (15, 15)
    assert (rows[("poverty", "2020")].townships_expected, rows[("poverty", "2020")].townships_reported) == (12, 12)
    assert rows[("tourism", "2020-02")].townships_expected == 12  # owed by the 12 units, none received
    assert [tuple(t) for t in towns] == [("2019-12", 15, 15), ("2020-01", 12, 12)]


def _two_views_equal_county_totals_and_different_township_series(across_the_reform: Engine) -> None:
    with across_the_reform.connect() as conn:
        county = {(r.year, r.kpi): r.value for r in conn.execute(select(schema.mart_county_kpi_yearly))}
        town = pd.read_sql(select(schema.mart_township_kpi_yearly), conn)
    revenue = town[town["kpi"] == "tourism_revenue_yuan"].groupby(["basis", "year"])["value"].sum()
    for year in (2019, 2020):  # an additive indicator: county total = Σ townships, on either basis
        assert revenue[("as_reported", year)] == pytest.approx(county[(year, "tourism_revenue_yuan")])
        assert revenue[("current_boundaries", year)] == pytest.approx(county[(year, "tourism_revenue_yuan")])
    view = town.set_index(["basis", "township_code", "year", "kpi"])["value"]
    # as reported, 2019 has the 15 old units and no 甲居镇; on current boundaries, 12 units both years
    assert set(town[(town["basis"] == "as_reported") & (town["year"] == 2019)]["township_code"]) == set(TOWNSHIPS)
    assert set(town[(town["basis"] == "current_boundaries") & (town["year"] == 2019)]["township_code"]) == set(
        UNITS_2020)
    assert ("as_reported", JIAJU, 2019, "poverty_incidence_pct") not in view.index
    # by hand: 甲居镇 2019 = all of 聂呷乡 (6000 people, 600 poor) + 0.2 of 巴旺乡 (10000, 2000)
    #   poor 600 + 400 = 1000 of population 6000 + 2000 = 8000 → 12.5 % (averaging the rates would give 15 %)
    #   income (9000 × 6000 + 12000 × 2000) / 8000 = 9750 元
    assert view[("current_boundaries", JIAJU, 2019, "poverty_incidence_pct")] == pytest.approx(12.5)
    assert view[("current_boundaries", JIAJU, 2019, "net_income_per_capita_yuan")] == pytest.approx(9750.0)
    assert view[("as_reported", BAWANG, 2019, "poverty_incidence_pct")] == pytest.approx(20.0)
    assert view[("current_boundaries", BAWANG_2020, 2019, "poverty_incidence_pct")] == pytest.approx(20.0)
    assert view[("current_boundaries", JIAJU, 2020, "poverty_incidence_pct")] == pytest.approx(12.5)  # as reported
    assert county[(2019, "poverty_incidence_pct")] == pytest.approx(
        (13 * 1000 + 2000 + 600) / (13 * 8000 + 10000 + 6000) * 100)
    with across_the_reform.connect() as conn:
        assumed = conn.execute(text(
            "SELECT year, assumed FROM mart_township_kpi_yearly WHERE basis = 'current_boundaries' "
            "AND township_code = :code AND kpi = 'poverty_incidence_pct' ORDER BY year"), {"code": JIAJU}).all()
    assert [(y, bool(a)) for y, a in assumed] == [(2019, True), (2020, False)]


def test_county_kpis_are_the_same_on_current_boundaries() -> None:
    """Every county KPI, recomputed from the re-aggregated facts: the crosswalk moves, never adds."""
    ref, decls, kpis = reference_frames(), load_declarations(), load_kpis()
    facts = pd.DataFrame(
        [("poverty", ind, code, "2019", 2019, by_code[code])
         for ind, by_code in _poverty(TOWNSHIPS, SPECIAL_2019).items() for code in TOWNSHIPS],
        columns=list(VALUE_COLUMNS),
    )  # fmt: skip
    reported = compute_county_kpis(facts, ref.townships, kpis, decls).set_index("kpi")["value"]
    current = to_current_boundaries(facts, ref.townships, ref.crosswalk, decls)
    assert set(current["township_code"]) == set(UNITS_2020)
    recut = compute_county_kpis(current, ref.townships, kpis, decls).set_index("kpi")["value"]
    assert recut.to_dict() == pytest.approx(reported.to_dict())


def _kpis_with_a_definition_change(tmp_path: Path) -> Path:
    """kpis.yaml with net income redefined from 2020 (纯收入 → 可支配收入), as a county might."""
    raw = yaml.safe_load(KPIS_FILE.read_text(encoding="utf-8"))
    income = next(k for k in raw["kpis"] if k["kpi"] == "net_income_per_capita_yuan")
    income["definitions"] = [
        {"version": "v1", "valid_to": "2019-12-31", "definition_zh": "农牧民人均纯收入，按农业户籍人口加权"},
        {"version": "v2", "valid_from": "2020-01-01", "definition_zh": "农村居民人均可支配收入，按农业户籍人口加权"},
    ]
    raw["kpis"].append({"kpi": "net_income_yoy_pct", "label_zh": "人均收入同比", "unit": "%", "department": "poverty",
                        "method": "yoy", "of": "net_income_per_capita_yuan", "decimals": 1,
                        "definition_zh": "当年 ÷ 上年 − 1"})  # fmt: skip
    path = tmp_path / "kpis.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_a_definition_change_breaks_the_series_and_is_never_mixed(tmp_path: Path) -> None:
    kpis = load_kpis(_kpis_with_a_definition_change(tmp_path))
    ref, decls = reference_frames(), load_declarations()
    rows = [("poverty", ind, code, year, int(year), by_code[code])
            for year, codes in (("2019", TOWNSHIPS), ("2020", UNITS_2020))
            for ind, by_code in _poverty(codes, {}).items() for code in codes]  # fmt: skip
    out = compute_county_kpis(pd.DataFrame(rows, columns=list(VALUE_COLUMNS)), ref.townships, kpis, decls)
    shown = out.set_index(["kpi", "year"])
    income = shown.loc["net_income_per_capita_yuan"]
    # the break, carried in the mart: the KPI's own version and its weight's (poverty.yaml dates a change too)
    assert list(income["definition_version"]) == [
        "v1 agricultural_population_persons@v1", "v2 agricultural_population_persons@v2"]
    assert income.loc[2019, "definition_zh"].startswith("农牧民人均纯收入")
    assert income.loc[2020, "definition_zh"].startswith("农村居民人均可支配收入")
    yoy = shown.loc[("net_income_yoy_pct", 2020)]
    assert pd.isna(yoy["value"])  # 9000 / 9000 − 1 = 0 % would be a wrong figure: refused
    assert "口径不一致，不予计算: 2019年按v1 agricultural_population_persons@v1，2020年按v2" in yoy["definition_zh"]
    incidence = shown.loc["poverty_incidence_pct"]  # its own definition is one, its denominator's changed
    assert list(incidence["definition_version"]) == [
        "v1 agricultural_population_persons@v1", "v1 agricultural_population_persons@v2"]
    assert "农业户籍人口口径(v2，2020年1月1日起): 乡村户籍人口" in incidence.loc[2020, "definition_zh"]


def test_definitions_must_follow_each_other_on_year_boundaries(tmp_path: Path) -> None:
    path = _kpis_with_a_definition_change(tmp_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    income = next(k for k in raw["kpis"] if k["kpi"] == "net_income_per_capita_yuan")
    income["definitions"][1]["valid_from"] = "2020-07-01"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(DeclarationError, match="must be 1 January"):
        load_kpis(path)
