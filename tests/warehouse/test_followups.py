"""Follow-ups: kept in step with the flags and the ledger, accepted / dismissed with an audit trail,
an accepted value staying accepted (and unflagged) across re-runs until it changes, quarantined
files closing when decided or superseded, and the ``duikou followups`` command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.helpers.ledger_helpers import TOWNSHIPS, record
from warehouse import schema
from warehouse.cross_returns import run_cross_checks
from warehouse.decisions import OperatorDecision, reject_submission
from warehouse.followups import FollowupError, accepted_values, decide, followup_id, sync_followups
from warehouse.load import DqFlag

CST = timezone(timedelta(hours=8))
A, B = TOWNSHIPS[0], TOWNSHIPS[1]
OUTLIER = "inpatient_person_times__outlier_mzscore"
INPATIENTS = "inpatient_person_times"


def _at(day: int, month: int = 9) -> datetime:
    return datetime(2017, month, day, 10, tzinfo=CST)


def _flag(value: float, accepted: bool = False) -> DqFlag:
    return DqFlag(indicator=INPATIENTS, township_code=A, check_id=OUTLIER, severity="warning", value=value,
                  reference_value=10.0, score=6.2, source_row=5, reason_zh=f"章谷镇住院人次{value:g}异常",
                  accepted=accepted)


def _health(engine: Engine, value: float, *, tag: str = "", accepted: bool = False, day: int = 8) -> str:
    """A health 2017-08 return whose 章谷镇 住院人次 a history check flagged (as the checks write it)."""
    return record(engine, "health", "2017-08", {INPATIENTS: {A: value, B: 9.0}}, _at(day), tag=tag,
                  flagged=[] if accepted else [(A, INPATIENTS)], dq_flags=[_flag(value, accepted)])


def _followup(engine: Engine, fid: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(schema.followup).where(schema.followup.c.followup_id == fid)).one()


def _decisions(engine: Engine, fid: str) -> list[Any]:
    d = schema.followup_decision
    with engine.connect() as conn:
        return conn.execute(select(d).where(d.c.followup_id == fid).order_by(d.c.seq)).all()


def _fact(engine: Engine, submission_id: str, code: str = A, indicator: str = INPATIENTS) -> bool:
    f = schema.fact_indicator_value
    with engine.connect() as conn:
        return bool(conn.execute(select(f.c.flagged).where(f.c.submission_id == submission_id,
                                                           f.c.township_code == code,
                                                           f.c.indicator == indicator)).scalar_one())


def _dq_accepted(engine: Engine, submission_id: str, check_id: str = OUTLIER) -> bool:
    flag = schema.dq_flag
    with engine.connect() as conn:
        return bool(conn.execute(select(flag.c.accepted).where(flag.c.submission_id == submission_id,
                                                               flag.c.check_id == check_id)).scalar_one())


VALUE_ID = followup_id("value", "health", "2017-08", A, INPATIENTS, OUTLIER)


def test_accepted_value_stays_accepted_until_it_changes(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    first = _health(engine, 40.0)
    assert sync_followups(engine).opened == 1
    opened = _followup(engine, VALUE_ID)
    assert (opened.kind, opened.status, opened.value, opened.submission_id) == ("value", "open", 40.0, first)
    assert _fact(engine, first)

    decide(engine, VALUE_ID[:7].lower(), "accept", "王丽", "8月流感暴发，住院人次属实")
    assert _followup(engine, VALUE_ID).status == "accepted"
    assert _dq_accepted(engine, first) and not _fact(engine, first)  # the same transaction
    assert not _fact(engine, first, B)  # untouched neighbours stay as they were
    with engine.connect() as conn:
        assert accepted_values(conn, "health", "2017-08") == {(A, INPATIENTS, OUTLIER): 40.0}

    for _ in range(2):  # nightly re-runs
        summary = sync_followups(engine)
        assert summary.reopened == 0 and _followup(engine, VALUE_ID).status == "accepted"
    restated = _health(engine, 40.0, tag="（修订）", accepted=True, day=12)  # same value: loads unflagged
    sync_followups(engine)
    assert _followup(engine, VALUE_ID).status == "accepted" and not _fact(engine, restated)

    changed = _health(engine, 55.0, tag="（再修订）", day=14)  # a different value: flagged again
    assert sync_followups(engine).reopened == 1
    reopened = _followup(engine, VALUE_ID)
    assert (reopened.status, reopened.value, reopened.closed_at) == ("open", 55.0, None)
    assert reopened.submission_id == changed and _fact(engine, changed)
    trail = _decisions(engine, VALUE_ID)
    assert [(d.decision, d.decided_by, d.value_at_decision) for d in trail] == [
        ("accept", "王丽", 40.0), ("reopen", "duikou", 55.0)]
    assert "40" in trail[1].note and "55" in trail[1].note


def test_dismiss_is_audited_keeps_the_flag_and_survives_reruns(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    first = _health(engine, 40.0)
    sync_followups(engine)
    before = datetime.now(UTC)
    view = decide(engine, VALUE_ID, "dismiss", "ops-lin", "县医院已说明，不再跟进")
    assert view.status == "dismissed" and view.closed_at is not None
    (decision,) = _decisions(engine, VALUE_ID)
    assert (decision.decision, decision.decided_by, decision.note, decision.value_at_decision) == (
        "dismiss", "ops-lin", "县医院已说明，不再跟进", 40.0)
    decided_at = decision.decided_at if decision.decided_at.tzinfo else decision.decided_at.replace(tzinfo=UTC)
    assert decided_at >= before - timedelta(seconds=5)
    assert _fact(engine, first) and not _dq_accepted(engine, first)  # dismissed is not vouched for
    with engine.connect() as conn:
        assert accepted_values(conn, "health", "2017-08") == {}
    _health(engine, 47.0, tag="（修订）", day=12)
    sync_followups(engine)
    assert _followup(engine, VALUE_ID).status == "dismissed"  # whatever the value

    fixed = record(engine, "health", "2017-08", {INPATIENTS: {A: 11.0, B: 9.0}}, _at(13))  # no check flags it
    assert not _fact(engine, fixed)
    assert sync_followups(engine).resolved == 1 and _followup(engine, VALUE_ID).status == "resolved"
    with pytest.raises(FollowupError, match="resolved"):
        decide(engine, VALUE_ID, "accept", "ops-lin", "late")


def test_decisions_are_refused_with_reasons(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    _health(engine, 40.0)
    sync_followups(engine)
    with pytest.raises(FollowupError, match="no follow-up 'F0000000000'"):
        decide(engine, "F0000000000", "accept", "ops", "x")
    with pytest.raises(FollowupError, match="too short"):
        decide(engine, "F12", "accept", "ops", "x")
    with pytest.raises(FollowupError, match="needs a note"):
        decide(engine, VALUE_ID, "accept", "ops", "  ")
    decide(engine, VALUE_ID, "accept", "ops", "ok")
    with pytest.raises(FollowupError, match="already accepted"):
        decide(engine, VALUE_ID, "accept", "ops", "again")
    assert len(_decisions(engine, VALUE_ID)) == 1


def test_cross_follow_up_accepted_stays_accepted_over_nightly_reruns(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    poverty = {"registered_poor_year_end_persons": {A: 1000.0}, "agricultural_population_persons": {A: 9000.0}}
    record(engine, "poverty", "2016", poverty, _at(20, 1))
    health = record(engine, "health", "2017-01", {"poor_population_persons": {A: 1100.0}}, _at(8, 2))
    run_cross_checks(engine)
    sync_followups(engine)
    check = "cross__health_poor_population_matches_register"
    fid = followup_id("cross", "health", "2017-01", A, "poor_population_persons", check)
    assert _followup(engine, fid).status == "open" and _fact(engine, health, A, "poor_population_persons")

    decide(engine, fid, "accept", "扶贫办", "1月新识别100人，登记册随后更新")
    for _ in range(2):  # the nightly: every check again, then the list
        run_cross_checks(engine)
        sync_followups(engine)
        assert _followup(engine, fid).status == "accepted"
        assert _dq_accepted(engine, health, check) and not _fact(engine, health, A, "poor_population_persons")

    changed = record(engine, "health", "2017-01", {"poor_population_persons": {A: 1200.0}}, _at(9, 2), tag="v2")
    run_cross_checks(engine)
    sync_followups(engine)
    assert _followup(engine, fid).status == "open" and _fact(engine, changed, A, "poor_population_persons")
    assert [d.decision for d in _decisions(engine, fid)] == ["accept", "reopen"]


def test_quarantined_files_close_when_decided_or_superseded(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    values = {"poor_population_persons": {A: 5.0}}
    held = record(engine, "health", "2017-03", values, _at(8, 4), status="quarantined")
    other = record(engine, "health", "2017-04", values, _at(8, 5), status="quarantined")
    assert sync_followups(engine).opened == 2
    fid = followup_id("submission", "health", "2017-03", None, None, f"quarantined__{held}")
    assert (_followup(engine, fid).kind, _followup(engine, fid).severity) == ("submission", "critical")
    with pytest.raises(FollowupError, match="duikou quarantine release"):
        decide(engine, fid, "accept", "ops", "fine")

    record(engine, "health", "2017-03", values, _at(10, 4), tag="更正")  # a correction loads: superseded
    reject_submission(engine, other, OperatorDecision("reject", "ops", "表格错误"))
    assert sync_followups(engine).resolved == 2
    assert _followup(engine, fid).status == "resolved"


# ---------------------------------------------------------------- command line


@pytest.fixture
def cli_warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    from duikou_settings import get_settings, reset_settings_cache
    from flows.warehouse_access import clear_cache, open_warehouse

    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    reset_settings_cache()
    clear_cache()
    engine = open_warehouse(get_settings())
    _health(engine, 40.0)
    sync_followups(engine)
    yield engine
    reset_settings_cache()
    clear_cache()


def test_cli_lists_accepts_and_refuses(cli_warehouse: Engine, capsys: pytest.CaptureFixture[str]) -> None:
    from flows.cli import main

    assert main(["followups", "list", "--status", "open", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert (item["followup_id"], item["kind"], item["township_name"]) == (VALUE_ID, "value", "章谷镇")

    assert main(["followups", "accept", "FFFFFFFFFF", "--note", "x", "--by", "ops"]) == 2
    assert "no follow-up 'FFFFFFFFFF'" in capsys.readouterr().err
    assert main(["followups", "dismiss", VALUE_ID, "--note", "   ", "--by", "ops"]) == 2
    assert "--note must say why" in capsys.readouterr().err
    with pytest.raises(SystemExit) as missing_note:
        main(["followups", "accept", VALUE_ID])
    assert missing_note.value.code == 2 and "--note" in capsys.readouterr().err

    assert main(["followups", "accept", VALUE_ID, "--note", "属实", "--by", "王丽"]) == 0
    out = capsys.readouterr().out
    assert VALUE_ID in out and "accepted" in out and "王丽" in out
    assert main(["followups", "list", "--status", "open"]) == 0
    assert "no follow-ups with status open" in capsys.readouterr().out
    assert main(["followups", "list", "--department", "health"]) == 0
    assert "accepted" in capsys.readouterr().out
