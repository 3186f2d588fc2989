"""Prefect global concurrency limits around warehouse writes.

Two limits are taken together for every load: ``duikou-warehouse-writers`` (all partitions;
``DUIKOU_WRITER_CONCURRENCY``, set by ``duikou serve``) and ``duikou-writer-<department>-<period>``
(one writer per partition, created with limit 1 on first use). They keep concurrent runs from
queueing on the database; the database lock and the single-transaction load stay the real
guard, so a run that holds no slot (the limit was deleted, or the API is briefly away) is still
correct, only less polite. Hence:

* without a configured server (``PREFECT_API_URL`` unset: ``duikou ingest`` / ``demo`` /
  ``nightly`` on one machine, the test harness) no slot is taken at all — Prefect's temporary
  server is per process, and its slot service outlives it (seen: a load blocked for six minutes
  retrying a refused connection);
* with a server, a slot that cannot be had within ``SLOT_WAIT_S`` (a lease leaked by a killed
  run holds it for up to ``lease_duration``) is given up with a warning and the load goes on
  under the database lock alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

GLOBAL_WRITERS = "duikou-warehouse-writers"
DEFAULT_GLOBAL_WRITERS = 2
SLOT_WAIT_S = 120.0
LEASE_S = 300.0

_log = logging.getLogger(__name__)

_known: set[tuple[str, str]] = set()  # (API URL, limit name) known to exist: one look-up per process


def partition_limit_name(department: str, period: str) -> str:
    return f"duikou-writer-{department}-{period}"


def _ensure_limit(name: str, limit: int) -> None:
    """Create the limit if it does not exist; never change an existing one (operators may have)."""
    key = (str(PREFECT_API_URL.value()), name)
    if key in _known:
        return
    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with suppress(ObjectAlreadyExists):  # another run created it in between
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))
    _known.add(key)


def set_global_writer_limit(limit: int) -> None:
    """``duikou serve``: make the all-partition limit exactly ``limit``."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(GLOBAL_WRITERS, limit)


def server_configured() -> bool:
    """True when runs report to a real Prefect server (not a per-process temporary one)."""
    return bool(PREFECT_API_URL.value())


@contextmanager
def writer_slot(department: str, period: str) -> Iterator[None]:
    """Hold one global writer slot and the partition's only slot while the block runs.

    A no-op without a configured server; with one, gives up waiting after ``SLOT_WAIT_S``
    (warning) and runs the block anyway — the warehouse lock is the real guard.
    """
    if not server_configured():
        yield
        return
    partition = partition_limit_name(department, period)
    _ensure_limit(GLOBAL_WRITERS, DEFAULT_GLOBAL_WRITERS)
    _ensure_limit(partition, 1)
    slots = concurrency([GLOBAL_WRITERS, partition], occupy=1, timeout_seconds=SLOT_WAIT_S, lease_duration=LEASE_S)
    try:
        slots.__enter__()
    except TimeoutError:
        _log.warning(
            "no writer slot for %s %s within %.0f s (a leaked lease?); loading under the warehouse lock alone",
            department, period, SLOT_WAIT_S,
        )
        yield
        return
    try:
        yield
    except BaseException as exc:
        if not slots.__exit__(type(exc), exc, exc.__traceback__):
            raise
    else:
        slots.__exit__(None, None, None)
