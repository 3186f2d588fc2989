"""Bulk insert of a submission's facts, inside the submission's own transaction.

``record_submission`` converts the facts frame once, before it takes the write lock
(``prepare_facts``), and then writes them on the transaction's own DBAPI connection
(``insert_facts``):

* PostgreSQL: ``COPY fact_indicator_value (...) FROM STDIN (FORMAT csv)`` on the psycopg
  connection under the SQLAlchemy ``Connection``; each chunk of ``CHUNK_ROWS`` rows is written
  as CSV by pyarrow (no Python object per value) and handed to ``copy.write``;
* SQLite: the sqlite3 driver's ``executemany``, one call per chunk, fed by ``zip`` over plain
  column lists (no dict per row, no SQLAlchemy statement machinery).

Either way the rows become visible only when the submission's transaction commits, and a
failure (a foreign key, a repeated key) is raised as SQLAlchemy's ``IntegrityError`` like any
other statement's, so the caller's transaction rolls everything back.

Value rules (the same as before the bulk path): NaN / None / NA → NULL in ``value`` and
``source_row``; ``flagged`` is a plain boolean with a missing flag meaning ``False``; text keys
are ``str()`` of what the frame holds.

``pause_point`` is a test-only hook (see ``tests/warehouse/test_crash_safety.py``): unless the environment
variable ``DUIKOU_TEST_PAUSE_AT`` names the point, it returns at once.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from warehouse import schema

FACT_COLUMNS = ("indicator", "township_code", "value", "flagged", "source_row")
#: rows per COPY write / executemany call; big enough that per-chunk costs vanish, small enough
#: that one chunk's CSV (~1.6 MB) or tuples stay small
CHUNK_ROWS = 20_000

PAUSE_AT_ENV = "DUIKOU_TEST_PAUSE_AT"
PAUSE_MARKER_ENV = "DUIKOU_TEST_PAUSE_MARKER"
PAUSE_POINTS = ("mid_insert", "before_commit")
_PAUSE_LIMIT_S = 120.0

_TABLE = schema.fact_indicator_value
#: column order of the insert: the frame's columns with the submission's constants in between
_INSERT_COLUMNS = tuple(c.name for c in _TABLE.columns)


@dataclass(frozen=True)
class FactBatch:
    """One submission's facts, converted and typed, ready to be written."""

    submission_id: str
    department: str
    period: str
    year: int
    month: int | None
    indicator: pd.Series  # str
    township_code: pd.Series  # str
    value: np.ndarray  # float64, NaN = NULL
    flagged: np.ndarray  # bool
    source_row: pd.Series  # Int64 (nullable)

    def __len__(self) -> int:
        return len(self.value)

    def constants(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "department": self.department,
            "period": self.period,
            "year": self.year,
            "month": self.month,
        }


def _text(column: pd.Series) -> pd.Series:
    if pd.api.types.is_string_dtype(column) and not pd.api.types.is_object_dtype(column):
        return column  # already str (missing stays missing → NULL → NOT NULL violation)
    return column.astype(str)


def _flags(column: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(column) and not column.hasnans:
        return column.to_numpy(dtype=bool)
    return column.where(column.notna(), False).astype(bool).to_numpy()


def _nullable_ints(column: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(column)
    if pd.api.types.is_float_dtype(numbers):
        numbers = np.trunc(numbers)  # int() semantics for 5.0 (and 5.7)
    return numbers.astype("Int64")


def prepare_facts(
    submission_id: str,
    department: str,
    period: str,
    year: int,
    month: int | None,
    facts: pd.DataFrame,
) -> FactBatch:
    """Type the facts frame's columns once (vectorised); no row is touched in Python."""
    missing = [c for c in FACT_COLUMNS if c not in facts.columns]
    if missing:
        raise ValueError(f"facts frame lacks columns {missing}")
    frame = facts  # every conversion below is positional; the frame's index plays no part
    value = pd.to_numeric(frame["value"]).to_numpy(dtype="float64", na_value=np.nan)
    return FactBatch(
        submission_id=submission_id,
        department=department,
        period=period,
        year=year,
        month=month,
        indicator=_text(frame["indicator"]),
        township_code=_text(frame["township_code"]),
        value=value,
        flagged=_flags(frame["flagged"]),
        source_row=_nullable_ints(frame["source_row"]),
    )


# ------------------------------------------------------------------ test-only pause hook
def pause_point(point: str, conn: Connection, **details: Any) -> None:
    """Test-only: stop here when ``DUIKOU_TEST_PAUSE_AT`` names ``point``; free otherwise.

    Writes a JSON marker (``DUIKOU_TEST_PAUSE_MARKER``: the point, this process's pid, the
    PostgreSQL backend pid, ``details``) and waits, with the transaction open, until the test
    either kills the process or creates ``<marker>.release``. After two minutes without either
    it raises, so a forgotten process rolls back instead of hanging or committing.
    """
    if os.environ.get(PAUSE_AT_ENV) != point:
        return
    marker = Path(os.environ[PAUSE_MARKER_ENV])
    backend_pid = None
    if conn.dialect.name == "postgresql":
        backend_pid = _driver_connection(conn).info.backend_pid
    payload = {"point": point, "pid": os.getpid(), "backend_pid": backend_pid, **details}
    partial = marker.with_name(marker.name + ".tmp")
    partial.write_text(json.dumps(payload), encoding="utf-8")
    partial.replace(marker)  # the test never sees half a marker
    release = marker.with_name(marker.name + ".release")
    deadline = time.monotonic() + _PAUSE_LIMIT_S
    while not release.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"paused at {point} for {_PAUSE_LIMIT_S:.0f} s and never released")
        time.sleep(0.02)


# ------------------------------------------------------------------ writers
def _driver_connection(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection has no DBAPI connection")
    return raw


@contextmanager
def _as_sqlalchemy_errors(conn: Connection, statement: str) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's (``IntegrityError`` ...), as ``conn.execute`` would."""
    dbapi = conn.dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        if conn.dialect.is_disconnect(exc, _driver_connection(conn), None):
            conn.invalidate(exc)
        wrapped = DBAPIError.instance(statement, None, exc, dbapi.Error, dialect=conn.dialect)
        raise cast(BaseException, wrapped) from exc


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    for start in range(0, total, CHUNK_ROWS):
        yield start, min(start + CHUNK_ROWS, total)


def _after_chunk(conn: Connection, start: int, stop: int, total: int) -> None:
    """The ``mid_insert`` pause point: after the chunk that reaches half the rows, if more follow."""
    if start * 2 < total <= stop * 2 and stop < total:
        pause_point("mid_insert", conn, rows_written=stop, rows_total=total)


def _copy_postgres(conn: Connection, batch: FactBatch) -> None:
    from psycopg import sql  # PostgreSQL only

    columns = sql.SQL(", ").join(sql.Identifier(c) for c in _INSERT_COLUMNS)
    table = sql.Identifier(_TABLE.name) if _TABLE.schema is None else sql.Identifier(_TABLE.schema, _TABLE.name)
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(table, columns)
    total = len(batch)
    varying = {
        "indicator": pa.array(batch.indicator, type=pa.large_string()),
        "township_code": pa.array(batch.township_code, type=pa.large_string()),
        "value": pa.array(batch.value, type=pa.float64(), from_pandas=True),  # NaN → null
        "flagged": pa.array(batch.flagged, type=pa.bool_()),
        "source_row": pa.array(batch.source_row, type=pa.int64()),
    }
    constant_types = {
        "submission_id": pa.string(),
        "department": pa.string(),
        "period": pa.string(),
        "year": pa.int32(),
        "month": pa.int32(),
    }
    full = min(CHUNK_ROWS, total)
    constants = {
        name: pa.array([value] * full, type=constant_types[name]) for name, value in batch.constants().items()
    }
    options = pa_csv.WriteOptions(include_header=False)
    raw = _driver_connection(conn)
    with (
        _as_sqlalchemy_errors(conn, statement.as_string(raw)),
        raw.cursor() as cursor,
        cursor.copy(statement) as copy,
    ):
        for start, stop in _chunks(total):
            size = stop - start
            chunk = pa.table(
                {
                    name: varying[name].slice(start, size) if name in varying else constants[name].slice(0, size)
                    for name in _INSERT_COLUMNS
                }
            )
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(chunk, sink, options)  # null → unquoted empty field = NULL in PG's CSV
            copy.write(memoryview(sink.getvalue()))
            _after_chunk(conn, start, stop, total)


def _executemany_sqlite(conn: Connection, batch: FactBatch) -> None:
    names = ", ".join(f'"{c}"' for c in _INSERT_COLUMNS)  # our own constant names
    statement = f'INSERT INTO "{_TABLE.name}" ({names}) VALUES ({", ".join("?" * len(_INSERT_COLUMNS))})'
    values = batch.value.astype(object)
    values[np.isnan(batch.value)] = None
    source_rows = batch.source_row.to_numpy(dtype=object, na_value=None)
    constants = batch.constants()
    total = len(batch)
    raw = _driver_connection(conn)
    with _as_sqlalchemy_errors(conn, statement):
        cursor = raw.cursor()
        try:
            for start, stop in _chunks(total):
                varying = {
                    "indicator": batch.indicator.iloc[start:stop].tolist(),
                    "township_code": batch.township_code.iloc[start:stop].tolist(),
                    "value": values[start:stop].tolist(),
                    "flagged": batch.flagged[start:stop].tolist(),  # Python bools → 1 / 0
                    "source_row": source_rows[start:stop].tolist(),
                }
                columns: Sequence[Any] = [
                    varying[name] if name in varying else repeat(constants[name]) for name in _INSERT_COLUMNS
                ]
                cursor.executemany(statement, zip(*columns, strict=False))  # constants repeat
                _after_chunk(conn, start, stop, total)
        finally:
            cursor.close()


def insert_facts(conn: Connection, batch: FactBatch) -> int:
    """Write ``batch`` into ``fact_indicator_value`` in ``conn``'s open transaction; returns rows."""
    if len(batch) == 0:
        return 0
    if conn.dialect.name == "postgresql":
        _copy_postgres(conn, batch)
    elif conn.dialect.name == "sqlite":
        _executemany_sqlite(conn, batch)
    else:
        raise NotImplementedError(f"no bulk path for {conn.dialect.name}")
    return len(batch)
