"""Issue 13, the ledger's part: who sent a file is part of its key, the winner writes the receipt,
and every ledger row gets its receipt (faults 8, 3 and 4).

Against the real flows: ``duikou ingest`` (``flows.cli.main``) and the nightly under Prefect's test
harness, and real concurrent processes (``tests/helpers/ledger_child.py``, the same control flow
as ``duikou ingest``) — on SQLite and on PostgreSQL (the test's fresh schema, reached by the
children through ``DUIKOU_WAREHOUSE_URL``'s ``options=-csearch_path``).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import Engine, select

from duikou_settings import get_settings
from expectations.declaration import load_declarations
from flows.warehouse_access import open_warehouse
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.conftest import fresh_postgres_schema, use_data_dir
from tests.helpers import ledger_child
from warehouse import bulk, schema
from warehouse.keys import submission_key
from warehouse.load import find_submission

pytestmark = pytest.mark.flow
CHILD = Path(ledger_child.__file__)  # run by path, as its own process


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A data directory of its own; its warehouse a SQLite file inside it or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        with use_data_dir(monkeypatch, tmp_path / "data") as data:
            yield data
        return
    with fresh_postgres_schema("ledger") as (url, name):
        separator = "&" if "?" in url else "?"
        with use_data_dir(monkeypatch, tmp_path / "data",
                          DUIKOU_WAREHOUSE_URL=f"{url}{separator}options={quote(f'-csearch_path={name}')}") as data:
            engine = open_warehouse(get_settings())
            yield data
            engine.dispose()


def _engine() -> Engine:
    return open_warehouse(get_settings())


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _form(path: Path, department: str, period: str, *, too_many_poor: bool = False) -> Path:
    """A demo return; ``too_many_poor`` (poverty): a critical rule with action quarantine fails."""
    rows = demo_values(2017)[(department, period)].copy()
    if too_many_poor:
        rows.loc[0, "registered_poor_year_end_persons"] = rows.loc[0, "agricultural_population_persons"] + 10
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_form(path, load_declarations()[department], period, rows)


def _receipt(data: Path, submission_id: str, suffix: str = ".json") -> dict[str, Any]:
    found: dict[str, Any] = json.loads((data / "receipts" / f"{submission_id}{suffix}").read_text(encoding="utf-8"))
    return found


def _ledger(sha256: str) -> dict[str, dict[str, Any]]:
    """The ledger rows of these bytes, by department."""
    sub = schema.submission
    with _engine().connect() as conn:
        rows = conn.execute(select(sub).where(sub.c.sha256 == sha256)).mappings().all()
    return {str(r["department"]): dict(r) for r in rows}


# ------------------------------------------------------------------------------ fault 8
def test_the_same_bytes_from_two_departments_are_two_submissions(prefect_harness: None, data_dir: Path) -> None:
    """Tourism's return, and the same file sent by labour: two rows, two ids, two receipts."""
    from flows.nightly import nightly

    landing = data_dir / "landing"
    sent = _form(landing / "tourism" / "2016-05" / "旅游 5月.xlsx", "tourism", "2016-05")
    (landing / "labour" / "2016-05").mkdir(parents=True)
    (landing / "labour" / "2016-05" / "旅游 5月.xlsx").write_bytes(sent.read_bytes())
    sha = _sha(sent)

    summary = nightly(run_label="same-bytes", build_report=False)

    ids = {"tourism": submission_key("tourism", sha), "labour": submission_key("labour", sha)}
    assert ids["tourism"] != ids["labour"]
    ledger = _ledger(sha)
    assert {d: (r["submission_id"], r["status"]) for d, r in ledger.items()} == {
        "tourism": (ids["tourism"], "loaded"), "labour": (ids["labour"], "rejected")}
    assert sorted(r.status for r in summary.processed) == ["loaded", "rejected"]
    for department, status in (("tourism", "loaded"), ("labour", "rejected")):
        receipt = _receipt(data_dir, ids[department])
        assert (receipt["department"], receipt["status"], receipt["submission_id"]) == (
            department, status, ids[department])
    assert nightly(run_label="same-bytes-again", build_report=False).unchanged == 2  # both known now


def test_an_empty_file_from_health_leaves_labours_row_alone(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    labour_file, health_file = tmp_path / "labour.csv", tmp_path / "health.csv"
    labour_file.write_bytes(b"")
    health_file.write_bytes(b"")
    sha = _sha(labour_file)
    assert main(["ingest", str(labour_file), "--department", "labour", "--period", "2016-05", "--json"]) == 1
    labour_row = _ledger(sha)["labour"]
    labour_receipt = _receipt(data_dir, labour_row["submission_id"])

    assert main(["ingest", str(health_file), "--department", "health", "--period", "2016-05", "--json"]) == 1
    capsys.readouterr()

    ledger = _ledger(sha)
    assert ledger["labour"] == labour_row  # not rewritten: same department, name, time, status
    assert _receipt(data_dir, labour_row["submission_id"]) == labour_receipt
    health_id = submission_key("health", sha)
    assert (ledger["health"]["submission_id"], ledger["health"]["status"]) == (health_id, "rejected")
    assert _receipt(data_dir, health_id)["department"] == "health"
    assert ledger["labour"]["submission_id"] == submission_key("labour", sha)


# ------------------------------------------------------------------------------ children
@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def describe(self) -> str:
        err = (self.workdir / f"{self.name}.err").read_text(errors="replace")[-4000:]
        return f"{self.name} exited {self.process.returncode}; stderr:\n{err}"

    def wait_for(self, marker: str, timeout: float = 120) -> Path:
        path = self.workdir / f"{self.name}.{marker}"
        deadline = time.monotonic() + timeout
        while not path.exists():
            if self.process.poll() is not None:
                raise AssertionError(f"waiting for {path.name}: " + self.describe())
            if time.monotonic() > deadline:
                raise AssertionError(f"{path.name} did not appear in {timeout} s")
            time.sleep(0.02)
        return path

    def result(self, timeout: float = 120) -> dict[str, Any]:
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise AssertionError(f"{self.name} did not finish in {timeout} s") from None
        if self.process.returncode != 0:
            raise AssertionError(self.describe())
        found: dict[str, Any] = json.loads((self.workdir / f"{self.name}.out").read_text().strip().splitlines()[-1])
        return found

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


def _spawn(workdir: Path, name: str, path: Path, department: str, period: str, *,
           hold_before_start: bool = False, hold_after_check: bool = False, hold_after_load: bool = False) -> Child:
    """``duikou ingest``'s control flow in its own process, with this test's data dir, warehouse and Prefect;
    with ``hold_before_start`` it begins when the test touches ``<workdir>/<name>.start``."""
    from prefect.settings import PREFECT_API_URL

    spec = {"workdir": str(workdir), "name": name, "path": str(path), "department": department, "period": period,
            "hold_before_start": hold_before_start, "hold_after_check": hold_after_check,
            "hold_after_load": hold_after_load}
    env = {k: v for k, v in os.environ.items() if k not in (bulk.PAUSE_AT_ENV, bulk.PAUSE_MARKER_ENV)}
    env["PREFECT_API_URL"] = str(PREFECT_API_URL.value())
    with (workdir / f"{name}.out").open("wb") as out, (workdir / f"{name}.err").open("wb") as err:
        process = subprocess.Popen([sys.executable, str(CHILD), json.dumps(spec)], stdout=out, stderr=err, env=env)
    return Child(name, process, workdir)


# ------------------------------------------------------------------------------ fault 3
def test_two_processes_ingesting_the_same_file_the_winners_receipt_stays_loaded(
    prefect_harness: None, data_dir: Path, tmp_path: Path
) -> None:
    """The loser consults the ledger first (no row yet) and is held there; the winner then runs
    to its end (loaded, receipts written); the loser, let go, loads the same file and loses under
    the warehouse lock — the race of two simultaneous ingests, in a fixed order."""
    form = _form(tmp_path / "poverty.xlsx", "poverty", "2016")
    sid = submission_key("poverty", _sha(form))
    workdir = tmp_path / "children"
    workdir.mkdir()
    _engine()  # the warehouse exists before the children open it
    children: list[Child] = []
    try:
        loser = _spawn(workdir, "loser", form, "poverty", "2016", hold_after_check=True)
        children.append(loser)
        # the winner's interpreter starts beside the loser's; it begins only once the loser is held
        winner = _spawn(workdir, "winner", form, "poverty", "2016", hold_before_start=True)
        children.append(winner)
        loser.wait_for("checked")  # the ledger had no row: it will go on to read, check and load
        assert not (workdir / "winner.checked").exists()
        (workdir / "winner.start").touch()
        assert winner.result()["status"] == "loaded"
        assert (data_dir / "receipts" / f"{sid}.json").is_file()
        (workdir / "loser.go").touch()
        assert loser.result()["status"] == "duplicate"  # it lost the race
    finally:
        for child in children:
            child.stop()

    assert _ledger(_sha(form))["poverty"]["status"] == "loaded"
    receipt = _receipt(data_dir, sid)
    assert receipt["status"] == "loaded" and receipt["counts"]["facts_loaded"] > 0
    beside_kept = list((data_dir / "archive").rglob("*.receipt.json"))
    assert len(beside_kept) == 1
    assert json.loads(beside_kept[0].read_text(encoding="utf-8"))["status"] == "loaded"
    duplicate = _receipt(data_dir, sid, ".duplicate.json")
    assert duplicate["status"] == "duplicate" and duplicate["duplicate_of"]["submission_id"] == sid


# ------------------------------------------------------------------------------ fault 4
@pytest.mark.parametrize("expected", ["rejected", "quarantined"])
def test_a_run_killed_after_its_commit_gets_its_receipt_at_the_next_nightly(
    prefect_harness: None, data_dir: Path, tmp_path: Path, expected: str
) -> None:
    from flows.nightly import nightly

    if expected == "rejected":  # tourism's return sent as labour's: the wrong form
        landed = data_dir / "landing" / "labour" / "2016-05" / "劳动 5月.xlsx"
        _form(landed, "tourism", "2016-05")
        department, period = "labour", "2016-05"
    else:
        landed = _form(data_dir / "landing" / "poverty" / "2016" / "扶贫.xlsx", "poverty", "2016", too_many_poor=True)
        department, period = "poverty", "2016"
    sid = submission_key(department, _sha(landed))
    workdir = tmp_path / "children"
    workdir.mkdir()
    _engine()
    child = _spawn(workdir, "killed", landed, department, period, hold_after_load=True)
    try:
        assert child.wait_for("loaded").read_text(encoding="utf-8") == expected  # committed
        child.kill()  # before its receipt
    finally:
        child.stop()
    assert _ledger(_sha(landed))[department]["status"] == expected
    assert not (data_dir / "receipts" / f"{sid}.json").exists()

    summary = nightly(run_label=f"after-kill-{expected}", build_report=False)

    assert summary.receipts_recovered == [sid] and summary.processed == [] and summary.unchanged == 1
    receipt = _receipt(data_dir, sid)
    assert (receipt["status"], receipt["department"], receipt["receipt_recovered"]) == (expected, department, True)
    assert receipt["counts"]["issues"]["critical"] > 0 and receipt["issues"]
    if expected == "quarantined":
        assert any(i.get("rule_id") == "poverty_poor_le_population" for i in receipt["issues"])
    assert find_submission(_engine(), department, _sha(landed)) is not None
    again = nightly(run_label=f"after-kill-{expected}-again", build_report=False)
    assert again.receipts_recovered == [] and _receipt(data_dir, sid) == receipt  # written once
