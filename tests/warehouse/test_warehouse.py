"""Warehouse tests on a temporary database: SQLite always, PostgreSQL when configured.

Grain of what is checked: the ledger (one row per distinct file), facts (one row per
submission × indicator × township), the current-version view and the yearly KPI mart.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import threading
from datetime import UTC, date, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from expectations.declaration import load_declarations
from expectations.issues import Issue, issue
from warehouse import schema
from warehouse.bootstrap import begin_write, ensure_warehouse
from warehouse.keys import submission_key
from warehouse.load import (
    DqResult,
    SubmissionRecord,
    current_submissions,
    find_submission,
    record_submission,
    submission_status_counts,
)
from warehouse.marts import refresh_marts
from warehouse.refdata import load_reference, read_reference, reference_frames

ZHANGGU = "513323100"
BAWANG = "513323201"
COUNTED_TABLES = (
    schema.submission,
    schema.fact_indicator_value,
    schema.fact_form_total,
    schema.submission_issue,
    schema.dq_result,
)


def sha(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def make_record(
    content: str,
    *,
    department: str = "tourism",
    period: str = "2016-05",
    status: str = "loaded",
) -> SubmissionRecord:
    digest = sha(content)
    return SubmissionRecord(
        submission_id=submission_key(department, digest),
        sha256=digest,
        department=department,
        period=period,
        original_name=f"{content}.xlsx",
        received_at=datetime(2016, 6, 3, 9, 30, tzinfo=UTC),
        status=status,  # type: ignore[arg-type]
        rows_read=2,
        rows_loaded=2 if status == "loaded" else 0,
        rows_rejected=0 if status == "loaded" else 2,
        archive_path=f"archive/{content}.xlsx",
        receipt_path=f"receipts/{content}.json",
    )


def facts_frame(values: dict[tuple[str, str], float | None]) -> pd.DataFrame:
    """``{(indicator, township_code): value}`` → the facts frame ``record_submission`` takes."""
    return pd.DataFrame(
        [
            {
                "indicator": indicator,
                "township_code": township,
                "value": math.nan if value is None else value,
                "flagged": False,
                "source_row": 5 + n,
            }
            for n, ((indicator, township), value) in enumerate(values.items())
        ]
    )


def totals_frame(values: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"indicator": k, "value": v, "label_zh": "合计"} for k, v in values.items()])


NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])
NO_FACTS = pd.DataFrame(columns=["indicator", "township_code", "value", "flagged", "source_row"])
DQ = [
    DqResult(
        "tourism_overnight_le_visitors",
        "expect_column_pair_values_a_to_be_greater_than_b",
        "warning",
        True,
        2,
        0,
        None,
    )
]


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in COUNTED_TABLES
        }


def current_values(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT indicator, township_code, value, unit, submission_id FROM v_indicator_value "
            "ORDER BY indicator, township_code"
        ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["indicator", "township_code", "value", "unit", "sid"]
    )


def ledger(engine: Engine, submission_id: str) -> dict[str, object]:
    with engine.connect() as conn:
        row = (
            conn.execute(select(schema.submission).where(schema.submission.c.submission_id == submission_id))
            .mappings()
            .one()
        )
    return dict(row)


def load_tourism(engine: Engine, content: str, revenue: float, period: str = "2016-05") -> str:
    outcome = record_submission(
        engine,
        make_record(content, period=period),
        facts_frame({("tourism_revenue_yuan", ZHANGGU): revenue, ("tourism_revenue_yuan", BAWANG): None}),
        totals_frame({"tourism_revenue_yuan": revenue}),
        [],
        DQ,
    )
    assert outcome.status == "loaded"
    return outcome.submission_id


# ------------------------------------------------------------------ setup and reference data
def test_ensure_warehouse_is_idempotent(warehouse_engine: Engine) -> None:
    before = read_reference(warehouse_engine)
    ensure_warehouse(warehouse_engine)  # the fixture already ran it once
    after = read_reference(warehouse_engine)
    for name in ("townships", "aliases", "helper_units", "pairings"):
        pd.testing.assert_frame_equal(getattr(before, name), getattr(after, name))
    with begin_write(warehouse_engine) as conn:
        assert load_reference(conn) == 0  # nothing left to write
    assert counts(warehouse_engine)["submission"] == 0
    with warehouse_engine.connect() as conn:
        for view in schema.VIEWS:
            conn.exec_driver_sql(f"SELECT * FROM {view}").all()


def test_reference_rows_present(warehouse_engine: Engine) -> None:
    ref = read_reference(warehouse_engine)
    assert len(ref.townships) == 21  # 15 of 2016–2019, 6 created by the 2019 reform
    assert len(ref.townships[ref.townships["valid_to"].isna()]) == 12  # the units of today
    assert len(ref.crosswalk) == 10
    assert ref.townships["township_code"].is_unique
    verified = ref.pairings[ref.pairings["verified"].astype(bool)]
    assert sorted(verified["township_code"]) == ["513323201", "513323204", "513323207", "513323213"]
    assert set(verified["source"]) == {"ART"}
    badi = ref.aliases[ref.aliases["alias"] == "巴底乡"].iloc[0]
    assert badi["valid_to"] == date(2012, 12, 31)
    assert badi["township_code"] == "513323101"
    # the database holds exactly what the CSVs say
    csv = reference_frames()
    for name in ("townships", "aliases", "helper_units", "pairings"):
        pd.testing.assert_frame_equal(getattr(csv, name), getattr(ref, name))
    with warehouse_engine.connect() as conn:
        indicators = conn.execute(select(func.count()).select_from(schema.ref_indicator)).scalar_one()
        revenue = (
            conn.execute(
                select(schema.ref_indicator).where(schema.ref_indicator.c.indicator == "tourism_revenue_yuan")
            )
            .mappings()
            .one()
        )
    assert indicators == sum(len(d.indicators) for d in load_declarations().values())
    assert (revenue["unit"], revenue["form_unit"]) == ("元", "万元")


# ------------------------------------------------------------------ loading
def test_loaded_submission_is_visible(warehouse_engine: Engine) -> None:
    sid = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    values = current_values(warehouse_engine)
    assert values["sid"].tolist() == [sid, sid]
    zhanggu = values[values["township_code"] == ZHANGGU].iloc[0]
    assert zhanggu["value"] == 1_250_000.0 and zhanggu["unit"] == "元"
    assert values[values["township_code"] == BAWANG]["value"].isna().all()  # NaN stored as NULL
    row = ledger(warehouse_engine, sid)
    assert row["status"] == "loaded" and row["facts_loaded"] == 2 and row["loaded_at"] is not None
    assert counts(warehouse_engine) == {
        "submission": 1,
        "fact_indicator_value": 2,
        "fact_form_total": 1,
        "submission_issue": 0,
        "dq_result": 1,
    }
    found = find_submission(warehouse_engine, "tourism", sha("may-v1"))
    assert found is not None and found["submission_id"] == sid
    assert find_submission(warehouse_engine, "tourism", sha("never-seen")) is None


def test_identical_file_is_a_duplicate(warehouse_engine: Engine) -> None:
    sid = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    before = counts(warehouse_engine)
    outcome = record_submission(
        warehouse_engine,
        make_record("may-v1"),
        facts_frame({("tourism_revenue_yuan", ZHANGGU): 9.0}),
        NO_TOTALS,
        [],
        [],
    )
    assert (outcome.status, outcome.duplicate_of, outcome.facts_loaded) == ("duplicate", sid, 0)
    assert counts(warehouse_engine) == before
    values = current_values(warehouse_engine)
    assert values.loc[values["township_code"] == ZHANGGU, "value"].tolist() == [1_250_000.0]


def test_new_version_supersedes_atomically(warehouse_engine: Engine) -> None:
    old = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    outcome = record_submission(
        warehouse_engine,
        make_record("may-v2"),
        facts_frame(
            {("tourism_revenue_yuan", ZHANGGU): 1_300_000.0, ("visitors_person_times", ZHANGGU): 900.0}
        ),
        NO_TOTALS,
        [],
        [],
    )
    new = outcome.submission_id
    assert (outcome.status, outcome.supersedes, outcome.facts_loaded) == ("loaded", old, 2)
    values = current_values(warehouse_engine)
    assert set(values["sid"]) == {new}
    assert values["value"].tolist() == [1_300_000.0, 900.0]
    with warehouse_engine.connect() as conn:
        kept = conn.execute(
            select(func.count()).where(schema.fact_indicator_value.c.submission_id == old)
        ).scalar_one()
    assert kept == 2  # every version is kept
    old_row, new_row = ledger(warehouse_engine, old), ledger(warehouse_engine, new)
    assert (old_row["status"], old_row["superseded_by"]) == ("superseded", new)
    assert (new_row["status"], new_row["supersedes"]) == ("loaded", old)
    current = current_submissions(warehouse_engine)
    assert current["submission_id"].tolist() == [new]
    status = submission_status_counts(warehouse_engine)
    assert dict(zip(status["status"], status["submissions"], strict=True)) == {"loaded": 1, "superseded": 1}
    # the superseded file arriving again is still a duplicate, not a resurrection
    again = record_submission(warehouse_engine, make_record("may-v1"), NO_FACTS, NO_TOTALS, [], [])
    assert (again.status, again.duplicate_of) == ("duplicate", old)
    assert set(current_values(warehouse_engine)["sid"]) == {new}


def test_rejected_submission_records_no_facts(warehouse_engine: Engine) -> None:
    current = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    problems: list[Issue] = [
        issue("TOWNSHIP_UNKNOWN", "第7行乡镇名称“章古镇”无法识别", sheet="Sheet1", row=7, column="A 乡(镇)"),
        issue(
            "VALUE_NOT_NUMBER",
            "第8行“旅游总收入”不是数字",
            sheet="Sheet1",
            row=8,
            column="D 旅游总收入(万元)",
        ),
    ]
    outcome = record_submission(
        warehouse_engine,
        make_record("may-bad", status="rejected"),
        facts_frame({("tourism_revenue_yuan", ZHANGGU): 1.0}),  # ignored: rejected files load no facts
        NO_TOTALS,
        problems,
        DQ,
    )
    assert (outcome.status, outcome.supersedes, outcome.facts_loaded) == ("rejected", None, 0)
    row = ledger(warehouse_engine, outcome.submission_id)
    assert row["status"] == "rejected" and row["loaded_at"] is None and row["facts_loaded"] == 0
    assert ledger(warehouse_engine, current)["status"] == "loaded"  # the current version stands
    with warehouse_engine.connect() as conn:
        issues = (
            conn.execute(select(schema.submission_issue).order_by(schema.submission_issue.c.seq))
            .mappings()
            .all()
        )
        facts = conn.execute(
            select(func.count()).where(schema.fact_indicator_value.c.submission_id == outcome.submission_id)
        ).scalar_one()
    assert facts == 0
    assert [(i["seq"], i["code"], i["row_number"], i["column_label"]) for i in issues] == [
        (1, "TOWNSHIP_UNKNOWN", 7, "A 乡(镇)"),
        (2, "VALUE_NOT_NUMBER", 8, "D 旅游总收入(万元)"),
    ]
    assert issues[0]["message_zh"] == "第7行乡镇名称“章古镇”无法识别"
    assert issues[0]["severity"] == "critical" and issues[0]["action"] == "reject"


def test_rejected_file_is_re_evaluated(warehouse_engine: Engine) -> None:
    first = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    bad = record_submission(
        warehouse_engine,
        make_record("may-v2", status="quarantined"),
        NO_FACTS,
        NO_TOTALS,
        [issue("COLUMN_UNKNOWN", "未知列“备注2”")],
        DQ,
    )
    assert bad.status == "quarantined"
    # the same bytes, judged again (e.g. after a declaration gained an alias), now load
    again = record_submission(
        warehouse_engine,
        make_record("may-v2"),
        facts_frame({("tourism_revenue_yuan", ZHANGGU): 1.0}),
        NO_TOTALS,
        [],
        [],
    )
    assert (again.status, again.supersedes, again.duplicate_of) == ("loaded", first, None)
    assert counts(warehouse_engine)["submission_issue"] == 0  # the quarantine's issues were replaced
    assert counts(warehouse_engine)["dq_result"] == 1  # first version's result only
    assert ledger(warehouse_engine, again.submission_id)["status"] == "loaded"


def test_failed_insert_rolls_back_everything(warehouse_engine: Engine) -> None:
    current = load_tourism(warehouse_engine, "may-v1", 1_250_000.0)
    before = counts(warehouse_engine)
    with pytest.raises(IntegrityError):
        record_submission(
            warehouse_engine,
            make_record("may-v2"),
            facts_frame({("tourism_revenue_yuan", ZHANGGU): 1.0, ("tourism_revenue_yuan", "513323999"): 2.0}),
            NO_TOTALS,
            [],
            [],
        )
    assert counts(warehouse_engine) == before
    assert find_submission(warehouse_engine, "tourism", sha("may-v2")) is None
    row = ledger(warehouse_engine, current)
    assert (row["status"], row["superseded_by"]) == ("loaded", None)  # the supersede was undone too
    assert set(current_values(warehouse_engine)["sid"]) == {current}


def test_record_rejects_inconsistent_input(warehouse_engine: Engine) -> None:
    with pytest.raises(ValueError, match="neither YYYY-MM nor YYYY"):
        record_submission(warehouse_engine, make_record("x", period="2016/05"), NO_FACTS, NO_TOTALS, [], [])
    with pytest.raises(ValueError, match="monthly"):
        record_submission(warehouse_engine, make_record("x", period="2016"), NO_FACTS, NO_TOTALS, [], [])
    with pytest.raises(ValueError, match="lacks columns"):
        record_submission(
            warehouse_engine, make_record("x"), pd.DataFrame({"indicator": ["a"]}), NO_TOTALS, [], []
        )
    assert counts(warehouse_engine)["submission"] == 0


def test_concurrent_identical_files_load_once(warehouse_engine: Engine) -> None:
    outcomes: list[str] = []
    errors: list[BaseException] = []

    def submit() -> None:
        try:
            outcome = record_submission(
                warehouse_engine,
                make_record("may-v1"),
                facts_frame({("tourism_revenue_yuan", ZHANGGU): 1.0}),
                NO_TOTALS,
                [],
                [],
            )
            outcomes.append(outcome.status)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(outcomes) == ["duplicate", "duplicate", "duplicate", "loaded"]
    assert counts(warehouse_engine)["fact_indicator_value"] == 1


# ------------------------------------------------------------------ marts
def test_refresh_marts(warehouse_engine: Engine) -> None:
    def poverty(year: str, rows: dict[str, tuple[float, float, float]]) -> None:
        facts: dict[tuple[str, str], float | None] = {}
        for township, (population, poor, income) in rows.items():
            facts[("agricultural_population_persons", township)] = population
            facts[("registered_poor_year_end_persons", township)] = poor
            facts[("net_income_per_capita_yuan", township)] = income
        record_submission(
            warehouse_engine,
            make_record(f"poverty-{year}", department="poverty", period=year),
            facts_frame(facts),
            NO_TOTALS,
            [],
            [],
        )

    poverty("2011", {ZHANGGU: (1000, 300, 4000), BAWANG: (3000, 750, 4200)})
    poverty("2016", {ZHANGGU: (1000, 100, 10000), BAWANG: (3000, 300, 12000)})
    load_tourism(warehouse_engine, "dec-2015", 7_000_000.0, period="2015-12")
    record_submission(
        warehouse_engine,
        make_record("jan-2016", period="2016-01"),
        facts_frame(
            {("tourism_revenue_yuan", ZHANGGU): 8_000_000.0, ("tourism_revenue_yuan", BAWANG): 2_000_000.0}
        ),
        NO_TOTALS,
        [],
        [],
    )

    assert refresh_marts(warehouse_engine) == 9
    assert refresh_marts(warehouse_engine) == 9  # replaces, never appends
    with warehouse_engine.connect() as conn:
        rows = conn.execute(select(schema.mart_county_kpi_yearly)).mappings().all()
    mart = {(r["kpi"], r["year"]): r for r in rows}
    assert len(mart) == 9

    def check(kpi: str, year: int, value: float, used: int, expected: int) -> None:
        row = mart[(kpi, year)]
        assert row["value"] == pytest.approx(value)
        assert (row["coverage_used"], row["coverage_expected"]) == (used, expected)
        assert row["coverage"] == pytest.approx(used / expected)

    check("net_income_per_capita_yuan", 2011, 4150.0, 2, 15)
    check("net_income_per_capita_yuan", 2016, 11500.0, 2, 15)
    check("net_income_multiple_of_2011", 2016, 11500 / 4150, 4, 30)
    check("net_income_cagr_since_2011_pct", 2016, ((11500 / 4150) ** 0.2 - 1) * 100, 4, 30)
    check("poverty_incidence_pct", 2011, 26.25, 2, 15)
    check("poverty_incidence_pct", 2016, 10.0, 2, 15)
    check("tourism_revenue_yuan", 2015, 7_000_000.0, 1, 180)
    check("tourism_revenue_yuan", 2016, 10_000_000.0, 2, 180)
    check("tourism_revenue_yoy_pct", 2016, (10 / 7 - 1) * 100, 3, 360)
    assert mart[("tourism_revenue_yuan", 2016)]["unit"] == "元"


# ------------------------------------------------------------------ engine
def test_sqlite_writers_take_the_lock_at_begin(sqlite_engine: Engine) -> None:
    database = sqlite_engine.url.database
    assert database is not None
    with sqlite_engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    other = sqlite3.connect(database, timeout=0, isolation_level=None)
    try:
        # no statement yet, but BEGIN IMMEDIATE already holds the write lock
        with begin_write(sqlite_engine), pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        with sqlite_engine.begin() as conn:  # readers begin deferred and block nobody
            conn.exec_driver_sql("SELECT 1").all()
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
    finally:
        other.close()
