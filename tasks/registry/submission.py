"""One person-level registry submission's plain steps: its ledger record, the streamed ingest (read,
check, key, COPY, marts, in one transaction) and its receipt. The Prefect wrapper is in
tasks/registry/steps.py, the control flow in flows/registry_pipeline.py."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.registry.stream import RegistryStream, StageTimes, registry_declaration, stream_registry
from tasks.submission.journey import Received, build_receipt, relative, storage_paths
from warehouse.load import SubmissionRecord
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
