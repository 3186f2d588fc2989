"""``STEPS`` inside ``inline_steps``: each step a plain call, retried like its task on transient I/O only."""

from __future__ import annotations

from typing import Any

import pytest
from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.submission import steps
from tasks.submission.steps import STEPS, inline, inline_steps


def _flaky(failures: list[BaseException]) -> Any:
    calls: list[int] = []

    @task(name="flaky", cache_policy=NO_CACHE, retries=3, retry_delay_seconds=[0, 0, 0])
    def flaky(x: int) -> int:
        calls.append(x)
        if failures:
            raise failures.pop(0)
        return x * 2

    return flaky, calls


def test_an_inline_step_is_retried_on_transient_io_as_its_task_would_be() -> None:
    flaky, calls = _flaky([OSError("disk hiccup"), ConnectionResetError("db away")])
    assert inline(flaky)(21) == 42 and calls == [21, 21, 21]


def test_an_inline_step_is_not_retried_on_a_bad_form_nor_beyond_its_retries() -> None:
    flaky, calls = _flaky([ValueError("a bad form stays bad")])
    with pytest.raises(ValueError, match="stays bad"):
        inline(flaky)(1)
    assert calls == [1]
    flaky, calls = _flaky([OSError("1"), OSError("2"), OSError("3"), OSError("4")])
    with pytest.raises(OSError, match="4"):
        inline(flaky)(1)
    assert calls == [1, 1, 1, 1]  # the first try and three retries, as IO_RETRIES


def test_steps_are_tasks_outside_and_plain_calls_inside_inline_steps() -> None:
    assert STEPS.load_task is steps.load_task  # a task run of its own (duikou ingest, serve)
    with inline_steps():
        plain = STEPS.load_task
        assert plain is not steps.load_task and plain.__name__ == "load_task"
        assert STEPS.STEPS is STEPS  # what is not a task is itself
    assert STEPS.load_task is steps.load_task
    with pytest.raises(AttributeError):
        STEPS.no_such_step  # noqa: B018


def test_inline_steps_record_each_calls_time_once_however_often_it_was_retried() -> None:
    flaky, calls = _flaky([OSError("disk hiccup")])
    timings: list[tuple[str, float]] = []
    with inline_steps(timings):
        assert STEPS.STEPS is STEPS
        inline(flaky)(2)
        inline(flaky)(3)
    inline(flaky)(4)  # outside the block: not recorded
    assert [name for name, _ in timings] == ["flaky", "flaky"] and calls == [2, 2, 3, 4]
    assert all(seconds >= 0 for _, seconds in timings)
    assert steps.format_step_timings([("receive", 0.0041), ("load", 1.25)]) == "receive 0.004 s · load 1.250 s"
