"""``duikou serve`` claims a new run when the server announces it, not at its next poll (issue 19 part 1).

A real ``prefect server start`` and ``duikou serve`` whose poll is ten minutes
(``DUIKOU_SERVE_POLL_SECONDS=600``): after its first poll at start, only the server's
``prefect.flow-run.Scheduled`` event on the event stream can make it claim a run within the test's
wait. A return landed and announced with ``duikou.submission.received`` is loaded by the triggered
run and its receipt written; the run ends Completed. No timing is asserted: the wait is a bound
far below the poll.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from duikou_settings import Settings
from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.helpers.ops_processes import Proc, duikou, start_prefect_server, start_serve, wait_for

pytestmark = pytest.mark.server

WAIT = 240.0  # a loaded 2-core machine; far below the 600 s poll


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("wake")
    procs: list[Proc] = []
    try:
        server, api, env = start_prefect_server(root)
        procs.append(server)
        env.update({"DUIKOU_DATA_DIR": str(root / "data"), "DUIKOU_SERVE_POLL_SECONDS": "600",
                    "DUIKOU_REPORT_DEBOUNCE_SECONDS": "600", "DUIKOU_SERVE_WORKERS": "1",
                    "PREFECT_LOGGING_LEVEL": "INFO"})  # the runs' INFO lines reach the API (the last test)
        serve = start_serve(env, root / "logs")
        procs.append(serve)
        yield {"api": api, "env": env, "root": root, "procs": tuple(procs), "serve": serve}
    finally:
        for proc in reversed(procs):
            proc.stop()


def test_a_run_created_by_the_trigger_is_claimed_without_waiting_for_the_poll(stack: dict[str, Any]) -> None:
    root: Path = stack["root"]
    form = root / "旅游月报 2016-11.xlsx"
    write_form(form, load_declarations()["tourism"], "2016-11", demo_values()[("tourism", "2016-11")])
    settings = Settings(data_dir=root / "data")
    # lands the file and emits duikou.submission.received, as the intake does; returns at once
    sent = duikou(["submit", str(form), "--department", "tourism", "--period", "2016-11", "--json"], stack["env"])
    receipt_path = settings.resolved_data_dir / "receipts"

    def receipt() -> dict[str, Any] | None:
        found = sorted(receipt_path.glob("*.json")) if receipt_path.exists() else []
        return json.loads(found[0].read_text(encoding="utf-8")) if found else None

    assert sent.returncode == 0, sent.stderr
    got = wait_for("the receipt of the triggered run (the poll is 600 s away)", receipt, WAIT, stack["procs"])
    assert got["status"] in ("loaded", "duplicate")

    def completed() -> bool:
        runs = httpx.post(f"{stack['api']}/flow_runs/filter",
                          json={"flows": {"name": {"any_": ["ingest-submission"]}}}).json()
        return bool(runs) and all(r["state"]["type"] == "COMPLETED" for r in runs)

    wait_for("the ingest run Completed", completed, WAIT, stack["procs"])


def test_an_announced_run_scheduled_for_later_is_left_until_it_is_due(stack: dict[str, Any]) -> None:
    """The stream announces every new run; one scheduled an hour ahead (a custom run from the UI) must
    not be claimed then — while a run announced after it is claimed and loads."""
    api, root = stack["api"], stack["root"]
    deployment = httpx.get(f"{api}/deployments/name/ingest-submission/ingest-submission").json()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    form = root / "旅游月报 2016-12.xlsx"
    write_form(form, load_declarations()["tourism"], "2016-12", demo_values()[("tourism", "2016-12")])
    for _ in range(20):  # the SQLite-backed server answers 503 to a write that meets another's commit
        future = httpx.post(f"{api}/deployments/{deployment['id']}/create_flow_run", json={
            "state": {"type": "SCHEDULED", "state_details": {"scheduled_time": later}},
            "parameters": {"path": str(form), "department": "tourism", "period": "2016-12"},
        })
        if future.status_code != 503:
            break
        time.sleep(0.25)
    assert future.status_code == 201, future.text
    sent = duikou(["submit", str(form), "--department", "tourism", "--period", "2016-12", "--json"], stack["env"])
    assert sent.returncode == 0, sent.stderr
    submission_id = json.loads(sent.stdout.strip().splitlines()[-1])["submission_id"]
    receipt = Settings(data_dir=root / "data").resolved_data_dir / "receipts" / f"{submission_id}.json"
    wait_for("the receipt of the run announced after the future one", receipt.exists, WAIT, stack["procs"])
    assert json.loads(receipt.read_text(encoding="utf-8"))["status"] == "loaded"
    state = httpx.get(f"{api}/flow_runs/{future.json()['id']}").json()["state"]
    assert state["type"] == "SCHEDULED", state


def test_uploads_started_while_every_slot_is_taken_wait_their_turn(stack: dict[str, Any]) -> None:
    """Three uploads handed to a ``duikou serve`` with one ingest slot (``start`` requests, as the
    intake sends them): a run that finds the slot free is created ``Pending`` and runs at once; one
    that finds it taken is created ``Scheduled`` (a restarted serve would still find it) and claimed
    as it frees — with a 600 s poll, by the freed slot itself; all three load."""
    from flows.handoff import find_service, start_run
    from tasks.landing.landed import land_file

    root, api = stack["root"], stack["api"]
    settings = Settings(data_dir=root / "data")
    service = find_service(settings.resolved_data_dir, settings.resolved_warehouse_url)
    assert service is not None
    landed_files = []
    for period in ("2016-07", "2016-08", "2016-09"):  # written and landed first: the starts follow each other
        form = root / f"旅游月报 {period}.xlsx"
        write_form(form, load_declarations()["tourism"], period, demo_values()[("tourism", period)])
        landed_files.append((period, land_file(form, settings.landing_dir, settings.max_upload_bytes, "tourism",
                                               period, via="intake")))

    def slot_free() -> bool:  # the runs of the tests above have ended (the one an hour ahead stays Scheduled)
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["ingest-submission"]}}}).json()
        return all(r["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "SCHEDULED") for r in runs)

    wait_for("the ingest slot free", slot_free, WAIT, stack["procs"])
    started = []
    for period, landed in landed_files:
        run_id = start_run(service, {"path": str(landed.path), "department": "tourism", "period": period})
        assert run_id is not None
        started.append((landed.submission_id, run_id))
    for submission_id, _ in started:
        receipt = settings.receipts_dir / f"{submission_id}.json"
        wait_for(f"the receipt of {submission_id}", receipt.exists, WAIT, stack["procs"])
        assert json.loads(receipt.read_text(encoding="utf-8"))["status"] == "loaded"
    seen = []
    for _, run_id in started:
        states = httpx.get(f"{api}/flow_run_states/", params={"flow_run_id": run_id}).json()
        seen.append({s["type"] for s in states})
    assert all("RUNNING" in types for types in seen)
    # the second start follows the first within a round trip, while the first run (≥ 0.3 s) holds the
    # one slot: at least one upload found it taken, was created Scheduled and still loaded. (The third
    # may find it free: a run frees its slot at its final state, and the second waits for the poll.)
    assert sum("SCHEDULED" in types for types in seen) >= 1
    assert "SCHEDULED" not in seen[0]  # the first found the slot free: Pending, run at once


def test_the_loads_of_one_debounce_window_announce_the_warehouse_update_once(stack: dict[str, Any]) -> None:
    """Every load in this ``duikou serve`` (two here, and those of the tests above when they ran)
    falls within its 600 s debounce: one ``duikou.warehouse.updated`` (the first load's), one
    ``refresh-reports`` run waiting for it, and each later load's run says in its log why it sent
    none (flows/warehouse_updates.py)."""
    from flows.handoff import find_service, start_run
    from tasks.landing.landed import land_file

    api, root = stack["api"], stack["root"]
    settings = Settings(data_dir=root / "data")
    service = find_service(settings.resolved_data_dir, settings.resolved_warehouse_url)
    assert service is not None
    for period in ("2017-01", "2017-02"):
        form = root / f"旅游月报 {period}.xlsx"
        write_form(form, load_declarations()["tourism"], period, demo_values()[("tourism", period)])
        landed = land_file(form, settings.landing_dir, settings.max_upload_bytes, "tourism", period, via="intake")
        assert start_run(service, {"path": str(landed.path), "department": "tourism", "period": period})
        wait_for(f"the receipt of {period}", (settings.receipts_dir / f"{landed.submission_id}.json").exists,
                 WAIT, stack["procs"])

    def loaded_runs() -> list[dict[str, Any]] | None:  # tagged after the receipt
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["ingest-submission"]}}}).json()
        started = [r for r in runs if r["state"]["type"] != "SCHEDULED"]  # not the one an hour ahead (above)
        done = [r for r in started if r["state"]["type"] == "COMPLETED"]
        return [r for r in done if "status:loaded" in r["tags"]] if len(done) == len(started) else None

    loaded = wait_for("every ingest run Completed", loaded_runs, WAIT, stack["procs"])
    assert len(loaded) >= 2, loaded

    def updates() -> list[dict[str, Any]] | None:
        found = httpx.post(f"{api}/events/filter", json={"filter": {
            "event": {"name": ["duikou.warehouse.updated"]}, "occurred": {"since": "2000-01-01T00:00:00Z"}},
            "limit": 50}).json()["events"]
        return found or None

    events = wait_for("the warehouse update event", updates, WAIT, stack["procs"])
    assert len(events) == 1, [e["payload"] for e in events]

    def refresh_runs() -> list[str] | None:  # the trigger's run, created as the server evaluates the event
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["refresh-reports"]}}}).json()
        return [r["parameters"]["event_id"] for r in runs] or None

    assert wait_for("the update's refresh-reports run", refresh_runs, WAIT, stack["procs"]) == [events[0]["id"]]

    def quiet_runs() -> set[str] | None:  # the runs' logs reach the server in batches
        logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [r["id"] for r in loaded]}},
                                                      "limit": 200}).json()
        said = {entry["flow_run_id"] for entry in logs
                if entry["message"].startswith("duikou.warehouse.updated not sent again")}
        return said if len(said) == len(loaded) - 1 else None

    wait_for("each later load's word on the update it did not send", quiet_runs, WAIT, stack["procs"])
    logs = httpx.post(f"{api}/logs/filter", json={"logs": {"flow_run_id": {"any_": [r["id"] for r in loaded]}},
                                                  "limit": 200}).json()
    assert not [e["message"] for e in logs if "release_serve_slot" in e["message"]]  # serve's bookkeeping: not logged
    assert any(e["message"].startswith("Finished in state") for e in logs)  # the engine's own lines are


def test_a_refresh_run_waiting_out_its_debounce_goes_back_to_scheduled_when_serve_stops(
    stack: dict[str, Any],
) -> None:
    """The loads a window's update covers count on its run: ``duikou serve`` stopped while that run
    waits out its (600 s) debounce puts it back to ``Scheduled`` — the next serve runs it — instead of
    ending it. Stops this module's serve: the module's last test."""
    from flows.handoff import find_service, start_run
    from tasks.landing.landed import land_file

    api, root = stack["api"], stack["root"]
    settings = Settings(data_dir=root / "data")
    service = find_service(settings.resolved_data_dir, settings.resolved_warehouse_url)
    assert service is not None
    form = root / "旅游月报 2017-03.xlsx"
    write_form(form, load_declarations()["tourism"], "2017-03", demo_values()[("tourism", "2017-03")])
    landed = land_file(form, settings.landing_dir, settings.max_upload_bytes, "tourism", "2017-03", via="intake")
    assert start_run(service, {"path": str(landed.path), "department": "tourism", "period": "2017-03"})

    def waiting_refresh() -> dict[str, Any] | None:  # claimed (Pending) and waiting out its debounce
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["refresh-reports"]}}}).json()
        return next((r for r in runs if r["state"]["type"] == "PENDING"), None)

    run = wait_for("a refresh-reports run waiting out its debounce", waiting_refresh, WAIT, stack["procs"])
    stack["serve"].stop()
    assert stack["serve"].popen.returncode is not None
    state = httpx.get(f"{api}/flow_runs/{run['id']}").json()["state"]
    assert state["type"] == "SCHEDULED", state
    assert "next duikou serve" in state["message"]
