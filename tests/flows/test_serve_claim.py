"""Which run a ``prefect.flow-run.Scheduled`` event names, for ``duikou serve``'s claim by id."""

from __future__ import annotations

from uuid import uuid4

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

    assert superseded_after_debounce({"event_id": "", "updated_at": ""}, 30) is False
    stopping = threading.Event()
    stopping.set()
    started = time.monotonic()
    assert superseded_after_debounce({"event_id": "e", "updated_at": datetime.now(UTC).isoformat()}, 600,
                                     stopping) is False
    assert time.monotonic() - started < 60  # not the 600 s debounce
