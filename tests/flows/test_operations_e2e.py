"""Operations end to end, all real processes: ``prefect server start`` (SQLite, its own PREFECT_HOME,
a free port on 127.0.0.1), ``duikou serve``, ``duikou intake-server`` and a webhook receiver
standing in for the ops team's chat, which the failed-run, missing-returns and quarantine automations
notify. The last test photographs the Prefect UI the earlier ones filled (headless Chromium) for
docs/operations.md: ``DUIKOU_DOCS_SCREENSHOTS=1`` writes the pictures to docs/images/.

One stack serves the module (starting it is most of the cost); each test uses its own return
period, so they do not depend on each other's order.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from duikou_settings import Settings
from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.landing.intake_tokens import create_token
from tasks.landing.landed import land_file
from tests.helpers.ops_processes import (
    Proc,
    WebhookReceiver,
    duikou,
    start_intake,
    start_prefect_server,
    start_serve,
    wait_for,
)

pytestmark = pytest.mark.server

RUN_TIMEOUT = 240.0  # a loaded 2-core machine; the waits poll, so a fast run finishes fast


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ops")
    procs: list[Proc] = []
    hook = WebhookReceiver()
    try:
        server, api, env = start_prefect_server(root, ui=True)  # the UI: for the screenshots of docs/operations.md
        procs.append(server)
        data = root / "data"
        env.update({"DUIKOU_DATA_DIR": str(data), "DUIKOU_SERVE_POLL_SECONDS": "0.5",
                    "DUIKOU_REPORT_DEBOUNCE_SECONDS": "2", "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
        made = duikou(["automations", "--webhook-url", hook.start()], env)
        assert made.returncode == 0, made.stderr
        settings = Settings(data_dir=data)
        tokens = {d: create_token(settings.resolved_intake_tokens_file, d, replace=False)[0]
                  for d in ("tourism", "health")}
        procs.append(start_serve(env, root / "logs"))
        intake, url = start_intake(env, root / "logs")
        procs.append(intake)
        yield {"api": api, "env": env, "url": url, "tokens": tokens, "settings": settings, "hook": hook,
               "procs": tuple(procs), "root": root}
    finally:
        for proc in reversed(procs):
            proc.stop()
        hook.stop()


def _tourism_form(folder: Path, period: str, name: str, **kwargs: Any) -> Path:
    path = folder / name
    write_form(path, load_declarations()["tourism"], period, demo_values()[("tourism", period)], **kwargs)
    return path


def _artifact(api: str, key: str) -> dict[str, Any]:
    found = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": [key]}}, "sort": "CREATED_DESC",
                                                       "limit": 1}, timeout=30).json()
    assert found, key
    latest: dict[str, Any] = found[0]
    return latest


def _post_to_server(url: str, body: dict[str, Any]) -> httpx.Response:
    """POST to the Prefect server, retrying its 503 (SQLite busy under a loaded machine)."""
    for attempt in range(5):
        response = httpx.post(url, json=body, timeout=30)
        if response.status_code != 503:
            break
        time.sleep(1 + attempt)
    response.raise_for_status()
    return response


def _flow_runs(api: str, flow_name: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": [flow_name]}}}, timeout=30)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


def _ledger(settings: Settings, submission_id: str) -> dict[str, Any] | None:
    engine = create_engine(settings.resolved_warehouse_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT status, original_name FROM submission WHERE submission_id = :id"),
                               {"id": submission_id}).first()
            facts = conn.execute(text("SELECT count(*) FROM fact_indicator_value WHERE submission_id = :id"),
                                 {"id": submission_id}).scalar_one()
    finally:
        engine.dispose()
    return {"status": row.status, "original_name": row.original_name, "facts": facts} if row else None


def test_a_posted_return_is_loaded_by_the_run_serve_started_and_the_report_rebuilt(stack: dict[str, Any]) -> None:
    """The intake asks the running ``duikou serve`` to start the upload's run (flows/handoff.py); the
    upload is announced as ``duikou.submission.started`` naming that run, and the deployment's
    trigger starts no second one (the trigger's own path: ``duikou submit`` below and
    tests/flows/test_serve_wake.py)."""
    api, url, settings = stack["api"], stack["url"], stack["settings"]
    auth = {"Authorization": f"Bearer {stack['tokens']['tourism']}"}
    form = _tourism_form(stack["root"], "2016-10", "巴旺乡 form v2.xlsx")
    answer = httpx.post(f"{url}/submissions", headers=auth, data={"period": "2016-10"},
                        files={"file": (form.name, form.read_bytes())}, timeout=60)
    assert answer.status_code == 202, answer.text
    submission_id = answer.json()["submission_id"]
    assert answer.json()["event"] == "sent; run started by duikou serve"

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = httpx.get(f"{url}/submissions/{submission_id}", headers=auth, timeout=30).json()
        return body if body["status"] not in ("received", "processing") else None

    status = wait_for("the receipt over HTTP", finished, RUN_TIMEOUT, stack["procs"])
    receipt = status["receipt"]
    assert status["status"] == receipt["status"] == "loaded"
    assert receipt["original_name"] == "巴旺乡 form v2.xlsx" and receipt["counts"]["rows_loaded"] == 15

    ledger = _ledger(settings, submission_id)
    assert ledger is not None and ledger["status"] == "loaded" and ledger["facts"] > 0

    def ingest_run() -> dict[str, Any] | None:  # the receipt is written before the run's last steps
        name = "ingest tourism 2016-10 (巴旺乡 form v2)"
        runs = [r for r in _flow_runs(api, "ingest-submission") if r["name"] == name]
        return runs[0] if len(runs) == 1 and runs[0]["state"]["type"] == "COMPLETED" else None

    run = wait_for("the ingest run to complete", ingest_run, RUN_TIMEOUT, stack["procs"])
    assert {"department:tourism", "period:2016-10", "status:loaded"} <= set(run["tags"])
    states = httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": run["id"]}, timeout=30).json()
    assert "SCHEDULED" not in {s["type"] for s in states}  # created Pending by serve, never waiting for a claim
    announced = httpx.post(f"{api}/events/filter", json={"filter": {
        "event": {"name": ["duikou.submission.received", "duikou.submission.started"]},
        "resource": {"id": [f"duikou.submission.{submission_id}"]},
        "occurred": {"since": "2000-01-01T00:00:00Z"}}}, timeout=30).json()["events"]
    assert [e["event"] for e in announced] == ["duikou.submission.started"]  # no received: no trigger
    assert [r["prefect.resource.id"] for r in announced[0]["related"]] == [f"prefect.flow-run.{run['id']}"]
    assert len([r for r in _flow_runs(api, "ingest-submission") if r["name"] == run["name"]]) == 1  # no second run
    artifacts = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": ["ingest-tourism-2016-10"]}}},
                           timeout=30).json()
    assert any("reports/latest/index.html" in a["data"] for a in artifacts)

    report = settings.reports_dir / "latest" / "index.html"
    wait_for("refresh-reports to complete", lambda: any(
        r["state"]["type"] == "COMPLETED" for r in _flow_runs(api, "refresh-reports")), RUN_TIMEOUT, stack["procs"])
    assert report.exists()


def test_a_dropped_event_is_repaired_by_the_nightly_run(stack: dict[str, Any]) -> None:
    api, settings = stack["api"], stack["settings"]
    form = _tourism_form(stack["root"], "2016-11", "水子乡 11月.xlsx")
    landed = land_file(form, settings.landing_dir, settings.max_upload_bytes, "tourism", "2016-11", via="cli")
    assert _ledger(settings, landed.submission_id) is None  # no event, no run
    stale = _tourism_form(stack["root"], "2016-08", "丹东乡 8月 旧表.xlsx", title_period="2016-07")
    land_file(stale, settings.landing_dir, settings.max_upload_bytes, "tourism", "2016-08", via="cli")

    deployment = httpx.get(f"{api}/deployments/name/nightly/nightly", timeout=30).json()
    [schedule] = deployment["schedules"]
    assert schedule["schedule"]["cron"] == "0 2 * * *"
    assert schedule["schedule"]["timezone"] == "Asia/Shanghai"
    created = _post_to_server(f"{api}/deployments/{deployment['id']}/create_flow_run",
                              {"parameters": {"run_label": "test"}})
    run_id = created.json()["id"]

    def nightly_done() -> str | None:
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()["state"]["type"]
        return state if state in ("COMPLETED", "FAILED", "CRASHED") else None

    assert wait_for("the nightly run", nightly_done, RUN_TIMEOUT, stack["procs"]) == "COMPLETED"
    ledger = _ledger(settings, landed.submission_id)
    assert ledger is not None and ledger["status"] == "loaded" and ledger["facts"] > 0
    assert ledger["original_name"] == "水子乡 11月.xlsx"
    # issue 15: the artifact's first rows are the problems, each with department, period, file and why
    rows = json.loads(_artifact(api, "nightly-submissions")["data"])
    assert rows[0]["状态 status"] == "已退回 rejected" and rows[0]["文件 file"] == "丹东乡 8月 旧表.xlsx"
    assert (rows[0]["部门 department"], rows[0]["报告期 period"]) == ("tourism", "2016-08")
    assert rows[0]["原因 reason"].startswith("PERIOD_MISMATCH")
    assert rows[-1]["状态 status"] == "已入库 loaded"
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}}, "limit": 200},
                      timeout=30).json()
    refused = [entry["message"] for entry in logs if "丹东乡 8月 旧表.xlsx" in entry["message"]]
    assert len(refused) == 1 and "PERIOD_MISMATCH" in refused[0]  # one line for the refused file
    # issue 15: no concurrency limit per partition stays behind, only the one writers' limit
    limits = httpx.post(f"{api}/v2/concurrency_limits/filter", json={}, timeout=30).json()
    assert [lim["name"] for lim in limits if lim["name"].startswith("duikou-")] == ["duikou-warehouse-writers"]
    # tourism has reported since 2016-10; every month since is past its deadline: one alert for the department
    hook: WebhookReceiver = stack["hook"]
    alert = wait_for("the missing-returns notification", lambda: next(
        (m for m in hook.received if "missing" in m.get("subject", "")), None), 120, stack["procs"])
    assert "tourism" in alert["body"] and "2016-12" in alert["body"]


def test_a_failed_run_notifies_ops(stack: dict[str, Any]) -> None:
    missing = stack["settings"].landing_dir / "tourism" / "2016-12" / "0000000000000000.xlsx"
    emit = ("from flows import events; events.emit(events.submission_received(submission_id='0000000000000000', "
            f"path={str(missing)!r}, department='tourism', period='2016-12', original_name='gone.xlsx', via='cli'))")
    done = subprocess.run([sys.executable, "-c", emit], env=stack["env"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    hook: WebhookReceiver = stack["hook"]
    note = wait_for("the failed-run notification", lambda: next(
        (m for m in hook.received if "Failed" in m.get("subject", "")), None), RUN_TIMEOUT, stack["procs"])
    assert "ingest tourism 2016-12" in note["subject"]
    assert "no such file" in note["body"]
    assert "/runs/flow-run/" in note["body"] and not note["body"].rstrip().endswith("None")


def test_a_burst_of_warehouse_updates_rebuilds_the_report_once(stack: dict[str, Any]) -> None:
    burst = ("from flows import events\n"
             "burst = [events.warehouse_updated(submission_id=f'{i:016x}', department='tourism', period='2016-10',"
             " status='loaded') for i in range(4)]\n"
             "events.emit(*burst)\n"
             "print(*(e.id for e in burst))")
    done = subprocess.run([sys.executable, "-c", burst], env=stack["env"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    ids = done.stdout.split()
    api = stack["api"]

    def all_finished() -> list[dict[str, Any]] | None:
        runs = [r for r in _flow_runs(api, "refresh-reports") if r["parameters"].get("event_id") in ids]
        return runs if len(runs) == len(ids) and all(r["state"]["type"] == "COMPLETED" for r in runs) else None

    runs = wait_for("the burst's refresh-reports runs", all_finished, RUN_TIMEOUT, stack["procs"])
    built = [r["parameters"]["event_id"] for r in runs if "refresh:built" in r["tags"]]
    superseded = [r for r in runs if "refresh:superseded" in r["tags"]]
    assert built == [ids[-1]]  # newer event wins: only the last one's run builds
    assert len(superseded) == len(ids) - 1


def test_an_operator_submits_from_the_command_line(stack: dict[str, Any]) -> None:
    settings: Settings = stack["settings"]
    form = _tourism_form(stack["root"], "2017-01", "格宗乡 2017年1月.xlsx")
    done = duikou(["submit", str(form), "--department", "tourism", "--period", "2017-01", "--json"], stack["env"])
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["status"] == "received" and answer["stored"].endswith(f"{answer['submission_id']}.xlsx")
    receipt = settings.receipts_dir / f"{answer['submission_id']}.json"
    wait_for("the submitted return's receipt", receipt.exists, RUN_TIMEOUT, stack["procs"])
    written = json.loads(receipt.read_text(encoding="utf-8"))
    assert written["status"] == "loaded" and written["original_name"] == "格宗乡 2017年1月.xlsx"


def test_rejected_and_quarantined_returns_end_in_named_states_and_ops_hear_of_the_quarantine(
    stack: dict[str, Any],
) -> None:
    """Issue 15: the runs list tells outcomes apart; a quarantine reaches ops with a link to its run."""
    api, env = stack["api"], stack["env"]
    late = _tourism_form(stack["root"], "2016-07", "格宗乡 7月 旧标题.xlsx", title_period="2016-06")  # reject
    rows = demo_values()[("tourism", "2016-06")]
    first = rows.columns[2]
    wrong = _tourism_form(stack["root"], "2016-06", "巴底乡 6月 合计错.xlsx",
                          totals={first: float(rows[first].sum()) + 1000})  # TOTAL_MISMATCH: quarantine
    outcomes = {}
    for form, period in ((late, "2016-07"), (wrong, "2016-06")):
        done = duikou(["submit", str(form), "--department", "tourism", "--period", period, "--wait", "--json"],
                      env, timeout=RUN_TIMEOUT + 60)
        receipt = json.loads(done.stdout.strip().splitlines()[-1])
        assert done.returncode == 1, done.stderr  # exits as `ingest` does: not loaded
        outcomes[receipt["status"]] = receipt
    assert set(outcomes) == {"rejected", "quarantined"}

    def named(status: str, name: str) -> dict[str, Any] | None:
        runs = [r for r in _flow_runs(api, "ingest-submission")
                if f"status:{status}" in r["tags"] and r["state"]["type"] == "COMPLETED"]
        return runs[0] if runs and runs[0]["state"]["name"] == name else None

    rejected = wait_for("the Rejected run", lambda: named("rejected", "Rejected"), RUN_TIMEOUT, stack["procs"])
    quarantined = wait_for("the Quarantined run", lambda: named("quarantined", "Quarantined"), RUN_TIMEOUT,
                           stack["procs"])
    assert "PERIOD_MISMATCH" in rejected["state"]["message"]
    hook: WebhookReceiver = stack["hook"]
    notice = wait_for("the quarantine notice", lambda: next(
        (m for m in hook.received if "quarantined" in m.get("subject", "")), None), RUN_TIMEOUT, stack["procs"])
    assert "巴底乡 6月 合计错.xlsx" in notice["subject"] and "TOTAL_MISMATCH" in notice["body"]
    link = next(word for word in notice["body"].split() if "/runs/flow-run/" in word)
    assert link.endswith(f"/runs/flow-run/{quarantined['id']}")
    run_id = link.rsplit("/", 1)[1]  # the server answers for that run (its UI is off in this stack)
    assert httpx.get(f"{api}/flow_runs/{run_id}", timeout=30).json()["state"]["name"] == "Quarantined"
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [quarantined["id"]]}}}, timeout=30)
    assert any("TOTAL_MISMATCH" in entry["message"] for entry in logs.json())  # one line per issue cause
    dq = _artifact(api, "dq-tourism-2016-06")["data"]
    assert dq.index("未通过的检查") < dq.index("通过的检查 ") and "<details>" in dq


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make test installs it)")
def test_screenshots_of_the_runs_list_and_the_nightly_artifact(stack: dict[str, Any], tmp_path: Path) -> None:
    """What docs/operations.md shows, taken from the UI of this module's server after the tests above."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test does)")
    api = stack["api"]
    ui = api.removesuffix("/api")
    artifact = _artifact(api, "nightly-submissions")
    shots = {"ops-runs-list.png": (f"{ui}/runs", "Quarantined"),
             "ops-nightly-artifact.png": (f"{ui}/artifacts/artifact/{artifact['id']}", "已退回 rejected")}
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            for name, (url, shown) in shots.items():
                page.goto(url)
                page.get_by_text(shown).first.wait_for(timeout=120_000)  # the UI renders from the API
                page.wait_for_timeout(1500)  # let the list settle before the picture
                page.screenshot(path=str(tmp_path / name), full_page=False)
        finally:
            browser.close()
    for name in shots:
        assert (tmp_path / name).stat().st_size > 10_000
        if os.environ.get("DUIKOU_DOCS_SCREENSHOTS") == "1":
            DOCS_IMAGES.mkdir(exist_ok=True)
            shutil.copyfile(tmp_path / name, DOCS_IMAGES / name)
