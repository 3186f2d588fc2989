"""Obligations calendar and completeness: due dates and deadlines from the declarations, one status
per department × period derived from the ledger (on time, late, missing, quarantined, rejected,
pending), township coverage, missing returns for the alert, and KPIs publishable only when their
coverage is complete — on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
import yaml
from sqlalchemy import Engine, select, text

from duikou_settings import Settings
from expectations.declaration import DECLARATIONS_DIR, DeclarationError, load_declarations, parse_declaration
from expectations.obligations import due_date, expected_returns, is_owed, obligation, periods_between
from expectations.registry_declaration import load_registry_declarations, parse_registry_declaration
from flows.followups_cli import completeness_lines
from tasks.demo.registry import registry_table, township_names, write_registry_csv
from tasks.forms.periods import parse_declared_period
from tasks.registry.submission import ingest_registry
from tasks.submission.journey import receive
from tests.helpers.ledger_helpers import TOWNSHIPS, record
from warehouse import schema
from warehouse.completeness import LedgerEntry, compute_completeness, missing_returns
from warehouse.marts import refresh_marts
from warehouse.refdata import reference_frames

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


# ---------------------------------------------------------------- person-level registry (issue 8)
REGISTRY = load_registry_declarations()["labour_registry"]


def test_the_registry_owes_one_snapshot_per_quarter_as_its_declaration_says() -> None:
    assert (REGISTRY.snapshot_months, REGISTRY.due_day, REGISTRY.grace_days) == ((3, 6, 9, 12), 10, 5)
    assert [is_owed(REGISTRY, p) for p in ("2017-05", "2017-06", "2017-12")] == [False, True, True]
    assert (due_date(REGISTRY, "2017-09"), obligation(REGISTRY, "2017-09").deadline) == (date(2017, 10, 10),
                                                                                          date(2017, 10, 15))
    duties = expected_returns({**DECLS, "labour_registry": REGISTRY}, {"labour_registry": "2017-05"},
                              date(2017, 12, 20))
    assert [o.period for o in duties if o.department == "labour_registry"] == ["2017-06", "2017-09"]
    monthly = replace(REGISTRY, snapshot_months=tuple(range(1, 13)))  # the setting is data, not code
    assert [o.period for o in expected_returns({"labour_registry": monthly}, {"labour_registry": "2017-09"},
                                               date(2017, 12, 20))] == ["2017-09", "2017-10", "2017-11"]


@pytest.mark.parametrize(("field", "value", "message"), [
    ("snapshot_months", [0, 6], "snapshot_months must list distinct months 1–12"),
    ("snapshot_months", [3, 3], "snapshot_months must list distinct months 1–12"),
    ("snapshot_months", "3,6", "snapshot_months must list distinct months 1–12"),
    ("snapshot_months", [], "snapshot_months lists at least one month"),
    ("grace_days", -1, "grace_days must be a whole number"),
    ("due_day", 32, "due_day must be a whole number"),
])
def test_registry_calendar_fields_are_checked(field: str, value: object, message: str) -> None:
    raw = yaml.safe_load((DECLARATIONS_DIR / "labour_registry.yaml").read_text(encoding="utf-8"))
    raw[field] = value
    with pytest.raises(DeclarationError, match=f"labour_registry.yaml: {message}"):
        parse_registry_declaration(raw, "labour_registry.yaml")


def _registry_entry(period: str, status: str, when: datetime) -> LedgerEntry:
    return LedgerEntry("labour_registry", period, f"r{period}{status}", status, when.astimezone(UTC))


def test_registry_snapshots_get_one_status_per_owed_quarter_and_township_coverage_by_people() -> None:
    ledger = [
        _registry_entry("2017-03", "loaded", datetime(2017, 4, 14, 9, tzinfo=CST)),    # within the 5 grace days
        _registry_entry("2017-05", "loaded", datetime(2017, 6, 5, 9, tzinfo=CST)),     # not owed: shown, not expected
        _registry_entry("2017-06", "loaded", datetime(2017, 7, 16, 9, tzinfo=CST)),    # a day past the deadline
        # 2017-09: nothing by 15 October → missing; 2017-12 has not ended
    ]
    persons = pd.DataFrame({"department": "labour_registry", "period": "2017-06",
                            "township_code": list(TOWNSHIPS[:14]), "persons": range(1, 15)})
    townships = pd.DataFrame({"township_code": list(TOWNSHIPS), "valid_from": [date(2000, 1, 1)] * 15,
                              "valid_to": [None] * 15})
    empty = pd.DataFrame({"department": [], "period": [], "township_code": [], "value": []})
    rows, towns = compute_completeness({"labour_registry": REGISTRY}, ledger, empty, townships, date(2017, 12, 20),
                                       persons=persons)
    by_period = rows.set_index("period")
    assert dict(by_period["status"]) == {"2017-03": "on_time", "2017-05": "on_time", "2017-06": "late",
                                         "2017-09": "missing"}
    assert dict(by_period["expected"]) == {"2017-03": 1, "2017-05": 0, "2017-06": 1, "2017-09": 1}
    assert by_period.loc["2017-09", "deadline"] == date(2017, 10, 15)
    # county-wide snapshot: every valid township expected, reported where at least one person is listed
    assert (by_period.loc["2017-06", "townships_expected"], by_period.loc["2017-06", "townships_reported"]) == (15, 14)
    june = towns[towns["period"] == "2017-06"].set_index("township_code")
    assert list(june["values_reported"]) == [*range(1, 15), 0] and not june.loc[TOWNSHIPS[14], "reported"]
    assert by_period.loc["2017-03", "townships_reported"] == 0  # no head counts given for March here


def _land_registry(engine: Engine, tmp_path: Path, period: str, received: datetime, townships: int = 15) -> str:
    names = township_names()[:townships]
    snapshot = parse_declared_period(period, "month").end
    table = registry_table(REGISTRY, 45, snapshot, seed=int(period[-2:]))
    picks = pa.array([names[i % len(names)] for i in range(table.num_rows)])
    table = table.set_column(table.column_names.index("乡(镇)"), "乡(镇)", picks)
    path = write_registry_csv(table, tmp_path / f"registry-{period}.csv")
    settings = Settings(data_dir=tmp_path / "data", person_key="k" * 40)  # type: ignore[arg-type]
    stream, outcome = ingest_registry(receive(path, "labour_registry", period, received_at=received), engine,
                                      reference_frames(), settings, b"k" * 40)
    assert outcome is not None and outcome.load.status == "loaded", stream.result.issues[:3]
    return outcome.load.submission_id


def test_registry_completeness_in_the_marts_the_demo_table_and_the_missing_alert(
    warehouse_engine: Engine, tmp_path: Path
) -> None:
    engine = warehouse_engine
    _land_registry(engine, tmp_path, "2017-05", _at(2017, 6, 5))                 # first snapshot, not owed
    current = _land_registry(engine, tmp_path, "2017-06", _at(2017, 7, 12), townships=13)  # on time
    # 2017-09: nothing received by 15 October
    refresh_marts(engine, today=date(2017, 12, 20))
    with engine.connect() as conn:
        rows = {r.period: r for r in conn.execute(select(schema.mart_completeness).where(
            schema.mart_completeness.c.department == "labour_registry"))}
        towns = conn.execute(text(
            "SELECT c.township_code, c.reported, c.values_reported, r.persons FROM mart_completeness_township c "
            "LEFT JOIN mart_registry_township r ON r.department = c.department AND r.period = c.period "
            "AND r.township_code = c.township_code WHERE c.department = 'labour_registry' AND c.period = '2017-06' "
            "ORDER BY c.township_code")).all()
        missing = missing_returns(conn, date(2017, 12, 20))
    assert sorted(rows) == ["2017-05", "2017-06", "2017-09"]
    assert (rows["2017-05"].status, rows["2017-05"].expected) == ("on_time", 0)
    june = rows["2017-06"]
    assert (june.status, june.expected, june.current_submission_id) == ("on_time", 1, current)
    assert (june.townships_expected, june.townships_reported) == (15, 13)
    assert (rows["2017-09"].status, rows["2017-09"].missing, rows["2017-09"].due_date) == ("missing", 1,
                                                                                          date(2017, 10, 10))
    assert len(towns) == 15 and sum(bool(t.reported) for t in towns) == 13
    assert all(t.values_reported == (t.persons or 0) for t in towns) and sum(t.values_reported for t in towns) == 45
    assert [(m.department, m.period, m.days_overdue) for m in missing] == [("labour_registry", "2017-09", 66)]
    table = "\n".join(completeness_lines(engine, periods=3))
    assert "labour_registry 2017-09 missing" in table and "13/15" in table


def test_the_missing_returns_alert_names_a_missing_registry_snapshot(
    prefect_harness: None, sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect import flow

    from duikou_settings import reset_settings_cache
    from flows.missing_alerts import alert_missing_returns_task

    _land_registry(sqlite_engine, tmp_path, "2017-06", _at(2017, 7, 12))
    monkeypatch.setenv("DUIKOU_AS_OF", "2017-12-20")
    reset_settings_cache()

    @flow
    def alert() -> list[dict[str, object]]:
        return alert_missing_returns_task(sqlite_engine)

    try:
        assert alert() == [{"department": "labour_registry", "period": "2017-09", "due_date": "2017-10-10",
                            "days_overdue": 66}]
    finally:
        monkeypatch.delenv("DUIKOU_AS_OF")
        reset_settings_cache()
