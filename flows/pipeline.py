"""One submission through the tasks: the control flow shared by the ingest and nightly flows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks import steps
from tasks.followup_steps import follow_up_task
from tasks.submission import Parsed, Received, build_receipt, is_registry, preview_load, storage_paths
from tasks.validate import Validation
from warehouse.load import LoadOutcome
from warehouse.refdata import ReferenceFrames


@dataclass(frozen=True)
class SubmissionResult:
    submission_id: str
    department: str
    period: str
    original_name: str
    status: str
    receipt: dict[str, Any]
    receipt_path: Path | None


def process_submission(
    path: Path,
    department: str,
    period: str,
    *,
    engine: Engine | None,
    reference: ReferenceFrames,
    settings: Settings,
    dry_run: bool = False,
    follow_up: bool = True,
) -> SubmissionResult:
    """receive → (duplicate?) → read & normalise → validate → load → receipt → follow-up.

    ``dry_run`` does everything but write: no file kept, no ledger row, no receipt file; the
    receipt says what would have happened. ``follow_up``: after the load, run the cross-return
    checks touching this department and sync the follow-up list (the nightly flow does both once
    after all its submissions instead).
    """
    if is_registry(department):  # one row per person: streamed, its own control flow
        from flows.registry_pipeline import process_registry

        return process_registry(path, department, period, engine=engine, reference=reference, settings=settings,
                                dry_run=dry_run)
    received = steps.receive_task(path, department, period)
    previous = steps.previous_result_task(engine, received)
    if previous is not None and previous["status"] in ("loaded", "superseded"):
        if not dry_run:
            _write_lost_receipt(received, previous, engine, reference, settings)
        receipt = build_receipt(received, None, None, status="duplicate", dry_run=dry_run,
                                duplicate_of=_ledger_summary(previous))
        receipt_path = None
        if not dry_run:
            _, receipt_path = storage_paths(received, "loaded", settings)
            receipt_path = receipt_path.with_name(f"{received.submission_id}.duplicate.json")
            steps.receipt_task(receipt, receipt_path, None)
        return SubmissionResult(received.submission_id, department, received.period.label,
                                received.original_name, "duplicate", receipt, receipt_path)

    parsed, validation = read_and_validate(received, engine, reference)
    steps.dq_summary_task(received, validation)  # table artifact dq-<department>-<period>
    if dry_run or engine is None:
        would = preview_load(engine, received, parsed, validation)
        stored, _ = storage_paths(received, validation.outcome, settings)
        receipt = build_receipt(received, parsed, validation, status=validation.outcome, dry_run=True,
                                load_outcome=would, stored=stored.relative_to(settings.resolved_data_dir).as_posix())
        return SubmissionResult(received.submission_id, department, received.period.label,
                                received.original_name, validation.outcome, receipt, None)

    outcome = steps.load_task(engine, received, parsed, validation, settings)
    stored, receipt_path = storage_paths(received, validation.outcome, settings)
    receipt = build_receipt(
        received, parsed, validation, status=outcome.status, load_outcome=outcome,
        duplicate_of=None, stored=stored.relative_to(settings.resolved_data_dir).as_posix(),
    )
    receipt = steps.correction_task(received, receipt, validation, settings)
    steps.receipt_task(receipt, receipt_path, stored)
    if follow_up:
        follow_up_task(engine, [department] if outcome.status == "loaded" else [])
    return SubmissionResult(received.submission_id, department, received.period.label,
                            received.original_name, outcome.status, receipt, receipt_path)


def read_and_validate(
    received: Received, engine: Engine | None, reference: ReferenceFrames
) -> tuple[Parsed, Validation]:
    """read & normalise → history → validate: shared with an operator's release (flows/quarantine.py)."""
    parsed = steps.parse_task(received, reference)
    history = steps.history_task(engine, received)
    return parsed, steps.validate_task(parsed, history)


def _write_lost_receipt(
    received: Received, previous: dict[str, Any], engine: Engine | None, reference: ReferenceFrames,
    settings: Settings,
) -> None:
    """Finish a load whose run died between its commit and its receipt (process or server killed).

    The ledger is the truth — the load committed, its file was kept before the transaction — so
    the receipt (and correction workbook) it should have had is re-derived from the same file
    and written where the ledger says. A no-op when the receipt exists.
    """
    receipt_rel, stored_rel = previous.get("receipt_path"), previous.get("archive_path")
    if not receipt_rel or (settings.resolved_data_dir / receipt_rel).exists():
        return
    parsed, validation = read_and_validate(received, engine, reference)
    outcome = LoadOutcome(received.submission_id, "loaded", previous.get("supersedes"), None,
                          int(previous.get("facts_loaded") or 0))
    receipt = build_receipt(received, parsed, validation, status="loaded", load_outcome=outcome,
                            duplicate_of=None, stored=stored_rel)
    receipt["receipt_recovered"] = True  # written by a later run of the same file
    receipt = steps.correction_task(received, receipt, validation, settings)
    stored = settings.resolved_data_dir / stored_rel if stored_rel else None
    steps.receipt_task(receipt, settings.resolved_data_dir / receipt_rel, stored)


def _ledger_summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("submission_id", "department", "period", "original_name", "status", "received_at")
    return {k: (str(row[k]) if row.get(k) is not None else None) for k in keep}
