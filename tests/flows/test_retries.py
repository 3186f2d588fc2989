"""Which failures the pipeline's tasks retry: transient I/O yes (with backoff), bad forms never."""

from __future__ import annotations

import pytest
from prefect.states import Failed
from sqlalchemy.exc import OperationalError

from tasks import retry_policy
from tasks.report import steps as report_steps
from tasks.submission import steps


@pytest.mark.parametrize("error", [
    OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused")),
    ConnectionRefusedError("connection refused"),
    OSError("stale file handle"),
])
def test_transient_io_is_retried(error: Exception) -> None:
    assert retry_policy.transient_io_only(None, None, Failed(data=error)) is True


@pytest.mark.parametrize("error", [ValueError("报告期不对"), KeyError("indicator"), RuntimeError("bug")])
def test_other_failures_are_not_retried(error: Exception) -> None:
    assert retry_policy.transient_io_only(None, None, Failed(data=error)) is False


def test_io_tasks_retry_with_backoff_and_reading_and_validating_never_retry() -> None:
    for io_task in (steps.receive_task, steps.previous_result_task, steps.history_task, steps.load_task,
                    steps.receipt_task, report_steps.refresh_marts_task, report_steps.report_task):
        assert io_task.retries == 3, io_task.name
        assert io_task.retry_delay_seconds == [1, 2, 4], io_task.name
        assert io_task.retry_condition_fn is retry_policy.transient_io_only, io_task.name
    for pure_task in (steps.parse_task, steps.validate_task):
        assert pure_task.retries == 0, pure_task.name
