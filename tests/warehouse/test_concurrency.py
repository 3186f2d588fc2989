"""Two loader processes at once: the ledger and the facts stay those of one serial order.

Real processes (``tests/helpers/loader_process.py``) against a SQLite file and against PostgreSQL (the
test's fresh schema, passed to the children as ``search_path``). Each scenario runs twice:

* ``race`` — both children are started, wait at a start barrier, and are let go together;
  either may win;
* ``held`` — the first child is stopped just before its commit (``DUIKOU_TEST_PAUSE_AT``), so
  it holds the partition's write lock with its ledger row and facts written; the second is let
  go and is seen waiting (PostgreSQL: on the advisory lock; SQLite: on ``BEGIN IMMEDIATE``)
  until the first is released. The overlap is certain, and so is the order.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

from tests.helpers.loader_process import (
    DEPARTMENT,
    PERIOD,
    TOWNSHIPS,
    Child,
    current_facts,
    expected_current,
    fact_count,
    partition_ledger,
    release,
    seed_townships,
    spawn,
    submission_id,
    wait_for_file,
    wait_paused,
    wait_until,
    waiting_for_lock,
)
from warehouse.load import current_version

FACTS = TOWNSHIPS * 10
MODES = ("race", "held")


@pytest.fixture
def engine(warehouse_engine: Engine) -> Engine:
    seed_townships(warehouse_engine)
    return warehouse_engine


def run_pair(engine: Engine, workdir: Path, mode: str, contents: tuple[str, str]) -> list[dict[str, Any]]:
    """Load ``contents`` in two processes ("p1", "p2") at once; their outcomes in that order."""
    first, second = contents
    children: list[Child] = []
    try:
        if mode == "race":
            children = [spawn(engine, workdir, name, c, barrier=True) for name, c in (("p1", first), ("p2", second))]
            for name, child in zip(("p1", "p2"), children, strict=True):
                wait_for_file(workdir / f"{name}.ready", child)
            (workdir / "go").touch()
        else:
            holder = spawn(engine, workdir, "p1", first, pause_at="before_commit")
            children.append(holder)
            waiter = spawn(engine, workdir, "p2", second, barrier=True)  # starts beside p1, held at the barrier
            children.append(waiter)
            wait_paused(workdir, "p1", holder)  # partition lock held, rows written, not committed
            wait_for_file(workdir / "p2.ready", waiter)
            (workdir / "go").touch()
            if engine.dialect.name == "postgresql":
                wait_until(lambda: waiting_for_lock(engine, waiter.application_name), "the second loader waits")
            else:
                time.sleep(1.0)  # its BEGIN IMMEDIATE waits (busy_timeout 30 s)
            assert waiter.process.poll() is None, "the second loader finished while the first held the partition"
            assert current_version(engine, DEPARTMENT, PERIOD) is None  # nothing committed yet
            release(workdir, "p1")
        return [child.outcome() for child in children]
    finally:
        for child in children:
            child.stop()


@pytest.mark.parametrize("mode", MODES)
def test_same_file_twice_at_once_loads_once(engine: Engine, tmp_path: Path, mode: str) -> None:
    outcomes = run_pair(engine, tmp_path, mode, ("same-file", "same-file"))

    sid = submission_id("same-file")
    assert sorted(o["status"] for o in outcomes) == ["duplicate", "loaded"]
    if mode == "held":
        assert [o["status"] for o in outcomes] == ["loaded", "duplicate"]
    loaded = next(o for o in outcomes if o["status"] == "loaded")
    duplicate = next(o for o in outcomes if o["status"] == "duplicate")
    assert (loaded["submission_id"], loaded["facts_loaded"], loaded["supersedes"]) == (sid, FACTS, None)
    assert (duplicate["duplicate_of"], duplicate["facts_loaded"]) == (sid, 0)
    ledger = partition_ledger(engine)
    assert list(ledger) == [sid] and ledger[sid]["status"] == "loaded"
    assert fact_count(engine) == FACTS  # loaded once, not twice
    visible = current_facts(engine)
    assert set(visible["sid"]) == {sid}
    pd.testing.assert_frame_equal(visible.drop(columns="sid"), expected_current("same-file"))


@pytest.mark.parametrize("mode", MODES)
def test_two_versions_at_once_one_is_current(engine: Engine, tmp_path: Path, mode: str) -> None:
    outcomes = run_pair(engine, tmp_path, mode, ("version-a", "version-b"))

    assert [o["status"] for o in outcomes] == ["loaded", "loaded"]  # both valid: one after the other
    by_sid = {o["submission_id"]: o for o in outcomes}
    first = next(sid for sid, o in by_sid.items() if o["supersedes"] is None)
    last = next(sid for sid, o in by_sid.items() if o["supersedes"] == first)  # the later replaced the earlier
    if mode == "held":
        assert (first, last) == (submission_id("version-a"), submission_id("version-b"))
    content = {submission_id("version-a"): "version-a", submission_id("version-b"): "version-b"}

    ledger = partition_ledger(engine)
    assert set(ledger) == {first, last}
    assert (ledger[first]["status"], ledger[first]["superseded_by"]) == ("superseded", last)
    assert (ledger[last]["status"], ledger[last]["supersedes"]) == ("loaded", first)
    assert ledger[last]["superseded_by"] is None
    assert current_version(engine, DEPARTMENT, PERIOD) == last
    # never a union: what is visible is exactly the current submission's facts
    visible = current_facts(engine)
    assert set(visible["sid"]) == {last} and len(visible) == FACTS
    pd.testing.assert_frame_equal(visible.drop(columns="sid"), expected_current(content[last]))
    # both versions are kept whole
    assert fact_count(engine, first) == FACTS and fact_count(engine, last) == FACTS


@pytest.mark.postgres
def test_a_partition_lock_holds_within_a_warehouse_and_not_across_schemas() -> None:
    """Advisory locks are per database: the partition lock's key carries the warehouse's schema, so a
    warehouse in another schema of the same database loads the same (department, period) at once,
    while a second writer of the same warehouse waits (here: gives up at its lock_timeout)."""
    from sqlalchemy.exc import OperationalError

    from tests.conftest import fresh_postgres_schema
    from warehouse.engine import advisory_lock, make_engine

    with fresh_postgres_schema("lock") as (url, first), fresh_postgres_schema("lock") as (_, second):
        engines = [make_engine(url, connect_args={"options": f"-csearch_path={name}"})
                   for name in (first, first, second)]
        try:
            with engines[0].connect() as holder, holder.begin():
                advisory_lock(holder, "tourism", "2016-05")
                with engines[2].connect() as other_schema, other_schema.begin():
                    other_schema.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                    advisory_lock(other_schema, "tourism", "2016-05")  # not blocked
                with engines[1].connect() as same_schema, same_schema.begin():
                    same_schema.exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                    with pytest.raises(OperationalError, match="lock timeout"):
                        advisory_lock(same_schema, "tourism", "2016-05")
        finally:
            for engine in engines:
                engine.dispose()
