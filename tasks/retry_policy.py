"""The retry policy of duikou's Prefect tasks: only transient I/O is retried, never validation.

A bad form stays bad however often it is read; a file system hiccup or a database failover is
worth another try. Imported by every package's ``steps`` module; imports nothing of ours and no
Prefect (the policy is plain data a ``@task`` decorator takes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import OperationalError


def is_transient_io(exc: BaseException) -> bool:
    """Only OS-level and database-connection errors are worth another try."""
    return isinstance(exc, (OSError, OperationalError))


def transient_io_only(_task: Any, _task_run: Any, state: Any) -> bool:
    """Retry condition (a task's ``retry_condition_fn``): :func:`is_transient_io` of the failure."""
    try:
        state.result()
    except Exception as exc:
        return is_transient_io(exc)
    return False


# Backoff 1 s, 2 s, 4 s: a database that restarts or a failover takes seconds, not milliseconds
IO_RETRIES: dict[str, Any] = {"retries": 3, "retry_delay_seconds": [1, 2, 4], "retry_condition_fn": transient_io_only}
