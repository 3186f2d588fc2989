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
from collections.abc import Iterator
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
                    "DUIKOU_REPORT_DEBOUNCE_SECONDS": "600"})
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
