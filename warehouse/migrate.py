"""Alembic migrations of the warehouse, driven from code, and the schema-drift check.

The migrations live in ``warehouse/migrations`` (package data); their target metadata is
``warehouse.schema.metadata``, the one declaration. No ``alembic.ini`` is read: ``alembic_config``
builds the configuration in code and the caller's open connection is handed to ``env.py`` in
``config.attributes["connection"]``, so migrations run inside the caller's transaction, on
SQLite and PostgreSQL alike, and in whatever ``search_path`` schema the connection uses.

* ``migrate_to_head(conn)`` — the decision ``ensure_warehouse`` takes: create an empty
  warehouse at head; adopt (stamp) a warehouse made by the old ``create_all`` after verifying
  it; upgrade one that is behind; refuse one that differs from the schema.
* ``schema_differences(conn)`` — what differs between the database and ``schema.metadata``:
  alembic's ``compare_metadata`` plus what it does not look at (CHECK constraints by name and
  the predicate of partial indexes, as far as the dialect reflects them).
* ``check_schema(engine)`` — raises ``SchemaDriftError`` when there are differences; cached per
  engine, so writers may call it before every transaction (``begin_write`` does).

A new revision for a schema change: ``python -m warehouse.migrate revision -m "what changed"``
(autogenerates against a scratch database at head; review the file before committing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Connection, Engine, inspect
from sqlalchemy.exc import SQLAlchemyError

from warehouse import schema
from warehouse.engine import make_engine

MIGRATIONS_DIR = Path(str(resources.files("warehouse") / "migrations"))
#: the revision whose schema ``metadata.create_all`` produced before the migrations existed
BASELINE_REVISION = "0001"
UPGRADE_COMMAND = "duikou db upgrade"
REVISION_COMMAND = 'python -m warehouse.migrate revision -m "..."'

MigrationAction = Literal["created", "stamped", "upgraded", "current"]


class SchemaDriftError(RuntimeError):
    """The warehouse's schema differs from ``warehouse/schema.py``; nothing may be written."""

    def __init__(self, message: str, differences: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.differences = tuple(differences)


def drift_message(differences: Sequence[str], revision: str | None) -> str:
    """The refusal: what differs and what to run."""
    at = f"at revision {revision}" if revision else "without a migration history"
    listed = "\n".join(f"  - {d}" for d in differences)
    return (
        f"the warehouse ({at}) differs from warehouse/schema.py:\n{listed}\n"
        f"Run `{UPGRADE_COMMAND}` to bring it to the head revision ({head_revision()}). If it is "
        "already there, the database was altered by hand, or schema.py changed without a "
        f"migration: add one with `{REVISION_COMMAND}`."
    )


@dataclass(frozen=True)
class MigrationOutcome:
    """What ``migrate_to_head`` did: ``before`` is None for a warehouse without history."""

    action: MigrationAction
    before: str | None
    after: str

    def describe(self) -> str:
        if self.action == "created":
            return f"created the warehouse at revision {self.after}"
        if self.action == "stamped":
            return f"adopted a warehouse made before migrations existed: stamped revision {self.after}"
        if self.action == "upgraded":
            return f"upgraded the warehouse from revision {self.before} to {self.after}"
        return f"the warehouse is at the head revision {self.after}"


# ---------------------------------------------------------------- alembic configuration
def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration, built in code; ``env.py`` takes ``connection`` from its attributes."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # v0001_initial.py: a valid module name (mypy, ruff) in revision order
    config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migration_options(connection: Connection) -> dict[str, Any]:
    """``context.configure`` options shared by ``env.py`` and the drift check."""
    return {
        "target_metadata": schema.metadata,
        "compare_type": True,
        "compare_server_default": False,  # the schema declares no server defaults
        # SQLite alters a table by copying it: alembic's batch mode does that
        "render_as_batch": connection.dialect.name == "sqlite",
        "include_object": _include_object_for(connection.dialect.name),
    }


def _include_object_for(dialect: str) -> Any:
    """Skip, on PostgreSQL, the foreign keys that exist there as triggers (schema.FACT_REFERENCES)."""

    def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        return not (
            dialect == "postgresql"
            and type_ == "foreign_key_constraint"
            and name in schema.TRIGGER_ENFORCED_ON_POSTGRESQL
        )

    return include_object


@lru_cache(maxsize=1)
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    """The newest revision in ``warehouse/migrations/versions`` (there must be exactly one head)."""
    head = _script().get_current_head()
    if head is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS_DIR}")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision stamped in the database's ``alembic_version``; None when it has none."""
    heads = MigrationContext.configure(conn).get_current_heads()
    if len(heads) > 1:
        raise SchemaDriftError(f"the warehouse has several alembic heads {heads}; merge them first")
    return heads[0] if heads else None


def _known(revision: str) -> bool:
    try:
        return _script().get_revision(revision) is not None
    except Exception:  # alembic raises its own errors for unknown / ambiguous ids
        return False


# ---------------------------------------------------------------- differences
def _name(obj: Any) -> str:
    return str(getattr(obj, "name", None) or obj)


def _table_of(obj: Any) -> str:
    table = getattr(obj, "table", None)
    return _name(table) if table is not None else "?"


def _describe(diff: Any) -> str:
    """One line for one item of ``compare_metadata``'s result ("database" vs "schema.py")."""
    if isinstance(diff, list):  # modify_* come grouped per column
        return "; ".join(_describe(item) for item in diff)
    kind = diff[0]
    if kind == "add_table":
        return f"table {_name(diff[1])} is missing"
    if kind == "remove_table":
        return f"table {_name(diff[1])} is not in schema.py"
    if kind == "add_column":
        return f"column {diff[2]}.{_name(diff[3])} is missing"
    if kind == "remove_column":
        return f"column {diff[2]}.{_name(diff[3])} is not in schema.py"
    if kind in ("add_index", "add_constraint", "add_fk"):
        return f"{kind.removeprefix('add_')} {_name(diff[1])} on {_table_of(diff[1])} is missing"
    if kind in ("remove_index", "remove_constraint", "remove_fk"):
        return f"{kind.removeprefix('remove_')} {_name(diff[1])} on {_table_of(diff[1])} is not in schema.py"
    if kind in ("add_table_comment", "remove_table_comment"):
        return f"comment of table {_name(diff[1])} differs"
    if kind.startswith("modify_"):
        _, _, table, column, _, in_db, in_schema = diff
        what = kind.removeprefix("modify_")
        return f"column {table}.{column}: {what} is {in_db!r} in the database, {in_schema!r} in schema.py"
    return repr(diff)


def _where_of(reflected: Mapping[str, Any]) -> Any:
    options: Mapping[str, Any] = reflected.get("dialect_options") or {}
    return next((v for k, v in options.items() if k.endswith("_where")), None)


def _constraint_differences(conn: Connection, tables: set[str]) -> list[str]:
    """CHECK constraints by name and partial-index predicates: alembic compares neither."""
    inspector = inspect(conn)
    declared = [t for t in schema.metadata.sorted_tables if t.name in tables]  # missing ones: named
    checks = inspector.get_multi_check_constraints(filter_names=[t.name for t in declared])
    found_checks: dict[str, set[str]] = {}
    for (_, table_name), items in checks.items():
        found_checks[table_name] = {str(c["name"]) for c in items if c.get("name")}
    out: list[str] = []
    for table in declared:
        wanted = {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
        found = found_checks.get(table.name, set())
        out += [f"check constraint {name} on {table.name} is missing" for name in sorted(wanted - found)]
        out += [f"check constraint {name} on {table.name} is not in schema.py" for name in sorted(found - wanted)]
        if not table.indexes:
            continue
        reflected = {str(ix["name"]): ix for ix in inspector.get_indexes(table.name)}
        for index in table.indexes:
            got = reflected.get(str(index.name))
            if got is None:
                continue  # alembic names it
            partial = index.dialect_options[conn.dialect.name].get("where") is not None
            if partial != (_where_of(got) is not None):
                state = "not partial" if partial else "partial"
                out.append(f"index {index.name} on {table.name} is {state} in the database")
    return out


def existing_triggers(conn: Connection) -> set[str]:
    """Names of the triggers on our tables in the connection's schema (SQLite: the file)."""
    if conn.dialect.name == "postgresql":
        rows = conn.exec_driver_sql(
            "SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND NOT t.tgisinternal"
        )
    else:
        rows = conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'trigger'")
    return {str(r[0]) for r in rows}


def _trigger_differences(conn: Connection, tables: set[str]) -> list[str]:
    """The triggers enforcing ``schema.FACT_REFERENCES``: alembic does not know triggers."""
    found = existing_triggers(conn)
    return [
        f"trigger {t.name} on {t.table} (enforces fact_indicator_value's foreign keys) is missing"
        for t in schema.fact_reference_triggers(conn.dialect.name)
        if t.table in tables and t.name not in found
    ]


def schema_differences(conn: Connection) -> list[str]:
    """Every difference between the database and ``schema.metadata``, one line each; [] = none."""
    context = MigrationContext.configure(conn, opts=migration_options(conn))
    out = [_describe(diff) for diff in compare_metadata(context, schema.metadata)]
    existing = set(inspect(conn).get_table_names()) & set(schema.metadata.tables)
    return out + _constraint_differences(conn, existing) + _trigger_differences(conn, existing)


def verify_schema(conn: Connection) -> None:
    """Raise ``SchemaDriftError`` naming the differences; uncached (see ``check_schema``)."""
    differences = schema_differences(conn)
    if differences:
        raise SchemaDriftError(drift_message(differences, current_revision(conn)), differences)


def _verify_adopted(conn: Connection) -> None:
    differences = schema_differences(conn)
    if differences:  # named as it was found: without history, not at the revision just stamped
        raise SchemaDriftError(drift_message(differences, None), differences)


_verified: weakref.WeakSet[Engine] = weakref.WeakSet()


def mark_verified(engine: Engine) -> None:
    """Remember that ``engine``'s warehouse matched the schema (``ensure_warehouse`` verified it)."""
    _verified.add(engine)


def check_schema(engine: Engine) -> None:
    """Refuse a warehouse whose schema differs from ``schema.py``: ``SchemaDriftError`` says what.

    Runs the comparison once per engine (≈ 40 ms) and remembers a success, so it is free on
    every later call; a failure is not remembered (the next call compares again).
    """
    if engine in _verified:
        return
    with engine.connect() as conn:
        verify_schema(conn)
    _verified.add(engine)


# ---------------------------------------------------------------- upgrading
def _run(conn: Connection, action: Literal["upgrade", "stamp"], revision: str) -> None:
    config = alembic_config(conn)
    if action == "upgrade":
        command.upgrade(config, revision)
    else:
        command.stamp(config, revision)


def _adopt(conn: Connection, head: str) -> None:
    """Stamp a warehouse made by the old ``create_all`` (no ``alembic_version``), once verified.

    ``create_all`` made the baseline revision's schema. While the baseline is the head, the
    warehouse must match ``schema.py`` before it is stamped; later, it is stamped at the
    baseline, upgraded, and verified afterwards (the caller's rollback undoes a refusal).
    """
    if head == BASELINE_REVISION:
        _verify_adopted(conn)
        _run(conn, "stamp", head)
        return
    try:
        _run(conn, "stamp", BASELINE_REVISION)
        _run(conn, "upgrade", head)
    except SQLAlchemyError as exc:
        raise SchemaDriftError(
            f"the warehouse was made before migrations existed and does not match revision "
            f"{BASELINE_REVISION}, so it cannot be upgraded: {exc}"
        ) from exc
    _verify_adopted(conn)


def migrate_to_head(conn: Connection) -> MigrationOutcome:
    """Bring the warehouse on ``conn`` to the head revision, inside the caller's transaction.

    * no ``alembic_version`` and none of our tables → upgrade from nothing to head;
    * our tables but no ``alembic_version`` (made by the old ``create_all``) → stamp after
      verifying it matches the schema (see ``_adopt``); refused when it differs;
    * behind → upgrade; at head → nothing; a revision this code does not know → refused.

    The result is verified against ``schema.metadata`` in every case (``SchemaDriftError``
    names the differences); on an error the caller's transaction rolls back, so a refused
    warehouse is left exactly as it was.
    """
    head = head_revision()
    before = current_revision(conn)
    if before is None:
        if set(inspect(conn).get_table_names()) & set(schema.metadata.tables):
            _adopt(conn, head)  # verified inside
            return MigrationOutcome(action="stamped", before=None, after=head)
        _run(conn, "upgrade", head)
        action: MigrationAction = "created"
    elif not _known(before):
        raise SchemaDriftError(
            f"the warehouse is at revision {before}, which this version of duikou does not know "
            f"(its head is {head}): a newer duikou migrated it; upgrade duikou instead"
        )
    elif before != head:
        _run(conn, "upgrade", head)
        action = "upgraded"
    else:
        action = "current"
    verify_schema(conn)
    return MigrationOutcome(action=action, before=before, after=head)


# ---------------------------------------------------------------- new revisions (developers)
def _next_revision_id() -> str:
    numbers = [int(r.revision) for r in _script().walk_revisions() if r.revision.isdigit()]
    return f"{max(numbers, default=0) + 1:04d}"


@contextmanager
def _scratch_connection(url: str | None) -> Iterator[Connection]:
    """An empty database to autogenerate against: a temporary SQLite file, or a temporary
    schema on ``url`` (PostgreSQL compares comments too; SQLite has none)."""
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.sqlite'}")
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                engine.dispose()
            return
        scratch = f"scratch_{uuid.uuid4().hex[:12]}"  # our own identifier
        admin = make_engine(url)
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {scratch}")
        engine = make_engine(url, connect_args={"options": f"-csearch_path={scratch}"})
        try:
            with engine.connect() as conn:
                yield conn
        finally:
            engine.dispose()
            with admin.begin() as conn:
                conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {scratch} CASCADE")
            admin.dispose()


def new_revision(message: str, url: str | None = None) -> Path:
    """Autogenerate the next revision (``v0002_<slug>.py`` ...) from the difference between head
    and ``schema.metadata``; returns its path. Review it: autogenerate misses renames, CHECK
    constraints and partial-index predicates, and SQLite scratch databases miss comments."""
    with _scratch_connection(url) as conn, conn.begin():
        _run(conn, "upgrade", "head")
        script = command.revision(
            alembic_config(conn), message=message, autogenerate=True, rev_id=_next_revision_id()
        )
        conn.rollback()
    _script.cache_clear()
    if script is None or isinstance(script, list):
        raise RuntimeError("alembic did not write exactly one revision")
    return Path(script.path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m warehouse.migrate", description="warehouse migrations")
    sub = parser.add_subparsers(dest="command", required=True)
    rev = sub.add_parser("revision", help="autogenerate the next revision from schema.py")
    rev.add_argument("-m", "--message", required=True)
    rev.add_argument("--url", help="a PostgreSQL URL to compare on (in a temporary schema); default SQLite")
    sub.add_parser("heads", help="print the head revision")
    args = parser.parse_args(argv)
    if args.command == "heads":
        print(head_revision())
        return 0
    print(f"wrote {new_revision(args.message, args.url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
