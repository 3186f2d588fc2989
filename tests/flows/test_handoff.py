"""``duikou ingest`` handed to the running service of its data directory (issue 19 part 5).

The service side is the real one ``duikou serve`` starts (``flows.handoff.HandoffService`` with
``flows.serve.handoff_runner``: the ``ingest-submission`` flow on the session's Prefect server),
run here in the test process on the test's own data directory; the command is a fresh Python
process running ``flows.cli.main`` that reports which heavy modules it imported. Each test makes
its own data directory, so no service another process left running can answer it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from expectations.declaration import load_declarations
from flows.handoff import HandoffService, code_fingerprint, find_service, service_path
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.conftest import use_data_dir

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = r"""
import json, sys
from flows.cli import main

code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"prefect", "great_expectations", "pandas", "sqlalchemy"})
print(json.dumps({"code": code, "imported": heavy}))
"""


def _command(data: Path, *args: str, **env: str) -> tuple[int, list[str], str, str]:
    """``duikou <args>`` in a fresh process: (exit code, heavy modules imported, stdout before the
    report line, stderr)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DUIKOU_"))}
    done = subprocess.run([sys.executable, "-c", _SCRIPT, *args], cwd=ROOT, capture_output=True, text=True,
                          env={**clean, "DUIKOU_DATA_DIR": str(data), **env}, timeout=600, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    report = json.loads(lines[-1])
    return int(report["code"]), list(report["imported"]), "\n".join(lines[:-1]), done.stderr


def _tourism_form(folder: Path, period: str = "2016-10") -> Path:
    return write_form(folder / f"旅游月报 {period}.xlsx", load_declarations()["tourism"], period,
                      demo_values(2017)[("tourism", period)])  # type: ignore[arg-type]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with use_data_dir(monkeypatch, tmp_path / "data") as data:
        data.mkdir(parents=True, exist_ok=True)
        yield data


def _service(data: Path, run: Any = None, code: str | None = None, warehouse_url: str | None = None) -> HandoffService:
    from duikou_settings import get_settings
    from flows.serve import handoff_runner

    settings = get_settings()
    service = HandoffService(data, warehouse_url or settings.resolved_warehouse_url, run or handoff_runner(settings),
                             slots=1, code=code)
    service.start()
    return service


def test_ingest_is_handed_to_the_running_service_without_importing_prefect_or_gx(
    prefect_harness: None, data_dir: Path, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    from warehouse.load import find_submission

    form = _tourism_form(tmp_path)
    service = _service(data_dir)
    try:
        code, imported, out, err = _command(data_dir, "ingest", str(form), "--department", "tourism",
                                            "--period", "2016-10")
        assert (code, imported) == (0, []), err
        assert "状态 status: loaded" in out and "行数 rows: read 15, loaded 15" in out
        receipt_line = next(line for line in out.splitlines() if line.startswith("回执 receipt: "))
        receipt = json.loads(Path(receipt_line.removeprefix("回执 receipt: ")).read_text(encoding="utf-8"))
        assert receipt["status"] == "loaded"

        again, imported, out, err = _command(data_dir, "ingest", str(form), "--department", "tourism",
                                             "--period", "2016-10", "--json")
        assert (again, imported) == (0, []), err
        duplicate = json.loads(out.splitlines()[-1])
        assert duplicate["status"] == "duplicate"
        assert duplicate["duplicate_of"]["submission_id"] == receipt["submission_id"]

        # a mistaken argument is still the command's own refusal, before any hand-over (exit 2, one line)
        refused, _, _, err = _command(data_dir, "ingest", str(form), "--department", "tourism", "--period", "2016-13")
        assert refused == 2 and "2016-13" in err
    finally:
        service.stop()
    assert not service_path(data_dir).exists()  # the service's record goes with it

    from duikou_settings import get_settings
    from flows.warehouse_access import open_warehouse

    row = find_submission(open_warehouse(get_settings()), "tourism", receipt["sha256"])
    assert row is not None and row["status"] == "loaded"
    with get_client(sync_client=True) as client:  # the work was a flow run like any other, with its state
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(
            name=FlowRunFilterName(like_="ingest tourism 2016-10")))
    assert runs and {run.state.name for run in runs if run.state} == {"Completed"}


def test_a_stale_service_is_refused_and_nothing_is_loaded(
    prefect_harness: None, data_dir: Path, tmp_path: Path
) -> None:
    form = _tourism_form(tmp_path)
    calls: list[dict[str, Any]] = []

    def run(request: dict[str, Any], reply: Any) -> dict[str, Any]:
        calls.append(request)
        return {"ok": True, "exit": 3, "error": "must not be called"}

    older = _service(data_dir, run, code="0" * 64)  # started before the checkout changed
    try:
        code, imported, out, err = _command(data_dir, "ingest", str(form), "--department", "tourism",
                                            "--period", "2016-10")
    finally:
        older.stop()
    assert (code, imported) == (2, []) and out == ""
    assert "runs other code than this checkout" in err and "restart" in err and "DUIKOU_HANDOFF=0" in err
    assert len(err.strip().splitlines()) == 1

    elsewhere = _service(data_dir, run, warehouse_url="sqlite:////somewhere/else.sqlite")
    try:
        code, _, _, err = _command(data_dir, "ingest", str(form), "--department", "tourism", "--period", "2016-10")
    finally:
        elsewhere.stop()
    assert code == 2 and "another warehouse" in err
    assert calls == []  # the refused requests never reached the service
    assert not (data_dir / "receipts").exists() and not (data_dir / "warehouse.sqlite").exists()


def test_a_dead_services_record_is_removed_and_the_command_runs_in_its_own_process(data_dir: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a pid that no longer runs
    record = service_path(data_dir)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"pid": gone.pid, "port": 9, "token": "x", "started_at": "earlier"}),
                      encoding="utf-8")
    said: list[str] = []
    assert find_service(data_dir, "sqlite:///unused", warn=said.append) is None
    assert not record.exists()
    assert len(said) == 1 and str(gone.pid) in said[0] and "running in this process" in said[0]
    assert find_service(data_dir, "sqlite:///unused", warn=said.append) is None and len(said) == 1  # nothing left


def test_code_fingerprint_follows_the_files(tmp_path: Path) -> None:
    (tmp_path / "flows").mkdir()
    source = tmp_path / "flows" / "x.py"
    source.write_text("a = 1\n", encoding="utf-8")
    before = code_fingerprint(tmp_path)
    assert code_fingerprint(tmp_path) == before
    source.write_text("a = 22\n", encoding="utf-8")
    assert code_fingerprint(tmp_path) != before


def test_an_upload_asks_the_service_to_start_its_run_and_falls_back_to_the_trigger(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``start_by_service`` (the intake's and the portal's path): the run id the service's ``start``
    gave; None — the event's trigger starts the run — with no service, a full lane, a service that
    refuses ``start``, or ``DUIKOU_HANDOFF=0``."""
    from duikou_settings import get_settings
    from flows.upload_stream import start_by_service
    from tasks.landing.landed import land_file

    settings = get_settings()
    form = _tourism_form(tmp_path)
    landed = land_file(form, settings.landing_dir, settings.max_upload_bytes, "tourism", "2016-10", via="intake")
    assert start_by_service(landed, settings) is None  # no service for this data directory
    asked: list[dict[str, Any]] = []

    def start(request: dict[str, Any]) -> dict[str, Any]:
        asked.append(request)
        return {"ok": True, "flow_run_id": "7d6f1a9e-0000-4000-8000-000000000001"} if len(asked) == 1 else \
            {"ok": False, "error": "the ingest lane is full"}

    service = HandoffService(data_dir, settings.resolved_warehouse_url, lambda request, reply: {}, slots=1,
                             start=start)
    service.start()
    try:
        assert start_by_service(landed, settings) == "7d6f1a9e-0000-4000-8000-000000000001"
        assert asked == [{"op": "start", "path": str(landed.path), "department": "tourism", "period": "2016-10",
                          "token": asked[0]["token"]}]
        assert start_by_service(landed, settings) is None  # full: the trigger's turn
        monkeypatch.setenv("DUIKOU_HANDOFF", "0")
        assert start_by_service(landed, settings) is None and len(asked) == 2  # not even asked
    finally:
        service.stop()
    monkeypatch.delenv("DUIKOU_HANDOFF")
    refusing = HandoffService(data_dir, settings.resolved_warehouse_url, lambda request, reply: {}, slots=1)
    refusing.start()  # a service without ``start`` (an older one): refused, the trigger's turn
    try:
        assert start_by_service(landed, settings) is None
    finally:
        refusing.stop()
