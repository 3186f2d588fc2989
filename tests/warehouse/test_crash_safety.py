"""A loader killed with SIGKILL at a chosen point leaves the warehouse as if it never ran.

A real child process (``tests/helpers/loader_process.py``) loads a 40 000-fact submission (4 chunks of
the bulk path) and stops at a pause point chosen through ``DUIKOU_TEST_PAUSE_AT``:

* ``mid_insert`` — half the facts written (PostgreSQL: inside a running ``COPY``; SQLite: after
  two ``executemany`` chunks), the ledger row and the supersede step already done;
* ``before_commit`` — everything written, the commit not yet sent.

The test then sends SIGKILL — no exception, no ``finally``, no rollback from the client — and
checks what a reader sees afterwards. On PostgreSQL it first waits until the server has noticed
the dead client (its backend is gone from ``pg_stat_activity``), since that is when the server
rolls the transaction back. SQLite rolls back by recovery: the uncommitted WAL frames are
ignored by the next reader.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, select

from tests.helpers.loader_process import (
    DEPARTMENT,
    NO_TOTALS,
    PERIOD,
    TOWNSHIPS,
    Child,
    backend_alive,
    copy_progress,
    current_facts,
    expected_current,
    fact_count,
    facts_for,
    make_record,
    normalised,
    partition_ledger,
    seed_townships,
    sha,
    spawn,
    stored_facts,
    submission_id,
    wait_paused,
    wait_until,
)
from warehouse import schema
from warehouse.load import current_version, find_submission, record_submission

POINTS = ("mid_insert", "before_commit")
FACTS = TOWNSHIPS * 10


@pytest.fixture
def engine(warehouse_engine: Engine) -> Engine:
    seed_townships(warehouse_engine)
    return warehouse_engine


def load_in_process(engine: Engine, content: str) -> str:
    outcome = record_submission(engine, make_record(content), facts_for(content), NO_TOTALS, [], [])
    assert outcome.status == "loaded" and outcome.facts_loaded == FACTS
    return outcome.submission_id


def kill_at(engine: Engine, workdir: Path, content: str, point: str) -> None:
    """Run a loader of ``content`` until ``point``, SIGKILL it, wait until the database knows."""
    child: Child = spawn(engine, workdir, content, content, pause_at=point)
    try:
        info = wait_paused(workdir, content, child)
        assert info["point"] == point and info["pid"] == child.process.pid
        if point == "mid_insert":
            assert 0 < info["rows_written"] < info["rows_total"] == FACTS
        backend = info["backend_pid"]
        if engine.dialect.name == "postgresql" and point == "mid_insert":
            # the server is inside the COPY and has taken some of the rows
            wait_until(lambda: (copy_progress(engine, backend) or 0) > 0, "the server reports COPY progress")
            assert (copy_progress(engine, backend) or 0) < FACTS
        child.kill()
    finally:
        child.stop()
    if engine.dialect.name == "postgresql":
        # the server rolls back when it notices the dead client: wait for that, then look
        wait_until(lambda: not backend_alive(engine, backend), "the killed loader's backend is gone")


def assert_consistent_file(engine: Engine) -> None:
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar_one() == "ok"
            assert conn.exec_driver_sql("PRAGMA foreign_key_check").all() == []


def table_counts(engine: Engine) -> dict[str, int]:
    tables = (schema.submission, schema.fact_indicator_value, schema.fact_form_total, schema.submission_issue)
    with engine.connect() as conn:
        return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}


@pytest.mark.parametrize("point", POINTS)
def test_killed_first_load_leaves_nothing(engine: Engine, tmp_path: Path, point: str) -> None:
    kill_at(engine, tmp_path, "first-v1", point)

    assert_consistent_file(engine)
    assert find_submission(engine, DEPARTMENT, sha("first-v1")) is None
    assert current_version(engine, DEPARTMENT, PERIOD) is None
    assert table_counts(engine) == {
        "submission": 0,
        "fact_indicator_value": 0,
        "fact_form_total": 0,
        "submission_issue": 0,
    }
    assert current_facts(engine).empty

    # the same file again: a first load like any other, not a duplicate of the dead attempt
    sid = load_in_process(engine, "first-v1")
    ledger = partition_ledger(engine)
    assert list(ledger) == [sid]
    assert (ledger[sid]["status"], ledger[sid]["supersedes"], ledger[sid]["facts_loaded"]) == ("loaded", None, FACTS)
    pd.testing.assert_frame_equal(stored_facts(engine, sid), normalised(facts_for("first-v1")))


@pytest.mark.parametrize("point", POINTS)
def test_killed_replacement_keeps_previous_version(engine: Engine, tmp_path: Path, point: str) -> None:
    old = load_in_process(engine, "repl-v1")
    old_row = partition_ledger(engine)[old]
    old_facts = stored_facts(engine, old)
    pd.testing.assert_frame_equal(old_facts, normalised(facts_for("repl-v1")))

    kill_at(engine, tmp_path, "repl-v2", point)

    assert_consistent_file(engine)
    new = submission_id("repl-v2")
    # the previous version is intact and still current: same ledger row, same facts
    assert partition_ledger(engine) == {old: old_row}
    assert old_row["status"] == "loaded" and old_row["superseded_by"] is None
    assert current_version(engine, DEPARTMENT, PERIOD) == old
    pd.testing.assert_frame_equal(stored_facts(engine, old), old_facts)
    assert fact_count(engine, new) == 0 and fact_count(engine) == FACTS
    # what analysts see: exactly the old version, every fact of it (no mixture, no gap)
    visible = current_facts(engine)
    assert set(visible["sid"]) == {old} and len(visible) == FACTS
    pd.testing.assert_frame_equal(visible.drop(columns="sid"), old_facts.drop(columns="source_row"))

    # running the replacement again: exactly one current version, and the ledger says who replaced whom
    outcome = record_submission(engine, make_record("repl-v2"), facts_for("repl-v2"), NO_TOTALS, [], [])
    assert (outcome.status, outcome.supersedes, outcome.facts_loaded) == ("loaded", old, FACTS)
    ledger = partition_ledger(engine)
    assert set(ledger) == {old, new}
    assert (ledger[old]["status"], ledger[old]["superseded_by"]) == ("superseded", new)
    assert (ledger[new]["status"], ledger[new]["supersedes"], ledger[new]["superseded_by"]) == ("loaded", old, None)
    assert [sid for sid, row in ledger.items() if row["status"] == "loaded"] == [new]
    visible = current_facts(engine)
    assert set(visible["sid"]) == {new}
    pd.testing.assert_frame_equal(visible.drop(columns="sid"), expected_current("repl-v2"))
    pd.testing.assert_frame_equal(stored_facts(engine, old), old_facts)  # the old version is kept
