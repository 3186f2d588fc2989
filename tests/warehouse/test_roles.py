"""Analyst access: PostgreSQL roles (owner / loader / read-only analyst) and read-only SQLite.

The PostgreSQL tests log in as the roles they create (trust authentication on the test server,
``login=True``), inside the fixture's fresh schema. Role names are unique per test; the roles
are dropped at teardown (REASSIGN OWNED, DROP OWNED, DROP ROLE).
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError

from warehouse import schema
from warehouse.bootstrap import begin_write, ensure_warehouse
from warehouse.engine import make_engine
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.marts import refresh_marts
from warehouse.roles import Roles, check_identifier, create_roles, regrant

ZHANGGU, BAWANG = "513323100", "513323201"
ANALYST_READABLE = ("v_indicator_value", "v_submission", "v_township_pairing", "v_restatement",
                    "mart_county_kpi_yearly", "ref_township", "ref_indicator")
BASE_TABLES = ("submission", "submission_issue", "submission_decision", "dq_result",
               "fact_indicator_value", "fact_form_total")
INSUFFICIENT_PRIVILEGE = "42501"


def load_poverty(engine: Engine, content: str, poor: float) -> str:
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    facts = pd.DataFrame(
        [
            {"indicator": indicator, "township_code": township, "value": value, "flagged": False, "source_row": 5}
            for township, population in ((ZHANGGU, 1000.0), (BAWANG, 3000.0))
            for indicator, value in (
                ("agricultural_population_persons", population),
                ("registered_poor_year_end_persons", poor if township == ZHANGGU else 300.0),
                ("net_income_per_capita_yuan", 10000.0),
            )
        ]
    )
    outcome = record_submission(
        engine,
        SubmissionRecord(
            submission_id=submission_key("poverty", digest), sha256=digest, department="poverty", period="2016",
            original_name=f"{content}.xlsx", received_at=datetime(2017, 1, 10, tzinfo=UTC), status="loaded",
            rows_read=2, rows_loaded=2, rows_rejected=0, archive_path=None, receipt_path=None,
        ),
        facts,
        pd.DataFrame(columns=["indicator", "value", "label_zh"]),
        [],
        [],
    )
    assert outcome.status == "loaded"
    return outcome.submission_id


# ------------------------------------------------------------------ identifiers, SQLite
@pytest.mark.parametrize(
    "bad", ['analyst"; DROP TABLE submission; --', "Analyst", "1analyst", "", "a-b", "pg_analyst", "x" * 64]
)
def test_role_names_are_checked_before_any_sql(sqlite_engine: Engine, bad: str) -> None:
    with pytest.raises(ValueError, match=r"must match|reserved"):
        check_identifier(bad)
    with pytest.raises(ValueError, match=r"must match|reserved"):
        create_roles(sqlite_engine, analyst=bad)
    with pytest.raises(ValueError, match=r"must match|reserved"):
        create_roles(sqlite_engine, schema=bad)


def test_roles_are_postgresql_only(sqlite_engine: Engine) -> None:
    with pytest.raises(ValueError, match="PostgreSQL only"):
        create_roles(sqlite_engine)
    with pytest.raises(ValueError, match="different roles"):
        create_roles(sqlite_engine, owner="same", loader="same")
    assert regrant(sqlite_engine) is None


def test_sqlite_read_only_while_the_pipeline_writes(sqlite_engine: Engine) -> None:
    """The documented read-only URL: reads (views included) work during a write; writes fail."""
    load_poverty(sqlite_engine, "poverty-2016-v1", 100.0)
    refresh_marts(sqlite_engine)
    path = sqlite_engine.url.database
    assert path is not None
    reader = create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        with begin_write(sqlite_engine) as writer:  # holds the write lock, uncommitted change
            writer.exec_driver_sql("DELETE FROM mart_county_kpi_yearly")
            writer.exec_driver_sql("UPDATE fact_indicator_value SET value = value + 1")
            with reader.connect() as conn:
                assert conn.exec_driver_sql("SELECT COUNT(*) FROM mart_county_kpi_yearly").scalar_one() > 0
                values = conn.exec_driver_sql(
                    "SELECT value FROM v_indicator_value WHERE indicator = 'registered_poor_year_end_persons' "
                    "AND township_code = ?", (ZHANGGU,)
                ).scalar_one()
                assert values == 100.0  # the committed state, not the writer's
                conn.exec_driver_sql("SELECT COUNT(*) FROM v_submission").scalar_one()
                for statement in (
                    "DELETE FROM mart_county_kpi_yearly",
                    "INSERT INTO ref_department VALUES ('x', 'x', 'x')",
                    "CREATE TABLE scratch (a INTEGER)",
                ):
                    with pytest.raises(OperationalError, match="readonly"):
                        conn.exec_driver_sql(statement)
        with reader.connect() as conn:  # after the writer committed, the reader sees it
            assert conn.exec_driver_sql("SELECT COUNT(*) FROM mart_county_kpi_yearly").scalar_one() == 0
            with pytest.raises(OperationalError, match="readonly"):
                conn.exec_driver_sql("UPDATE ref_township SET note = 'x'")
    finally:
        reader.dispose()
    raw = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # the sqlite3 CLI's way, in Python
    try:
        assert raw.execute("SELECT COUNT(*) FROM v_township_pairing").fetchone() == (21,)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            raw.execute("DELETE FROM ref_pairing")
    finally:
        raw.close()


# ------------------------------------------------------------------ PostgreSQL
@dataclass
class RoleSet:
    admin: Engine  # the fixture's engine: superuser, search_path = the test schema
    schema: str
    owner: str
    loader: str
    analyst: str
    engines: list[Engine]

    def connect_as(self, role: str) -> Engine:
        url = self.admin.url.set(username=role)
        engine = make_engine(
            url.render_as_string(hide_password=False), connect_args={"options": f"-csearch_path={self.schema}"}
        )
        self.engines.append(engine)
        return engine

    def create(self) -> Roles:
        return create_roles(self.admin, owner=self.owner, loader=self.loader, analyst=self.analyst,
                            schema=self.schema, login=True)


@pytest.fixture
def roles(postgres_engine: Engine) -> Iterator[RoleSet]:
    with postgres_engine.connect() as conn:
        current = conn.execute(text("SELECT current_schema()")).scalar_one()
    prefix = f"dk{uuid.uuid4().hex[:10]}"  # our own identifiers, unique per test
    role_set = RoleSet(postgres_engine, current, f"{prefix}_owner", f"{prefix}_loader", f"{prefix}_analyst", [])
    try:
        yield role_set
    finally:
        for engine in role_set.engines:
            engine.dispose()
        names = (role_set.owner, role_set.loader, role_set.analyst)
        with postgres_engine.begin() as conn:
            existing = [n for n in names if conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :n"),
                                                         {"n": n}).first()]
            for name in existing:  # checked names: quoting is enough
                conn.exec_driver_sql(f'REASSIGN OWNED BY "{name}" TO CURRENT_USER')
                conn.exec_driver_sql(f'DROP OWNED BY "{name}"')
            for name in existing:
                conn.exec_driver_sql(f'DROP ROLE "{name}"')


def denied(engine: Engine, statement: str) -> None:
    """``statement`` fails with insufficient_privilege (each in its own transaction)."""
    with engine.connect() as conn, pytest.raises(DBAPIError) as caught:
        conn.exec_driver_sql(statement)
    sqlstate = getattr(caught.value.orig, "sqlstate", None)
    assert sqlstate == INSUFFICIENT_PRIVILEGE, f"{statement}: {caught.value}"


def count(engine: Engine, relation: str) -> int:
    with engine.connect() as conn:
        return int(conn.exec_driver_sql(f"SELECT COUNT(*) FROM {relation}").scalar_one())


def _probe_statements(table: str) -> list[str]:
    key = next(iter(schema.metadata.tables[table].primary_key.columns)).name
    return [
        f"INSERT INTO {table} DEFAULT VALUES",
        f"UPDATE {table} SET {key} = {key}",
        f"DELETE FROM {table}",
    ]


@pytest.mark.postgres
def test_analyst_reads_views_and_marts_only(roles: RoleSet) -> None:
    first = load_poverty(roles.admin, "poverty-2016-v1", 100.0)
    load_poverty(roles.admin, "poverty-2016-v2", 150.0)
    refresh_marts(roles.admin)
    created = roles.create()
    assert created == Roles(roles.schema, roles.owner, (roles.loader,), (roles.analyst,))
    analyst = roles.connect_as(roles.analyst)
    with analyst.connect() as conn:
        assert conn.execute(text("SELECT current_user")).scalar_one() == roles.analyst
    # views read base tables with their owner's rights: the analyst sees data it cannot read directly
    assert count(analyst, "v_indicator_value") == 6
    assert count(analyst, "v_restatement") == 1
    assert count(analyst, "mart_county_kpi_yearly") > 0
    for relation in ANALYST_READABLE:
        count(analyst, relation)
    for table in BASE_TABLES:
        denied(analyst, f"SELECT * FROM {table}")
    denied(analyst, f"SELECT value FROM fact_indicator_value WHERE submission_id = '{first}'")
    for table in schema.metadata.tables:
        for statement in _probe_statements(table):
            denied(analyst, statement)
    denied(analyst, "TRUNCATE mart_county_kpi_yearly")
    denied(analyst, "CREATE TABLE scratch (a integer)")
    denied(analyst, "CREATE VIEW v_scratch AS SELECT 1 AS a")
    denied(analyst, "DROP VIEW v_indicator_value")
    denied(analyst, "ALTER TABLE ref_township ADD COLUMN x integer")


@pytest.mark.postgres
def test_loader_writes_rows_but_no_ddl(roles: RoleSet) -> None:
    load_poverty(roles.admin, "poverty-2016-v1", 100.0)
    roles.create()
    loader = roles.connect_as(roles.loader)
    second = load_poverty(loader, "poverty-2016-v2", 150.0)  # inserts facts, supersedes v1
    assert refresh_marts(loader) > 0
    with loader.connect() as conn:
        current = conn.exec_driver_sql("SELECT DISTINCT submission_id FROM v_indicator_value").scalars().all()
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM submission").scalar_one() == 2
    assert current == [second]
    denied(loader, "CREATE TABLE scratch (a integer)")
    denied(loader, "CREATE VIEW v_scratch AS SELECT 1 AS a")
    denied(loader, "ALTER TABLE submission ADD COLUMN x integer")
    denied(loader, "ALTER TABLE fact_indicator_value DROP CONSTRAINT pk_fact_indicator_value")
    denied(loader, "DROP VIEW v_indicator_value")
    denied(loader, "DROP TABLE mart_county_kpi_yearly")
    denied(loader, "TRUNCATE fact_indicator_value")
    denied(loader, "UPDATE submission_decision SET reason = 'rewritten'")  # the audit trail is append-only
    denied(loader, "DELETE FROM submission_decision")


@pytest.mark.postgres
def test_objects_belong_to_the_owner(roles: RoleSet) -> None:
    roles.create()
    with roles.admin.connect() as conn:
        owners: dict[str, str] = dict(
            conn.execute(
                text("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = :s "
                     "UNION ALL SELECT viewname, viewowner FROM pg_views WHERE schemaname = :s"),
                {"s": roles.schema},
            ).all()
        )
        attributes: dict[str, bool] = dict(
            conn.execute(
                text("SELECT rolname, rolcanlogin AND NOT rolsuper AND NOT rolcreaterole AND NOT rolcreatedb "
                     "FROM pg_roles WHERE rolname IN (:o, :l, :a)"),
                {"o": roles.owner, "l": roles.loader, "a": roles.analyst},
            ).all()
        )
    assert set(owners) >= set(schema.metadata.tables) | set(schema.VIEWS)
    assert {owners[name] for name in (*schema.metadata.tables, *schema.VIEWS)} == {roles.owner}
    assert attributes == {roles.owner: True, roles.loader: True, roles.analyst: True}
    # the owner may change the schema (migrations); future tables it creates reach the loader
    owner = roles.connect_as(roles.owner)
    with owner.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE fact_future (a integer)")
    loader, analyst = roles.connect_as(roles.loader), roles.connect_as(roles.analyst)
    with loader.begin() as conn:
        conn.exec_driver_sql("INSERT INTO fact_future VALUES (1)")
    denied(analyst, "SELECT * FROM fact_future")


@pytest.mark.postgres
def test_create_roles_is_idempotent_and_regrant_restores_views(roles: RoleSet) -> None:
    def acl() -> list[tuple[object, ...]]:
        with roles.admin.connect() as conn:
            return [tuple(r) for r in conn.execute(
                text("SELECT c.relname, pg_get_userbyid(c.relowner), c.relacl::text FROM pg_class c "
                     "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s ORDER BY 1"),
                {"s": roles.schema},
            ).all()]

    assert regrant(roles.admin) is None  # no roles for this schema yet: nothing to do
    load_poverty(roles.admin, "poverty-2016-v1", 100.0)
    roles.create()
    before = acl()
    roles.create()
    assert acl() == before

    analyst = roles.connect_as(roles.analyst)
    assert count(analyst, "v_indicator_value") == 6
    with roles.admin.begin() as conn:  # what ensure_warehouse does: the new views are the admin's, ungranted
        for name in reversed(schema.VIEWS):
            conn.exec_driver_sql(f"DROP VIEW {name}")
        for name, body in schema.VIEWS.items():
            conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")
    denied(analyst, "SELECT * FROM v_indicator_value")
    found = regrant(roles.admin)
    assert found == Roles(roles.schema, roles.owner, (roles.loader,), (roles.analyst,))
    assert count(analyst, "v_indicator_value") == 6
    denied(analyst, "SELECT * FROM fact_indicator_value")
    assert acl() == before
    with roles.admin.begin() as conn:  # the hook: inside ensure_warehouse's transaction, after the views
        for name in reversed(schema.VIEWS):
            conn.exec_driver_sql(f"DROP VIEW {name}")
        for name, body in schema.VIEWS.items():
            conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")
        assert regrant(conn) == found
    assert acl() == before


@pytest.mark.postgres
def test_roles_without_login_cannot_connect(roles: RoleSet) -> None:
    create_roles(roles.admin, owner=roles.owner, loader=roles.loader, analyst=roles.analyst, schema=roles.schema)
    analyst = roles.connect_as(roles.analyst)
    with pytest.raises(OperationalError, match="not permitted to log in"), analyst.connect():
        pass
    with roles.admin.connect() as conn:  # a member of the role (here: the superuser) may SET ROLE
        conn.exec_driver_sql(f'SET ROLE "{roles.analyst}"')
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM v_township_pairing").scalar_one() == 21
        with pytest.raises(ProgrammingError, match="permission denied"):
            conn.exec_driver_sql("SELECT * FROM submission")
        conn.rollback()
        conn.exec_driver_sql("RESET ROLE")


@pytest.mark.postgres
def test_owner_maintains_the_warehouse(roles: RoleSet) -> None:
    """Production: DDL (ensure_warehouse, migrations) runs as the owner, then ``regrant``."""
    load_poverty(roles.admin, "poverty-2016-v1", 100.0)
    roles.create()
    owner = roles.connect_as(roles.owner)
    ensure_warehouse(owner)
    assert regrant(owner) == Roles(roles.schema, roles.owner, (roles.loader,), (roles.analyst,))
    analyst, loader = roles.connect_as(roles.analyst), roles.connect_as(roles.loader)
    assert count(analyst, "v_indicator_value") == count(loader, "v_indicator_value") == 6
    denied(analyst, "SELECT * FROM submission")
