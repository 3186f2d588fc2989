"""Quarantine operations: list, release, reject — an operator's decision, recorded with who and why.

Warehouse-level tests (the decision SQL: status change + decision row in one transaction, the
loader's supersession) run on SQLite and PostgreSQL; the ``duikou quarantine`` commands run the
real ``quarantine-decision`` flow under Prefect's test harness, on SQLite and — when
``DUIKOU_TEST_POSTGRES_URL`` is set — on PostgreSQL too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from duikou_settings import get_settings, reset_settings_cache
from expectations.declaration import load_declarations
from expectations.issues import issue
from flows.warehouse_access import clear_cache
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from warehouse import schema
from warehouse.decisions import (
    DecisionError,
    NewerVersionLoaded,
    OperatorDecision,
    decisions_of,
    quarantined_submissions,
    reject_submission,
    resolve_submission,
)
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission

ZHANGGU = "513323100"
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])
NO_FACTS = pd.DataFrame(columns=["indicator", "township_code", "value", "flagged", "source_row"])
RULE = "poverty_poor_le_population"


# ----------------------------------------------------------------- warehouse level (both backends)


def _record(sha256: str, status: str, *, received: datetime | None = None) -> SubmissionRecord:
    return SubmissionRecord(
        submission_id=submission_key("tourism", sha256),
        sha256=sha256,
        department="tourism",
        period="2016-05",
        original_name=f"{sha256[:6]}.xlsx",
        received_at=received or datetime(2016, 6, 3, 9, 30, tzinfo=UTC),
        status=status,  # type: ignore[arg-type]
        rows_read=1,
        rows_loaded=1 if status == "loaded" else 0,
        rows_rejected=0 if status == "loaded" else 1,
        archive_path=f"quarantine/tourism/2016-05/{sha256[:16]}.xlsx",
        receipt_path=f"receipts/{sha256[:16]}.json",
    )


def _facts(value: float) -> pd.DataFrame:
    return pd.DataFrame([{"indicator": "tourism_revenue_yuan", "township_code": ZHANGGU, "value": value,
                          "flagged": False, "source_row": 5}])


def _quarantine(engine: Engine, sha256: str, received: datetime | None = None) -> str:
    outcome = record_submission(
        engine, _record(sha256, "quarantined", received=received), NO_FACTS, NO_TOTALS,
        [issue("TOTAL_MISMATCH", "合计行为10，各乡镇之和为12"), issue("COLUMN_UNKNOWN", "未知列“备注2”")], [],
    )
    assert outcome.status == "quarantined"
    return outcome.submission_id


def _release(engine: Engine, sha256: str, value: float, who: str = "卓玛", why: str = "核实无误",
             force: bool = False) -> Any:
    return record_submission(engine, _record(sha256, "loaded"), _facts(value), NO_TOTALS,
                             [issue("TOTAL_MISMATCH", "合计行为10，各乡镇之和为12")], [],
                             decision=OperatorDecision("release", who, why, force=force))


def _status(engine: Engine, submission_id: str) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(schema.submission.c.status)
                                .where(schema.submission.c.submission_id == submission_id)).scalar_one())


def _count(engine: Engine, table: Any, submission_id: str | None = None) -> int:
    stmt = select(func.count()).select_from(table)
    if submission_id is not None:
        stmt = stmt.where(table.c.submission_id == submission_id)
    with engine.connect() as conn:
        return int(conn.execute(stmt).scalar_one())


def test_release_supersedes_the_current_version_and_records_the_decision(warehouse_engine: Engine) -> None:
    current = record_submission(warehouse_engine, _record("a" * 64, "loaded"), _facts(100.0), NO_TOTALS, [], [])
    held = _quarantine(warehouse_engine, "b" * 64)
    outcome = _release(warehouse_engine, "b" * 64, 250.0)
    assert (outcome.status, outcome.supersedes) == ("loaded", current.submission_id)
    assert _status(warehouse_engine, current.submission_id) == "superseded"
    assert _status(warehouse_engine, held) == "loaded"
    with warehouse_engine.connect() as conn:
        shown = conn.execute(text("SELECT submission_id, value FROM v_indicator_value")).all()
        loaded = conn.execute(text("SELECT COUNT(*) FROM submission WHERE status = 'loaded'")).scalar_one()
    assert [tuple(r) for r in shown] == [(held, 250.0)] and loaded == 1
    [row] = decisions_of(warehouse_engine, held)
    assert (row["seq"], row["decision"], row["decided_by"], row["reason"], row["resulting_status"]) == (
        1, "release", "卓玛", "核实无误", "loaded")
    assert row["decided_at"].tzinfo is not None
    assert _count(warehouse_engine, schema.submission_issue, held) == 1  # the released load's issues


def test_a_release_never_puts_older_data_over_a_later_loaded_version(warehouse_engine: Engine) -> None:
    """Issue 15: releasing an old quarantined file replaced the department's later, loaded correction."""
    held = _quarantine(warehouse_engine, "6" * 64, datetime(2016, 6, 3, tzinfo=UTC))
    later = record_submission(warehouse_engine, _record("7" * 64, "loaded", received=datetime(2016, 6, 9, tzinfo=UTC)),
                              _facts(6695.0), NO_TOTALS, [], []).submission_id
    [listed] = quarantined_submissions(warehouse_engine)
    assert listed.later_version is not None and listed.later_version.submission_id == later
    assert quarantined_submissions(warehouse_engine, include_overtaken=False) == []
    with pytest.raises(NewerVersionLoaded, match=later) as refused:
        _release(warehouse_engine, "6" * 64, 32548.0)
    assert refused.value.later.submission_id == later
    assert (_status(warehouse_engine, held), _status(warehouse_engine, later)) == ("quarantined", "loaded")
    assert _count(warehouse_engine, schema.submission_decision) == 0
    # a re-evaluation of the same old file that would now load is refused the same way
    with pytest.raises(NewerVersionLoaded):
        record_submission(warehouse_engine, _record("6" * 64, "loaded"), _facts(1.0), NO_TOTALS, [], [])
    with warehouse_engine.connect() as conn:
        assert conn.execute(text("SELECT value FROM v_indicator_value")).scalar_one() == 6695.0

    outcome = _release(warehouse_engine, "6" * 64, 32548.0, who="卓玛", why="乡里确认旧表为准", force=True)
    assert (outcome.status, outcome.supersedes) == ("loaded", later)
    [row] = decisions_of(warehouse_engine, held)
    assert (row["decision"], row["reason"], row["overrode_version"]) == ("release", "乡里确认旧表为准", later)
    with warehouse_engine.connect() as conn:
        restated = conn.execute(text("SELECT old_submission_id, new_submission_id, old_value, new_value "
                                     "FROM v_restatement")).all()
    assert [tuple(r) for r in restated] == [(later, held, 6695.0, 32548.0)]


def test_a_release_over_an_older_loaded_version_needs_no_force(warehouse_engine: Engine) -> None:
    record_submission(warehouse_engine, _record("8" * 64, "loaded", received=datetime(2016, 6, 1, tzinfo=UTC)),
                      _facts(1.0), NO_TOTALS, [], [])
    held = _quarantine(warehouse_engine, "9" * 64, datetime(2016, 6, 5, tzinfo=UTC))
    assert quarantined_submissions(warehouse_engine)[0].later_version is None
    assert _release(warehouse_engine, "9" * 64, 2.0).status == "loaded"
    assert decisions_of(warehouse_engine, held)[0]["overrode_version"] is None


def test_reject_changes_status_and_records_the_decision_in_one_go(warehouse_engine: Engine) -> None:
    held = _quarantine(warehouse_engine, "c" * 64)
    seq = reject_submission(warehouse_engine, held, OperatorDecision("reject", "ops", "表格口径错误，请重报"))
    assert seq == 1 and _status(warehouse_engine, held) == "rejected"
    assert [(d["decision"], d["resulting_status"]) for d in decisions_of(warehouse_engine, held)] == [
        ("reject", "rejected")]
    assert _count(warehouse_engine, schema.fact_indicator_value) == 0
    with pytest.raises(DecisionError, match="rejected, not quarantined"):
        reject_submission(warehouse_engine, held, OperatorDecision("reject", "ops", "again"))
    with pytest.raises(DecisionError, match="rejected, not quarantined"):
        _release(warehouse_engine, "c" * 64, 1.0)
    assert len(decisions_of(warehouse_engine, held)) == 1 and _status(warehouse_engine, held) == "rejected"


def test_a_release_that_is_not_due_writes_nothing(warehouse_engine: Engine) -> None:
    record_submission(warehouse_engine, _record("d" * 64, "loaded"), _facts(1.0), NO_TOTALS, [], [])
    with pytest.raises(DecisionError, match="loaded, not quarantined"):  # not a duplicate outcome
        _release(warehouse_engine, "d" * 64, 2.0)
    with pytest.raises(DecisionError, match="no submission"):
        _release(warehouse_engine, "e" * 64, 2.0)
    assert _count(warehouse_engine, schema.submission_decision) == 0
    assert _count(warehouse_engine, schema.submission) == 1
    with pytest.raises(ValueError, match="must release"):
        record_submission(warehouse_engine, _record("f" * 64, "quarantined"), NO_FACTS, NO_TOTALS, [], [],
                          decision=OperatorDecision("release", "ops", "x"))


def test_decision_rows_outlive_a_re_evaluation_of_the_same_file(warehouse_engine: Engine) -> None:
    """The ledger row is rewritten in place, so its audit trail (a foreign key to it) stays."""
    held = _quarantine(warehouse_engine, "1" * 64)
    reject_submission(warehouse_engine, held, OperatorDecision("reject", "ops", "请重报"))
    _quarantine(warehouse_engine, "1" * 64)  # the identical file received again: judged again
    assert _status(warehouse_engine, held) == "quarantined"
    _release(warehouse_engine, "1" * 64, 5.0, who="ops2", why="规则已修订")
    assert [(d["seq"], d["decision"], d["decided_by"]) for d in decisions_of(warehouse_engine, held)] == [
        (1, "reject", "ops"), (2, "release", "ops2")]


def test_a_decision_needs_who_and_why(warehouse_engine: Engine) -> None:
    for by, reason in (("ops", "  "), (" ", "ok")):
        with pytest.raises(ValueError):
            OperatorDecision("release", by, reason)
    with pytest.raises(ValueError):
        OperatorDecision("approve", "ops", "ok")  # type: ignore[arg-type]
    held = _quarantine(warehouse_engine, "2" * 64)
    row = {"submission_id": held, "seq": 1, "decision": "reject", "decided_by": "ops",
           "decided_at": datetime.now(UTC), "reason": " ", "resulting_status": "rejected"}
    for bad in ({"reason": " "}, {"decided_by": ""}, {"resulting_status": "loaded"}, {"decision": "approve"}):
        with pytest.raises(IntegrityError), warehouse_engine.begin() as conn:
            conn.execute(insert(schema.submission_decision).values({**row, "reason": "ok", **bad}))


def test_ids_resolve_by_unique_prefix(warehouse_engine: Engine) -> None:
    # two files whose tourism submission ids share their first 6 hex digits (617478fb…, 617478e8…)
    first = _quarantine(warehouse_engine, f"{9096:064x}")
    _quarantine(warehouse_engine, f"{9840:064x}")
    assert first == "617478fba258e09d"
    assert resolve_submission(warehouse_engine, "617478FB")["submission_id"] == first
    assert resolve_submission(warehouse_engine, first)["submission_id"] == first
    with pytest.raises(DecisionError, match="ambiguous"):
        resolve_submission(warehouse_engine, "617478")
    with pytest.raises(DecisionError, match="6 to 16"):
        resolve_submission(warehouse_engine, "abcde")
    with pytest.raises(DecisionError, match="6 to 16"):
        resolve_submission(warehouse_engine, "abcde%")
    with pytest.raises(DecisionError, match="no submission"):
        resolve_submission(warehouse_engine, "012345")


def test_quarantined_submissions_newest_first_with_their_critical_issues(warehouse_engine: Engine) -> None:
    older = _quarantine(warehouse_engine, "3" * 64, datetime(2016, 6, 1, tzinfo=UTC))
    newer = _quarantine(warehouse_engine, "4" * 64, datetime(2016, 6, 9, tzinfo=UTC))
    record_submission(warehouse_engine, _record("5" * 64, "loaded"), _facts(1.0), NO_TOTALS, [], [])
    listed = quarantined_submissions(warehouse_engine)
    assert [q.submission_id for q in listed] == [newer, older]
    assert listed[0].issue_codes == ("TOTAL_MISMATCH", "COLUMN_UNKNOWN")
    assert listed[0].first_message == "合计行为10，各乡镇之和为12"
    assert listed[0].received_at == datetime(2016, 6, 9, tzinfo=UTC)
    assert listed[0].to_dict()["received_at"] == "2016-06-09T00:00:00+00:00"


# ----------------------------------------------------------------- the commands, through the flow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data dir; the warehouse in it (SQLite) or in a fresh PostgreSQL schema."""
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    if request.param == "postgres":
        engine: Engine = request.getfixturevalue("postgres_engine")
        with engine.connect() as conn:
            schema_name = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = engine.url.update_query_dict({"options": f"-csearch_path={schema_name}"})
        monkeypatch.setenv("DUIKOU_WAREHOUSE_URL", url.render_as_string(hide_password=False))
    reset_settings_cache()
    clear_cache()
    yield tmp_path / "data"
    reset_settings_cache()
    clear_cache()
    if request.param == "postgres":  # the commands did use PostgreSQL, not a stray SQLite file
        assert _count(engine, schema.submission) > 0
        assert not (tmp_path / "data" / "warehouse.sqlite").exists()


def _poverty(tmp_path: Path, name: str, *, too_many_poor: bool = False, **kwargs: Any) -> Path:
    """The 2016 poverty return; ``too_many_poor``: one township's registered poor exceed its
    agricultural population (critical, action quarantine)."""
    rows = demo_values(2017)[("poverty", "2016")].copy()
    if too_many_poor:
        rows.loc[0, "registered_poor_year_end_persons"] = rows.loc[0, "agricultural_population_persons"] + 10
    return write_form(tmp_path / name, load_declarations()["poverty"], "2016", rows, **kwargs)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from flows.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _ingest(capsys: pytest.CaptureFixture[str], path: Path) -> dict[str, Any]:
    _, out, _ = _run(capsys, "ingest", str(path), "--department", "poverty", "--period", "2016", "--json")
    receipt: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return receipt


def _engine() -> Engine:
    from flows.warehouse_access import open_warehouse

    return open_warehouse(get_settings())


def _ledger(submission_id: str) -> dict[str, Any]:
    with _engine().connect() as conn:
        row = conn.execute(select(schema.submission).where(schema.submission.c.submission_id == submission_id))
        return dict(row.mappings().one())


def _current_poverty() -> list[tuple[str, int]]:
    with _engine().connect() as conn:
        rows = conn.execute(text("SELECT submission_id, COUNT(*) FROM v_indicator_value "
                                 "WHERE department = 'poverty' AND period = '2016' GROUP BY submission_id")).all()
    return [(r[0], int(r[1])) for r in rows]



@pytest.mark.flow
def test_list_then_release_supersedes_and_rewrites_the_receipt(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _ingest(capsys, _poverty(tmp_path, "v1.xlsx"))
    held = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", too_many_poor=True))
    assert (good["status"], held["status"]) == ("loaded", "quarantined")
    sid = held["submission_id"]
    kept = data_dir / held["stored_as"]
    assert kept.is_file() and held["stored_as"].startswith("quarantine/poverty/2016/")

    code, out, _ = _run(capsys, "quarantine", "list", "--json")
    [item] = json.loads(out)
    assert code == 0 and item["submission_id"] == sid and item["original_name"] == "v2.xlsx"
    assert (item["department"], item["period"], item["issue_codes"]) == ("poverty", "2016", ["RULE_FAILED"])
    assert "建档立卡贫困人口大于农业户籍人口" in item["first_message"]
    code, out, _ = _run(capsys, "quarantine", "list")
    assert code == 0 and sid in out and "RULE_FAILED" in out

    code, out, _ = _run(capsys, "quarantine", "release", sid[:8], "--by", "卓玛", "--reason",
                        "乡里核实: 含外来务工贫困人口", "--json")
    receipt = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and receipt["status"] == "loaded" and receipt["supersedes"] == good["submission_id"]
    assert receipt["decision"]["decided_by"] == "卓玛"
    assert receipt["decision"]["reason"] == "乡里核实: 含外来务工贫困人口"
    assert receipt["decision"]["overridden_issues"] == ["RULE_FAILED"]
    assert receipt["counts"]["rows_loaded"] == 15 and receipt["counts"]["rows_rejected"] == 0
    assert (data_dir / receipt["correction_workbook"]).is_file()  # the problems stay marked for the department

    ledger = _ledger(sid)
    assert ledger["status"] == "loaded" and ledger["supersedes"] == good["submission_id"]
    assert _ledger(good["submission_id"])["status"] == "superseded"
    assert _current_poverty() == [(sid, receipt["counts"]["facts_loaded"])]
    # the file moved to the archive; the ledger and both receipts say where
    assert ledger["archive_path"] == receipt["stored_as"] and receipt["stored_as"].startswith("archive/")
    archived = data_dir / receipt["stored_as"]
    assert archived.is_file() and not kept.exists()
    assert not kept.with_name(kept.name + ".receipt.json").exists()
    for path in (data_dir / ledger["receipt_path"], archived.with_name(archived.name + ".receipt.json")):
        assert json.loads(path.read_text(encoding="utf-8"))["decision"]["decided_by"] == "卓玛"
    [decision] = decisions_of(_engine(), sid)
    assert (decision["decision"], decision["decided_by"], decision["resulting_status"]) == ("release", "卓玛", "loaded")
    assert decision["decided_at"] == datetime.fromisoformat(receipt["decision"]["decided_at"])
    with _engine().connect() as conn:
        flagged = conn.execute(text("SELECT COUNT(*) FROM v_indicator_value WHERE submission_id = :s AND flagged"),
                               {"s": sid}).scalar_one()
    assert flagged > 0  # the township that failed the quarantine rule is loaded, flagged

    code, out, _ = _run(capsys, "quarantine", "list", "--json")
    assert json.loads(out) == []
    code, _, err = _run(capsys, "quarantine", "release", sid, "--reason", "again")
    assert code == 2 and "loaded, not quarantined" in err
    assert len(decisions_of(_engine(), sid)) == 1


@pytest.mark.flow
def test_reject_loads_nothing_and_records_the_operator(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("flows.operator_identity.getpass.getuser", lambda: "ops-user")
    held = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", too_many_poor=True))
    sid = held["submission_id"]
    code, out, _ = _run(capsys, "quarantine", "reject", sid, "--reason", "请核实后重报")
    assert code == 0 and "ops-user" in out
    ledger = _ledger(sid)
    assert ledger["status"] == "rejected" and _current_poverty() == []
    assert (data_dir / ledger["archive_path"]).is_file()  # the file stays in quarantine/
    receipt = json.loads((data_dir / ledger["receipt_path"]).read_text(encoding="utf-8"))
    beside = data_dir / (ledger["archive_path"] + ".receipt.json")
    assert json.loads(beside.read_text(encoding="utf-8")) == receipt
    assert receipt["status"] == "rejected"
    assert receipt["decision"] | {"decided_at": None} == {
        "decision": "reject", "decided_by": "ops-user", "reason": "请核实后重报", "decided_at": None,
        "previous_status": "quarantined"}
    assert [i["code"] for i in receipt["issues"] if i["severity"] == "critical"] == ["RULE_FAILED"]
    [decision] = decisions_of(_engine(), sid)
    assert (decision["decision"], decision["decided_by"], decision["reason"]) == ("reject", "ops-user", "请核实后重报")
    code, _, err = _run(capsys, "quarantine", "reject", sid, "--reason", "again")
    assert code == 2 and "rejected, not quarantined" in err


@pytest.mark.flow
def test_a_file_that_now_fails_a_reject_rule_is_not_released(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Quarantined under an older rule set (simulated by setting the status), the file read again
    has a stale title (PERIOD_MISMATCH, action reject): no operator may release that."""
    good = _ingest(capsys, _poverty(tmp_path, "v1.xlsx"))
    bad = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", too_many_poor=True, title_period="2015"))
    assert bad["status"] == "rejected"
    sid = bad["submission_id"]
    with _engine().begin() as conn:
        conn.execute(update(schema.submission).where(schema.submission.c.submission_id == sid)
                     .values(status="quarantined"))
    code, _, err = _run(capsys, "quarantine", "release", sid, "--by", "ops", "--reason", "看着没问题")
    assert code == 1 and "PERIOD_MISMATCH" in err and "cannot be released" in err
    assert _ledger(sid)["status"] == "quarantined" and decisions_of(_engine(), sid) == []
    assert _current_poverty() == [(good["submission_id"], _current_poverty()[0][1])]
    assert _ledger(good["submission_id"])["status"] == "loaded"


@pytest.mark.flow
def test_a_kept_file_that_changed_or_vanished_is_not_released(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    held = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", too_many_poor=True))
    sid, kept = held["submission_id"], data_dir / held["stored_as"]
    kept.write_bytes(kept.read_bytes() + b"\0")
    code, _, err = _run(capsys, "quarantine", "release", sid, "--by", "ops", "--reason", "ok")
    assert code == 1 and "sha256 differs" in err
    kept.unlink()
    code, _, err = _run(capsys, "quarantine", "release", sid, "--by", "ops", "--reason", "ok")
    assert code == 1 and "missing" in err
    assert _ledger(sid)["status"] == "quarantined" and decisions_of(_engine(), sid) == []


@pytest.mark.flow
def test_usage_errors_exit_2(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _ingest(capsys, _poverty(tmp_path, "v1.xlsx"))
    held = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", too_many_poor=True))
    for argv, needle in (
        (("quarantine", "release", good["submission_id"][:6], "--reason", "x"), "loaded, not quarantined"),
        (("quarantine", "release", "12345", "--reason", "x"), "hex digits"),
        (("quarantine", "reject", "0123456789", "--reason", "x"), "no submission"),
        (("quarantine", "reject", held["submission_id"], "--reason", "  "), "--reason"),
        (("quarantine", "reject", held["submission_id"], "--by", " ", "--reason", "x"), "--by"),
    ):
        code, _, err = _run(capsys, *argv)
        assert code == 2 and needle in err, (argv, err)
    for argv in (("quarantine",), ("quarantine", "release", held["submission_id"])):  # no --reason
        with pytest.raises(SystemExit) as exc:
            _run(capsys, *argv)
        assert exc.value.code == 2
    assert _ledger(held["submission_id"])["status"] == "quarantined"
    # the flow itself re-checks under the partition lock, and the partition must be the ledger's
    from flows.quarantine import quarantine_decision

    with pytest.raises(DecisionError, match="loaded, not quarantined"):
        quarantine_decision(good["submission_id"], "poverty", "2016", "release", "ops", "x")
    with pytest.raises(DecisionError, match="not poverty 2015"):
        quarantine_decision(held["submission_id"], "poverty", "2015", "reject", "ops", "x")
    assert _ledger(held["submission_id"])["status"] == "quarantined"
    assert decisions_of(_engine(), held["submission_id"]) == []


@pytest.mark.flow
def test_release_over_a_later_correction_is_refused_unless_forced(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 15: an old flawed file released over the department's later, loaded correction."""
    import os

    flawed = _poverty(tmp_path, "v1-flawed.xlsx", too_many_poor=True)
    os.utime(flawed, (1_700_000_000, 1_700_000_000))  # received (its file time) before the correction
    held = _ingest(capsys, flawed)
    fixed = _ingest(capsys, _poverty(tmp_path, "v2-corrected.xlsx"))
    assert (held["status"], fixed["status"]) == ("quarantined", "loaded")
    sid, later = held["submission_id"], fixed["submission_id"]

    code, out, _ = _run(capsys, "quarantine", "list", "--json")
    assert code == 0 and json.loads(out) == []  # hidden by default: its period has a later loaded version
    code, out, _ = _run(capsys, "quarantine", "list")
    assert "--all" in out and sid not in out
    code, out, _ = _run(capsys, "quarantine", "list", "--all", "--json")
    [item] = json.loads(out)
    assert item["submission_id"] == sid and item["later_version"]["submission_id"] == later

    code, _, err = _run(capsys, "quarantine", "release", sid, "--by", "卓玛", "--reason", "核实无误")
    assert code == 1 and later in err and "--force" in err
    assert _ledger(sid)["status"] == "quarantined" and _ledger(later)["status"] == "loaded"
    assert decisions_of(_engine(), sid) == [] and [s for s, _ in _current_poverty()] == [later]

    code, out, _ = _run(capsys, "quarantine", "release", sid, "--by", "卓玛", "--force",
                        "--reason", "乡里确认以旧表为准", "--json")
    receipt = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and receipt["status"] == "loaded" and receipt["supersedes"] == later
    assert receipt["decision"]["forced"] is True
    assert receipt["decision"]["overrode_version"]["submission_id"] == later
    [decision] = decisions_of(_engine(), sid)
    assert (decision["reason"], decision["overrode_version"]) == ("乡里确认以旧表为准", later)
    with _engine().connect() as conn:
        restated = conn.execute(text("SELECT DISTINCT old_submission_id, new_submission_id FROM v_restatement "
                                     "WHERE department = 'poverty'")).all()
    assert [tuple(r) for r in restated] == [(later, sid)]


@pytest.mark.flow
def test_an_old_file_received_again_is_held_not_loaded_over_a_later_version(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-running an old file the ledger holds as rejected that would now load (a rule since relaxed,
    simulated by setting its status) while a later version is loaded: quarantined, NEWER_VERSION_LOADED."""
    import os

    old = _poverty(tmp_path, "v1.xlsx")
    os.utime(old, (1_700_000_000, 1_700_000_000))
    first = _ingest(capsys, old)["submission_id"]
    later = _ingest(capsys, _poverty(tmp_path, "v2.xlsx", total_position="top"))
    assert later["status"] == "loaded" and later["supersedes"] == first
    with _engine().begin() as conn:
        conn.execute(update(schema.submission).where(schema.submission.c.submission_id == first)
                     .values(status="rejected"))
    again = _ingest(capsys, old)
    assert (again["submission_id"], again["status"]) == (first, "quarantined")
    assert [i["code"] for i in again["issues"] if i["severity"] == "critical"] == ["NEWER_VERSION_LOADED"]
    assert later["submission_id"] in next(i["message"] for i in again["issues"] if i["code"] == "NEWER_VERSION_LOADED")
    assert [s for s, _ in _current_poverty()] == [later["submission_id"]]
