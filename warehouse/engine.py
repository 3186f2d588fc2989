"""Engines, connections, write transactions and partition locks: the lowest warehouse module.

``make_engine`` gives a configured engine for SQLite (the default, one file under the data
dir) or PostgreSQL (psycopg 3). ``write_transaction`` is the transaction every writer in the
warehouse runs in: on SQLite it emits ``BEGIN IMMEDIATE`` so the write lock is taken up front
(two writers queue on ``busy_timeout`` instead of failing when a read lock cannot be upgraded);
on PostgreSQL it is a plain transaction, and writers serialise per partition with advisory locks
(``advisory_lock``). Readers use ``engine.connect()`` / ``engine.begin()`` and get a deferred
``BEGIN``, so under WAL they never block or wait for a writer.

Writers open it through ``warehouse.bootstrap.begin_write``, which first refuses a warehouse whose
schema has drifted from ``warehouse/schema.py``; ``warehouse.bootstrap.ensure_warehouse`` brings a
warehouse to the head migration, then (re)creates the views and loads reference data. Both live
there because they call ``warehouse.migrate`` and ``warehouse.roles``, which import this module.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from warehouse import schema

SQLITE_BUSY_TIMEOUT_MS = 30_000
_WRITE_OPTION = "duikou_begin_immediate"
#: waits between attempts to connect (docs/operations.md "Reliability": 3 retries, backoff 1, 2, 4 s)
CONNECT_RETRY_DELAYS: tuple[float, ...] = (1.0, 2.0, 4.0)

log = logging.getLogger(__name__)


class WarehouseUnreachable(Exception):
    """The warehouse refused or never answered every attempt to connect (``connect_with_retries``)."""

    def __init__(self, url: str, reason: str, attempts: int) -> None:
        self.url, self.reason, self.attempts = url, reason, attempts
        super().__init__(f"数仓无法连接 (warehouse unreachable): {url} — {reason} ({attempts} attempts)")


def _is_sqlite(url_or_engine: Engine | Connection | str) -> bool:
    if isinstance(url_or_engine, str):
        return make_url(url_or_engine).get_backend_name() == "sqlite"
    return url_or_engine.dialect.name == "sqlite"


def _normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here (psycopg2 is not installed)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control away from the sqlite3 module (it would emit a deferred BEGIN
    # itself, and not before DDL); SQLAlchemy's "begin" event below emits our BEGIN instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = bool(conn.get_execution_options().get(_WRITE_OPTION, False))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, **engine_kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``).

    SQLite: foreign keys on, WAL journal, 30 s busy timeout, the parent directory of the file
    created, and transactions begun by SQLAlchemy (see ``begin_write``). PostgreSQL: psycopg 3
    with pre-ping. ``engine_kwargs`` go to ``create_engine`` (e.g. ``connect_args``).
    """
    url = _normalise_url(url)
    if _is_sqlite(url):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **engine_kwargs)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    engine_kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **engine_kwargs)


def safe_url(url: str | Engine) -> str:
    """``url`` (or the engine's) with any password shown as ``***``: for messages and logs."""
    parsed = url.url if isinstance(url, Engine) else make_url(url)
    return parsed.render_as_string(hide_password=True)


def _one_line_reason(exc: OperationalError) -> str:
    """The driver's own words (``exc.orig``), without SQLAlchemy's SQL/background lines, on one line."""
    text_ = str(exc.orig if exc.orig is not None else exc)
    return " ".join(text_.split()) or type(exc).__name__


def connect_with_retries(engine: Engine, delays: Sequence[float] = CONNECT_RETRY_DELAYS) -> None:
    """Open (and return to the pool) one connection, retrying a refused or failed connection after
    each of ``delays`` seconds; when every attempt fails raise ``WarehouseUnreachable`` naming the
    URL (password hidden) and the driver's reason.

    Only connecting is retried: a statement that fails on an open connection is not this function's.
    """
    attempts = len(delays) + 1
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect():
                return
        except OperationalError as exc:
            reason = _one_line_reason(exc)
            if attempt == attempts:
                raise WarehouseUnreachable(safe_url(engine), reason, attempts) from exc
            delay = delays[attempt - 1]
            log.info("warehouse %s: connection failed (%s); attempt %d of %d in %.0f s",
                        safe_url(engine), reason, attempt + 1, attempts, delay)
            time.sleep(delay)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on exit, rolled back on any
    exception, *without* the schema check: writers use ``warehouse.bootstrap.begin_write``."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE_OPTION: True})
        with conn.begin():
            yield conn


def lock_key(*parts: str) -> int:
    """A stable signed 64-bit key for ``parts`` (blake2b; ``hash()`` varies between processes)."""
    digest = hashlib.blake2b("\x1f".join(parts).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def advisory_lock(conn: Connection, *parts: str) -> None:
    """Serialise writers of one partition of this warehouse until the transaction ends.

    PostgreSQL: ``pg_advisory_xact_lock`` on a key of the warehouse's schema and ``parts`` — advisory
    locks are per database, so two warehouses in schemas of one database (two counties, a test beside
    a bench) must not wait on each other's partitions. SQLite: nothing to do, ``BEGIN IMMEDIATE``
    already holds the database's single write lock.
    """
    if conn.dialect.name == "postgresql":
        warehouse_schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": lock_key(str(warehouse_schema), *parts)})


def drop_views(conn: Connection) -> None:
    """Drop the views of ``schema.VIEWS``, last declared first (a view may read an earlier one)."""
    for name in reversed(schema.VIEWS):
        conn.exec_driver_sql(f"DROP VIEW IF EXISTS {name}")  # name: our own constant


def create_views(conn: Connection) -> None:
    """Create every view of ``schema.VIEWS`` in declaration order (views are not alembic objects)."""
    for name, body in schema.VIEWS.items():
        conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")
