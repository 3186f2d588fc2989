"""Issue 13: nothing in one submission can stop the nightly.

A landing area with good returns and planted faults — period folders ``9999-12`` and ``0000-01``
(outside the plausible window), a file whose intake sidecar names it with a NUL byte, and old
ledger rows written before every door checked periods (``9999-12``: the obligations calendar's
due date falls in the year 10000; ``0-01``: malformed) — then the real ``nightly`` flow under a
real Prefect server, on SQLite and on PostgreSQL: the good files are loaded, the marts and the
report are built, and every bad item is named in the summary with its reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select, text

from duikou_settings import get_settings
from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.landing.landed import sidecar_path
from tests.conftest import use_data_dir
from warehouse import schema
from warehouse.completeness import LedgerEntry, compute_completeness

AS_OF = "2017-12-20"  # the demo's clock: completeness is judged there
GOOD = (("poverty", "2015"), ("poverty", "2016"), ("tourism", "2016-05"), ("tourism", "2016-06"))
OLD_ROWS = {"9999-12": "a" * 64, "0-01": "b" * 64}  # period → sha256 of a ledger row from before the fix


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def data_dir(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty data directory; the warehouse in it (SQLite) or in a fresh PostgreSQL schema."""
    env = {"DUIKOU_AS_OF": AS_OF}
    if request.param == "postgres":
        engine: Engine = request.getfixturevalue("postgres_engine")
        with engine.connect() as conn:
            schema_name = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = engine.url.update_query_dict({"options": f"-csearch_path={schema_name}"})
    with use_data_dir(monkeypatch, tmp_path / "data", **env) as data:
        if request.param == "postgres":
            monkeypatch.setenv("DUIKOU_WAREHOUSE_URL", url.render_as_string(hide_password=False))
            from duikou_settings import reset_settings_cache
            from flows.warehouse_access import clear_cache

            reset_settings_cache()
            clear_cache()
        yield data


def _form(folder: Path, department: str, period: str, name: str, *, data_period: str | None = None) -> Path:
    """A real return (the demo's values for ``data_period``) written to ``folder/name``."""
    rows = demo_values(2017)[(department, data_period or period)]
    folder.mkdir(parents=True, exist_ok=True)
    filled = date(2017, 1, 10) if data_period else None  # the writer's default filling day needs a real date
    return write_form(folder / name, load_declarations()[department], period, rows, filled_on=filled)


def _plant_old_rows(engine: Engine) -> None:
    """Ledger rows as the code before the fix could leave them: rejected, periods no calendar can place."""
    now = datetime(2017, 12, 1, tzinfo=UTC)
    with engine.begin() as conn:
        for period, sha in OLD_ROWS.items():
            conn.execute(insert(schema.submission).values(
                submission_id=sha[:16], sha256=sha, department="tourism", period=period,
                original_name=f"old-{period}.xlsx", received_at=now, processed_at=now, status="rejected",
                rows_read=0, rows_loaded=0, rows_rejected=0, facts_loaded=0))


def _landing(data: Path) -> dict[str, Path]:
    landing = data / "landing"
    for department, period in GOOD:
        _form(landing / department / period, department, period, f"{department}-{period}.xlsx")
    planted = {
        # a title that says 9999年12月 too: before the fix it loaded as rejected and the marts then failed
        "9999-12": _form(landing / "tourism" / "9999-12", "tourism", "9999-12", "far-future.xlsx",
                         data_period="2016-07"),
        "0000-01": _form(landing / "tourism" / "0000-01", "tourism", "2016-08", "year-zero.xlsx"),
    }
    # a landed file whose intake sidecar carries the department's name with a NUL and a control character
    nul = _form(landing / "tourism" / "2016-09", "tourism", "2016-09", "0123456789abcdef.xlsx")
    sidecar_path(nul).write_text(json.dumps({"original_name": "旅游\x00月报\x07.xlsx",
                                             "received_at": "2016-10-05T02:00:00+00:00", "via": "intake"}),
                                 encoding="utf-8")
    planted["nul"] = nul
    return planted


@pytest.mark.flow
def test_bad_submissions_are_named_and_the_nightly_completes(prefect_harness: None, data_dir: Path) -> None:
    from flows.nightly import nightly
    from flows.warehouse_access import open_warehouse

    engine = open_warehouse(get_settings())
    _plant_old_rows(engine)
    planted = _landing(data_dir)

    summary = nightly(run_label="hostile")

    loaded = {(r.department, r.period): r for r in summary.processed if r.status == "loaded"}
    assert set(loaded) == {*GOOD, ("tourism", "2016-09")}, [(r.department, r.period, r.status)
                                                            for r in summary.processed]
    assert not summary.failed and not summary.steps_failed
    skipped = {Path(s["path"]).parent.name: s["reason"] for s in summary.skipped}
    assert set(skipped) == {"9999-12", "0000-01"}
    assert "9999-12" in skipped["9999-12"] and "不在可受理范围" in skipped["9999-12"]
    assert "0-01" in skipped["0000-01"] and "不在可受理范围" in skipped["0000-01"]
    assert planted["9999-12"].exists() and planted["0000-01"].exists()  # left where they lie, not half-taken
    # the old rows are left out of the marts and named
    named = " | ".join(summary.marts_skipped)
    assert OLD_ROWS["9999-12"][:16] in named and "year 10000 is out of range" in named
    assert OLD_ROWS["0-01"][:16] in named
    # the NUL never reached the database; the receipt and the ledger say the name without it
    nul = loaded[("tourism", "2016-09")]
    assert nul.original_name == "旅游月报.xlsx" and nul.receipt["original_name"] == "旅游月报.xlsx"
    with engine.connect() as conn:
        names = conn.execute(select(schema.submission.c.original_name)).scalars().all()
        completeness = pd.DataFrame(conn.execute(text(
            "SELECT department, period, status FROM mart_completeness")).all())
        kpis = conn.execute(select(func.count()).select_from(schema.mart_county_kpi_yearly)).scalar_one()
        scorecard = conn.execute(select(schema.mart_dq_scorecard.c.month)).scalars().all()
    assert "旅游月报.xlsx" in names and not any("\x00" in name for name in names)
    # marts built from the good files: completeness of both departments, the KPIs, the scorecard
    assert kpis > 0 and summary.mart_rows > 0
    by_key = {(r.department, r.period): r.status for r in completeness.itertuples()}
    assert by_key[("poverty", "2016")] in ("on_time", "late") and by_key[("tourism", "2016-06")] in ("on_time", "late")
    assert ("tourism", "9999-12") not in by_key and ("tourism", "0-01") not in by_key
    assert "2016-05" in scorecard and "0-01-12" not in scorecard
    assert summary.report_path is not None and Path(summary.report_path).is_file()
    # a second run: nothing new, the same items named again, still complete
    again = nightly(run_label="hostile-again", build_report=False)
    assert again.unchanged == len(GOOD) + 1 and not again.processed and not again.steps_failed
    assert {Path(s["path"]).parent.name for s in again.skipped} == {"9999-12", "0000-01"}


@pytest.mark.flow
def test_a_failed_step_does_not_stop_the_later_ones(
    prefect_harness: None, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The landing area cannot even be opened (an unknown protocol): the reconcile step fails, and
    follow-ups, marts, alerts and the report still run over what the warehouse holds; the run then
    fails naming the step."""
    from duikou_settings import reset_settings_cache
    from flows.nightly import NightlyIncomplete, nightly
    from flows.warehouse_access import open_warehouse

    engine = open_warehouse(get_settings())
    _plant_old_rows(engine)
    monkeypatch.setenv("DUIKOU_LANDING_URL", "nosuchprotocol://bucket/landing")
    reset_settings_cache()
    with pytest.raises(NightlyIncomplete) as failed:
        nightly(run_label="hostile-step")
    summary = failed.value.summary
    assert [f["step"] for f in summary.steps_failed] == ["reconcile-landing"]
    assert "nosuchprotocol" in summary.steps_failed[0]["reason"]
    assert "reconcile-landing" in str(failed.value)
    assert summary.report_path is not None and Path(summary.report_path).is_file()  # the later steps ran
    assert any(OLD_ROWS["9999-12"][:16] in item for item in summary.marts_skipped)


def test_completeness_skips_and_names_rows_the_calendar_cannot_place() -> None:
    """Pure: one department's unplaceable rows leave its good rows and every other department alone."""
    declarations = {d: load_declarations()[d] for d in ("tourism", "poverty")}
    at = datetime(2016, 7, 1, tzinfo=UTC)
    ledger = [
        LedgerEntry("tourism", "2016-05", "good-tourism", "loaded", at),
        LedgerEntry("tourism", "9999-12", "far-future", "rejected", at),
        LedgerEntry("tourism", "0-01", "malformed", "rejected", at),
        LedgerEntry("poverty", "2016", "good-poverty", "loaded", at),
    ]
    values = pd.DataFrame({"department": [], "period": [], "township_code": [], "value": []})
    townships = pd.DataFrame(columns=["township_code", "valid_from", "valid_to"])
    skipped: list[str] = []
    rows, _ = compute_completeness(declarations, ledger, values, townships, date(2017, 12, 20), skipped=skipped)
    keys = set(zip(rows["department"], rows["period"], strict=True))
    assert ("tourism", "2016-05") in keys and ("poverty", "2016") in keys and ("tourism", "2017-11") in keys
    assert not {p for d, p in keys if p in ("9999-12", "0-01")}
    assert len(skipped) == 2 and "far-future" in skipped[0] + skipped[1] and "malformed" in skipped[0] + skipped[1]


def test_cli_refuses_an_implausible_period_with_exit_2(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`duikou ingest` and `duikou submit`: one line naming the window, exit 2, nothing landed or recorded."""
    from flows.cli import main

    form = _form(tmp_path / "forms", "tourism", "2016-05", "tourism.xlsx")
    for command, period in (("ingest", "9999-12"), ("ingest", "0000-01"), ("submit", "9999-12"),
                            ("submit", "0000-01")):
        code = main([command, str(form), "--department", "tourism", "--period", period, "--local"]
                    if command == "submit" else [command, str(form), "--department", "tourism", "--period", period])
        err = capsys.readouterr().err.strip()
        assert code == 2, (command, period, err)
        shown = {"0000-01": "0-01"}.get(period, period)  # the period as parsed: year 0, month 01
        assert len(err.splitlines()) == 1 and "不在可受理范围" in err and f"“{shown}”" in err, err
    assert not (data_dir / "landing").exists() or not any(p.is_file() for p in (data_dir / "landing").rglob("*"))
    assert not (data_dir / "receipts").exists()
