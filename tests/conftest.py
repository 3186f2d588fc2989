"""Shared fixtures: warehouse engines on a temporary SQLite file and on real PostgreSQL.

``warehouse_engine`` runs a test on both backends. PostgreSQL needs
``DUIKOU_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``):
unset → skipped; set but unreachable → the test fails, because a configured database that
cannot be reached is a broken environment, not an optional one. Each test's warehouse is a copy
of one the session migrated (``ensure_warehouse``): a copied SQLite file, a PostgreSQL database made
from a template database (dropped by a thread of the worker's once the test ends). Tests that need
an empty PostgreSQL schema (migrations, the ledger's processes) take ``fresh_postgres_schema``,
dropped afterwards. The collection is ordered longest files first (``LONGEST_FILES``), for
``make test``'s workers.
"""

from __future__ import annotations

import os
import queue
import shutil
import threading
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import OperationalError

from warehouse.bootstrap import ensure_warehouse
from warehouse.engine import make_engine
from warehouse.migrate import mark_verified

POSTGRES_URL_ENV = "DUIKOU_TEST_POSTGRES_URL"

#: The files that take longest, longest first (seconds of one worker's time, measured 2026-12-07 on the
#: two shared cores at load average ~5). ``make test`` hands whole files to its workers in collection
#: order (``--dist loadfile --no-loadscope-reorder``): these go first, so no worker begins a two-minute
#: file while the other is finishing the small ones (xdist's own order — most tests first — left one
#: worker idle for the last ~3 minutes). Files not listed follow in their usual order.
LONGEST_FILES = (
    "tests/flows/test_operations_e2e.py",  # 182: a real Prefect server, duikou serve, the intake server
    "tests/flows/test_flows.py",  # 165: the whole demo's nightly, twice, then a release
    "tests/hostile/test_ledger.py",  # 171: ingests in child processes
    "tests/submission/test_quarantine.py",  # 160: the quarantine commands' flows, on both backends
    "tests/flows/test_workpool.py",  # 153: a real Prefect server and process workers
    "tests/hostile/test_processes.py",  # 137: duikou processes and their temporary servers, killed
    "tests/flows/test_serve_wake.py",  # 66
    "tests/warehouse/test_concurrency.py",  # 66
    "tests/warehouse/test_crash_safety.py",  # 52
    "tests/hostile/test_soak.py",  # 51
    "tests/forms/test_form_variety.py",  # 45
    "tests/demo/test_demo_data.py",  # 41
    "tests/flows/test_ingest_command.py",  # 40
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first (``LONGEST_FILES``); a stable sort: each file's tests stay together, in order."""
    rank = {path: i for i, path in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))


@pytest.fixture(scope="session")
def sqlite_warehouse_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite warehouse made by ``ensure_warehouse`` for the session: each test copies it.

    Migrating an empty database to head, loading the reference data and comparing the result with
    ``schema.py`` costs ~1 s per warehouse, paid ~250 times a run; a copy of the file costs a few
    milliseconds and is the same warehouse. (``tests/warehouse/test_migrations.py`` still migrates
    empty databases itself: that is what it tests.)
    """
    path = tmp_path_factory.mktemp("warehouse-template") / "warehouse.sqlite"
    engine = make_engine(f"sqlite:///{path}")
    ensure_warehouse(engine)
    engine.dispose()  # the last connection closed: the WAL is checkpointed into the file
    return path


@pytest.fixture
def sqlite_engine(tmp_path: Path, sqlite_warehouse_template: Path) -> Iterator[Engine]:
    """A warehouse in a temporary SQLite file: a copy of the session's ``ensure_warehouse``d one."""
    target = tmp_path / "warehouse" / "warehouse.sqlite"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sqlite_warehouse_template, target)
    engine = make_engine(f"sqlite:///{target}")
    mark_verified(engine)  # the template was verified against schema.py when ensure_warehouse made it
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


class PostgresWarehouses:
    """Warehouses on PostgreSQL as databases copied from one template the session migrated.

    ``CREATE DATABASE … TEMPLATE`` copies the template's files (~0.2 s) where ``ensure_warehouse``
    on an empty schema migrates, loads reference data and compares the schema (~2–6 s here). Each
    test gets a database of its own, dropped when the test ends by a thread of the worker's
    (``drop_later``): ``DROP DATABASE`` forces a checkpoint, which flushes every other database's
    dirty pages and waits for it — ~0.2–1 s a drop, 40–60 s when a worker dropped its ~60 databases
    at the session's end, on the critical path; beside the next test it costs the worker nothing.
    """

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self.admin = make_engine(url, isolation_level="AUTOCOMMIT")
        self.template = f"duikou_template_{uuid.uuid4().hex[:12]}"  # our own identifiers, not data
        self.made: list[str] = []
        self._to_drop: queue.Queue[str | None] = queue.Queue()
        self._drop_failures: list[str] = []
        self._dropper = threading.Thread(target=self._drop_each, name="drop-test-databases", daemon=True)
        self._dropper.start()

    def make_template(self) -> None:
        try:
            with self.admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE {self.template}"))
        except OperationalError as exc:
            pytest.fail(f"{POSTGRES_URL_ENV} is set but PostgreSQL is unreachable: {exc}")
        self.made.append(self.template)
        engine = make_engine(self.url.set(database=self.template).render_as_string(hide_password=False))
        try:
            ensure_warehouse(engine)
        finally:
            engine.dispose()  # CREATE DATABASE … TEMPLATE refuses a template with open connections

    def new_url(self) -> str:
        name = f"duikou_test_{uuid.uuid4().hex[:12]}"
        with self.admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {self.template}"))
        self.made.append(name)
        return self.url.set(database=name).render_as_string(hide_password=False)

    def drop_later(self, url: str) -> None:
        """The test that used ``url``'s database is over: the dropping thread drops it."""
        self._to_drop.put(make_url(url).database)

    def _drop_each(self) -> None:
        while (name := self._to_drop.get()) is not None:
            try:
                with self.admin.connect() as conn:
                    conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                self.made.remove(name)
            except Exception as exc:  # reported by drop_all, which tries it again
                self._drop_failures.append(f"{name}: {exc}")

    def drop_all(self) -> None:
        """Wait for the dropping thread, then drop what is left (the template, failed drops)."""
        self._to_drop.put(None)
        self._dropper.join()
        with self.admin.connect() as conn:
            for name in reversed(self.made):
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        self.admin.dispose()
        if self._drop_failures:
            warnings.warn("test databases dropped only at the session's end: " + "; ".join(self._drop_failures),
                          stacklevel=1)


@pytest.fixture(scope="session")
def postgres_warehouses() -> Iterator[PostgresWarehouses]:
    url = os.environ.get(POSTGRES_URL_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_URL_ENV} not set: PostgreSQL warehouse tests skipped")
    warehouses = PostgresWarehouses(url)
    try:
        warehouses.make_template()
        yield warehouses
    finally:
        warehouses.drop_all()


@pytest.fixture
def postgres_engine(postgres_warehouses: PostgresWarehouses) -> Iterator[Engine]:
    """A warehouse in a PostgreSQL database of its own: a copy of the session's ``ensure_warehouse``d one."""
    url = postgres_warehouses.new_url()
    engine = make_engine(url)
    mark_verified(engine)  # the template was verified against schema.py when ensure_warehouse made it
    try:
        yield engine
    finally:
        engine.dispose()
        postgres_warehouses.drop_later(url)


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
