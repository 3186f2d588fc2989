"""The ``duikou ingest`` command and the nightly flow on small landings, under Prefect's test harness,
on the embedded SQLite warehouse (and PostgreSQL for the correction): loads, duplicates, dry runs,
lost receipts, skipped files, correction workbooks.

Apart from tests/flows/test_flows.py, whose module fixture runs the whole demo: ``make test`` gives
whole files to its workers, and these need no demo.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from duikou_settings import get_settings
from expectations.declaration import load_declarations
from flows.warehouse_access import clear_cache, open_warehouse
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.conftest import use_data_dir

pytestmark = pytest.mark.flow


@pytest.fixture
def empty_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with use_data_dir(monkeypatch, tmp_path / "data") as data:
        yield data


def _poverty_form(tmp_path: Path, name: str = "poverty.xlsx", **kwargs: object) -> Path:
    rows = demo_values(2017)[("poverty", "2016")]
    return write_form(tmp_path / name, load_declarations()["poverty"], "2016", rows, **kwargs)  # type: ignore[arg-type]


def test_ingest_command_loads_then_reports_duplicate(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    path = _poverty_form(tmp_path)
    assert main(["ingest", str(path), "--department", "poverty", "--period", "2016", "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert receipt["status"] == "loaded" and receipt["counts"]["rows_loaded"] == 15
    assert main(["ingest", str(path), "--department", "poverty", "--period", "2016", "--json"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["status"] == "duplicate"
    assert again["duplicate_of"]["submission_id"] == receipt["submission_id"]


def test_a_load_whose_receipt_was_lost_gets_it_from_the_next_run_of_the_same_file(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run killed between its commit and its receipt: the next nightly (or ingest) completes it."""
    from flows.cli import main
    from flows.nightly import nightly

    landed = empty_data_dir / "landing" / "poverty" / "2016" / "poverty.xlsx"
    landed.parent.mkdir(parents=True)
    landed.write_bytes(_poverty_form(tmp_path).read_bytes())
    first = nightly(run_label="receipt-lost", build_report=False)
    assert [r.status for r in first.processed] == ["loaded"]
    original = first.processed[0].receipt
    receipt_file = empty_data_dir / "receipts" / f"{original['submission_id']}.json"
    beside_kept = list((empty_data_dir / "archive").rglob("*.receipt.json"))
    assert receipt_file.is_file() and len(beside_kept) == 1
    for lost in (receipt_file, *beside_kept):
        lost.unlink()

    again = nightly(run_label="receipt-lost-again", build_report=False)
    assert again.processed == [] and again.unchanged == 1  # the ledger already has it
    assert again.receipts_recovered == [original["submission_id"]]  # from the kept file the ledger names
    recovered = json.loads(receipt_file.read_text(encoding="utf-8"))
    assert recovered["receipt_recovered"] is True and recovered["status"] == "loaded"
    assert recovered["counts"] == original["counts"] and recovered["issues"] == original["issues"]
    assert beside_kept[0].is_file()
    third = nightly(run_label="receipt-there", build_report=False)
    assert third.processed == [] and third.unchanged == 1
    assert main(["ingest", str(landed), "--department", "poverty", "--period", "2016", "--json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["status"] == "duplicate"
    assert json.loads(receipt_file.read_text(encoding="utf-8")) == recovered  # written once, then left alone


def test_ingest_dry_run_writes_nothing_and_bad_files_exit_non_zero(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    bad = _poverty_form(tmp_path, "bad.xlsx", title_period="2015")
    code = main(["ingest", str(bad), "--department", "poverty", "--period", "2016", "--dry-run", "--json"])
    receipt = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 1 and receipt["status"] == "rejected" and receipt["dry_run"] is True
    assert [i["code"] for i in receipt["issues"] if i["severity"] == "critical"] == ["PERIOD_MISMATCH"]
    assert not (empty_data_dir / "warehouse.sqlite").exists()
    assert not (empty_data_dir / "receipts").exists()
    assert main(["ingest", str(bad), "--department", "nosuch", "--period", "2016"]) == 2
    assert main(["ingest", str(bad), "--department", "poverty", "--period", "2016-05"]) == 2


def test_nightly_skips_what_it_cannot_place_and_says_why(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path
) -> None:
    from flows.nightly import nightly

    landing = empty_data_dir / "landing"
    good = _poverty_form(tmp_path)
    for target in (landing / "poverty" / "2016" / good.name, landing / "poverty" / "2016-13" / good.name,
                   landing / "stray.xlsx", landing / "nosuch" / "2016" / good.name):
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(good.read_bytes())
    (landing / "poverty" / "2016" / "notes.txt").write_text("not a return", encoding="utf-8")
    summary = nightly(run_label="skips", build_report=False)
    assert [r.status for r in summary.processed] == ["loaded"]
    reasons = {Path(s["path"]).name if "2016-13" not in s["path"] else "bad-period": s["reason"]
               for s in summary.skipped}
    assert set(reasons) == {"stray.xlsx", good.name, "notes.txt", "bad-period"}
    assert "YYYY" in reasons["bad-period"]


def test_a_correction_supersedes_on_both_backends(
    prefect_harness: None, warehouse_engine: object, empty_data_dir: Path, tmp_path: Path
) -> None:
    """The pipeline's own path (tasks inside a flow) against SQLite and the real PostgreSQL."""
    from prefect import flow

    from flows.pipeline import process_submission
    from warehouse.marts import refresh_marts
    from warehouse.refdata import reference_frames

    rows = demo_values(2017)[("poverty", "2016")]
    first = _poverty_form(tmp_path, "v1.xlsx")
    corrected = rows.copy()
    corrected.loc[0, "exited_poverty_persons"] += 7
    second = write_form(tmp_path / "v2.xlsx", load_declarations()["poverty"], "2016", corrected)

    @flow(name="test-pipeline")
    def run(path: Path) -> str:
        result = process_submission(path, "poverty", "2016", engine=warehouse_engine,  # type: ignore[arg-type]
                                    reference=reference_frames(), settings=get_settings())
        return result.status

    assert run(first) == "loaded"
    assert run(second) == "loaded"
    assert run(first) == "duplicate"
    refresh_marts(warehouse_engine)  # type: ignore[arg-type]
    with warehouse_engine.connect() as conn:  # type: ignore[attr-defined]
        ledger = {r.original_name: r for r in conn.execute(text(
            "SELECT original_name, status, supersedes, superseded_by, submission_id FROM submission")).all()}
        exited = conn.execute(text(
            "SELECT value FROM v_indicator_value WHERE indicator = 'exited_poverty_persons' "
            "AND township_code = :code"), {"code": rows.loc[0, "township_code"]}).scalar()
        income = conn.execute(text(
            "SELECT value FROM mart_county_kpi_yearly WHERE year = 2016 AND kpi = 'net_income_per_capita_yuan'"
        )).scalar()
    assert ledger["v1.xlsx"].status == "superseded"
    assert ledger["v1.xlsx"].superseded_by == ledger["v2.xlsx"].submission_id
    assert ledger["v2.xlsx"].supersedes == ledger["v1.xlsx"].submission_id
    assert exited == rows.loc[0, "exited_poverty_persons"] + 7
    assert round(income) == 10827


def test_a_refused_submission_gets_a_correction_workbook(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import openpyxl

    from flows.cli import main

    rows = demo_values(2017)[("poverty", "2016")]
    names = ["聂嘎乡" if code == "513323202" else None for code in rows["township_code"]]
    from tasks.demo.form_writer import township_name_at

    written = [n or township_name_at(c, pd.Timestamp("2016-12-31").date())
               for n, c in zip(names, rows["township_code"], strict=True)]
    path = write_form(tmp_path / "typo.xlsx", load_declarations()["poverty"], "2016", rows, township_names=written)
    assert main(["ingest", str(path), "--department", "poverty", "--period", "2016", "--json"]) == 1
    receipt = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert receipt["status"] == "rejected"
    workbook_path = empty_data_dir / receipt["correction_workbook"]
    workbook = openpyxl.load_workbook(workbook_path)
    assert workbook.sheetnames[0] == "问题汇总"
    typo = next(i for i in receipt["issues"] if i["code"] == "TOWNSHIP_UNKNOWN")
    sheet = workbook[receipt["sheet"]]
    assert "TOWNSHIP_UNKNOWN" in sheet[f"A{typo['row']}"].comment.text
    with open_warehouse(get_settings()).connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM fact_indicator_value")).scalar() == 0


def _settled_bytes(db: Path) -> bytes:
    """The SQLite file's bytes with the WAL checkpointed into it (what a reader sees, on disk)."""
    import sqlite3

    clear_cache()
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return db.read_bytes()


def test_dry_run_receipt_is_the_real_one_and_the_warehouse_is_untouched(
    prefect_harness: None, empty_data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from flows.cli import main

    first = _poverty_form(tmp_path, "v1.xlsx")
    assert main(["ingest", str(first), "--department", "poverty", "--period", "2016"]) == 0
    rows = demo_values(2017)[("poverty", "2016")].copy()
    rows.loc[2, "exited_poverty_persons"] += 3
    second = write_form(tmp_path / "v2.xlsx", load_declarations()["poverty"], "2016", rows)
    capsys.readouterr()

    db = empty_data_dir / "warehouse.sqlite"
    before = _settled_bytes(db)
    files_before = sorted(p.relative_to(empty_data_dir) for p in empty_data_dir.rglob("*") if p.is_file())
    assert main(["ingest", str(second), "--department", "poverty", "--period", "2016", "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert _settled_bytes(db) == before
    files_after = sorted(p.relative_to(empty_data_dir) for p in empty_data_dir.rglob("*") if p.is_file())
    assert files_after == files_before

    assert main(["ingest", str(second), "--department", "poverty", "--period", "2016", "--json"]) == 0
    real = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    ignore = {"dry_run", "processed_at", "correction_workbook"}
    assert {k: v for k, v in dry.items() if k not in ignore} == {k: v for k, v in real.items() if k not in ignore}
    assert real["supersedes"] and real["counts"]["facts_loaded"] == 15 * 4
