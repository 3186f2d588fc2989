"""The Prefect wrappers of the person-level registry path: the streamed ingest (its plain logic:
tasks/registry/submission.py) and the reconciliation with the aggregate returns."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from duikou_settings import Settings
from expectations.registry_declaration import load_registry_declarations
from tasks.registry.stream import RegistryStream
from tasks.registry.submission import ingest_registry
from tasks.submission.journey import Received
from warehouse.refdata import ReferenceFrames
from warehouse.registry import RegistryOutcome, refresh_registry_reconciliation


@task(name="ingest-registry", task_run_name="registry {received.department} {received.period.label}",
      cache_policy=NO_CACHE)
def ingest_registry_task(
    received: Received, engine: Engine | None, reference: ReferenceFrames, settings: Settings, key: bytes
) -> tuple[RegistryStream, RegistryOutcome | None]:
    # serialised per partition by the warehouse lock inside record_registry_submission (PostgreSQL
    # advisory lock, SQLite's single writer); not by tasks/submission/writer_slots.py, whose Prefect
    # concurrency slot blocked `duikou ingest` without a Prefect server (temporary-server mode)
    return ingest_registry(received, engine, reference, settings, key)


@task(name="reconcile-registries", cache_policy=NO_CACHE)
def reconcile_registries_task(engine: Engine) -> int:
    """Every current registry snapshot against the aggregate returns loaded by now (rows rebuilt)."""
    return refresh_registry_reconciliation(engine, list(load_registry_declarations().values()))


@task(name="reconcile-registries", cache_policy=NO_CACHE)
def reconcile_registries_checked_task(engine: Engine) -> tuple[int, list[str]]:
    """:func:`reconcile_registries_task`, and the snapshots it could not reconcile, each named (the nightly)."""
    skipped: list[str] = []
    rows = refresh_registry_reconciliation(engine, list(load_registry_declarations().values()), skipped)
    return rows, skipped
