"""``duikou serve``: the three deployments, registered on the server in ``PREFECT_API_URL`` and run here.

| deployment | started by | parameters |
|---|---|---|
| ``ingest-submission/ingest-submission`` | ``duikou.submission.received`` | path, department, period (payload) |
| ``nightly/nightly`` | cron ``0 2 * * *`` Asia/Shanghai | ``run_label=scheduled`` |
| ``refresh-reports/refresh-reports`` | ``duikou.warehouse.updated`` | the event's id and time (``flows/refresh.py``) |

The two event triggers are deployment event triggers (automations the server evaluates).

Runs execute **in this process**, on threads: the serve process imports pandas, SQLAlchemy and
GX once at start, so a run pays only its own work. Prefect's stock ``serve`` starts a new
process per run, which re-imports all of that (≈ 4–5 s here) — ``--process-per-run`` selects
it, for isolation at that price. Each deployment has its own lane (ingest:
``DUIKOU_SERVE_WORKERS`` runs at once; nightly and refresh-reports: one), and a lane only claims
runs (Scheduled → Pending through the API, so two serve processes never run the same one) while
it has a free slot. Cancelling a run from the UI does not interrupt an in-process run; it ends at
its next task.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, cast
from uuid import UUID

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import SetStateStatus
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.flow_engine import run_flow
from prefect.schedules import Cron
from prefect.states import Crashed, Pending

from duikou_settings import Settings
from flows.events import SUBMISSION_RECEIVED, WAREHOUSE_RESOURCE, WAREHOUSE_UPDATED
from flows.ingest import ingest_submission
from flows.refresh import refresh_reports
from flows.runners import nightly_flow

log = logging.getLogger("duikou.serve")

NIGHTLY_CRON = "0 2 * * *"
COUNTY_TIMEZONE = "Asia/Shanghai"


def served_flows(settings: Settings) -> dict[str, Flow[..., Any]]:
    """Deployment name → the flow it runs (nightly with the configured task runner, as ``duikou nightly``)."""
    return {"ingest-submission": ingest_submission, "nightly": nightly_flow(settings),
            "refresh-reports": refresh_reports}


def build_deployments(flows: dict[str, Flow[..., Any]]) -> list[RunnerDeployment]:
    ingest = flows["ingest-submission"].to_deployment(
        name="ingest-submission",
        description="One department return, started by duikou.submission.received (intake server, duikou submit).",
        tags=["duikou"],
        triggers=[DeploymentEventTrigger(
            name="on duikou.submission.received",
            expect={SUBMISSION_RECEIVED},
            match={"prefect.resource.id": "duikou.submission.*"},
            parameters={"path": "{{ event.payload.path }}", "department": "{{ event.payload.department }}",
                        "period": "{{ event.payload.period }}"},
        )],
    )
    night = flows["nightly"].to_deployment(
        name="nightly",
        description="Reconcile landing vs ledger, ingest what is pending, marts, missing-returns alert, report.",
        tags=["duikou"],
        schedules=[Cron(NIGHTLY_CRON, timezone=COUNTY_TIMEZONE)],
        parameters={"run_label": "scheduled"},
    )
    refresh = flows["refresh-reports"].to_deployment(
        name="refresh-reports",
        description="Marts and report after duikou.warehouse.updated, once per burst (newer event wins).",
        tags=["duikou"],
        triggers=[DeploymentEventTrigger(
            name="on duikou.warehouse.updated",
            expect={WAREHOUSE_UPDATED},
            match={"prefect.resource.id": WAREHOUSE_RESOURCE},
            parameters={"event_id": "{{ event.id | string }}", "updated_at": "{{ event.occurred | string }}"},
        )],
    )
    return [cast(RunnerDeployment, d) for d in (ingest, night, refresh)]


def prepare_server(settings: Settings) -> list[str]:
    """Writer concurrency limit and automations; returns what was set up, for the log."""
    from flows.automations import NotificationBlockMissing, ensure_automations, notification_block_id
    from tasks.submission.writer_slots import GLOBAL_WRITERS, remove_partition_limits, set_global_writer_limit

    set_global_writer_limit(settings.writer_concurrency)
    notes = [f"concurrency limit {GLOBAL_WRITERS} = {settings.writer_concurrency}"]
    if removed := remove_partition_limits():  # what earlier versions left on the Concurrency page
        notes.append(f"removed {len(removed)} per-partition concurrency limit(s) an earlier version left "
                     f"({removed[0]}, …)")
    try:
        notes += ensure_automations(notification_block_id(settings.notify_block))
    except NotificationBlockMissing as exc:
        notes.append(f"automations NOT set up: {exc}")
    return notes


def warm_up() -> None:
    """Import what every run needs once, before the first event arrives."""
    import great_expectations  # 2.3 s, paid here instead of in the first run
    import great_expectations.expectations  # noqa: F401


@dataclass
class Lane:
    name: str
    flow: Flow[..., Any]
    deployment_id: UUID
    capacity: int
    running: set[UUID] = field(default_factory=set)

    @property
    def free(self) -> int:
        return self.capacity - len(self.running)


class InProcessServer:
    """Polls the API for due runs of our deployments and runs each in this process on a thread."""

    def __init__(self, lanes: list[Lane], poll_seconds: float) -> None:
        self._lanes = {lane.deployment_id: lane for lane in lanes}
        self._poll_seconds = poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=sum(lane.capacity for lane in lanes),
                                        thread_name_prefix="duikou-run")
        self._lock = threading.Lock()
        self.stopping = threading.Event()

    def serve_forever(self, grace_seconds: float) -> None:
        while not self.stopping.is_set():
            try:
                self._poll_once()
            except Exception:  # the Prefect server restarting must not end serve: try again next poll
                log.exception("polling the Prefect API failed; retrying in %.1f s", self._poll_seconds)
            self.stopping.wait(self._poll_seconds)
        self._shut_down(grace_seconds)

    def _poll_once(self) -> None:
        with self._lock:
            wanted = [lane.deployment_id for lane in self._lanes.values() if lane.free > 0]
        if not wanted:
            return
        with get_client(sync_client=True) as client:
            due = client.get_scheduled_flow_runs_for_deployments(deployment_ids=wanted,
                                                                 scheduled_before=datetime.now(UTC))
            for run in sorted(due, key=lambda r: r.expected_start_time or datetime.now(UTC)):
                lane = self._lanes.get(run.deployment_id) if run.deployment_id else None
                if lane is None or lane.free <= 0 or run.id in lane.running:
                    continue
                outcome: Any = client.set_flow_run_state(run.id, Pending())
                if outcome.status != SetStateStatus.ACCEPT:  # another server took it, or a limit said wait
                    continue
                claimed = client.read_flow_run(run.id)  # as Pending now: what the engine starts from
                with self._lock:
                    lane.running.add(run.id)
                self._pool.submit(self._execute, lane, claimed)

    def _execute(self, lane: Lane, flow_run: FlowRun) -> None:
        try:
            log.info("running %s (%s)", flow_run.name, lane.name)
            state = run_flow(lane.flow, flow_run=flow_run, return_type="state")
            log.info("%s ended %s", flow_run.name, getattr(state, "name", state))
        except BaseException:  # the engine records the state; this only keeps the lane usable
            log.exception("run %s raised outside the flow engine", flow_run.id)
        finally:
            with self._lock:
                lane.running.discard(flow_run.id)

    def in_flight(self) -> set[UUID]:
        with self._lock:
            return {run_id for lane in self._lanes.values() for run_id in lane.running}

    def _shut_down(self, grace_seconds: float) -> None:
        deadline = time.monotonic() + grace_seconds
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.in_flight()
        if left:  # the warehouse is safe (loads are single transactions); say so in the UI
            with get_client(sync_client=True) as client:
                for run_id in left:
                    client.set_flow_run_state(run_id, Crashed(message="duikou serve stopped during the run; "
                                                              "re-run it or let the nightly run pick the file up"),
                                              force=True)
        self._pool.shutdown(wait=not left, cancel_futures=True)


def register(deployments: list[RunnerDeployment]) -> dict[str, UUID]:
    return {deployment.name: cast(UUID, deployment.apply()) for deployment in deployments}


def serve_in_process(settings: Settings, grace_seconds: float = 60.0, on_ready: Any = None) -> None:
    """Register the deployments, prepare the server, then run due runs until SIGTERM / SIGINT."""
    flows = served_flows(settings)
    ids = register(build_deployments(flows))
    notes = prepare_server(settings)
    warm_up()
    capacity = {"ingest-submission": settings.serve_workers, "nightly": 1, "refresh-reports": 1}
    server = InProcessServer([Lane(name, flows[name], ids[name], capacity[name]) for name in ids],
                             settings.serve_poll_seconds)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if on_ready is not None:
        on_ready(ids, notes)
    server.serve_forever(grace_seconds)


def serve_process_per_run(settings: Settings, on_ready: Any = None) -> None:
    """Prefect's stock runner: one new process per run (isolation; pays the imports every run)."""
    from prefect import serve

    deployments = build_deployments(served_flows(settings))
    notes = prepare_server(settings)
    if on_ready is not None:
        on_ready({d.name: None for d in deployments}, notes)
    serve(*deployments, print_starting_message=False)
