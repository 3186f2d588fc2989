"""Reconciling the landing areas with the ledger: which files the nightly still has to process.

Plain functions (no Prefect): the scan of every landing area (``tasks.landing.store``), the ledger
lookup by (department, SHA-256), the fetch of a remote object the ledger lacks, and the grouping of
what is pending by department. What the deployment knows — its departments, each one's upload
limit, the plausible period window — comes in as arguments from the caller (``flows/nightly.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.landing.store import (
    CHANGED_REASON,
    LandingEntry,
    LandingStore,
    LandingStoreError,
    ObjectTooLarge,
    arrival_key,
    changed_while_read,
    clean_staging,
    discard_staged,
    landing_stores,
    scan_store,
    stage_entry,
    store_for,
)
from warehouse.load import find_submission


@dataclass(frozen=True)
class LandingFile:
    path: Path  # what the readers open: the file where it lies, or the staged copy of a remote object
    department: str
    period: str
    sha256: str
    mtime: float  # arrival: the file's modified time (an object's LastModified), 0 when the store has none


def scan_in_place(
    landing: Path | LandingStore, departments: set[str], period_problem: Callable[[str, str], str | None]
) -> tuple[list[LandingFile], list[dict[str, str]]]:
    """Every candidate file of one landing area read in place (a local folder), in arrival order
    (modified time, path). A remote store is reconciled by :func:`reconcile_landing`, which fetches
    only what the ledger lacks."""
    store = landing if isinstance(landing, LandingStore) else store_for(landing)
    if not store.in_place:
        raise ValueError(f"{store.url} is not read in place: its objects are fetched by reconcile_landing")
    entries, skipped = scan_store(store, departments, period_problem=period_problem)
    return [in_place(entry) for entry in entries], skipped


def in_place(entry: LandingEntry) -> LandingFile:
    return LandingFile(Path(entry.path), entry.department, entry.period, entry.sha256, entry.modified or 0.0)


def reconcile_landing(
    engine: Engine,
    settings: Settings,
    departments: set[str],
    upload_limit: Callable[[str], int],
    period_problem: Callable[[str, str], str | None],
    logger: logging.Logger | logging.LoggerAdapter[Any],
) -> tuple[list[LandingFile], int, list[dict[str, str]], list[dict[str, str]]]:
    """(pending, unchanged, skipped, failed): files in the landing areas that the ledger has not seen
    (by department and SHA-256); a file the ledger has is unchanged, whatever became of its receipt
    (the nightly's recover-receipts step writes a missing one).

    Remote objects are fetched into ``<data>/staging/`` (one at a time, each no larger than its
    department's upload limit) once: a new one by the scan, which hashes it as it writes the copy
    (removed again if the ledger has those bytes); one the ETag index knows only here, and only if
    the ledger lacks it. An object too large or gone, or in a period folder that is malformed or
    outside the plausible window, is skipped with its reason. A landing area that cannot be listed is
    *failed* ({path: its URL, reason}) and the others are reconciled.
    """
    limit = upload_limit
    clean_staging(settings.staging_dir)
    entries: list[LandingEntry] = []
    skipped: list[dict[str, str]] = []
    failed: list[dict[str, str]] = []
    for store in landing_stores(settings):
        try:
            found, passed = scan_store(store, departments, max_bytes=limit, index_dir=settings.staging_dir,
                                       staging=settings.staging_dir, period_problem=period_problem)
        except (LandingStoreError, OSError) as exc:  # one unreachable landing area must not hide the others' files
            logger.error("landing area %s: %s", store.url, exc)
            failed.append({"path": store.url, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        logger.info("landing area %s: %d file(s), %d skipped", store.url, len(found), len(passed))
        entries += found
        skipped += passed
    entries.sort(key=arrival_key)
    pending: list[LandingFile] = []
    unchanged = 0
    for entry in entries:
        if find_submission(engine, entry.department, entry.sha256) is not None:  # receipts: recover_receipts_task
            if entry.staged is not None:
                discard_staged(entry.staged)
            unchanged += 1
            continue
        if entry.store.in_place:
            pending.append(in_place(entry))
            continue
        if entry.staged is not None:  # fetched by the scan: its bytes are the ones hashed
            pending.append(LandingFile(entry.staged, entry.department, entry.period, entry.sha256,
                                       entry.modified or 0.0))
            continue
        try:
            staged, sha256 = stage_entry(entry, settings.staging_dir, limit(entry.department))
        except ObjectTooLarge as exc:
            skipped.append({"path": entry.url, "reason": str(exc)})
            continue
        except OSError as exc:
            if changed_while_read(exc):
                skipped.append({"path": entry.url, "reason": CHANGED_REASON})
            else:  # this object could not be fetched: the others still are
                logger.error("fetching %s failed: %s", entry.url, exc)
                failed.append({"path": entry.url, "reason": f"{type(exc).__name__}: {exc}"})
            continue
        if sha256 != entry.sha256:
            logger.warning("%s changed between the scan and its fetch: the fetched version is processed", entry.url)
        pending.append(LandingFile(staged, entry.department, entry.period, sha256, entry.modified or 0.0))
    return pending, unchanged, skipped, failed


def by_department(pending: list[LandingFile]) -> list[list[LandingFile]]:
    """Pending files grouped by department, arrival order kept inside each group.

    The unit of parallel work is a department, not a partition: a return's history checks read
    the department's earlier periods (本年累计, magnitude against the township's history), so one
    department's files must load one after another in arrival order; departments are independent
    (cross-return checks run once after all of them).
    """
    groups: dict[str, list[LandingFile]] = {}
    for item in pending:
        groups.setdefault(item.department, []).append(item)
    return list(groups.values())
