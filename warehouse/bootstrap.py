"""The warehouse made ready, and every writer's gate: ``ensure_warehouse`` and ``begin_write``.

Both call ``warehouse.migrate`` (and ``ensure_warehouse`` also ``warehouse.roles`` and
``warehouse.refdata``), which stand on ``warehouse.engine``; they live here, above all of them,
so that ``engine.py`` — connections, write transactions, partition locks, the views' DDL —
imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from warehouse.dictionary import view_comment_statements
from warehouse.engine import advisory_lock, create_views, drop_views, write_transaction
from warehouse.migrate import MigrationOutcome, check_schema, mark_verified, migrate_to_head
from warehouse.refdata import load_reference
from warehouse.roles import regrant


@contextmanager
def begin_write(engine: Engine) -> Iterator[Connection]:
    """A write transaction: committed on exit, rolled back on any exception.

    On SQLite it starts with ``BEGIN IMMEDIATE``, which is also the partition lock of
    ``advisory_lock`` (SQLite has one writer at a time). A warehouse whose schema differs from
    ``schema.py`` is refused first (``SchemaDriftError``: run ``duikou db upgrade``); the
    comparison runs once per engine, or never when ``ensure_warehouse`` verified it.
    """
    check_schema(engine)
    with write_transaction(engine) as conn:
        yield conn


def ensure_warehouse(engine: Engine) -> MigrationOutcome:
    """Bring the warehouse to the head migration, (re)create the views, load reference data.

    One transaction (DDL is transactional on both backends), serialised between processes:

    * an empty database is upgraded from nothing to head;
    * a warehouse made by the old ``create_all`` (our tables, no ``alembic_version``) is
      stamped once it is verified to match ``schema.py``, and refused otherwise;
    * a warehouse behind head is upgraded; one at head costs a schema comparison (≈ 40 ms);
    * the result is compared with ``schema.metadata``: any difference raises
      ``SchemaDriftError`` naming it (and saying to run ``duikou db upgrade``), and nothing is
      changed. A success is remembered for ``engine``, so its writers skip the check.

    The views are dropped before migrating (PostgreSQL refuses to alter a column a view reads)
    and re-created afterwards from ``schema.VIEWS`` (with their comments on PostgreSQL); then the
    reference data is brought in line; the
    second call writes no reference rows unless a CSV or declaration changed (see
    ``refdata.load_reference``). Returns what the migration step did.
    """
    with write_transaction(engine) as conn:
        advisory_lock(conn, "ensure_warehouse")
        drop_views(conn)
        outcome = migrate_to_head(conn)
        create_views(conn)
        if conn.dialect.name == "postgresql":  # SQLite keeps no comments
            for statement in view_comment_statements():
                # our own text, quoted; psycopg reads % as a placeholder even with no parameters
                conn.exec_driver_sql(statement.replace("%", "%%"))
        regrant(conn)  # PostgreSQL roles (if set up) lose their grants when views are re-created
        load_reference(conn)
    mark_verified(engine)
    return outcome
