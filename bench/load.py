"""Bulk-load benchmark: 1 000 000 facts through ``record_submission`` beside the raw driver floor.

What is loaded, and why it is shaped so. A fact's key is (submission, indicator, township), its
township must exist in ``ref_township`` and its indicator must be declared for the department,
so a real submission carries at most ~12 indicators × 15 townships. Loading 1 000 000 facts as
~6 000 small submissions would measure the ledger, not the bulk path; dropping the foreign keys
would measure a different schema. Instead the bench works in its OWN temporary database (a
SQLite file in a temporary directory; a fresh PostgreSQL schema), and there, before timing,
adds 83 334 synthetic townships (codes ``9xxxxxxxx``, a prefix no NBS code uses) to
``ref_township``. One monthly ``health`` submission (12 declared indicators) then carries
1 000 000 facts — 12 indicators × 83 334 townships, less the 12th indicator of the last 8 — in the order
the normaliser produces them (indicator by indicator, townships in form order), with 1 value in
17 blank (NULL) and 1 row in 23 flagged. The schema, its keys and foreign keys are untouched
(on PostgreSQL the fact table's foreign keys are statement-level triggers, revision 0002; the
``same FKs`` floor shows what real keys cost there); the temporary database is removed at the end.

What is timed (median of ``--runs`` runs each, interleaved so that noise from other processes
hits every variant alike):

* ours — ``record_submission(engine, record, facts, ...)`` from the pandas frame to the commit:
  conversion, ledger row, supersession (run k supersedes run k-1 of the same partition; all
  versions are kept, as in production), facts, commit;
* floor — the plain driver into a table of the same columns, from input prepared before the
  clock starts: psycopg ``COPY ... FROM STDIN (FORMAT csv)`` streaming a CSV held in memory
  (1 MiB writes), and ``sqlite3.executemany`` over a prebuilt list of tuples, each in one
  transaction with commit. Three tables:
    - ``identical``: same columns, types, NOT NULL, primary key and partition index as
      ``fact_indicator_value``, without foreign keys — the headline floor (``*_ratio``);
    - ``bare``: the same columns only, no key, no index (``*_ratio_bare``);
    - ``same FKs``: ``identical`` plus the three foreign keys of ``fact_indicator_value``
      (to ``submission``, ``ref_township``, ``ref_indicator``) — shows what the schema's
      constraints cost by themselves (``*_ratio_same_fks``).

The last line of output is one JSON object; ratios are ours / floor in rows per second.
PostgreSQL is benchmarked when ``DUIKOU_BENCH_POSTGRES_URL`` is set (e.g.
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), skipped with a message otherwise.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Column, Engine, ForeignKeyConstraint, Index, MetaData, Table, func, insert, select, text
from sqlalchemy.engine import make_url

from expectations.declaration import load_declarations
from warehouse import schema
from warehouse.bootstrap import begin_write, ensure_warehouse
from warehouse.engine import make_engine
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission

POSTGRES_URL_ENV = "DUIKOU_BENCH_POSTGRES_URL"
DEPARTMENT = "health"
PERIOD = "2016-05"
FLOOR_SUBMISSION = "0000000000f100e0"  # the floor rows' submission id (a rejected ledger row)
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])
FACT_NAMES = tuple(c.name for c in schema.fact_indicator_value.columns)
FLOORS = ("identical", "bare", "same_fks")


# ------------------------------------------------------------------ the synthetic submission
@dataclass(frozen=True)
class Batch:
    facts: pd.DataFrame
    townships: list[str]
    indicators: list[str]


def make_batch(rows: int) -> Batch:
    indicators = [i.name for i in load_declarations()[DEPARTMENT].indicators]
    n_towns = -(-rows // len(indicators))
    townships = [f"9{n:08d}" for n in range(n_towns)]
    position = np.arange(rows)
    town_index = position % n_towns
    value = (town_index * 37 + position // n_towns).astype("float64") * 1.25
    value[position % 17 == 3] = np.nan
    facts = pd.DataFrame(
        {
            "indicator": pd.Series(np.array(indicators, dtype=object)[position // n_towns], dtype="str"),
            "township_code": pd.Series(np.array(townships, dtype=object)[town_index], dtype="str"),
            "value": value,
            "flagged": position % 23 == 0,
            "source_row": pd.array(town_index + 5, dtype="Int64"),
        }
    )
    return Batch(facts, townships, indicators)


def with_constants(facts: pd.DataFrame, submission_id: str) -> pd.DataFrame:
    year, month = (int(p) for p in PERIOD.split("-"))
    full = facts.assign(submission_id=submission_id, department=DEPARTMENT, period=PERIOD, year=year, month=month)
    return full.loc[:, list(FACT_NAMES)]


def csv_bytes(frame: pd.DataFrame) -> bytes:
    """The floor's CSV stream: pyarrow's CSV (nulls as unquoted empty fields = NULL for COPY)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
    return bytes(sink.getvalue())


def plain_tuples(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    columns = []
    for name in frame.columns:
        col = frame[name]
        if name == "value":
            columns.append(col.astype(object).where(col.notna(), None).tolist())
        elif name == "source_row":
            columns.append(col.to_numpy(dtype=object, na_value=None).tolist())
        else:
            columns.append(col.tolist())
    return list(zip(*columns, strict=True))


def record(version: int) -> SubmissionRecord:
    digest = hashlib.sha256(f"bench bulk load, version {version}".encode()).hexdigest()
    return SubmissionRecord(
        submission_id=submission_key(DEPARTMENT, digest),
        sha256=digest,
        department=DEPARTMENT,
        period=PERIOD,
        original_name=f"bench-v{version}.xlsx",
        received_at=datetime.now(UTC),
        status="loaded",
        rows_read=0,
        rows_loaded=0,
        rows_rejected=0,
        archive_path=None,
        receipt_path=None,
    )


# ------------------------------------------------------------------ warehouse and floor tables
def floor_table(metadata: MetaData, kind: str) -> Table:
    """A copy of ``fact_indicator_value``'s columns; keys and foreign keys as ``kind`` says."""
    keyed = kind != "bare"
    table = Table(
        f"bench_floor_{kind}",
        metadata,
        *(
            Column(c.name, c.type, nullable=c.nullable, primary_key=keyed and c.primary_key)
            for c in schema.fact_indicator_value.columns
        ),
    )
    if keyed:
        Index(f"ix_bench_floor_{kind}_partition", table.c.department, table.c.period)
    if kind == "same_fks":
        table.append_constraint(ForeignKeyConstraint(["submission_id"], [schema.submission.c.submission_id]))
        table.append_constraint(ForeignKeyConstraint(["township_code"], [schema.ref_township.c.township_code]))
        table.append_constraint(
            ForeignKeyConstraint(
                ["department", "indicator"], [schema.ref_indicator.c.department, schema.ref_indicator.c.indicator]
            )
        )
    return table


def prepare_warehouse(engine: Engine, batch: Batch) -> MetaData:
    """ensure_warehouse, the synthetic townships, the floor's ledger row, empty floor tables."""
    ensure_warehouse(engine)
    rows = [
        {
            "township_code": code,
            "name_zh": f"合成乡{code}",
            "township_type": "乡",
            "valid_from": date(2000, 1, 1),
            "valid_to": None,
            "note": "synthetic, bench only",
            "source": "assumed",
        }
        for code in batch.townships
    ]
    now = datetime.now(UTC)
    with begin_write(engine) as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(schema.ref_township), rows[start : start + 10_000])
        conn.execute(
            insert(schema.submission).values(
                submission_id=FLOOR_SUBMISSION,
                sha256=FLOOR_SUBMISSION * 4,
                department=DEPARTMENT,
                period=PERIOD,
                original_name="bench floor",
                received_at=now,
                processed_at=now,
                status="rejected",
            )
        )
    metadata = MetaData()
    for kind in FLOORS:
        floor_table(metadata, kind)
    return metadata


def reset_floors(engine: Engine, metadata: MetaData) -> None:
    with begin_write(engine) as conn:
        metadata.drop_all(conn)
        metadata.create_all(conn)


# ------------------------------------------------------------------ runs
def timed(action: Callable[[], Any]) -> float:
    gc.collect()
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def load_ours(engine: Engine, batch: Batch, version: int) -> None:
    outcome = record_submission(engine, record(version), batch.facts, NO_TOTALS, [], [])
    if outcome.status != "loaded" or outcome.facts_loaded != len(batch.facts):
        raise RuntimeError(f"bench load went wrong: {outcome}")


def check_current(engine: Engine, rows: int, version: int) -> None:
    current = record(version).submission_id
    fact = schema.fact_indicator_value
    with engine.connect() as conn:
        loaded = conn.execute(
            select(func.count()).select_from(fact).where(fact.c.submission_id == current)
        ).scalar_one()
        nulls = conn.execute(
            select(func.count()).select_from(fact).where(fact.c.submission_id == current, fact.c.value.is_(None))
        ).scalar_one()
    expected_nulls = int(np.count_nonzero(np.arange(rows) % 17 == 3))
    if loaded != rows or nulls != expected_nulls:
        raise RuntimeError(f"current version holds {loaded} facts ({nulls} NULL), expected {rows}")


def run_backend(
    name: str,
    engine: Engine,
    batch: Batch,
    runs: int,
    floor_loader: Callable[[str], None],
    setup_floor: Callable[[], None],
) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"ours": [], **{k: [] for k in FLOORS}}
    for run in range(1, runs + 1):
        for kind in FLOORS:
            setup_floor()
            times[kind].append(timed(lambda kind=kind: floor_loader(kind)))  # type: ignore[misc]
        times["ours"].append(timed(lambda run=run: load_ours(engine, batch, run)))  # type: ignore[misc]
        print(
            f"  {name} run {run}: ours {times['ours'][-1]:.2f} s; floors "
            + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in FLOORS),
            flush=True,
        )
    check_current(engine, len(batch.facts), runs)
    return times


def bench_sqlite(batch: Batch, runs: int) -> dict[str, list[float]]:
    with tempfile.TemporaryDirectory(prefix="duikou-bench-") as tmp:
        path = Path(tmp) / "warehouse.sqlite"
        engine = make_engine(f"sqlite:///{path}")
        try:
            metadata = prepare_warehouse(engine, batch)
            rows = plain_tuples(with_constants(batch.facts, FLOOR_SUBMISSION))

            def floor(kind: str) -> None:
                con = sqlite3.connect(path, isolation_level=None, timeout=30)
                try:
                    con.execute("PRAGMA foreign_keys=ON")  # as the warehouse's own connections
                    names = ", ".join(FACT_NAMES)
                    marks = ", ".join("?" * len(FACT_NAMES))
                    con.execute("BEGIN IMMEDIATE")
                    con.executemany(f"INSERT INTO bench_floor_{kind} ({names}) VALUES ({marks})", rows)
                    con.execute("COMMIT")
                finally:
                    con.close()

            return run_backend("sqlite", engine, batch, runs, floor, lambda: reset_floors(engine, metadata))
        finally:
            engine.dispose()


@contextmanager
def postgres_schema(url: str) -> Iterator[tuple[Engine, str]]:
    name = f"bench_{uuid.uuid4().hex[:12]}"  # our own identifier
    admin = make_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))
    engine = make_engine(url, connect_args={"options": f"-csearch_path={name}"})
    try:
        yield engine, name
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
        admin.dispose()


def bench_postgres(url: str, batch: Batch, runs: int) -> dict[str, list[float]]:
    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with postgres_schema(url) as (engine, schema_name):
        metadata = prepare_warehouse(engine, batch)
        stream = csv_bytes(with_constants(batch.facts, FLOOR_SUBMISSION))
        names = ", ".join(FACT_NAMES)

        def floor(kind: str) -> None:
            statement = f"COPY bench_floor_{kind} ({names}) FROM STDIN (FORMAT csv)"
            with psycopg.connect(conninfo, options=f"-csearch_path={schema_name}") as con:
                with con.cursor() as cur, cur.copy(statement) as copy:
                    view = memoryview(stream)
                    for start in range(0, len(view), 1 << 20):
                        copy.write(view[start : start + (1 << 20)])
                con.commit()

        return run_backend("postgres", engine, batch, runs, floor, lambda: reset_floors(engine, metadata))


# ------------------------------------------------------------------ report
def summarise(name: str, rows: int, times: dict[str, list[float]] | None, result: dict[str, Any]) -> None:
    if times is None:
        for suffix in ("ratio", "ratio_bare", "ratio_same_fks", "rows_per_s"):
            result[f"{name}_{suffix}"] = None
        return
    median = {k: statistics.median(v) for k, v in times.items()}
    rate = {k: rows / s for k, s in median.items()}
    labels = {
        "ours": "ours: record_submission, frame → commit",
        "identical": "floor: identical table, no FKs",
        "bare": "floor: bare table (columns only)",
        "same_fks": "floor: identical table + same 3 FKs",
    }
    print(f"{name}:")
    for key in ("ours", *FLOORS):
        ratio = "" if key == "ours" else f"   ours/floor {rate['ours'] / rate[key]:.2f}"
        print(f"  {labels[key]:<42} {median[key]:6.2f} s  {rate[key] / 1000:7.1f} k rows/s{ratio}")
    result[f"{name}_ratio"] = round(rate["ours"] / rate["identical"], 3)
    result[f"{name}_ratio_bare"] = round(rate["ours"] / rate["bare"], 3)
    result[f"{name}_ratio_same_fks"] = round(rate["ours"] / rate["same_fks"], 3)
    result[f"{name}_rows_per_s"] = round(rate["ours"])
    result[f"{name}_floor_rows_per_s"] = {k: round(rate[k]) for k in FLOORS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)

    batch = make_batch(args.rows)
    print(
        f"{args.rows:,} facts in one {DEPARTMENT} submission ({len(batch.indicators)} indicators × "
        f"{len(batch.townships):,} townships, synthetic); median of {args.runs} runs",
        flush=True,
    )
    sqlite_times = bench_sqlite(batch, args.runs)
    postgres_url = os.environ.get(POSTGRES_URL_ENV)
    postgres_times = None
    if postgres_url:
        postgres_times = bench_postgres(postgres_url, batch, args.runs)
    result: dict[str, Any] = {"rows": args.rows, "runs": args.runs}
    summarise("sqlite", args.rows, sqlite_times, result)
    if postgres_times is None:
        print(f"postgres: skipped — {POSTGRES_URL_ENV} is not set")
    summarise("postgres", args.rows, postgres_times, result)
    result["ratio_floor"] = "identical table (same columns, types, NOT NULL, primary key, index), no foreign keys"
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
