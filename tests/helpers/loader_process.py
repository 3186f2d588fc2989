"""A loader in its own process, for the crash-safety and concurrency tests, and their helpers.

Run as ``python tests/helpers/loader_process.py '<json spec>'``: the child opens the warehouse named by
the spec (``url``; on PostgreSQL also ``search_path`` and ``application_name``), builds the
deterministic facts of submission ``content`` (``facts_for``), optionally sets
``warehouse.bulk.CHUNK_ROWS``, optionally waits at a start barrier (writes ``ready``, waits for
``go``), calls ``record_submission`` and prints the outcome as one JSON line. Where it pauses is
decided by the environment (``DUIKOU_TEST_PAUSE_AT`` / ``DUIKOU_TEST_PAUSE_MARKER``, see
``warehouse.bulk.pause_point``), which the tests set for the child only.

The facts are synthetic so that a submission is large enough to be written in several chunks:
``seed_townships`` adds townships ``9xxxxxxxx`` to the test's own temporary warehouse, and one
``tourism`` submission carries 10 indicators × that many townships.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, insert, select, text

from expectations.declaration import load_declarations
from warehouse import bulk, schema
from warehouse.bootstrap import begin_write
from warehouse.engine import make_engine
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission

DEPARTMENT = "tourism"
PERIOD = "2017-03"
TOWNSHIPS = 4_000  # × 10 tourism indicators = 40 000 facts
CHUNK_ROWS = 10_000  # → 4 chunks; mid_insert pauses after the second
HERE = Path(__file__).resolve()
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])
FACT_FIELDS = ["indicator", "township_code", "value", "flagged", "source_row"]


def sha(content: str) -> str:
    return hashlib.sha256(content.encode("utf-8")).hexdigest()


def submission_id(content: str) -> str:
    return submission_key(DEPARTMENT, sha(content))


def make_record(content: str) -> SubmissionRecord:
    digest = sha(content)
    return SubmissionRecord(
        submission_id=submission_key(DEPARTMENT, digest),
        sha256=digest,
        department=DEPARTMENT,
        period=PERIOD,
        original_name=f"{content}.xlsx",
        received_at=datetime(2017, 4, 5, 10, 0, tzinfo=UTC),
        status="loaded",
        rows_read=TOWNSHIPS,
        rows_loaded=TOWNSHIPS,
        rows_rejected=0,
        archive_path=None,
        receipt_path=None,
    )


def township_codes(count: int = TOWNSHIPS) -> list[str]:
    return [f"9{n:08d}" for n in range(count)]


def seed_townships(engine: Engine, count: int = TOWNSHIPS) -> None:
    rows = [
        {
            "township_code": code,
            "name_zh": f"测试乡{code}",
            "township_type": "乡",
            "valid_from": date(2000, 1, 1),
            "valid_to": None,
            "note": "synthetic, tests only",
            "source": "assumed",
        }
        for code in township_codes(count)
    ]
    with begin_write(engine) as conn:
        conn.execute(insert(schema.ref_township), rows)


def facts_for(content: str, townships: int = TOWNSHIPS) -> pd.DataFrame:
    """The facts of submission ``content``: values differ per content, some NULL, some flagged."""
    indicators = [i.name for i in load_declarations()[DEPARTMENT].indicators]
    seed = int(sha(content)[:6], 16)
    position = np.arange(len(indicators) * townships)
    town = position % townships
    value = ((position * 7 + seed) % 100_003).astype("float64") + 0.25
    value[(position + seed) % 13 == 0] = np.nan
    return pd.DataFrame(
        {
            "indicator": np.array(indicators, dtype=object)[position // townships],
            "township_code": np.array(township_codes(townships), dtype=object)[town],
            "value": value,
            "flagged": (position + seed) % 29 == 0,
            "source_row": town + 5,
        }
    )


def stored_facts(engine: Engine, sid: str) -> pd.DataFrame:
    """The facts stored for ``sid``, sorted, as the frame ``facts_for`` gives (after sorting)."""
    fact = schema.fact_indicator_value
    query = (
        select(*(fact.c[c] for c in FACT_FIELDS))
        .where(fact.c.submission_id == sid)
        .order_by(fact.c.indicator, fact.c.township_code)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return normalised(pd.DataFrame([tuple(r) for r in rows], columns=FACT_FIELDS))


def current_facts(engine: Engine) -> pd.DataFrame:
    """What analysts see for the test partition: ``v_indicator_value`` plus the submission id."""
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT indicator, township_code, value, flagged, submission_id FROM v_indicator_value "
                "WHERE department = :d AND period = :p ORDER BY indicator, township_code"
            ),
            {"d": DEPARTMENT, "p": PERIOD},
        ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=["indicator", "township_code", "value", "flagged", "sid"])
    frame["value"] = frame["value"].astype("float64")
    frame["flagged"] = frame["flagged"].astype(bool)
    return frame


def expected_current(content: str) -> pd.DataFrame:
    """What ``current_facts`` must show (without the submission id) when ``content`` is current."""
    return normalised(facts_for(content)).drop(columns="source_row")


def normalised(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.loc[:, FACT_FIELDS].sort_values(["indicator", "township_code"], ignore_index=True)
    out["indicator"] = out["indicator"].astype(str)
    out["township_code"] = out["township_code"].astype(str)
    out["value"] = out["value"].astype("float64")
    out["flagged"] = out["flagged"].astype(bool)
    out["source_row"] = out["source_row"].astype("int64")
    return out


def partition_ledger(engine: Engine) -> dict[str, dict[str, Any]]:
    """Ledger rows of the test partition by submission id."""
    sub = schema.submission
    with engine.connect() as conn:
        rows = (
            conn.execute(select(sub).where(sub.c.department == DEPARTMENT, sub.c.period == PERIOD))
            .mappings()
            .all()
        )
    return {r["submission_id"]: dict(r) for r in rows}


def fact_count(engine: Engine, sid: str | None = None) -> int:
    fact = schema.fact_indicator_value
    query = select(func.count()).select_from(fact)
    if sid is not None:
        query = query.where(fact.c.submission_id == sid)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


# ------------------------------------------------------------------ driving child processes
def database_spec(engine: Engine) -> dict[str, Any]:
    """How a child process reaches the test's warehouse (PostgreSQL: the same database and schema)."""
    spec: dict[str, Any] = {"url": engine.url.render_as_string(hide_password=False)}
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            spec["search_path"] = conn.exec_driver_sql("SELECT current_schema()").scalar_one()
    return spec


@dataclass
class Child:
    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    application_name: str

    def describe(self) -> str:
        return f"child exited {self.process.returncode}; stderr:\n{self.stderr.read_text(errors='replace')[-4000:]}"

    def outcome(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for a normal exit and return the printed outcome."""
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"child did not finish in {timeout} s") from None
        if self.process.returncode != 0:
            raise AssertionError(self.describe())
        lines = self.stdout.read_text().strip().splitlines()
        outcome: dict[str, Any] = json.loads(lines[-1])
        return outcome

    def kill(self) -> None:
        """SIGKILL (no handler, no finally, no rollback from the client side) and reap."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)
        assert self.process.returncode == -signal.SIGKILL

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def spawn(
    engine: Engine,
    workdir: Path,
    name: str,
    content: str,
    *,
    pause_at: str | None = None,
    barrier: bool = False,
) -> Child:
    """Start a loader process for submission ``content``; files go to ``workdir/name.*``."""
    application_name = f"duikou-test-{os.getpid()}-{name}"
    spec = {
        **database_spec(engine),
        "application_name": application_name,
        "content": content,
        "chunk_rows": CHUNK_ROWS,
        "ready": str(workdir / f"{name}.ready") if barrier else None,
        "go": str(workdir / "go") if barrier else None,
    }
    env = {k: v for k, v in os.environ.items() if k not in (bulk.PAUSE_AT_ENV, bulk.PAUSE_MARKER_ENV)}
    if pause_at is not None:
        env[bulk.PAUSE_AT_ENV] = pause_at
        env[bulk.PAUSE_MARKER_ENV] = str(workdir / f"{name}.paused")
    stdout, stderr = workdir / f"{name}.out", workdir / f"{name}.err"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        process = subprocess.Popen([sys.executable, str(HERE), json.dumps(spec)], stdout=out, stderr=err, env=env)
    return Child(process, stdout, stderr, application_name)


def wait_for_file(path: Path, child: Child, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if child.process.poll() is not None:
            raise AssertionError(f"waiting for {path.name}: " + child.describe())
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} did not appear in {timeout} s")
        time.sleep(0.01)


def wait_paused(workdir: Path, name: str, child: Child) -> dict[str, Any]:
    """Wait until the child sits at its pause point; return what its marker says."""
    marker = workdir / f"{name}.paused"
    wait_for_file(marker, child)
    info: dict[str, Any] = json.loads(marker.read_text(encoding="utf-8"))
    return info


def release(workdir: Path, name: str) -> None:
    (workdir / f"{name}.paused.release").touch()


def wait_until(condition: Any, what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting until {what}")
        time.sleep(0.02)


def backend_alive(engine: Engine, backend_pid: int) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend_pid}
        ).scalar_one()
    return bool(found)


def copy_progress(engine: Engine, backend_pid: int) -> int | None:
    """Rows the server has taken from a COPY still running in ``backend_pid`` (None: no COPY)."""
    with engine.connect() as conn:
        value = conn.execute(
            text("SELECT tuples_processed FROM pg_stat_progress_copy WHERE pid = :pid"), {"pid": backend_pid}
        ).scalar_one_or_none()
    return None if value is None else int(value)


def waiting_for_lock(engine: Engine, application_name: str) -> bool:
    """Is the named client's backend waiting on an advisory lock (the partition lock)?"""
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                "AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
            ),
            {"name": application_name},
        ).scalar_one()
    return bool(found)


# ------------------------------------------------------------------ the child
def main(spec: dict[str, Any]) -> None:
    if spec.get("search_path"):
        options = {"options": f"-csearch_path={spec['search_path']}", "application_name": spec["application_name"]}
        engine = make_engine(spec["url"], connect_args=options)
    else:
        engine = make_engine(spec["url"])
    if spec.get("chunk_rows"):
        bulk.CHUNK_ROWS = int(spec["chunk_rows"])
    content = spec["content"]
    facts = facts_for(content)
    if spec.get("ready"):
        Path(spec["ready"]).touch()
        go = Path(spec["go"])
        while not go.exists():
            time.sleep(0.002)
    outcome = record_submission(engine, make_record(content), facts, NO_TOTALS, [], [])
    engine.dispose()
    print(
        json.dumps(
            {
                "submission_id": outcome.submission_id,
                "status": outcome.status,
                "supersedes": outcome.supersedes,
                "duplicate_of": outcome.duplicate_of,
                "facts_loaded": outcome.facts_loaded,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
