"""Thin Prefect task wrappers of the operators' quarantine decisions (:mod:`tasks.submission.quarantine`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.retry_policy import IO_RETRIES
from tasks.submission.journey import Parsed, Received
from tasks.submission.quarantine import (
    decided_receipt,
    discard_quarantine_copy,
    find_quarantined,
    receive_kept,
    reject,
    release,
)
from tasks.validation.validate import Validation
from warehouse.decisions import OperatorDecision
from warehouse.load import LoadOutcome


@task(name="find-quarantined", cache_policy=NO_CACHE, **IO_RETRIES)
def find_quarantined_task(engine: Engine, submission_id: str) -> dict[str, Any]:
    return find_quarantined(engine, submission_id)


@task(name="receive-kept-file", cache_policy=NO_CACHE, **IO_RETRIES)
def receive_kept_task(ledger: dict[str, Any], settings: Settings) -> Received:
    return receive_kept(ledger, settings)


@task(name="release", task_run_name="release {received.department} {received.period.label}",
      cache_policy=NO_CACHE, **IO_RETRIES)
def release_task(engine: Engine, received: Received, parsed: Parsed, validation: Validation,
                 decision: OperatorDecision, settings: Settings) -> LoadOutcome:
    return release(engine, received, parsed, validation, decision, settings)


@task(name="reject", cache_policy=NO_CACHE, **IO_RETRIES)
def reject_task(engine: Engine, ledger: dict[str, Any], decision: OperatorDecision) -> int:
    return reject(engine, ledger, decision)


@task(name="decided-receipt", cache_policy=NO_CACHE, **IO_RETRIES)
def decided_receipt_task(ledger: dict[str, Any], decision: OperatorDecision, settings: Settings) -> dict[str, Any]:
    return decided_receipt(ledger, decision, settings)


@task(name="discard-quarantine-copy", cache_policy=NO_CACHE, **IO_RETRIES)
def discard_quarantine_copy_task(ledger: dict[str, Any], settings: Settings, kept_now: Path) -> None:
    discard_quarantine_copy(ledger, settings, kept_now)
