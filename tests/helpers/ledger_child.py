"""One ``duikou`` ingest in its own process, for tests/hostile/test_ledger.py.

Run as ``python tests/helpers/ledger_child.py '<json spec>'``: the child takes its data directory
and warehouse from the environment (``DUIKOU_DATA_DIR``, ``DUIKOU_WAREHOUSE_URL``) and its Prefect
API from ``PREFECT_API_URL`` (the test's harness), runs ``flows.pipeline.process_submission`` —
the same control flow ``duikou ingest`` and the nightly run — and prints the result as one JSON
line. Observation points let the test order two processes exactly:

* with ``hold_before_start``, the child imports what it needs and then waits until
  ``<workdir>/<name>.start`` exists before it begins the ingest: a second child can pay its
  interpreter's start (seconds of imports) beside the first one, and still begin only when the test
  lets it;
* ``<workdir>/<name>.checked`` appears once the ledger has been consulted (the duplicate check);
  with ``hold_after_check`` the child then waits until ``<workdir>/<name>.go`` exists;
* with ``hold_after_load``, ``<workdir>/<name>.loaded`` (the load's status) appears once the
  load's transaction has committed, and the child waits there — before any receipt is written —
  until ``<workdir>/<name>.go`` exists (or the test kills it: a crash after the commit).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any


def main(spec: dict[str, Any]) -> None:
    import tasks.submission.steps as task_steps
    from duikou_settings import get_settings
    from flows.pipeline import process_submission
    from flows.warehouse_access import open_warehouse
    from warehouse.refdata import reference_frames

    workdir, name = Path(spec["workdir"]), spec["name"]
    consult, load = task_steps.previous_result_task, task_steps.load_task

    def hold(where: str, marker: str = "go") -> None:
        go = workdir / f"{name}.{marker}"
        deadline = time.monotonic() + 120
        while not go.exists():
            if time.monotonic() > deadline:
                raise RuntimeError(f"held {where} for 120 s and never let go")
            time.sleep(0.02)

    def consulted(*args: Any, **kwargs: Any) -> Any:
        found = consult(*args, **kwargs)
        (workdir / f"{name}.checked").touch()
        if spec.get("hold_after_check"):
            hold("after the ledger check")
        return found

    def loaded(*args: Any, **kwargs: Any) -> Any:
        outcome = load(*args, **kwargs)
        if spec.get("hold_after_load"):
            partial = workdir / f"{name}.loaded.tmp"
            partial.write_text(outcome.status, encoding="utf-8")
            partial.replace(workdir / f"{name}.loaded")  # the test never reads half a marker
            hold("after the load")
        return outcome

    task_steps.previous_result_task = consulted  # type: ignore[assignment]
    task_steps.load_task = loaded  # type: ignore[assignment]
    if spec.get("hold_before_start"):
        hold("before the start", "start")
    settings = get_settings()
    result = process_submission(Path(spec["path"]), spec["department"], spec["period"],
                                engine=open_warehouse(settings), reference=reference_frames(), settings=settings,
                                follow_up=False)
    print(json.dumps({"submission_id": result.submission_id, "status": result.status,
                      "receipt_path": str(result.receipt_path) if result.receipt_path else None}), flush=True)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
