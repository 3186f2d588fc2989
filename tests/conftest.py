"""Shared fixtures: warehouse engines on a temporary SQLite file and on real PostgreSQL.

``warehouse_engine`` runs a test on both backends. PostgreSQL needs
``DUIKOU_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``):
unset → skipped; set but unreachable → the test fails, because a configured database that
cannot be reached is a broken environment, not an optional one. Each PostgreSQL test gets a
fresh schema (``search_path``), dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from warehouse.bootstrap import ensure_warehouse
from warehouse.engine import make_engine

POSTGRES_URL_ENV = "DUIKOU_TEST_POSTGRES_URL"


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    """A warehouse in a temporary SQLite file, ``ensure_warehouse`` applied."""
    engine = make_engine(f"sqlite:///{tmp_path / 'warehouse' / 'warehouse.sqlite'}")
    ensure_warehouse(engine)
    yield engine
    engine.dispose()


@contextmanager
def fresh_postgres_schema(what: str) -> Iterator[tuple[str, str]]:
    """(url, schema name) of a new, empty PostgreSQL schema, dropped afterwards.

    Skips when ``DUIKOU_TEST_POSTGRES_URL`` is unset; fails when it is set but unreachable.
    """
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} not set: PostgreSQL {what} tests skipped")
    schema_name = f"test_{uuid.uuid4().hex[:12]}"  # our own identifier, not data
    admin = make_engine(url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema_name}"))
    except OperationalError as exc:
        admin.dispose()
        pytest.fail(f"{POSTGRES_URL_ENV} is set but PostgreSQL is unreachable: {exc}")
    try:
        yield url, schema_name
    finally:
        _end_leaked_sessions(admin, schema_name)
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
        admin.dispose()


def _end_leaked_sessions(admin: Engine, schema_name: str) -> None:
    """A connection a test left open inside a transaction holds its locks on the schema's tables, and
    DROP SCHEMA would wait for it until garbage collection closes it (seen: 213 s). End such
    sessions, and say so: the leak is a bug to fix where the warning points."""
    with admin.begin() as conn:
        leaked = conn.execute(text(
            "SELECT DISTINCT a.pid, a.query FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
            "JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE n.nspname = :schema AND l.pid <> pg_backend_pid() AND a.state LIKE 'idle in transaction%'"),
            {"schema": schema_name}).all()
        for pid, query in leaked:
            conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            warnings.warn(f"a PostgreSQL connection was left open in a transaction on {schema_name} "
                          f"(last query: {query[:200]!r}); ended it", stacklevel=1)


@contextmanager
def use_data_dir(monkeypatch: pytest.MonkeyPatch, data: Path, **env: str) -> Iterator[Path]:
    """Point duikou at ``data`` (SQLite warehouse inside it) with ``env`` set (``DUIKOU_AS_OF=…``),
    settings and warehouse caches cleared before and after."""
    from duikou_settings import reset_settings_cache
    from flows.warehouse_access import clear_cache

    monkeypatch.setenv("DUIKOU_DATA_DIR", str(data))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    reset_settings_cache()
    clear_cache()
    try:
        yield data
    finally:
        reset_settings_cache()
        clear_cache()


@pytest.fixture
def registry_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory of its own (SQLite warehouse) and a person key: for registry ingests."""
    with use_data_dir(monkeypatch, tmp_path / "data",
                      DUIKOU_PERSON_KEY="registry-test-person-key-" + "0" * 24) as data:
        yield data


@pytest.fixture
def postgres_engine() -> Iterator[Engine]:
    """A warehouse in a fresh PostgreSQL schema, ``ensure_warehouse`` applied."""
    with fresh_postgres_schema("warehouse") as (url, schema_name):
        engine = make_engine(url, connect_args={"options": f"-csearch_path={schema_name}"})
        try:
            ensure_warehouse(engine)
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_engine(request: pytest.FixtureRequest) -> Engine:
    """The same test on SQLite and on PostgreSQL."""
    name = "sqlite_engine" if request.param == "sqlite" else "postgres_engine"
    engine: Engine = request.getfixturevalue(name)
    return engine


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """A real temporary Prefect server for the whole session (flow tests)."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    from prefect.testing.utilities import prefect_test_harness

    # a loaded machine may need longer (DUIKOU_TEST_PREFECT_STARTUP_SECONDS)
    with prefect_test_harness(server_startup_timeout=int(os.environ.get("DUIKOU_TEST_PREFECT_STARTUP_SECONDS", "120"))):
        yield
