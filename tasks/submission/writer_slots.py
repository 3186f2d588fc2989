"""The Prefect global concurrency limit around warehouse writes.

One limit is taken for every load: ``duikou-warehouse-writers`` (all partitions;
``DUIKOU_WRITER_CONCURRENCY``, set by ``duikou serve``). It keeps concurrent runs from queueing
on the database. One writer per partition is the warehouse's own partition lock (PostgreSQL
advisory lock, SQLite ``BEGIN IMMEDIATE``) and, in the nightly, the department's files loading one
after another; the single-transaction load is the real guard, so a run that holds no slot (the
limit was deleted, or the API is briefly away) is still correct, only less polite.

Earlier versions also took a limit per partition, ``duikou-writer-<department>-<period>``, created
on first use and never removed: one nightly left ~150 of them on the server's Concurrency page
(issue 15). No limit is created per partition any more, and ``duikou serve`` removes the ones an
earlier version left (:func:`remove_partition_limits`). Hence:

* without a configured server (``PREFECT_API_URL`` unset: ``duikou ingest`` / ``demo`` /
  ``nightly`` on one machine, the test harness) no slot is taken at all — Prefect's temporary
  server is per process, and its slot service outlives it (seen: a load blocked for six minutes
  retrying a refused connection);
* with a server, a slot that cannot be had within ``SLOT_WAIT_S`` (a lease leaked by a killed
  run holds it for up to ``lease_duration``) is given up with a warning and the load goes on
  under the database lock alone.

The slots are taken through the Prefect server's REST API (``POST /v2/concurrency_limits/`` once
per limit, ``increment-with-lease`` / ``decrement-with-lease`` per load, the lease's holder the
current task run) with our retry policy, rather than through ``prefect.concurrency.sync.concurrency``
or Prefect's client: a Prefect server on SQLite answers a write that meets
another writer's commit with ``SQLITE_BUSY_SNAPSHOT`` → HTTP 503, and inside a flow that is every
acquisition (the server is persisting the task run's own state at that moment); Prefect's client
retries a 503 after 2 s, which made each load of the nightly wait 2.0–2.5 s for a 15 ms write
(bench/nightly.py, docs/scaling.md). Here a 503 or a dropped connection is retried after 50 ms,
doubling to 1 s; a 423 (the slot is held) after the server's ``Retry-After``. A load holds its
slot for milliseconds, so the lease (``LEASE_S``) is not renewed: a longer hold only loses the
politeness, never correctness.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import httpx
from prefect.client.orchestration import get_client
from prefect.context import TaskRunContext
from prefect.settings import (
    PREFECT_API_AUTH_STRING,
    PREFECT_API_KEY,
    PREFECT_API_SSL_CERT_FILE,
    PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    PREFECT_API_URL,
)

GLOBAL_WRITERS = "duikou-warehouse-writers"
DEFAULT_GLOBAL_WRITERS = 2
SLOT_WAIT_S = 120.0
RELEASE_WAIT_S = 10.0  # then the lease is left to expire
UNREACHABLE_S = 10.0  # the API not answering at all for this long: load without a slot (only 423 waits longer)
LEASE_S = 300.0
FIRST_RETRY_S = 0.05  # after a 503 (SQLite busy in the Prefect server) or a dropped connection
MAX_RETRY_S = 1.0
RETRYABLE = (502, 503, 504)

_log = logging.getLogger(__name__)

_known: set[tuple[str, str]] = set()  # (API URL, limit name) known to exist: one look-up per process


#: the per-partition limits earlier versions created (and left behind)
LEGACY_PARTITION_PREFIX = "duikou-writer-"


def set_global_writer_limit(limit: int) -> None:
    """``duikou serve``: make the all-partition limit exactly ``limit``."""
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(GLOBAL_WRITERS, limit)


def remove_partition_limits() -> list[str]:
    """``duikou serve``: delete the per-partition limits an earlier version left; their names.

    Only idle ones (no active slot): a run of an older version still holding one keeps it."""
    with get_client(sync_client=True) as client:
        limits: list[Any] = []
        while len(page := client.read_global_concurrency_limits(limit=200, offset=len(limits))) > 0:
            limits.extend(page)
            if len(page) < 200:
                break
        stale = [lim.name for lim in limits if lim.name.startswith(LEGACY_PARTITION_PREFIX) and not lim.active_slots]
        for name in stale:
            client.delete_global_concurrency_limit_by_name(name)
    return stale


def server_configured() -> bool:
    """True when runs report to a real Prefect server (not a per-process temporary one)."""
    return bool(PREFECT_API_URL.value())


@contextmanager
def writer_slot(department: str, period: str) -> Iterator[None]:
    """Hold one warehouse writer slot while the block (the load of ``department`` ``period``) runs.

    A no-op without a configured server; with one, gives up waiting after ``SLOT_WAIT_S``
    (warning) and runs the block anyway — the warehouse lock is the real guard.
    """
    if not server_configured():
        yield
        return
    names = [GLOBAL_WRITERS]
    with _api() as api:
        try:
            lease_id = _acquire(api, names, time.monotonic() + SLOT_WAIT_S)
        except httpx.HTTPError as exc:  # an answer we cannot retry (a 500, a refused request): no slot
            _log.warning("no writer slot for %s %s (the Prefect API answered %s); loading under the warehouse "
                         "lock alone", department, period, exc)
            lease_id = None
        else:
            if lease_id is None:
                _log.warning(
                    "no writer slot for %s %s within %.0f s (a leaked lease, or the Prefect API away?); "
                    "loading under the warehouse lock alone", department, period, SLOT_WAIT_S,
                )
        if lease_id is None:
            yield
            return
        try:
            yield
        finally:
            _release(api, lease_id, time.monotonic() + RELEASE_WAIT_S)


def _api() -> httpx.Client:
    """A plain HTTP client on the configured Prefect API, with Prefect's own auth headers."""
    headers = {}
    if auth := PREFECT_API_AUTH_STRING.value():
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode("utf-8")).decode("ascii")
    elif key := PREFECT_API_KEY.value():
        headers["Authorization"] = f"Bearer {key}"
    return httpx.Client(base_url=str(PREFECT_API_URL.value()).rstrip("/") + "/", headers=headers, timeout=30.0,
                        verify=_tls_context(bool(PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value()),
                                            str(PREFECT_API_SSL_CERT_FILE.value() or ""),
                                            os.environ.get("SSL_CERT_FILE", ""), os.environ.get("SSL_CERT_DIR", "")))


@lru_cache(maxsize=4)
def _tls_context(skip_verify: bool, cert_file: str, env_cert_file: str, env_cert_dir: str) -> ssl.SSLContext:
    """The TLS context for the API client, built once per setting: building one reads the whole CA
    bundle (~20 ms of CPU), which every load paid on the path a clerk waits on. Unverified with
    ``PREFECT_API_TLS_INSECURE_SKIP_VERIFY``; verified against ``PREFECT_API_SSL_CERT_FILE``, else as
    httpx's default does (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi's bundle — the last two
    arguments are only the cache's key). A CA file changed on disk is read at the next restart."""
    if skip_verify:
        return httpx.create_ssl_context(verify=False)
    if cert_file:
        return ssl.create_default_context(cafile=cert_file)
    return httpx.create_ssl_context(verify=True, trust_env=True)


def _call(api: httpx.Client, path: str, body: dict[str, Any], deadline: float,
          accept: tuple[int, ...] = ()) -> httpx.Response | None:
    """POST with our retries: 503/502/504 and dropped connections after 50 ms doubling to 1 s, a 423
    after the server's ``Retry-After``. Returns the response (2xx or one of ``accept``), or None when
    ``deadline`` passes first or the API has not answered at all for ``UNREACHABLE_S``; any other
    status raises ``httpx.HTTPStatusError``."""
    unreachable_until: float | None = None
    for attempt in range(1_000_000):
        try:
            response = api.post(path, json=body)
        except httpx.TransportError:
            unreachable_until = unreachable_until or time.monotonic() + UNREACHABLE_S
            deadline = min(deadline, unreachable_until)
            wait = _backoff(attempt)
        else:
            if response.is_success or response.status_code in accept:
                return response
            if response.status_code == 423:  # the slot is held: the server says when to ask again
                wait = float(response.headers.get("Retry-After", MAX_RETRY_S))
            elif response.status_code in RETRYABLE:
                wait = _backoff(attempt)
            else:
                response.raise_for_status()
        if time.monotonic() + wait > deadline:
            return None
        time.sleep(wait)
    return None


def _ensure_limit(api: httpx.Client, name: str, limit: int, deadline: float) -> None:
    """Create the limit if it does not exist; never change an existing one (operators may have)."""
    key = (str(api.base_url), name)
    if key in _known:
        return
    if _call(api, "v2/concurrency_limits/", {"name": name, "limit": limit}, deadline, accept=(409,)) is not None:
        _known.add(key)  # created now, or already there (409)


def _acquire(api: httpx.Client, names: list[str], deadline: float) -> str | None:
    """The lease id, or None when the slots could not be had before ``deadline``."""
    _ensure_limit(api, GLOBAL_WRITERS, DEFAULT_GLOBAL_WRITERS, deadline)
    body: dict[str, Any] = {"names": names, "slots": 1, "mode": "concurrency", "lease_duration": LEASE_S}
    if (context := TaskRunContext.get()) is not None:  # the Prefect UI can say which task run writes
        body["holder"] = {"type": "task_run", "id": str(context.task_run.id)}
    response = _call(api, "v2/concurrency_limits/increment-with-lease", body, deadline)
    return None if response is None else str(response.json()["lease_id"])


def _release(api: httpx.Client, lease_id: str, deadline: float) -> None:
    """Give the slots back; never fails the load that held them (the lease expires by itself)."""
    try:  # 404: the lease expired meanwhile, nothing to release
        released = _call(api, "v2/concurrency_limits/decrement-with-lease", {"lease_id": lease_id}, deadline,
                         accept=(404,)) is not None
    except httpx.HTTPError as exc:
        _log.warning("could not release writer lease %s (%s); it expires by itself within %.0f s",
                     lease_id, exc, LEASE_S)
        return
    if not released:
        _log.warning("could not release writer lease %s; it expires by itself within %.0f s", lease_id, LEASE_S)


def _backoff(attempt: int) -> float:
    base: float = min(MAX_RETRY_S, FIRST_RETRY_S * 2 ** min(attempt, 10))
    return base * random.uniform(0.5, 1.0)
