"""Prefect global concurrency limits around warehouse writes.

Two limits are taken together for every load: ``duikou-warehouse-writers`` (all partitions;
``DUIKOU_WRITER_CONCURRENCY``, set by ``duikou serve``) and ``duikou-writer-<department>-<period>``
(one writer per partition, created with limit 1 on first use). They keep concurrent runs from
queueing on the database; the database lock and the single-transaction load stay the real
guard, so a run that holds no slot (the limit was deleted, or the API is briefly away) is still
correct, only less polite.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.settings import PREFECT_API_URL

GLOBAL_WRITERS = "duikou-warehouse-writers"
DEFAULT_GLOBAL_WRITERS = 2

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


@contextmanager
def writer_slot(department: str, period: str) -> Iterator[None]:
    """Hold one global writer slot and the partition's only slot while the block runs."""
    partition = partition_limit_name(department, period)
    _ensure_limit(GLOBAL_WRITERS, DEFAULT_GLOBAL_WRITERS)
    _ensure_limit(partition, 1)
    with concurrency([GLOBAL_WRITERS, partition], occupy=1, lease_duration=300):
        yield
