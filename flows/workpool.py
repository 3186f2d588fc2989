"""The nightly's departments as separate flow runs on a Prefect work pool (``DUIKOU_TASK_RUNNER=workpool``).

Instead of task-runner futures, the nightly creates one run of the ``ingest-department``
deployment per department (its landing files in arrival order, as paths relative to the data
directory), waits for them, and merges what each run wrote back into its ``NightlySummary`` —
the same outcomes, receipts and counts as the thread path. A process worker runs each flow run in
a new process; workers on several hosts share the data directory and the warehouse.

* ``ingest_department`` (the flow a worker runs): the per-file loop of the nightly's
  ``ingest-department`` task (``flows/department_ingest.py``), then
  ``<data>/workpool/<flow run id>.json`` with its outcomes;
* ``ingest_on_work_pool`` (the nightly's side): create the runs, wait at most
  ``DUIKOU_WORK_POOL_TIMEOUT_SECONDS``, read the outcomes of the runs that completed, and return
  them with the problems: each run that failed, crashed or timed out, named; the nightly finishes
  with the departments that loaded and then raises ``WorkPoolRunsFailed`` with the problems;
* ``setup_work_pool`` (``duikou workpool setup``): the process pool ``DUIKOU_WORK_POOL``, the
  deployment (code: this checkout) and the writer concurrency limit; idempotent.

Workers: ``prefect worker start --pool duikou-process --type process --limit 1`` on each host,
with the same ``DUIKOU_*`` settings and ``PREFECT_API_URL`` (docs/scaling.md).
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast
from uuid import UUID

from prefect import Flow, flow, get_run_logger, tags
from prefect.client.schemas.objects import FlowRun

from duikou_settings import Settings, get_settings
from flows.department_ingest import FileOutcome, ingest_files
from flows.warehouse_access import open_warehouse
from tasks.files import write_json_atomically
from tasks.submission.journey import relative
from tasks.submission.result import SubmissionResult
from warehouse.refdata import reference_frames

FLOW_NAME = "ingest-department"
DEPLOYMENT_NAME = "ingest-department"
DEPLOYMENT = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
ENTRYPOINT = "flows/workpool.py:ingest_department"  # relative to the checkout (``checkout_root``)
OUTCOMES_DIR = "workpool"  # under the data directory: one JSON file per flow run
POLL_SECONDS = 2.0
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


class WorkPoolUnavailable(RuntimeError):
    """The work-pool mode cannot start: no Prefect server configured, no deployment, wrong pool."""


class WorkPoolRunsFailed(RuntimeError):
    """Some department runs did not complete; the message names each with its state and worker."""


def api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None


def require_server(settings: Settings) -> str:
    """The configured Prefect API, or a clear refusal: a temporary per-process server has no workers."""
    url = api_url()
    if not url:
        raise WorkPoolUnavailable(
            f"DUIKOU_TASK_RUNNER=workpool runs departments as flow runs on the work pool {settings.work_pool!r}, "
            "which needs a real Prefect server: set PREFECT_API_URL (e.g. http://127.0.0.1:4200/api), run "
            "`duikou workpool setup` and start workers (docs/scaling.md), or use DUIKOU_TASK_RUNNER=threads")
    return url


# ------------------------------------------------------------------------------------------- the worker's side


def _landing_file(settings: Settings, department: str, item: dict[str, str]) -> tuple[str, Path, str]:
    """(relative path, absolute path on this host, period) of one ``{"path": …, "period": …}`` parameter."""
    relative, period = item.get("path"), item.get("period")
    if not relative or not period:
        raise ValueError(f"ingest-department {department}: each file needs a path and a period, got {item!r}")
    parts = PurePosixPath(relative).parts
    if PurePosixPath(relative).is_absolute() or ".." in parts:
        raise ValueError(f"ingest-department {department}: {relative!r} is not a path inside the data directory")
    path = settings.resolved_data_dir.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"ingest-department {department}: {relative} not found under the data directory "
            f"{settings.resolved_data_dir} on {socket.gethostname()} — the worker's DUIKOU_DATA_DIR must be the "
            "nightly's (shared) data directory")
    return relative, path, period


def outcomes_path(settings: Settings, flow_run_id: UUID | str) -> Path:
    return settings.resolved_data_dir / OUTCOMES_DIR / f"{flow_run_id}.json"


def _result_dict(result: SubmissionResult, settings: Settings) -> dict[str, Any]:
    """A SubmissionResult as JSON, its receipt path relative to the data directory."""
    out = asdict(result)
    out["receipt_path"] = relative(result.receipt_path, settings) if result.receipt_path is not None else None
    return out


def _outcome_dict(outcome: FileOutcome, relative_path: str, settings: Settings) -> dict[str, Any]:
    return {"path": relative_path, "kind": outcome.kind, "reason": outcome.reason,
            "result": _result_dict(outcome.result, settings) if outcome.result is not None else None}


def _department_run_name() -> str:
    from prefect.runtime import flow_run

    parameters = flow_run.parameters
    return f"ingest-department {parameters.get('department', '?')} ({len(parameters.get('files') or [])} files)"


@flow(name=FLOW_NAME, flow_run_name=_department_run_name, log_prints=False)
def ingest_department(department: str, files: list[dict[str, str]]) -> int:
    """One department's landing files, oldest first, in this process; returns how many were handled.

    ``files``: ``{"path": …, "period": …}`` in arrival order, each path relative to the data
    directory (``landing/<department>/<period>/<file>``, or the staged copy of a remote object).
    Per file as the nightly's task does it: a malformed period folder is *skipped*, an unexpected
    error *failed*, and the next file goes on. The outcomes go to
    ``<data>/workpool/<this run's id>.json`` for the nightly that started the run.
    """
    from prefect.runtime import flow_run

    logger = get_run_logger()
    settings = get_settings()
    located = [_landing_file(settings, department, item) for item in files]  # every one, before any load
    with tags(f"department:{department}"):
        done = ingest_files(department, [(path, period) for _, path, period in located],
                            engine=open_warehouse(settings), reference=reference_frames(), settings=settings)
    outcomes = [_outcome_dict(outcome, name, settings)
                for outcome, (name, _, _) in zip(done, located, strict=True)]  # in order, one per file
    write_json_atomically(outcomes_path(settings, flow_run.id),  # whole or absent; mode as open() gives
                          {"department": department, "host": socket.gethostname(), "pid": os.getpid(),
                           "outcomes": outcomes}, default=str, mode=0o666)
    logger.info("%s: %d file(s) handled in process %d", department, len(outcomes), os.getpid())
    return len(outcomes)


# ------------------------------------------------------------------------------------------- the nightly's side


@dataclass(frozen=True)
class DepartmentRun:
    department: str
    flow_run_id: UUID
    files: dict[str, str]  # path relative to the data directory → the nightly's own path of the file


def ingest_on_work_pool(
    groups: Sequence[Sequence[Any]], settings: Settings
) -> tuple[list[list[FileOutcome]], list[str]]:
    """One ``ingest-department`` flow run per group (a department's LandingFiles in arrival order).

    Returns (the outcomes of the runs that completed, in the order of ``groups``; the problems):
    the problems name every run that failed, crashed or did not finish within
    ``DUIKOU_WORK_POOL_TIMEOUT_SECONDS`` (those are cancelled: a load is one transaction, and the
    next nightly picks their files up), and a completed run whose outcome file is missing. The
    nightly finishes with the departments that loaded, then raises ``WorkPoolRunsFailed`` with them.
    """
    from prefect.deployments import run_deployment

    if not groups:
        return [], []
    logger = get_run_logger()
    _check_deployment(settings)
    runs: list[DepartmentRun] = []
    for group in groups:
        files = {_inside(Path(item.path), settings): str(item.path) for item in group}
        parameters = [{"path": relative, "period": item.period} for relative, item in zip(files, group, strict=True)]
        department = group[0].department
        created = cast(FlowRun, run_deployment(
            DEPLOYMENT, parameters={"department": department, "files": parameters}, timeout=0,
            tags=["duikou", f"department:{department}"]))
        runs.append(DepartmentRun(department, created.id, files))
        logger.info("%s: %d file(s) → flow run %s on work pool %s", department, len(files), created.id,
                    settings.work_pool)
    failed = _wait(runs, settings.work_pool_timeout_seconds)
    problems = [f"{len(failed)} of {len(runs)} ingest-department run(s) did not complete: "
                + "; ".join(failed.values())] if failed else []
    outcomes: list[list[FileOutcome]] = []
    for run in runs:
        if run.flow_run_id in failed:
            continue
        source = outcomes_path(settings, run.flow_run_id)
        if not source.is_file():
            problems.append(f"{run.department}: flow run {run.flow_run_id} completed but wrote no {source} — the "
                            "worker's DUIKOU_DATA_DIR is not the nightly's data directory")
            continue
        outcomes.append(_outcomes(run, source, settings))
    return outcomes, problems


def _inside(path: Path, settings: Settings) -> str:
    """``path`` relative to the data directory: what a worker on another host can find."""
    try:
        return relative(path, settings)
    except ValueError:
        raise WorkPoolUnavailable(f"{path} is not inside the data directory {settings.resolved_data_dir}: a work-pool "
                                  "run finds its files relative to the (shared) data directory") from None


def _check_deployment(settings: Settings) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import WorkerFilter, WorkerFilterStatus
    from prefect.exceptions import ObjectNotFound

    url = require_server(settings)
    with get_client(sync_client=True) as client:
        try:
            deployment = client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            raise WorkPoolUnavailable(f"no deployment {DEPLOYMENT!r} on {url}: run `duikou workpool setup`") from None
        if deployment.work_pool_name != settings.work_pool:
            raise WorkPoolUnavailable(
                f"deployment {DEPLOYMENT!r} runs on work pool {deployment.work_pool_name!r}, but "
                f"DUIKOU_WORK_POOL={settings.work_pool!r}: run `duikou workpool setup` with the pool you mean")
        online = client.read_workers_for_work_pool(
            settings.work_pool, worker_filter=WorkerFilter(status=WorkerFilterStatus(any_=["ONLINE"])))
    if not online:
        get_run_logger().warning("no worker is online on work pool %s: the department runs wait for one (at most "
                                 "%g s); start `prefect worker start --pool %s --type process`",
                                 settings.work_pool, settings.work_pool_timeout_seconds, settings.work_pool)


def _wait(runs: list[DepartmentRun], timeout: float) -> dict[UUID, str]:
    """Poll the runs until each is final; the ones that did not complete, each described, by flow run id."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = [run.flow_run_id for run in runs]
    deadline = time.monotonic() + timeout
    latest: dict[UUID, FlowRun] = {}
    with get_client(sync_client=True) as client:
        while True:
            for found in client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids))):
                latest[found.id] = found
            pending = [i for i in ids if _state(latest.get(i)) not in FINAL_STATES]
            if not pending or time.monotonic() > deadline:
                break
            time.sleep(POLL_SECONDS)
        timed_out = set(pending)
        for run_id in timed_out:
            _cancel(client, run_id, timeout)
    return {run.flow_run_id: _describe(run, latest.get(run.flow_run_id), run.flow_run_id in timed_out, timeout)
            for run in runs
            if run.flow_run_id in timed_out or _state(latest.get(run.flow_run_id)) != "COMPLETED"}


def _state(run: Any) -> str:
    return str(run.state.type.value) if run is not None and run.state is not None else "UNKNOWN"


def _cancel(client: Any, run_id: UUID, timeout: float) -> None:
    from prefect.states import Cancelling

    try:
        client.set_flow_run_state(run_id, Cancelling(message=f"the nightly stopped waiting after {timeout:g} s"))
    except Exception:  # cancelling is a courtesy: the error below names the run either way
        get_run_logger().exception("could not cancel flow run %s", run_id)


def _describe(run: DepartmentRun, found: Any, timed_out: bool, timeout: float) -> str:
    state = _state(found)
    name = found.name if found is not None else "?"
    worker = (found.labels or {}).get("prefect.worker.name") if found is not None else None
    where = f", worker {worker}" if worker else ""
    if timed_out:
        return (f"{run.department} ({name}, flow run {run.flow_run_id}{where}): still {state} after {timeout:g} s, "
                "cancelled" + ("" if worker else " — no worker took it; is one running on the pool?"))
    message = (found.state.message or "").strip() if found is not None and found.state is not None else ""
    return f"{run.department} ({name}, flow run {run.flow_run_id}{where}): {state}" + (f" — {message}" if message
                                                                                      else "")


def _outcomes(run: DepartmentRun, source: Path, settings: Settings) -> list[FileOutcome]:
    """A completed run's outcomes (its file ``source``, removed once read), paths as the nightly sees them."""
    written = json.loads(source.read_text(encoding="utf-8"))
    out: list[FileOutcome] = []
    for item in written["outcomes"]:
        path = run.files.get(item["path"], str(settings.resolved_data_dir / item["path"]))
        result = None
        if item["result"] is not None:
            fields = dict(item["result"])
            receipt = fields.pop("receipt_path")
            result = SubmissionResult(**fields, receipt_path=(settings.resolved_data_dir / receipt) if receipt
                                      else None)
        out.append(FileOutcome(path, item["kind"], result=result, reason=item["reason"]))
    source.unlink()
    return out


# ------------------------------------------------------------------------------------------- setup


def checkout_root() -> Path:
    """The directory the deployment's runs execute in: this checkout (``flows/`` is in it)."""
    return Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class SetupOutcome:
    work_pool: str
    pool_created: bool
    deployment_id: UUID
    source: Path
    writer_limit: int


def setup_work_pool(settings: Settings) -> SetupOutcome:
    """The process work pool, the ``ingest-department`` deployment on it and the writer limit; idempotent."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    from tasks.submission.writer_slots import set_global_writer_limit

    require_server(settings)
    created = False
    with get_client(sync_client=True) as client:
        try:
            pool = client.read_work_pool(settings.work_pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(
                name=settings.work_pool, type="process", description="duikou: one flow run per department (nightly)",
                base_job_template=ProcessWorker.get_default_base_job_template()))
            created = True
        else:
            if pool.type != "process":
                raise WorkPoolUnavailable(f"work pool {settings.work_pool!r} exists with type {pool.type!r}, not "
                                          "'process': choose another DUIKOU_WORK_POOL or delete that pool")
    source = checkout_root()
    deployed = cast(Flow[..., Any], Flow.from_source(source=str(source), entrypoint=ENTRYPOINT))
    deployment_id = cast(UUID, deployed.deploy(
        name=DEPLOYMENT_NAME, work_pool_name=settings.work_pool, tags=["duikou"],
        description="One department's new landing files in arrival order, for the nightly "
                    "(DUIKOU_TASK_RUNNER=workpool).",
        print_next_steps=False, ignore_warnings=True))
    set_global_writer_limit(settings.writer_concurrency)
    return SetupOutcome(settings.work_pool, created, deployment_id, source, settings.writer_concurrency)
