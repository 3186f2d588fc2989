"""Prefect's local database migrated by another Prefect version: every duikou command says so in
one line with the fix and exits 3, instead of Prefect restarting its temporary server until the
start-up timeout and a 60-line traceback.

The stale database is real: a SQLite ``prefect.db`` whose ``alembic_version`` names a revision the
installed Prefect does not have (what a newer Prefect leaves behind), run against the real
``duikou`` command line in a subprocess with no ``PREFECT_API_URL``.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from expectations.declaration import load_declarations
from flows.prefect_home import explain_prefect_db_error, known_revisions, prefect_database_problem
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values

ROOT = Path(__file__).resolve().parents[2]
UNKNOWN_REVISION = "ffffffffffff"


def _prefect_db(home: Path, revision: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    db = home / "prefect.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
        con.execute("INSERT INTO alembic_version VALUES (?)", (revision,))
    return db


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DUIKOU_"))}
    env.update(DUIKOU_DATA_DIR=str(tmp_path / "data"), **extra)
    return env


def _duikou(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flows.cli", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def _assert_one_line_with_the_fix(result: subprocess.CompletedProcess[str], db: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 3, result.stderr[-3000:]
    assert len(lines) == 1, result.stderr[-3000:]
    line = lines[0]
    assert str(db) in line and UNKNOWN_REVISION in line
    assert "another Prefect version" in line
    assert "PREFECT_HOME" in line and "PREFECT_API_URL" in line
    assert "Traceback" not in result.stderr


def test_ingest_with_a_prefect_home_migrated_by_another_version(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    db = _prefect_db(home, UNKNOWN_REVISION)
    labour = load_declarations()["labour"]
    form = write_form(tmp_path / "labour-2017-05.xlsx", labour, "2017-05", demo_values()[("labour", "2017-05")])

    result = _duikou(["ingest", str(form), "--department", "labour", "--period", "2017-05"],
                     _env(tmp_path, PREFECT_HOME=str(home)))

    _assert_one_line_with_the_fix(result, db)
    assert not (tmp_path / "data" / "receipts").exists()  # stopped before anything was read or written


def test_demo_checks_the_prefect_home_it_chooses(tmp_path: Path) -> None:
    """``duikou demo`` keeps Prefect's database under <data>/prefect-home; a stale one there too."""
    db = _prefect_db(tmp_path / "data" / "prefect-home", UNKNOWN_REVISION)

    result = _duikou(["demo", "--data-dir", str(tmp_path / "data")], _env(tmp_path))

    _assert_one_line_with_the_fix(result, db)
    assert not (tmp_path / "data" / "landing").exists()


def test_a_known_revision_or_a_server_is_not_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "prefect-home"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))
    assert prefect_database_problem() is None  # no database yet
    assert not (home / "prefect.db").exists()  # and the check did not create one

    _prefect_db(home, sorted(known_revisions())[0])
    assert prefect_database_problem() is None  # an older Prefect's revision: Prefect upgrades it

    (home / "prefect.db").unlink()
    _prefect_db(home, UNKNOWN_REVISION)
    assert prefect_database_problem() is not None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_database_problem() is None  # the local database is not used


def test_explain_the_errors_prefect_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the check could not run first: the server's start-up timeout and alembic's own errors."""
    home = tmp_path / "prefect-home"
    db = _prefect_db(home, UNKNOWN_REVISION)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(home))

    timeout = RuntimeError("Timed out while attempting to connect to ephemeral Prefect API server.")
    line = explain_prefect_db_error(timeout)
    assert line is not None and str(db) in line and "PREFECT_HOME" in line

    alembic = RuntimeError(f"Can't locate revision identified by '{UNKNOWN_REVISION}'")
    wrapped = ValueError("flow run failed")
    wrapped.__cause__ = alembic
    line = explain_prefect_db_error(wrapped)
    assert line is not None and UNKNOWN_REVISION in line and "\n" not in line
    assert explain_prefect_db_error(ValueError("something else")) is None  # other errors are left alone

    (home / "prefect.db").unlink()
    assert explain_prefect_db_error(timeout) is None  # a timeout with a sound database: not ours to explain
