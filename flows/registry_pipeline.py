"""One person-level registry submission: the control flow behind ``duikou ingest`` for registries.

receive → (duplicate?) → person key → one streamed task (read, check, key, COPY, marts, in one
transaction) → receipt. Same receipt shape as a form's, without a correction workbook: a
registry's workbook would copy every ID number into receipts/; the receipt lists the rows.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from duikou_settings import Settings
from flows.pipeline import SubmissionResult, duplicate_result, recover_receipt
from tasks import steps
from tasks.registry import RegistryStream, StageTimes, registry_declaration, require_person_key, stream_registry
from tasks.submission import Received, build_receipt, relative, storage_paths, store_file
from warehouse.load import SubmissionRecord, current_version, find_submission
from warehouse.refdata import ReferenceFrames
from warehouse.registry import PersonWriter, RegistryOutcome, StreamResult, record_registry_submission


def _record(received: Received, settings: Settings) -> SubmissionRecord:
    stored, receipt = storage_paths(received, "loaded", settings)
    return SubmissionRecord(
        submission_id=received.submission_id, sha256=received.sha256, department=received.department,
        period=received.period.label, original_name=received.original_name, received_at=received.received_at,
        status="rejected", rows_read=0, rows_loaded=0, rows_rejected=0,
        archive_path=relative(stored, settings), receipt_path=relative(receipt, settings),
        source_url=received.source_url,
    )


def ingest_registry(
    received: Received, engine: Engine | None, reference: ReferenceFrames, settings: Settings, key: bytes
) -> tuple[RegistryStream, RegistryOutcome | None]:
    """Stream the file; with an engine, inside the submission's one transaction."""
    declaration = registry_declaration(received.department)
    if declaration is None:
        raise ValueError(f"{received.department!r} is not a person-level registry")
    holder: dict[str, RegistryStream] = {}

    def run(writer: PersonWriter | None) -> StreamResult:
        holder["stream"] = stream_registry(
            received.path, received.original_name, declaration, received.period.start, received.period.end,
            reference, key, settings, writer,
        )
        stored, _ = storage_paths(received, holder["stream"].result.status, settings)
        return replace(holder["stream"].result, archive_path=relative(stored, settings))

    if engine is None:
        run(None)
        return holder["stream"], None
    outcome = record_registry_submission(engine, _record(received, settings), declaration, run)
    if "stream" not in holder:  # a duplicate: nothing was read
        return RegistryStream(StreamResult("duplicate", 0, 0, (), ()), None, None, StageTimes()), outcome
    return holder["stream"], outcome


@task(name="ingest-registry", task_run_name="registry {received.department} {received.period.label}",
      cache_policy=NO_CACHE)
def ingest_registry_task(
    received: Received, engine: Engine | None, reference: ReferenceFrames, settings: Settings, key: bytes
) -> tuple[RegistryStream, RegistryOutcome | None]:
    # serialised per partition by the warehouse lock inside record_registry_submission (PostgreSQL
    # advisory lock, SQLite's single writer); not by tasks/writer_slots.py, whose Prefect
    # concurrency slot blocked `duikou ingest` without a Prefect server (temporary-server mode)
    return ingest_registry(received, engine, reference, settings, key)


def registry_receipt(received: Received, stream: RegistryStream, status: str, *, dry_run: bool,
                     rows_loaded: int, supersedes: str | None, stored: str | None,
                     extra_issues: tuple[Any, ...] = ()) -> dict[str, Any]:
    issues = [*stream.result.issues, *extra_issues]
    receipt = build_receipt(received, None, None, status=status, dry_run=dry_run, stored=stored)
    by_severity = {s: sum(1 for i in issues if i.severity == s) for s in ("critical", "warning", "info")}
    receipt.update({
        "sheet": stream.sheet,
        "encoding": stream.encoding,
        "issues": [i.to_dict() for i in issues],
    })
    receipt["counts"].update({
        "rows_read": stream.result.rows_read,
        "rows_loaded": rows_loaded,
        "rows_rejected": stream.result.rows_rejected,
        "facts_loaded": rows_loaded,
        "issues": by_severity,
        "checks_evaluated": len(stream.result.dq_results),
        "checks_failed": sum(1 for r in stream.result.dq_results if not r.success),
    })
    receipt["summary_zh"] = receipt["summary_zh"].split("(")[0] + (
        f"(严重{by_severity['critical']}项，警告{by_severity['warning']}项，提示{by_severity['info']}项)"
        if status != "duplicate" else "")
    if supersedes:
        receipt["supersedes"] = supersedes
    return receipt


def process_registry(
    path: Path,
    department: str,
    period: str,
    *,
    engine: Engine | None,
    reference: ReferenceFrames,
    settings: Settings,
    dry_run: bool = False,
) -> SubmissionResult:
    """receive → key → (duplicate?) → stream (read, check, key, load) → keep file → receipt."""
    key = require_person_key(settings)  # refuse before reading a single row
    received = steps.receive_task(path, department, period)
    previous = steps.previous_result_task(engine, received)
    if previous is not None:  # the ledger's id for it (a row older than migration 0011 keeps its own)
        received = replace(received, ledger_id=str(previous["submission_id"]))
    if previous is not None and previous["status"] in ("loaded", "superseded"):
        if not dry_run and engine is not None:
            recover_receipt(engine, previous, reference, settings)
        return duplicate_result(received, previous, settings, dry_run=dry_run)
    if dry_run or engine is None:
        stream, _ = ingest_registry_task(received, None, reference, settings, key)
        status = stream.result.status
        stored, _ = storage_paths(received, status, settings)
        loaded = status == "loaded"
        current = current_version(engine, department, received.period.label) if engine is not None else None
        receipt = registry_receipt(received, stream, status, dry_run=True,
                                   rows_loaded=stream.result.rows_read if loaded else 0,
                                   supersedes=current if loaded else None,
                                   stored=stored.relative_to(settings.resolved_data_dir).as_posix())
        return SubmissionResult(received.submission_id, department, received.period.label, received.original_name,
                                status, receipt, None)
    stream, outcome = ingest_registry_task(received, engine, reference, settings, key)
    assert outcome is not None
    status = outcome.load.status
    if status == "duplicate":  # another run recorded the same file first: its receipt stays its own
        winner = find_submission(engine, received.department, received.sha256)
        assert winner is not None  # seen under the same lock
        return duplicate_result(received, winner, settings, dry_run=False)
    stored, receipt_path = storage_paths(received, status, settings)
    if status != "duplicate":
        store_file(received, stored)  # the department's own file: the archive is the restricted store
    receipt = registry_receipt(received, stream, status, dry_run=False, rows_loaded=outcome.load.facts_loaded,
                               supersedes=outcome.load.supersedes,
                               stored=stored.relative_to(settings.resolved_data_dir).as_posix(),
                               extra_issues=outcome.reconciliation_issues)
    steps.receipt_task(receipt, receipt_path, stored, engine)  # only while the ledger row says the same
    return SubmissionResult(received.submission_id, department, received.period.label, received.original_name,
                            status, receipt, receipt_path)
