"""Migrations: ``upgrade head`` equals ``warehouse/schema.py``; drift is refused with a way out.

Run on an empty SQLite file and on an empty PostgreSQL schema (``search_path``, as conftest
does). The comparison is alembic's ``compare_metadata`` plus what it does not look at: the
indexes (the partial unique index ``uq_submission_current`` with its predicate) and the CHECK
constraints, both of which SQLite and PostgreSQL reflect.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import CheckConstraint, Connection, Engine, event, inspect, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from duikou_settings import reset_settings_cache
from flows.cli import main as cli_main
from tests.conftest import fresh_postgres_schema
from warehouse import schema
from warehouse.bootstrap import begin_write, ensure_warehouse
from warehouse.engine import make_engine
from warehouse.marts import refresh_marts
from warehouse.migrate import (
    BASELINE_REVISION,
    UPGRADE_COMMAND,
    SchemaDriftError,
    alembic_config,
    check_schema,
    current_revision,
    head_revision,
    migration_options,
    schema_differences,
)

POSTGRES_URL_ENV = "DUIKOU_TEST_POSTGRES_URL"  # as in conftest.py
# ---------------------------------------------------------------- empty databases
Opener = Callable[[], Engine]  # a new engine on the same database (a "new process")


@pytest.fixture
def empty_sqlite(tmp_path: Path) -> Iterator[tuple[Engine, Opener]]:
    url = f"sqlite:///{tmp_path / 'empty' / 'warehouse.sqlite'}"
    opened: list[Engine] = []

    def opener() -> Engine:
        opened.append(make_engine(url))
        return opened[-1]

    yield opener(), opener
    for engine in opened:
        engine.dispose()


@pytest.fixture
def empty_postgres() -> Iterator[tuple[Engine, Opener]]:
    with fresh_postgres_schema("migration") as (url, name):
        opened: list[Engine] = []

        def opener() -> Engine:
            opened.append(make_engine(url, connect_args={"options": f"-csearch_path={name}"}))
            return opened[-1]

        try:
            yield opener(), opener
        finally:
            for engine in opened:
                engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest) -> tuple[Engine, Opener]:
    """An empty database on each backend, and a way to open it again with a new engine."""
    name = "empty_sqlite" if request.param == "sqlite" else "empty_postgres"
    pair: tuple[Engine, Opener] = request.getfixturevalue(name)
    return pair


def tables_of(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def where_text(reflected: dict[str, Any]) -> str | None:
    options = reflected.get("dialect_options") or {}
    where = next((v for k, v in options.items() if k.endswith("_where")), None)
    return None if where is None else str(where)


# ---------------------------------------------------------------- upgrade head == metadata
def test_upgrade_head_equals_the_metadata(empty_db: tuple[Engine, Opener]) -> None:
    engine, _ = empty_db
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts=migration_options(conn))
        assert compare_metadata(context, schema.metadata) == []
        assert schema_differences(conn) == []
        assert current_revision(conn) == head_revision()
        inspector = inspect(conn)
        assert set(inspector.get_table_names()) == set(schema.metadata.tables) | {"alembic_version"}
        for table in schema.metadata.sorted_tables:
            # indexes: name, columns, uniqueness and whether partial (unique constraints that
            # PostgreSQL also lists as indexes are left to compare_metadata)
            reflected = {
                ix["name"]: ix for ix in inspector.get_indexes(table.name) if not ix.get("duplicates_constraint")
            }
            assert set(reflected) == {ix.name for ix in table.indexes}, table.name
            for index in table.indexes:
                got = reflected[str(index.name)]
                assert got["column_names"] == [c.name for c in index.columns], index.name
                assert bool(got["unique"]) == index.unique, index.name
                partial = index.dialect_options[conn.dialect.name].get("where") is not None
                assert (where_text(got) is not None) == partial, index.name
            # CHECK constraints by name (PostgreSQL rewrites the text, so names are the contract)
            wanted = {str(c.name) for c in table.constraints if isinstance(c, CheckConstraint)}
            assert {c["name"] for c in inspector.get_check_constraints(table.name)} == wanted, table.name
            if conn.dialect.name == "postgresql":  # SQLite has no comments
                assert inspector.get_table_comment(table.name)["text"] == table.comment
        current = {ix["name"]: ix for ix in inspector.get_indexes("submission")}["uq_submission_current"]
        predicate = (where_text(current) or "").replace("(", "").replace(")", "").replace("::text", "")
        assert current["unique"] and "status = 'loaded'" in predicate
        assert {c["name"] for c in inspector.get_check_constraints("submission_decision")} >= {
            "ck_submission_decision_reason_given",
            "ck_submission_decision_resulting_status_fits",
        }


def test_downgrade_base_removes_every_table(empty_db: tuple[Engine, Opener]) -> None:
    engine, _ = empty_db
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
        command.downgrade(alembic_config(conn), "base")
    assert tables_of(engine) <= {"alembic_version"}


def test_partial_unique_index_from_the_migration_holds(empty_db: tuple[Engine, Opener]) -> None:
    engine, _ = empty_db
    ensure_warehouse(engine)
    row = {"department": "tourism", "period": "2016-05", "original_name": "x.xlsx", "received_at": "2016-06-01",
           "processed_at": "2016-06-01", "rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "facts_loaded": 0}
    insert = text(
        "INSERT INTO submission (submission_id, sha256, department, period, original_name, received_at, "
        "processed_at, status, rows_read, rows_loaded, rows_rejected, facts_loaded) VALUES (:submission_id, "
        ":sha256, :department, :period, :original_name, :received_at, :processed_at, :status, :rows_read, "
        ":rows_loaded, :rows_rejected, :facts_loaded)"
    )
    with engine.begin() as conn:
        conn.execute(insert, {**row, "submission_id": "a", "sha256": "a", "status": "loaded"})
        conn.execute(insert, {**row, "submission_id": "b", "sha256": "b", "status": "superseded"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {**row, "submission_id": "c", "sha256": "c", "status": "loaded"})


# ---------------------------------------------------------------- ensure_warehouse
def test_ensure_warehouse_creates_then_finds_head(empty_db: tuple[Engine, Opener]) -> None:
    engine, opener = empty_db
    first = ensure_warehouse(engine)
    assert (first.action, first.before, first.after) == ("created", None, head_revision())
    again = ensure_warehouse(opener())
    assert (again.action, again.before) == ("current", head_revision())
    with engine.connect() as conn:
        for view in schema.VIEWS:
            conn.exec_driver_sql(f"SELECT * FROM {view}").all()
        # the 15 townships of 2016–2019 and the 6 units the 2019 reform created (6 others continue)
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM ref_township").scalar_one() == 21


def _old_create_all(engine: Engine) -> None:
    """What ensure_warehouse did before the migrations: the baseline schema + views, no alembic_version.

    (``create_all`` made exactly revision 0001's tables; later revisions add to them. Views that read
    a column added later — ``v_submission.source_url``, 0010; ``v_indicator_value.kind``, 0016 — did not
    exist in that form then:
    PostgreSQL refuses them on the baseline tables, so they are left out.)
    """
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), BASELINE_REVISION)
        conn.execute(text("DROP TABLE alembic_version"))
        for name, body in schema.VIEWS.items():
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")
            except DBAPIError:
                continue
        conn.execute(text("INSERT INTO ref_department VALUES ('tourism', '县旅游局', 'tourism bureau')"))


def test_warehouse_made_by_create_all_is_stamped(empty_db: tuple[Engine, Opener]) -> None:
    engine, _ = empty_db
    _old_create_all(engine)
    outcome = ensure_warehouse(engine)
    assert (outcome.action, outcome.before, outcome.after) == ("stamped", None, head_revision())
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert conn.exec_driver_sql("SELECT name_en FROM ref_department WHERE department = 'tourism'").scalar_one()


def test_drifted_create_all_warehouse_is_refused_and_left_alone(empty_db: tuple[Engine, Opener]) -> None:
    engine, _ = empty_db
    _old_create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE submission ADD COLUMN reviewer TEXT")
    with pytest.raises(SchemaDriftError) as refused:
        ensure_warehouse(engine)
    message = str(refused.value)
    assert "without a migration history" in message
    assert "column submission.reviewer is not in schema.py" in message
    assert UPGRADE_COMMAND in message
    assert "alembic_version" not in tables_of(engine)  # rolled back: nothing stamped
    with engine.connect() as conn:
        # views still there (v_indicator_value reads ref_indicator.kind of 0016, absent in the baseline)
        conn.exec_driver_sql("SELECT COUNT(*) FROM v_township_pairing").scalar_one()


def test_unknown_revision_is_refused(empty_db: tuple[Engine, Opener]) -> None:
    engine, opener = empty_db
    ensure_warehouse(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(SchemaDriftError, match="revision ffff, which this version of duikou does not know"):
        ensure_warehouse(opener())


# ---------------------------------------------------------------- drift refuses writes
def _drift(conn: Connection) -> None:
    conn.exec_driver_sql("ALTER TABLE submission ADD COLUMN reviewer TEXT")  # unexpected column
    conn.exec_driver_sql("ALTER TABLE ref_unit DROP COLUMN note")  # missing column
    conn.exec_driver_sql("CREATE TABLE scratch_notes (id INTEGER PRIMARY KEY)")  # unexpected table


def test_drifted_warehouse_refuses_to_load(empty_db: tuple[Engine, Opener]) -> None:
    engine, opener = empty_db
    ensure_warehouse(engine)
    with engine.begin() as conn:
        _drift(conn)
    fresh = opener()  # a new process: nothing verified yet
    with pytest.raises(SchemaDriftError) as refused, begin_write(fresh) as conn:
        conn.exec_driver_sql("DELETE FROM mart_county_kpi_yearly")  # never reached
    message = str(refused.value)
    for expected in (
        f"at revision {head_revision()}",
        "column submission.reviewer is not in schema.py",
        "column ref_unit.note is missing",
        "table scratch_notes is not in schema.py",
        f"Run `{UPGRADE_COMMAND}`",
    ):
        assert expected in message
    assert set(refused.value.differences) >= {"column ref_unit.note is missing"}
    with pytest.raises(SchemaDriftError, match=re.escape(UPGRADE_COMMAND)):
        refresh_marts(fresh)  # the loaders write through begin_write
    with pytest.raises(SchemaDriftError, match=re.escape("column submission.reviewer")):
        ensure_warehouse(opener())


def test_check_schema_compares_once_per_engine(empty_db: tuple[Engine, Opener]) -> None:
    engine, opener = empty_db
    ensure_warehouse(engine)
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    check_schema(engine)  # verified by ensure_warehouse: no query at all
    assert statements == []
    fresh = opener()
    event.listen(fresh, "before_cursor_execute", count)
    check_schema(fresh)
    compared = len(statements)
    assert compared > 0
    check_schema(fresh)
    assert len(statements) == compared


# ---------------------------------------------------------------- duikou db upgrade
def test_cli_db_upgrade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    database = tmp_path / "data" / "warehouse.sqlite"
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DUIKOU_WAREHOUSE_URL", f"sqlite:///{database}")
    reset_settings_cache()
    try:
        assert cli_main(["db", "upgrade"]) == 0
        assert f"created the warehouse at revision {head_revision()}" in capsys.readouterr().out
        assert cli_main(["db", "upgrade"]) == 0
        assert "is at the head revision" in capsys.readouterr().out
        engine = make_engine(f"sqlite:///{database}")
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE submission ADD COLUMN reviewer TEXT")
        engine.dispose()
        assert cli_main(["db", "upgrade"]) == 1
        err = capsys.readouterr().err
        assert "column submission.reviewer is not in schema.py" in err and UPGRADE_COMMAND in err
    finally:
        reset_settings_cache()
