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
it has a free slot — freed when the run reaches its final state, not when Prefect's engine has
torn down after it (:func:`released_at_final_state`). Cancelling a run from the UI does not
interrupt an in-process run; it ends at its next task. Nor can one be suspended and resumed: the
engine is not asked to watch for it (:func:`without_suspension_watch`). Each run thread keeps
one API client for its life (:func:`hold_api_client`), as does the poll loop and the uploads'
``start`` requests: a new client costs ~20 ms of CPU (its TLS context).

A new run is claimed the moment the server announces it: :class:`RunWatcher` subscribes to the
server's event stream (``prefect.flow-run.Scheduled`` of our deployments) and a due run it names
is claimed by its id at once; the poll every ``DUIKOU_SERVE_POLL_SECONDS`` stays as the fallback
(a dropped stream, a scheduled run that comes due later, a slot freed, a full lane). Prefect's own runner only polls
(``PREFECT_RUNNER_POLL_FREQUENCY``, 10 s by default).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from types import FrameType
from typing import TYPE_CHECKING, Any, cast
from uuid import UUID, uuid4

from prefect import Flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.responses import SetStateStatus
from prefect.context import SyncClientContext
from prefect.deployments.runner import RunnerDeployment
from prefect.events import DeploymentEventTrigger
from prefect.flow_engine import run_flow
from prefect.schedules import Cron
from prefect.states import Crashed, Pending, Scheduled

from duikou_settings import Settings
from flows.events import SUBMISSION_RECEIVED, WAREHOUSE_RESOURCE, WAREHOUSE_UPDATED
from flows.ingest import ingest_submission
from flows.refresh import refresh_reports
from flows.runners import nightly_flow
from flows.warehouse_updates import coalescing_updates

if TYPE_CHECKING:
    from prefect.flows import FlowStateHook

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
            # an upload whose run duikou serve already started is duikou.submission.started (flows/handoff.py)
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


def warm_up(settings: Settings) -> None:
    """Pay what the first run would pay, before the first event arrives: GX and its expectations
    imported and the process's GX context built (~2 s each on a loaded machine), the declarations
    parsed, the warehouse opened (schema checked, reference data in place), the readers imported."""
    import great_expectations
    import great_expectations.expectations  # noqa: F401
    import openpyxl  # noqa: F401

    from expectations.declaration import load_declarations
    from flows.warehouse_access import open_warehouse
    from tasks.validation.validate import _gx_batch_definition

    _gx_batch_definition()
    load_declarations()
    open_warehouse(settings)


#: the lanes whose runs go to a child process at lower CPU priority: nobody waits on them, and on a
#: two-core host a report build in the serve process would take the GIL and the cores from the
#: ingest run a clerk is waiting on (``refresh-reports`` of the previous upload, debounced, builds
#: while the next one is read). A run a newer update supersedes never gets a process: serve waits
#: out its debounce and, finding the newer event, runs it here, where it ends at once
#: (``flows/refresh.superseded_after_debounce``)
BACKGROUND_LANES = frozenset({"refresh-reports"})
BACKGROUND_NICE = 10


def run_claimed(name: str, flow_run_id: str) -> int:
    """The child's side of a background lane: run the claimed (Pending) flow run of ``name`` here."""
    from duikou_settings import get_settings

    os.nice(BACKGROUND_NICE)
    flow = served_flows(get_settings())[name]
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(UUID(flow_run_id))
    state = run_flow(flow, flow_run=flow_run, return_type="state")
    return 0 if getattr(state, "is_completed", lambda: False)() else 1


@dataclass
class Lane:
    name: str
    flow: Flow[..., Any]
    deployment_id: UUID
    capacity: int
    running: set[UUID] = field(default_factory=set)  # claimed here (or a slot reserved for a claim)

    @property
    def free(self) -> int:
        return self.capacity - len(self.running)


def hold_api_client() -> None:
    """A run thread's initializer: the thread keeps one API client for its life, which Prefect's engine
    and the flows' own calls pick up (``SyncClientContext.get_or_create``). Each new client builds a
    TLS context from the CA bundle, ~20 ms of CPU: a run used to make two, and the poll one per pass
    — 40 % of this process's CPU in a latency bench. Without a server to ask (an error here), the
    runs make their own clients, as before."""
    try:
        SyncClientContext().__enter__()
    except Exception:
        log.exception("could not open this run thread's API client; its runs open their own")


def renew_closed_api_client() -> None:
    """Before a run on a pool thread: a thread whose kept client was closed (nothing here closes it;
    an unbalanced exit somewhere would) gets a new one, rather than failing every later run."""
    context = SyncClientContext.get()
    if context is not None and getattr(context.client, "_closed", False):
        log.warning("this run thread's API client was closed; opening a new one")
        hold_api_client()


def without_suspension_watch(flow_run: FlowRun) -> FlowRun:
    """The run as handed to Prefect's engine here: without its deployment id, which is what makes the
    engine start a suspension observer for it (a thread with its own event loop, API client and
    event-stream subscription, waited for before the run starts: ~50 ms of a clerk's wait, ~8 % of
    this process's CPU). A run in this process can no more be suspended and resumed than cancelled
    mid-way (module docstring). The engine re-reads the run before the flow's body, deployment
    included, so the run's context, logs and events still name its deployment."""
    return flow_run.model_copy(update={"deployment_id": None})


class QuietSlotHook(logging.Filter):
    """Drops the engine's two INFO lines about the slot hook ("Running hook 'release_serve_slot' …",
    "Hook 'release_serve_slot' finished …") from the runs' logs: serve's bookkeeping, not the run's
    story, and two more lines in every ingest run's log in the UI. Its failure (a warning) stays."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and "'release_serve_slot'" in record.getMessage())


#: pool threads per slot: a run's thread outlives its slot by Prefect's teardown after the final
#: state (the heartbeat thread's join, up to 1 s; the suspension observer's, up to 0.2 s), so the
#: next run of a lane needs a thread of its own meanwhile
THREADS_PER_SLOT = 3


def released_at_final_state(flow: Flow[..., Any], release: Callable[[UUID], None]) -> Flow[..., Any]:
    """``flow`` with ``release(flow_run_id)`` added to its final-state hooks (its own kept, first):
    the engine calls them right after the server accepted Completed, Failed or Crashed — before its
    teardown, which only waits on its helper threads' sleeps (the heartbeat's 1 s steps). Not on
    cancellation: Prefect calls those hooks at Cancelling, while a run here goes on to its next step;
    a cancelled run's slot frees when its thread ends.
    Measured: that teardown held an ingest slot ~0.6 s past the receipt, so an upload right after
    the previous one's receipt found both slots taken and waited for the poll."""

    def release_serve_slot(_flow: Any, flow_run: FlowRun, _state: Any) -> None:
        release(flow_run.id)

    hook = cast("FlowStateHook[..., Any]", release_serve_slot)
    return flow.with_options(on_completion=[*flow.on_completion_hooks, hook],
                             on_failure=[*flow.on_failure_hooks, hook],
                             on_crashed=[*flow.on_crashed_hooks, hook])


def announced_run(resource_id: str, related: list[tuple[str, str]]) -> tuple[UUID, UUID] | None:
    """(flow run id, deployment id) a ``prefect.flow-run.Scheduled`` event announces — its resource
    ``prefect.flow-run.<id>`` and its one related ``prefect.deployment.<id>`` — or None when it does not say."""
    run_prefix, deployment_prefix = "prefect.flow-run.", "prefect.deployment."
    deployments = [rid for rid, role in related if role == "deployment" and rid.startswith(deployment_prefix)]
    if not resource_id.startswith(run_prefix) or len(deployments) != 1:
        return None
    try:
        return UUID(resource_id.removeprefix(run_prefix)), UUID(deployments[0].removeprefix(deployment_prefix))
    except ValueError:
        return None


class RunWatcher:
    """Tells the poll loop at once when the server announces a new run of one of our deployments.

    A daemon thread with its own event loop holds a subscription to the server's event stream
    (``/api/events/out``) for ``prefect.flow-run.Scheduled`` events related to the deployments;
    each one is handed to ``on_run`` (the run it names, or None when the event does not say) and
    sets ``wake``. A dropped stream is re-opened after ``retry_seconds`` (the poll covers the gap);
    nothing here claims or runs anything.
    """

    def __init__(self, deployment_ids: list[UUID], wake: threading.Event, stopping: threading.Event,
                 retry_seconds: float, on_run: Callable[[tuple[UUID, UUID] | None], None] | None = None) -> None:
        self._related = [f"prefect.deployment.{d}" for d in deployment_ids]
        self._wake, self._stopping, self._retry_seconds = wake, stopping, retry_seconds
        self._on_run = on_run
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="duikou-run-watcher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        import asyncio

        asyncio.run(self._watch())

    async def _watch(self) -> None:
        import asyncio

        from prefect.events.clients import get_events_subscriber
        from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter

        wanted = EventFilter(event=EventNameFilter(name=["prefect.flow-run.Scheduled"]),
                             related=EventRelatedFilter(id=self._related))
        while not self._stopping.is_set():
            try:
                async with get_events_subscriber(filter=wanted, reconnect_on_clean_close=True) as subscriber:
                    self.connected.set()
                    async for event in subscriber:
                        if self._on_run is not None:
                            self._on_run(announced_run(event.resource.id,
                                                       [(r.id, r.role) for r in event.related]))
                        self._wake.set()
                        if self._stopping.is_set():
                            return
            except Exception as exc:  # the poll goes on without us; try the stream again shortly
                log.warning("event stream for new runs unavailable (%s); polling every %.1f s meanwhile",
                            exc, self._retry_seconds)
            self.connected.clear()
            await asyncio.sleep(self._retry_seconds)


class InProcessServer:
    """Polls the API for due runs of our deployments and runs each in this process on a thread.

    A :class:`RunWatcher` (when started) hands over each run the server announces: it is read and,
    when due, claimed by its id at once (no scan of every deployment's scheduled runs on the path a
    clerk waits on); an announcement that names no run makes the poll come at once instead."""

    def __init__(self, lanes: list[Lane], poll_seconds: float) -> None:
        self._lanes = {lane.deployment_id: lane for lane in lanes}
        self._poll_seconds = poll_seconds
        self._pool = ThreadPoolExecutor(max_workers=THREADS_PER_SLOT * sum(lane.capacity for lane in lanes),
                                        thread_name_prefix="duikou-run", initializer=hold_api_client)
        self._flows = {lane.deployment_id: released_at_final_state(lane.flow, partial(self._release, lane))
                       for lane in lanes}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.wake = threading.Event()  # set by the RunWatcher, a finished run (a free slot) and stop
        self._children: dict[UUID, subprocess.Popen[bytes]] = {}  # background lanes' runs
        self._announced: list[tuple[UUID, UUID]] = []  # (run, deployment) the event stream named
        self._poll_wanted = True  # the first pass polls; so does every wake the announcements do not cover
        self._start_lock = threading.Lock()  # the uploads' threads share one client (start_now)
        self._start_client: Any = None

    def watch_events(self) -> RunWatcher:
        watcher = RunWatcher(list(self._lanes), self.wake, self.stopping, self._poll_seconds, self.announce)
        watcher.start()
        return watcher

    def announce(self, run: tuple[UUID, UUID] | None) -> None:
        """The watcher's hand-over (its thread): a run of ours to claim by id, or else a poll."""
        with self._lock:
            if run is not None and run[1] in self._lanes:
                self._announced.append(run)
            else:
                self._poll_wanted = True

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def serve_forever(self, grace_seconds: float) -> None:
        with SyncClientContext.get_or_create():  # one client for the loop's polls and claims
            self._serve_until_stopped()
        self._shut_down(grace_seconds)
        with self._start_lock:
            if self._start_client is not None:
                self._start_client.__exit__(None, None, None)
                self._start_client = None

    def _serve_until_stopped(self) -> None:
        while not self.stopping.is_set():
            self.wake.clear()  # before the pass: a run announced during it wakes the next one
            with self._lock:
                announced, self._announced = self._announced, []
                poll, self._poll_wanted = self._poll_wanted, False
            try:
                if announced and not self._claim_announced(announced):
                    poll = True  # a lane was full or a claim failed: the poll sorts it out
                if poll:
                    self._poll_once()
            except Exception:  # the Prefect server restarting must not end serve: try again next poll
                log.exception("polling the Prefect API failed; retrying in %.1f s", self._poll_seconds)
            if not self.wake.wait(self._poll_seconds):
                with self._lock:
                    self._poll_wanted = True  # the fallback: nothing woke us for a whole poll interval

    def _claim_announced(self, announced: list[tuple[UUID, UUID]]) -> bool:
        """Claim each announced run by its id when it is due (a run scheduled for later — the nightly's
        cron, a custom run from the UI — is left to the poll that finds it due); False when one could
        not be claimed (its lane full, the API refusing): the caller polls then."""
        done = True
        now = datetime.now(UTC)
        with get_client(sync_client=True) as client:
            for run_id, deployment_id in announced:
                lane = self._lanes[deployment_id]
                with self._lock:
                    if run_id in lane.running:
                        continue
                    if lane.free <= 0:
                        done = False
                        continue
                try:
                    run = client.read_flow_run(run_id)
                    state = run.state
                    if state is None or not state.is_scheduled():
                        continue  # another server claimed it already, or it was cancelled
                    due = state.state_details.scheduled_time or run.expected_start_time
                    if due is not None and due > now:
                        continue
                    if not self._claim(client, lane, run_id):
                        done = False
                except Exception:  # deleted meanwhile, the API away: the poll finds what is still due
                    log.exception("could not claim the announced run %s", run_id)
                    done = False
        return done

    def start_now(self, name: str, parameters: dict[str, Any]) -> UUID | None:
        """A run of lane ``name``'s deployment for an upload: created Pending (no poll or other server
        claims it) and started here at once when the lane has a free slot; with every slot taken,
        created Scheduled — claimed as a slot frees, by this server or the next one, like a
        triggered run. Its id, or None while this server is stopping (the caller's trigger then)."""
        lane = next(lane for lane in self._lanes.values() if lane.name == name)
        slot = uuid4()  # reserves a slot while the run is created
        with self._lock:
            if self.stopping.is_set():
                return None
            now = lane.free > 0
            if now:
                lane.running.add(slot)
        try:
            client = self._starter_client()
            run = client.create_flow_run_from_deployment(lane.deployment_id, parameters=parameters,
                                                         state=Pending() if now else Scheduled())
            with self._lock:
                lane.running.discard(slot)
                stopped = self.stopping.is_set()
                if now and not stopped:
                    lane.running.add(run.id)
            if now and stopped:  # nobody would run it: gone, and the caller's trigger takes the upload
                client.delete_flow_run(run.id)
                return None
        except BaseException:
            with self._lock:
                lane.running.discard(slot)
            raise
        if now:
            self._pool.submit(self._execute, lane, run)
        else:
            log.info("%s: every %s slot is taken; it runs as one frees", run.name, lane.name)
        return run.id

    def _starter_client(self) -> Any:
        """The uploads' ``start`` requests share one client (a new one costs ~20 ms of CPU); its calls
        run side by side (httpx's client is thread-safe), only its creation is under the lock."""
        with self._start_lock:
            if self._start_client is None:
                self._start_client = get_client(sync_client=True).__enter__()
            return self._start_client

    def _claim(self, client: Any, lane: Lane, flow_run_id: UUID) -> bool:
        """Scheduled → Pending through the API (so two serve processes never run the same run); then
        run it on a thread. The slot is reserved before the call (an upload's ``start_now`` on another
        thread cannot take it meanwhile). False when the lane is full or the server did not accept
        (another server took it, a limit)."""
        with self._lock:
            if lane.free <= 0 or flow_run_id in lane.running:
                return False
            lane.running.add(flow_run_id)
        try:
            outcome: Any = client.set_flow_run_state(flow_run_id, Pending())
            accepted = outcome.status == SetStateStatus.ACCEPT
            claimed = client.read_flow_run(flow_run_id) if accepted else None  # as Pending: the engine's start
        except BaseException:
            with self._lock:
                lane.running.discard(flow_run_id)
            raise
        if claimed is None:
            with self._lock:
                lane.running.discard(flow_run_id)
            return False
        self._pool.submit(self._execute, lane, claimed)
        return True

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
                self._claim(client, lane, run.id)  # refused: another server took it, or a limit said wait

    def _execute(self, lane: Lane, flow_run: FlowRun) -> None:
        try:
            log.info("running %s (%s)", flow_run.name, lane.name)
            if lane.name in BACKGROUND_LANES and not self._superseded(flow_run):
                if self.stopping.is_set():  # stopped during its debounce: back to Scheduled, for the next serve
                    with get_client(sync_client=True) as client:  # (loads this serve did not announce count on it)
                        client.set_flow_run_state(flow_run.id, Scheduled(
                            message="duikou serve stopped during the run's debounce; the next duikou serve "
                                    "runs it"), force=True)
                else:
                    self._execute_in_child(lane, flow_run)
                return
            renew_closed_api_client()
            state = run_flow(self._flows[lane.deployment_id], flow_run=without_suspension_watch(flow_run),
                             return_type="state")
            log.info("%s ended %s", flow_run.name, getattr(state, "name", state))
        except BaseException:  # the engine records the state; this only keeps the lane usable
            log.exception("run %s raised outside the flow engine", flow_run.id)
        finally:
            self._release(lane, flow_run.id)

    def _release(self, lane: Lane, flow_run_id: UUID) -> None:
        """The run's slot is free (at its final state — the hook — or when its thread ends, whichever
        comes first): runs that waited for it are claimed now."""
        with self._lock:
            if flow_run_id not in lane.running:
                return
            lane.running.discard(flow_run_id)
            self._poll_wanted = True
        self.wake.set()

    def _superseded(self, flow_run: FlowRun) -> bool:
        """A ``refresh-reports`` run a newer update supersedes (checked after its debounce, here):
        it runs in this process, where it ends at once, instead of in a new process that would pay
        the imports only to find nothing to build — a burst of fifteen loads starts fifteen runs."""
        from flows.refresh import superseded_after_debounce

        try:
            return superseded_after_debounce(dict(flow_run.parameters), self.stopping)
        except Exception:  # the API away: the child decides, as before
            log.exception("could not check whether %s is superseded", flow_run.name)
            return False

    def _execute_in_child(self, lane: Lane, flow_run: FlowRun) -> None:
        """A background lane's run in a child process (nice +10); a child that dies leaves the run
        Crashed, never Running."""
        code = "import sys; from flows.serve import run_claimed; sys.exit(run_claimed(sys.argv[1], sys.argv[2]))"
        child = subprocess.Popen([sys.executable, "-c", code, lane.name, str(flow_run.id)])
        with self._lock:
            self._children[flow_run.id] = child
        try:
            returncode = child.wait()
        finally:
            with self._lock:
                self._children.pop(flow_run.id, None)
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(flow_run.id).state
            if state is None or not state.is_final():
                client.set_flow_run_state(flow_run.id, Crashed(
                    message=f"the run's process ended ({returncode}) before the run did"), force=True)
        log.info("%s ended %s (child process, exit %s)", flow_run.name,
                 getattr(state, "name", state), returncode)

    def in_flight(self) -> set[UUID]:
        with self._lock:
            return {run_id for lane in self._lanes.values() for run_id in lane.running}

    def _shut_down(self, grace_seconds: float) -> None:
        deadline = time.monotonic() + grace_seconds
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.in_flight()
        with self._lock:
            children = list(self._children.values())
        for child in children:  # stopped first, then marked Crashed below like an in-process run
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
        if left:  # the warehouse is safe (loads are single transactions); say so in the UI
            with get_client(sync_client=True) as client:
                for run_id in left:
                    client.set_flow_run_state(run_id, Crashed(message="duikou serve stopped during the run; "
                                                              "re-run it or let the nightly run pick the file up"),
                                              force=True)
        self._pool.shutdown(wait=not left, cancel_futures=True)


def register(deployments: list[RunnerDeployment]) -> dict[str, UUID]:
    return {deployment.name: cast(UUID, deployment.apply()) for deployment in deployments}


def handoff_runner(settings: Settings) -> Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], dict[str, Any]]:
    """What this process does with a ``duikou ingest`` handed to it (``flows/handoff.py``): the
    ``ingest-submission`` flow, run here as the command would have run it — its own flow run on the
    server — answered with the command's exit code and the receipt it prints. The answer goes out
    (``reply``) as soon as the receipt is written; the run's later steps (check-summary artifact,
    follow-ups, tags, events) go on here, and their outcome is the run's state in the UI."""
    from flows.pipeline import RECEIPT_WAITER
    from tasks.submission.result import SubmissionResult

    def answer_of(result: SubmissionResult) -> dict[str, Any]:
        return {"ok": True, "exit": 0 if result.status in ("loaded", "duplicate") else 1, "status": result.status,
                "receipt": result.receipt,
                "receipt_path": str(result.receipt_path) if result.receipt_path is not None else None}

    def run(request: dict[str, Any], reply: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        from tasks.registry.checks import MissingPersonKey
        from tasks.submission.journey import SubmissionError, request_period

        department, period = str(request["department"]), str(request["period"])
        waiting = RECEIPT_WAITER.set(lambda result: reply(answer_of(result)))
        try:
            request_period(department, period)  # refused before a flow run starts, as in the command
            result = ingest_submission(str(request["file"]), department, period,
                                       dry_run=bool(request.get("dry_run")))
        except (SubmissionError, MissingPersonKey) as exc:
            return {"ok": True, "exit": 2, "error": str(exc)}
        except Exception as exc:  # the command says it as a failure of the system (exit 3)
            log.exception("handed-over ingest of %s failed", request.get("file"))
            return {"ok": True, "exit": 3, "error": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
        finally:
            RECEIPT_WAITER.reset(waiting)
        return answer_of(result)

    return run


def upload_starter(server: InProcessServer) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """What this process does with an upload's ``start`` request (``flows/handoff.py``): the
    ``ingest-submission`` run of the landed file, started now in the ingest lane — the parameters the
    deployment's trigger would have given it."""

    def start(request: dict[str, Any]) -> dict[str, Any]:
        parameters = {"path": str(request["path"]), "department": str(request["department"]),
                      "period": str(request["period"])}
        try:
            run_id = server.start_now("ingest-submission", parameters)
        except Exception as exc:  # the upload's event goes to the trigger instead
            log.exception("could not start the run of %s", parameters["path"])
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        if run_id is None:
            return {"ok": False, "error": "duikou serve is stopping"}
        log.info("started the run %s of upload %s", run_id, parameters["path"])
        return {"ok": True, "flow_run_id": str(run_id)}

    return start


def serve_in_process(settings: Settings, grace_seconds: float = 60.0, on_ready: Any = None) -> None:
    """Register the deployments, prepare the server, then run due runs until SIGTERM / SIGINT."""
    flows = served_flows(settings)
    ids = register(build_deployments(flows))
    notes = prepare_server(settings)
    warm_up(settings)
    capacity = {"ingest-submission": settings.serve_workers, "nightly": 1, "refresh-reports": 1}
    logging.getLogger("prefect.flow_runs").addFilter(QuietSlotHook())
    server = InProcessServer([Lane(name, flows[name], ids[name], capacity[name]) for name in ids],
                             settings.serve_poll_seconds)

    def stop(_signum: int, _frame: FrameType | None) -> None:
        server.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.watch_events()
    from flows.handoff import HandoffService

    handoff = HandoffService(settings.resolved_data_dir, settings.resolved_warehouse_url, handoff_runner(settings),
                             settings.serve_workers, start=upload_starter(server))
    with coalescing_updates(settings.report_debounce_seconds):  # one warehouse update per debounce window
        handoff.start()
        notes.append(f"duikou ingest hands over to this process, and uploads' runs start here "
                     f"({handoff.path}, 127.0.0.1:{handoff.port})")
        try:
            if on_ready is not None:
                on_ready(ids, notes)
            server.serve_forever(grace_seconds)
        finally:
            handoff.stop()


def serve_process_per_run(settings: Settings, on_ready: Any = None) -> None:
    """Prefect's stock runner: one new process per run (isolation; pays the imports every run)."""
    from prefect import serve

    deployments = build_deployments(served_flows(settings))
    notes = prepare_server(settings)
    if on_ready is not None:
        on_ready({d.name: None for d in deployments}, notes)
    serve(*deployments, print_starting_message=False)
