"""Thin Prefect task wrappers around the plain steps in :mod:`tasks.submission.journey`.

Retries only on transient I/O (file system, database connection), never on validation: a bad
form stays bad however often it is read. Results are not cached or persisted — a submission's
identity is its SHA-256 in the ledger, not a Prefect cache key.

:data:`STEPS` is how the pipeline calls them (``flows/pipeline.py``): each step a task run of its
own (an operator's quarantine release, a receipt recovered by the nightly), except inside
:func:`inline_steps`, where each is a plain call in the run around it, with the same retries on
transient I/O. ``ingest-submission`` (``duikou ingest``, an upload) and the nightly's per-department
task (``flows/department_ingest.py``) run their files' steps so: nine task runs per form cost
~25 ms each on the server and in the engine — about as much as the form's own work, and on the
path a clerk waits on (bench/nightly.py, bench/latency.py, docs/scaling.md); the run's ``steps:``
log line (``format_step_timings``), its log and the ``dq-…`` artifacts say what each file became.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import Task, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.retry_policy import IO_RETRIES, is_transient_io
from tasks.submission import journey
from tasks.submission.writer_slots import writer_slot
from tasks.validation.validate import Validation, check_summary_markdown, check_summary_text
from warehouse.history import CheckHistory
from warehouse.load import LoadOutcome
from warehouse.refdata import ReferenceFrames


@task(name="receive", task_run_name="receive {department} {period}", cache_policy=NO_CACHE, **IO_RETRIES)
def receive_task(path: Path, department: str, period: str) -> journey.Received:
    return journey.receive(path, department, period)


@task(name="check-ledger", cache_policy=NO_CACHE, **IO_RETRIES)
def previous_result_task(engine: Engine | None, received: journey.Received) -> dict[str, Any] | None:
    return journey.previous_result(engine, received)


@task(name="read-and-normalise", task_run_name="read {received.department} {received.period.label}",
      cache_policy=NO_CACHE)
def parse_task(received: journey.Received, reference: ReferenceFrames) -> journey.Parsed:
    return journey.parse(received, reference)


@task(name="read-history", cache_policy=NO_CACHE, **IO_RETRIES)
def history_task(engine: Engine | None, received: journey.Received) -> CheckHistory | None:
    return journey.history_for(engine, received)


@task(name="validate", cache_policy=NO_CACHE)
def validate_task(parsed: journey.Parsed, history: CheckHistory | None = None) -> Validation:
    return journey.validate(parsed, history)


@task(name="dq-summary", cache_policy=NO_CACHE)
def dq_summary_task(received: journey.Received, validation: Validation) -> None:
    """The submission's check summary as a Prefect markdown artifact ``dq-<department>-<period>``:
    the reading issues and failing checks first, in Chinese, the passed checks folded below."""
    key = f"dq-{received.department}-{received.period.label}".lower().replace("_", "-")  # keys: [a-z0-9-]
    title = f"{received.department} {received.period.label} 《{received.original_name}》 `{received.submission_id}`"
    create_markdown_artifact(
        key=key,
        markdown=check_summary_markdown(validation, title),
        description=f"{received.department} {received.period.label} `{received.submission_id}`: "
        + check_summary_text(validation),
    )


@task(name="load", task_run_name="load {received.department} {received.period.label}",
      cache_policy=NO_CACHE, **IO_RETRIES)
def load_task(engine: Engine, received: journey.Received, parsed: journey.Parsed, validation: Validation,
              settings: Settings) -> LoadOutcome:
    with writer_slot(received.department, received.period.label):  # one writer per partition
        return journey.load(engine, received, parsed, validation, settings)


@task(name="correction-workbook", cache_policy=NO_CACHE, **IO_RETRIES)
def correction_task(received: journey.Received, receipt: dict[str, Any], validation: Validation,
                    settings: Settings) -> dict[str, Any]:
    return journey.attach_correction_workbook(received, receipt, validation.issues, settings)


@task(name="write-receipt", cache_policy=NO_CACHE, **IO_RETRIES)
def receipt_task(receipt: dict[str, Any], receipt_path: Path, stored_path: Path | None,
                 engine: Engine | None = None) -> bool:
    """Write the receipt; with ``engine``, only while the ledger row agrees (the winner's receipt only)."""
    if engine is None:
        journey.write_receipt(receipt, receipt_path, stored_path)
        return True
    return journey.write_receipt_as_ledger(engine, receipt, receipt_path, stored_path)


_INLINE: ContextVar[bool] = ContextVar("duikou_inline_steps", default=False)
_TIMINGS: ContextVar[list[tuple[str, float]] | None] = ContextVar("duikou_step_timings", default=None)


@contextmanager
def inline_steps(timings: list[tuple[str, float]] | None = None) -> Iterator[None]:
    """Inside the block (this thread's context), :data:`STEPS` gives each step as a plain call;
    each call that returns appends ``(task name, seconds)`` to ``timings`` when given."""
    token, timed = _INLINE.set(True), _TIMINGS.set(timings)
    try:
        yield
    finally:
        _TIMINGS.reset(timed)
        _INLINE.reset(token)


def format_step_timings(timings: list[tuple[str, float]]) -> str:
    """``receive 0.004 s · check-ledger 0.010 s · …`` (a run's log line; bench/latency.py reads it)."""
    return " · ".join(f"{name} {seconds:.3f} s" for name, seconds in timings)


def _delay(delays: Any, attempt: int) -> float:
    if isinstance(delays, (list, tuple)):
        return float(delays[min(attempt, len(delays) - 1)]) if delays else 0.0
    return float(delays or 0)


def inline(step: Task[Any, Any]) -> Callable[..., Any]:
    """``step``'s function called directly, retried as the task would be: up to ``step.retries``
    times after its ``retry_delay_seconds``, on transient I/O only (:func:`is_transient_io`)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        attempt, started = 0, time.perf_counter()
        while True:
            try:
                value = step.fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= step.retries or not is_transient_io(exc):
                    raise
                time.sleep(_delay(step.retry_delay_seconds, attempt))
                attempt += 1
            else:
                if (timings := _TIMINGS.get()) is not None:
                    timings.append((step.name, time.perf_counter() - started))
                return value

    call.__name__ = step.fn.__name__
    return call


def as_step(step: Task[..., Any]) -> Callable[..., Any]:
    """A task of another module called as :data:`STEPS` calls this module's: a plain call inside
    :func:`inline_steps`, else the task (the follow-up after a load: ``flows/pipeline.py``)."""
    return inline(step) if _INLINE.get() else step


class _Steps:
    """This module's tasks by name: the task itself, or inside :func:`inline_steps` its plain call."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name not in globals():
            raise AttributeError(name)
        value = globals()[name]
        return as_step(value) if isinstance(value, Task) else value


STEPS = _Steps()
