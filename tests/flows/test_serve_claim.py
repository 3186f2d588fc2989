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
