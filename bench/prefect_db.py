"""A fresh, empty PostgreSQL database for a benchmark's own ``prefect server`` (production's layout:
docs/scaling.md), made on the bench's PostgreSQL (``DUIKOU_BENCH_POSTGRES_URL``) and dropped after.

A SQLite-backed Prefect server answers a write that meets another writer's commit with
``SQLITE_BUSY_SNAPSHOT`` → HTTP 503, and Prefect's client retries after 2 s: inside a flow's task
runs (the server persisting their states at the same moment) every writer-slot acquisition of a
load paid that. Benches that measure orchestration therefore report against a PostgreSQL-backed
server, as deployed, and can show the SQLite-backed one beside it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

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


def add_prefect_db_option(parser: argparse.ArgumentParser) -> None:
    """``--prefect-db sqlite|postgresql`` (postgresql: a fresh database on ``DUIKOU_BENCH_POSTGRES_URL``)."""
    parser.add_argument("--prefect-db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the Prefect server's own database (postgresql: DUIKOU_BENCH_POSTGRES_URL)")


def start_bench_server(stack: ExitStack, root: Path, prefect_db: str, label: str,
                       parser: argparse.ArgumentParser | None = None) -> tuple[Any, str, dict[str, str]]:
    """``prefect server start`` for a bench (``tests/helpers/ops_processes.start_prefect_server``), its
    database SQLite or — ``prefect_db`` postgresql — a fresh one on ``DUIKOU_BENCH_POSTGRES_URL``'s
    server, dropped when ``stack`` closes: (process, API URL, client environment)."""
    from tests.helpers.ops_processes import start_prefect_server

    admin_url = os.environ.get("DUIKOU_BENCH_POSTGRES_URL")
    if prefect_db == "postgresql" and not admin_url:
        message = "--prefect-db postgresql needs DUIKOU_BENCH_POSTGRES_URL"
        if parser is not None:
            parser.error(message)
        raise SystemExit(message)
    database_url = stack.enter_context(prefect_database(admin_url, label)) \
        if prefect_db == "postgresql" and admin_url else None
    return start_prefect_server(root, database_url=database_url)
