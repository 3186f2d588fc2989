"""Which run a ``prefect.flow-run.Scheduled`` event names, for ``duikou serve``'s claim by id."""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID, uuid4

from flows.serve import announced_run


def test_the_announced_run_and_its_deployment_are_read_from_the_event() -> None:
    run, deployment, flow = uuid4(), uuid4(), uuid4()
    related = [(f"prefect.flow.{flow}", "flow"), (f"prefect.deployment.{deployment}", "deployment"),
               ("prefect.tag.duikou", "tag")]
    assert announced_run(f"prefect.flow-run.{run}", related) == (run, deployment)


def test_an_event_that_does_not_name_one_run_of_one_deployment_is_not_a_claim() -> None:
    run, deployment = uuid4(), uuid4()
    assert announced_run(f"prefect.flow-run.{run}", []) is None  # no deployment: a poll decides
    assert announced_run(f"prefect.flow-run.{run}", [(f"prefect.deployment.{deployment}", "deployment"),
                                                     (f"prefect.deployment.{uuid4()}", "deployment")]) is None
    assert announced_run(f"prefect.task-run.{run}", [(f"prefect.deployment.{deployment}", "deployment")]) is None
    assert announced_run("prefect.flow-run.not-a-uuid", [(f"prefect.deployment.{deployment}", "deployment")]) is None
    assert announced_run(f"prefect.flow-run.{run}", [("prefect.deployment.nope", "deployment")]) is None


def test_a_refresh_without_an_event_or_stopped_while_waiting_is_not_superseded() -> None:
    """``duikou serve`` asks before starting a process for a ``refresh-reports`` run; a manual run
    (no event) builds, and a stop during the debounce ends the wait at once without asking the API."""
    import threading
    import time
    from datetime import UTC, datetime

    from flows.refresh import superseded_after_debounce

    assert superseded_after_debounce({"event_id": "", "updated_at": "", "debounce_seconds": 30}) is False
    stopping = threading.Event()
    stopping.set()
    started = time.monotonic()
    assert superseded_after_debounce({"event_id": "e", "updated_at": datetime.now(UTC).isoformat(),
                                      "debounce_seconds": 600}, stopping) is False
    assert time.monotonic() - started < 60  # not the 600 s debounce


def test_a_runs_slot_frees_at_its_final_state_not_after_the_engines_teardown(prefect_harness: None) -> None:
    """``released_at_final_state``: the hook runs once the server accepted the final state (the
    engine's teardown — its heartbeat thread's join — comes after), with the run's id; the flow's
    own hooks still run, and the flow's result is unchanged."""
    from prefect import flow

    from flows.serve import released_at_final_state

    seen: list[tuple[str, Any]] = []

    @flow(name="slot-probe", on_completion=[lambda _f, run, state: seen.append(("own", state.type.value))])
    def probe() -> int:
        return 7

    released: list[Any] = []

    def release(run_id: Any) -> None:
        from prefect.context import FlowRunContext

        context = FlowRunContext.get()
        assert context is not None and context.flow_run is not None
        released.append((run_id, context.flow_run.id, context.flow_run.state_type))

    state = released_at_final_state(probe, release)(return_state=True)
    assert state is not None and state.result() == 7
    assert seen == [("own", "COMPLETED")]
    assert len(released) == 1
    run_id, current_run, state_type = released[0]
    assert run_id == current_run == state.state_details.flow_run_id
    assert str(getattr(state_type, "value", state_type)) == "COMPLETED"


def test_a_failed_run_frees_its_slot_too(prefect_harness: None) -> None:
    from prefect import flow

    from flows.serve import released_at_final_state

    @flow(name="slot-probe-failing", retries=0)
    def failing() -> None:
        raise ValueError("the form's file is gone")

    released: list[Any] = []
    state = released_at_final_state(failing, released.append)(return_state=True)
    assert state is not None and state.is_failed()
    assert released == [state.state_details.flow_run_id]


def test_a_deployment_run_in_serve_keeps_its_deployment_without_a_suspension_observer(prefect_harness: None) -> None:
    """``without_suspension_watch``: the engine starts no observer thread for the run, and the run's
    body still sees its deployment (the engine re-reads the run before the body)."""
    import threading

    from prefect import flow, runtime
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.objects import State
    from prefect.deployments.runner import RunnerDeployment
    from prefect.flow_engine import run_flow
    from prefect.states import Pending

    from flows.serve import without_suspension_watch

    seen: dict[str, Any] = {}

    @flow(name="observer-probe")
    def probe() -> None:
        seen["deployment_id"] = runtime.deployment.id
        seen["threads"] = [t.name for t in threading.enumerate()]

    deployment_id = cast(UUID, cast(RunnerDeployment, probe.to_deployment(name="observer-probe")).apply())
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, state=Pending())
    handed = without_suspension_watch(run)
    assert handed.deployment_id is None and run.deployment_id == deployment_id  # a copy; the run unchanged
    state = run_flow(probe, flow_run=handed, return_type="state")
    assert isinstance(state, State) and state.is_completed()
    assert seen["deployment_id"] == str(deployment_id)
    assert not [name for name in seen["threads"] if "observer" in name], seen["threads"]

