"""A fresh, empty PostgreSQL database for a benchmark's own ``prefect server`` (production's layout:
docs/scaling.md), made on the bench's PostgreSQL (``DUIKOU_BENCH_POSTGRES_URL``) and dropped after.

A SQLite-backed Prefect server answers a write that meets another writer's commit with
``SQLITE_BUSY_SNAPSHOT`` → HTTP 503, and Prefect's client retries after 2 s: inside a flow's task
runs (the server persisting their states at the same moment) every writer-slot acquisition of a
load paid that. Benches that measure orchestration therefore report against a PostgreSQL-backed
server, as deployed, and can show the SQLite-backed one beside it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def prefect_database(admin_url: str, label: str) -> Iterator[str]:
    """Yield the ``postgresql+asyncpg://`` URL of an empty database ``duikou_bench_prefect_<label>_<pid>``."""
    name = f"duikou_bench_prefect_{label}_{os.getpid()}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield make_url(admin_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
