"""Database roles for the PostgreSQL warehouse: owner, loader and read-only analyst.

* **owner** (``duikou_owner``) owns every table and view of ours; it alone may run DDL (the
  migrations, ``ensure_warehouse``). It has USAGE and CREATE on the schema.
* **loader** (``duikou_loader``) is what the pipeline runs as: SELECT, INSERT, UPDATE, DELETE
  on our tables (the append-only audit trails ``submission_decision``, ``release_signoff`` and
  ``followup_explanation``: SELECT and INSERT only),
  SELECT on the views, USAGE on the schema. No ownership, no CREATE, so no DDL.
* **analyst** (``duikou_analyst``) reads the documented surface only: the views (``v_*``), the
  marts (``mart_*``) and the reference tables (``ref_*``) — not the ledger and fact tables
  (``submission``, ``submission_issue``, ``submission_decision``, ``dq_result``, ``fact_*``).
  A PostgreSQL view runs with its owner's privileges, so ``v_indicator_value`` works for an
  analyst who cannot read ``fact_indicator_value`` itself.

The roles are created without LOGIN: grant them to people's login roles
(``GRANT duikou_analyst TO alice``). ``login=True`` gives them LOGIN without a password, for
local trust authentication in tests.

``ensure_warehouse`` drops and re-creates the views, which loses their grants (and a view
created by another user is owned by that user). ``regrant`` puts ownership and grants back;
it finds the roles of the current schema by themselves — a role marked by ``create_roles``
(``COMMENT ON ROLE … IS 'duikou:<kind> …'``) and granted USAGE on the schema — so it takes only
the engine, and does nothing when no roles were set up (or on SQLite).

Role and schema names are ours: they must match ``^[a-z_][a-z0-9_]{0,62}$`` (and not start
with ``pg_``), and are quoted. No other text is ever put into the SQL.

Run ``create_roles`` as a superuser (or a role that may create roles and is a member of the
owner role). Default privileges (``ALTER DEFAULT PRIVILEGES FOR ROLE owner``) give the loader
its rights on tables the owner creates later; they cannot tell a view from a fact table by
name, so the analyst's grants come only from ``create_roles`` / ``regrant``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import Connection, Engine, text

from warehouse import schema as warehouse_schema
from warehouse.engine import advisory_lock

IDENTIFIER_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
RoleKind = Literal["owner", "loader", "analyst"]
_MARKERS: dict[RoleKind, str] = {
    "owner": "duikou:owner owns the warehouse tables and views; DDL (warehouse.roles)",
    "loader": "duikou:loader pipeline: reads and writes rows, no DDL (warehouse.roles)",
    "analyst": "duikou:analyst read-only: v_*, mart_*, ref_* (warehouse.roles)",
}
#: relations an analyst may read, by name prefix
ANALYST_PREFIXES = ("v_", "mart_", "ref_")
#: the loader's rights on a table, where they differ from SELECT, INSERT, UPDATE, DELETE
#: append-only audit trails: the loader may add rows, never change or remove one
LOADER_TABLE_PRIVILEGES = {"submission_decision": "SELECT, INSERT", "release_signoff": "SELECT, INSERT",
                           "followup_explanation": "SELECT, INSERT", "alembic_version": "SELECT"}
_DML = "SELECT, INSERT, UPDATE, DELETE"
_MIGRATIONS_TABLE = "alembic_version"


def _marker(kind: RoleKind) -> str:
    """``duikou:<kind>``: the first word of the role's comment."""
    return _MARKERS[kind].split(" ", 1)[0]


class RoleSetupError(RuntimeError):
    """The roles of a schema are ambiguous (e.g. two marked owners, neither owning the tables)."""


@dataclass(frozen=True)
class Roles:
    """The roles that own and may use one schema's warehouse."""

    schema: str
    owner: str
    loaders: tuple[str, ...]
    analysts: tuple[str, ...]


def check_identifier(name: str, what: str = "identifier") -> str:
    """``name`` if it is one of our role/schema names (strict regex, no ``pg_``); else ValueError."""
    if not isinstance(name, str) or not IDENTIFIER_RE.fullmatch(name):
        raise ValueError(f"{what} {name!r} must match {IDENTIFIER_RE.pattern}")
    if name.startswith("pg_"):
        raise ValueError(f"{what} {name!r}: names starting with pg_ are reserved by PostgreSQL")
    return name


def _q(name: str) -> str:
    """A checked identifier, double-quoted (after the check there is nothing to escape)."""
    return f'"{check_identifier(name)}"'


def _qlist(names: Iterable[str]) -> str:
    return ", ".join(_q(n) for n in names)


def _our_relations() -> set[str]:
    return {*warehouse_schema.metadata.tables, *warehouse_schema.VIEWS, _MIGRATIONS_TABLE}


def _relations(conn: Connection, schema: str) -> list[tuple[str, str, str]]:
    """(name, relkind, owner) of our tables and views that exist in ``schema``."""
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relkind, pg_get_userbyid(c.relowner) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname"
        ),
        {"schema": schema},
    ).all()
    ours = _our_relations()
    return [(str(name), str(kind), str(owner)) for name, kind, owner in rows if name in ours]


def _require_postgresql(conn: Connection | Engine) -> None:
    if conn.dialect.name != "postgresql":
        raise ValueError(
            "database roles exist on PostgreSQL only; on SQLite give analysts a read-only "
            "connection (sqlite:///file:<path>?mode=ro&uri=true, see docs/design.md)"
        )


def _role_exists(conn: Connection, name: str) -> bool:
    return conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}).first() is not None


def _grant_objects(conn: Connection, roles: Roles) -> None:
    """Ownership and grants of every existing table and view of ours in ``roles.schema``."""
    schema = check_identifier(roles.schema, "schema")
    relations = _relations(conn, schema)
    if not relations:
        return
    for name, kind, owner in relations:
        if owner != roles.owner:
            keyword = {"v": "VIEW", "m": "MATERIALIZED VIEW"}.get(kind, "TABLE")
            conn.exec_driver_sql(f"ALTER {keyword} {_q(schema)}.{_q(name)} OWNER TO {_q(roles.owner)}")
    users = [*roles.loaders, *roles.analysts]
    everything = ", ".join(f"{_q(schema)}.{_q(name)}" for name, _, _ in relations)
    conn.exec_driver_sql(f"REVOKE ALL ON TABLE {everything} FROM PUBLIC" + (f", {_qlist(users)}" if users else ""))

    def grant(privileges: str, names: Sequence[str], grantees: Sequence[str]) -> None:
        if names and grantees:
            objects = ", ".join(f"{_q(schema)}.{_q(n)}" for n in names)
            conn.exec_driver_sql(f"GRANT {privileges} ON TABLE {objects} TO {_qlist(grantees)}")

    views = [name for name, kind, _ in relations if kind in ("v", "m")]
    tables = [name for name, kind, _ in relations if kind not in ("v", "m")]
    grant("SELECT", views, roles.loaders)
    grant(_DML, [t for t in tables if t not in LOADER_TABLE_PRIVILEGES], roles.loaders)
    for table_name, privileges in LOADER_TABLE_PRIVILEGES.items():
        grant(privileges, [t for t in tables if t == table_name], roles.loaders)
    readable = [name for name, _, _ in relations if name.startswith(ANALYST_PREFIXES)]
    grant("SELECT", readable, roles.analysts)
    if roles.loaders:
        conn.exec_driver_sql(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {_q(schema)} TO {_qlist(roles.loaders)}")


def create_roles(
    engine: Engine | Connection,
    *,
    owner: str = "duikou_owner",
    loader: str = "duikou_loader",
    analyst: str = "duikou_analyst",
    schema: str = "public",
    login: bool = False,
) -> Roles:
    """Create (or bring up to date) the three roles for ``schema`` and apply their rights.

    Idempotent. Existing roles are kept; ``login=True`` gives them LOGIN (no password), while
    ``login=False`` never takes LOGIN away from an existing role. Makes ``owner`` the owner of
    our tables and views, revokes CREATE on the schema from PUBLIC (PostgreSQL 15's default
    anyway), and re-grants everything (see the module docstring). PostgreSQL only.
    """
    names = {"owner": check_identifier(owner, "owner role"), "loader": check_identifier(loader, "loader role"),
             "analyst": check_identifier(analyst, "analyst role")}
    check_identifier(schema, "schema")
    if len(set(names.values())) != 3:
        raise ValueError(f"owner, loader and analyst must be three different roles, got {sorted(names.values())}")
    _require_postgresql(engine)

    def work(conn: Connection) -> Roles:
        advisory_lock(conn, "warehouse.roles")
        if conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first() is None:
            raise ValueError(f"schema {schema!r} does not exist")
        kind: RoleKind
        for kind in ("owner", "loader", "analyst"):
            role = names[kind]
            if not _role_exists(conn, role):
                conn.exec_driver_sql(f"CREATE ROLE {_q(role)} {'LOGIN' if login else 'NOLOGIN'}")
            elif login:
                conn.exec_driver_sql(f"ALTER ROLE {_q(role)} LOGIN")
            # our constant text; exec_driver_sql because text() would read ":owner" as a parameter
            conn.exec_driver_sql(f"COMMENT ON ROLE {_q(role)} IS '{_MARKERS[kind]}'")
        database = conn.execute(text("SELECT current_database()")).scalar_one()
        quoted_db = conn.dialect.identifier_preparer.quote_identifier(str(database))
        conn.exec_driver_sql(f"GRANT CONNECT ON DATABASE {quoted_db} TO {_qlist(names.values())}")
        s, o, ld, an = _q(schema), _q(owner), _q(loader), _q(analyst)
        conn.exec_driver_sql(f"GRANT USAGE, CREATE ON SCHEMA {s} TO {o}")
        conn.exec_driver_sql(f"GRANT USAGE ON SCHEMA {s} TO {ld}, {an}")
        conn.exec_driver_sql(f"REVOKE CREATE ON SCHEMA {s} FROM PUBLIC, {ld}, {an}")
        conn.exec_driver_sql(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT {_DML} ON TABLES TO {ld}"
        )
        conn.exec_driver_sql(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} GRANT USAGE, SELECT ON SEQUENCES TO {ld}"
        )
        roles = Roles(schema, owner, (loader,), (analyst,))
        _grant_objects(conn, roles)  # other roles' grants are left as they are
        return roles

    if isinstance(engine, Connection):
        return work(engine)
    with engine.begin() as conn:
        return work(conn)


def find_roles(conn: Connection, schema: str) -> Roles | None:
    """The marked roles granted USAGE on ``schema`` (explicitly, not via PUBLIC), or None."""
    if not IDENTIFIER_RE.fullmatch(schema) or schema.startswith("pg_"):
        return None  # create_roles refuses such a schema, so it has no roles of ours
    rows = conn.execute(
        text(
            "SELECT r.rolname, split_part(shobj_description(r.oid, 'pg_authid'), ' ', 1) AS marker "
            "FROM pg_roles r "
            "WHERE split_part(shobj_description(r.oid, 'pg_authid'), ' ', 1) IN (:owner, :loader, :analyst) "
            "  AND EXISTS (SELECT 1 FROM pg_namespace n, aclexplode(n.nspacl) a "
            "              WHERE n.nspname = :schema AND a.grantee = r.oid AND a.privilege_type = 'USAGE') "
            "ORDER BY r.rolname"
        ),
        {"schema": schema, **{kind: _marker(kind) for kind in ("owner", "loader", "analyst")}},
    ).all()
    by_kind: dict[str, list[str]] = {"duikou:owner": [], "duikou:loader": [], "duikou:analyst": []}
    for name, marker in rows:
        if IDENTIFIER_RE.fullmatch(str(name)):  # a role we could not quote is not one of ours
            by_kind[str(marker)].append(str(name))
    owners = by_kind["duikou:owner"]
    if not owners:
        return None
    owner = owners[0]
    if len(owners) > 1:
        current = {o for n, _, o in _relations(conn, schema) if n == "submission"}
        matching = [o for o in owners if o in current]
        if len(matching) != 1:
            raise RoleSetupError(f"schema {schema!r} has several owner roles {owners}; none owns its tables")
        owner = matching[0]
    return Roles(schema, owner, tuple(by_kind["duikou:loader"]), tuple(by_kind["duikou:analyst"]))


def regrant(engine: Engine | Connection, *, schema: str | None = None) -> Roles | None:
    """Re-apply ownership and grants after views were re-created; None if there are no roles.

    ``schema`` defaults to the connection's ``current_schema()``. A no-op returning None on
    SQLite and on a schema ``create_roles`` never set up, so ``ensure_warehouse`` may call it
    unconditionally, inside its own transaction (pass the connection).
    """
    if engine.dialect.name != "postgresql":
        return None

    def work(conn: Connection) -> Roles | None:
        target = schema if schema is not None else conn.execute(text("SELECT current_schema()")).scalar()
        if target is None:
            return None
        roles = find_roles(conn, str(target))
        if roles is not None:
            _grant_objects(conn, roles)
        return roles

    if isinstance(engine, Connection):
        return work(engine)
    with engine.begin() as conn:
        return work(conn)
