"""Obligations calendar and completeness: due dates and deadlines from the declarations, one status
per department × period derived from the ledger (on time, late, missing, quarantined, rejected,
pending), township coverage, missing returns for the alert, and KPIs publishable only when their
coverage is complete — on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone

import pandas as pd
import pytest
import yaml
from ledger_helpers import TOWNSHIPS, record
from sqlalchemy import Engine, select, text

from expectations.declaration import DECLARATIONS_DIR, DeclarationError, load_declarations, parse_declaration
from expectations.obligations import due_date, expected_returns, obligation, periods_between
from flows.followups_cli import completeness_lines
from warehouse import schema
from warehouse.completeness import LedgerEntry, compute_completeness, missing_returns
from warehouse.marts import refresh_marts

DECLS = load_declarations()
CST = timezone(timedelta(hours=8))


def test_due_dates_and_deadlines_follow_the_declarations() -> None:
    health, poverty = DECLS["health"], DECLS["poverty"]
    assert (health.due_day, health.grace_days, poverty.due_day, poverty.grace_days) == (10, 3, 31, 0)
    assert due_date(health, "2017-11") == date(2017, 12, 10)
    assert due_date(health, "2017-12") == date(2018, 1, 10)  # December's return is due in January
    assert obligation(health, "2017-11").deadline == date(2017, 12, 13)
    assert due_date(poverty, "2016") == date(2017, 1, 31)
    assert due_date(replace(health, due_day=31), "2017-01") == date(2017, 2, 28)  # day past the month's end
    with pytest.raises(ValueError, match="does not fit the monthly health return"):
        due_date(health, "2017")


def test_calendar_runs_from_the_first_period_to_the_last_ended_one() -> None:
    assert periods_between("month", "2016-11", "2017-02") == ["2016-11", "2016-12", "2017-01", "2017-02"]
    duties = expected_returns(DECLS, {"health": "2017-09", "poverty": "2015"}, date(2017, 12, 5))
    assert [(o.department, o.period) for o in duties] == [
        ("health", "2017-09"), ("health", "2017-10"), ("health", "2017-11"), ("poverty", "2015"), ("poverty", "2016")]
    november = duties[2]
    assert not november.is_overdue(date(2017, 12, 13)) and november.is_overdue(date(2017, 12, 14))
    started = expected_returns(DECLS, {}, date(2017, 3, 1), programme_start=date(2017, 1, 1))
    assert {(o.department, o.period) for o in started if o.department == "labour"} == {("labour", "2017-01"),
                                                                                      ("labour", "2017-02")}


@pytest.mark.parametrize(("field", "value"), [("grace_days", -1), ("grace_days", "3"), ("due_day", 0),
                                              ("due_day", 32)])
def test_calendar_fields_are_checked(field: str, value: object) -> None:
    raw = yaml.safe_load((DECLARATIONS_DIR / "health.yaml").read_text(encoding="utf-8"))
    raw[field] = value
    with pytest.raises(DeclarationError, match=f"health.yaml: {field} must be a whole number"):
        parse_declaration(raw, "health.yaml")


def _entry(period: str, status: str, day: int, month: int = 12, sid: str = "") -> LedgerEntry:
    return LedgerEntry("health", period, sid or f"{period}{status}{day}", status,
                       datetime(2017, month, day, 10, tzinfo=CST).astimezone(UTC))


def test_one_status_per_return_from_the_ledger() -> None:
    ledger = [
        _entry("2017-06", "loaded", 8, month=7),                       # on time
        _entry("2017-07", "rejected", 9, month=8),                     # first try on time ...
        _entry("2017-07", "loaded", 20, month=8),                      # ... fixed late: still on time
        _entry("2017-08", "loaded", 14, month=9),                      # one day past the grace: late
        _entry("2017-09", "quarantined", 11, month=10),
        _entry("2017-10", "rejected", 12, month=11),
        # 2017-11: nothing, deadline 13 Dec passed → missing
    ]
    values = pd.DataFrame({"department": ["health", "health"], "period": ["2017-06", "2017-06"],
                           "township_code": [TOWNSHIPS[0], TOWNSHIPS[1]], "value": [1.0, None]})
    townships = pd.DataFrame({"township_code": list(TOWNSHIPS), "valid_from": [date(2000, 1, 1)] * 15,
                              "valid_to": [None] * 15})
    rows, towns = compute_completeness({"health": DECLS["health"]}, ledger, values, townships, date(2017, 12, 20))
    status = dict(zip(rows["period"], rows["status"], strict=True))
    assert status == {"2017-06": "on_time", "2017-07": "on_time", "2017-08": "late", "2017-09": "quarantined",
                      "2017-10": "rejected", "2017-11": "missing"}
    assert (rows["received"] == rows["loaded"] + rows["quarantined"] + rows["rejected"]).all()
    assert (rows["received"] == rows["on_time"] + rows["late"]).all()
    assert (rows["expected"] == rows["received"] + rows["missing"]).all()
    july = rows.set_index("period").loc["2017-07"]
    assert july["files_received"] == 2 and july["current_submission_id"] == "2017-07loaded20"
    june = rows.set_index("period").loc["2017-06"]
    assert (june["townships_expected"], june["townships_reported"]) == (15, 1)
    assert towns[(towns["period"] == "2017-06")]["reported"].sum() == 1 and len(towns) == 15 * 6
    pending, _ = compute_completeness({"health": DECLS["health"]}, ledger, values, townships, date(2017, 12, 12))
    assert pending.set_index("period").loc["2017-11", "status"] == "pending"


# ---------------------------------------------------------------- warehouse


def _poverty_values(codes: tuple[str, ...]) -> dict[str, dict[str, float | None]]:
    return {"registered_poor_year_end_persons": {c: 1000.0 for c in codes},
            "agricultural_population_persons": {c: 8000.0 for c in codes},
            "net_income_per_capita_yuan": {c: 9000.0 for c in codes},
            "exited_poverty_persons": {c: 100.0 for c in codes}}


def _at(y: int, m: int, d: int) -> datetime:
    return datetime(y, m, d, 10, tzinfo=CST)


def test_completeness_marts_and_publishable_kpis(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    record(engine, "poverty", "2015", _poverty_values(TOWNSHIPS), _at(2016, 1, 20))          # on time, complete
    record(engine, "poverty", "2016", _poverty_values(TOWNSHIPS[:14]), _at(2017, 2, 3))     # late, 14 of 15
    health = {"poor_population_persons": {c: 900.0 for c in TOWNSHIPS}}
    record(engine, "health", "2017-09", health, _at(2017, 10, 9))                           # on time
    record(engine, "health", "2017-10", health, _at(2017, 11, 12), status="quarantined")
    # health 2017-11: nothing received; its deadline (13 Dec) has passed on 20 Dec
    refresh_marts(engine, today=date(2017, 12, 20))
    with engine.connect() as conn:
        rows = {(r.department, r.period): r for r in conn.execute(select(schema.mart_completeness))}
        kpis = {(r.year, r.kpi): r for r in conn.execute(text(
            "SELECT year, kpi, coverage, publishable FROM mart_county_kpi_yearly"))}
        township = conn.execute(text(
            "SELECT township_code, reported, values_reported FROM mart_completeness_township "
            "WHERE department = 'poverty' AND period = '2016' ORDER BY township_code")).all()
        missing = missing_returns(conn, date(2017, 12, 20))
    assert rows[("poverty", "2015")].status == "on_time" and rows[("poverty", "2016")].status == "late"
    assert rows[("poverty", "2016")].late == 1 and rows[("poverty", "2016")].due_date == date(2017, 1, 31)
    assert (rows[("poverty", "2016")].townships_expected, rows[("poverty", "2016")].townships_reported) == (15, 14)
    assert rows[("health", "2017-09")].status == "on_time"
    assert rows[("health", "2017-10")].status == "quarantined" and rows[("health", "2017-10")].loaded == 0
    late_row = rows[("health", "2017-11")]
    assert (late_row.status, late_row.missing, late_row.received, late_row.files_received) == ("missing", 1, 0, 0)
    assert ("health", "2017-12") not in rows  # not ended yet
    assert [(m.department, m.period, m.days_overdue) for m in missing] == [("health", "2017-11", 7)]
    assert [bool(r.reported) for r in township] == [True] * 14 + [False]
    assert township[0].values_reported == 4
    assert kpis[(2015, "poverty_incidence_pct")].publishable and kpis[(2015, "poverty_incidence_pct")].coverage == 1
    assert not kpis[(2016, "poverty_incidence_pct")].publishable  # 14 of 15 townships
    assert not kpis[(2016, "net_income_per_capita_yuan")].publishable
    assert (2016, "tourism_revenue_yuan") not in kpis  # no tourism data: no KPI row to mislead

    text_lines = "\n".join(completeness_lines(engine, periods=2))
    assert "health     2017-11 missing" in text_lines and "poverty    2016    late" in text_lines
    assert "missing 1" in text_lines


def test_judgement_date_comes_from_the_settings(warehouse_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    from duikou_settings import reset_settings_cache

    record(warehouse_engine, "health", "2017-09", {"poor_population_persons": {TOWNSHIPS[0]: 1.0}}, _at(2017, 10, 9))
    monkeypatch.setenv("DUIKOU_AS_OF", "2017-11-12")
    reset_settings_cache()
    try:
        refresh_marts(warehouse_engine)
        with warehouse_engine.connect() as conn:
            statuses = dict(conn.execute(text("SELECT period, status FROM mart_completeness")).all())
            assert missing_returns(conn) == []
    finally:
        monkeypatch.delenv("DUIKOU_AS_OF")
        reset_settings_cache()
    assert statuses == {"2017-09": "on_time", "2017-10": "pending"}  # deadline 13 November
