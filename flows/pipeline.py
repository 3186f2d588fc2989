"""One submission through the tasks: the control flow shared by the ingest and nightly flows."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from flows.registry_pipeline import process_registry
from tasks.registry.stream import require_person_key
from tasks.submission.followup_steps import follow_up_task
from tasks.submission.journey import (
    Parsed,
    Received,
    build_receipt,
    hold_if_overtaken,
    is_registry,
    preview_load,
    storage_paths,
    write_receipt_as_ledger,
)
from tasks.submission.result import SubmissionResult
from tasks.submission.steps import STEPS as steps
from tasks.submission.steps import as_step
from tasks.validation.validate import Validation
from warehouse.load import LoadOutcome, find_submission, ledger_issues
from warehouse.refdata import ReferenceFrames

#: who waits on this submission's receipt — a ``duikou ingest`` handed to ``duikou serve``
#: (flows/handoff.py): told as soon as the receipt is written, before the steps that follow it
RECEIPT_WAITER: ContextVar[Callable[[SubmissionResult], None] | None] = ContextVar("duikou_receipt_waiter",
                                                                                  default=None)


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
    """receive → (duplicate?) → read & normalise → validate → load → receipt → check-summary
    artifact → follow-up (what nobody waits on comes after the receipt).

    ``dry_run`` does everything but write: no file kept, no ledger row, no receipt file; the
    receipt says what would have happened. ``follow_up``: after the load, run the cross-return
    checks touching this department and sync the follow-up list (the nightly flow does both once
    after all its submissions instead).

    A person-level registry (one row per person) is streamed by its own control flow
    (``flows.registry_pipeline``) once its person key is there — refused before a single row is
    read — and the file is new to the ledger.
    """
    key = require_person_key(settings) if is_registry(department) else None  # refuse before reading a row
    received = steps.receive_task(path, department, period)
    previous = steps.previous_result_task(engine, received)
    if previous is not None:  # the ledger's id for it (a row older than migration 0011 keeps its own)
        received = replace(received, ledger_id=str(previous["submission_id"]))
    if previous is not None and previous["status"] in ("loaded", "superseded"):
        if not dry_run and engine is not None:
            recover_receipt(engine, previous, reference, settings)
        return duplicate_result(received, previous, settings, dry_run=dry_run)
    if key is not None:
        result = process_registry(received, key, engine=engine, reference=reference, settings=settings,
                                  dry_run=dry_run)
        if result is not None:
            return result
        assert engine is not None  # only a load finds the file recorded meanwhile
        return lost_race(engine, received, settings)

    parsed, validation = read_and_validate(received, engine, reference)
    if dry_run or engine is None:
        steps.dq_summary_task(received, validation)  # table artifact dq-<department>-<period>
        would = preview_load(engine, received, parsed, validation)
        stored, _ = storage_paths(received, validation.outcome, settings)
        receipt = build_receipt(received, parsed, validation, status=validation.outcome, dry_run=True,
                                load_outcome=would, stored=stored.relative_to(settings.resolved_data_dir).as_posix())
        return SubmissionResult(received.submission_id, department, received.period.label,
                                received.original_name, validation.outcome, receipt, None)

    validation = hold_if_overtaken(engine, received, previous, validation)  # never older over newer
    outcome = steps.load_task(engine, received, parsed, validation, settings)
    if outcome.status == "duplicate":  # another run recorded the same file first: its receipt stays its own
        return lost_race(engine, received, settings)
    stored, receipt_path = storage_paths(received, validation.outcome, settings)
    receipt = build_receipt(
        received, parsed, validation, status=outcome.status, load_outcome=outcome,
        duplicate_of=None, stored=stored.relative_to(settings.resolved_data_dir).as_posix(),
    )
    receipt = steps.correction_task(received, receipt, validation, settings)
    steps.receipt_task(receipt, receipt_path, stored, engine)  # only while the ledger row says the same
    result = SubmissionResult(received.submission_id, department, received.period.label,
                              received.original_name, outcome.status, receipt, receipt_path)
    if (waiter := RECEIPT_WAITER.get()) is not None:
        waiter(result)
    steps.dq_summary_task(received, validation)  # the artifact follows the receipt: nobody waits on it
    if follow_up:
        as_step(follow_up_task)(engine, [department] if outcome.status == "loaded" else [])
    return result


def read_and_validate(
    received: Received, engine: Engine | None, reference: ReferenceFrames
) -> tuple[Parsed, Validation]:
    """read & normalise → history → validate: shared with an operator's release (flows/quarantine.py)."""
    parsed = steps.parse_task(received, reference)
    history = steps.history_task(engine, received)
    return parsed, steps.validate_task(parsed, history)


def duplicate_result(
    received: Received, earlier: dict[str, Any], settings: Settings, *, dry_run: bool
) -> SubmissionResult:
    """The receipt of a file the ledger already has: ``<id>.duplicate.json``, never the main receipt."""
    receipt = build_receipt(received, None, None, status="duplicate", dry_run=dry_run,
                            duplicate_of=_ledger_summary(earlier))
    receipt_path = None
    if not dry_run:
        _, receipt_path = storage_paths(received, "loaded", settings)
        receipt_path = receipt_path.with_name(f"{received.submission_id}.duplicate.json")
        steps.receipt_task(receipt, receipt_path, None)
    return SubmissionResult(received.submission_id, received.department, received.period.label,
                            received.original_name, "duplicate", receipt, receipt_path)


def lost_race(engine: Engine, received: Received, settings: Settings) -> SubmissionResult:
    """The load found the same file recorded by another run meanwhile: the winner's duplicate receipt."""
    winner = find_submission(engine, received.department, received.sha256)
    assert winner is not None  # the loser saw the winner's row under the same lock
    return duplicate_result(received, winner, settings, dry_run=False)


def receipt_missing(row: dict[str, Any], settings: Settings) -> bool:
    """A ledger row whose receipt file is not where the ledger says (its run died after the commit)."""
    receipt_rel = row.get("receipt_path")
    return bool(receipt_rel) and not (settings.resolved_data_dir / str(receipt_rel)).exists()


def recover_receipt(engine: Engine, row: dict[str, Any], reference: ReferenceFrames, settings: Settings) -> bool:
    """Write the receipt of a ledger row whose run died between its commit and its receipt (process
    or server killed), whatever its status: loaded, superseded, rejected or quarantined.

    The ledger is the truth — the row committed, its file was kept before the transaction — so
    the receipt (and correction workbook) it should have had is re-derived from the kept file the
    ledger names and written where the ledger says, marked ``receipt_recovered``. A registry's
    receipt, or one whose kept file is gone, is built from the ledger row and its recorded issues
    instead (a registry is not streamed again for a receipt). A no-op when the receipt exists;
    never replaces one written meanwhile. Returns whether it wrote.
    """
    if not receipt_missing(row, settings):
        return False
    from tasks.submission.quarantine import KeptFileError, receive_kept

    status = "loaded" if row["status"] == "superseded" else str(row["status"])
    outcome = LoadOutcome(str(row["submission_id"]), status, row.get("supersedes"), None,  # type: ignore[arg-type]
                          int(row.get("facts_loaded") or 0))
    stored_rel = str(row["archive_path"]) if row.get("archive_path") else None
    stored = settings.resolved_data_dir / stored_rel if stored_rel else None
    receipt: dict[str, Any] | None = None
    if not is_registry(str(row["department"])):
        try:
            received = receive_kept(row, settings)  # under the id the ledger gave it
        except KeptFileError as exc:
            note = str(exc)
        else:
            parsed, validation = read_and_validate(received, engine, reference)
            receipt = build_receipt(received, parsed, validation, status=status, load_outcome=outcome,
                                    stored=stored_rel)
            receipt["receipt_recovered"] = True  # written by a later run, from the kept file
            receipt = steps.correction_task(received, receipt, validation, settings)
    else:
        note = "登记表回执按台账记录重建 (a registry's receipt is rebuilt from the ledger, not re-read)"
    if receipt is None:
        receipt = ledger_receipt(engine, row, status, outcome, stored_rel)
        receipt["receipt_note"] = note
    if stored is not None and not stored.exists():
        stored = None
    return write_receipt_as_ledger(engine, receipt, settings.resolved_data_dir / str(row["receipt_path"]), stored,
                                   only_if_missing=True)


def ledger_receipt(engine: Engine, row: dict[str, Any], status: str, outcome: LoadOutcome,
                   stored_rel: str | None) -> dict[str, Any]:
    """A receipt from the ledger row and its recorded issues alone (no file read)."""
    from datetime import UTC

    from tasks.forms.periods import parse_declared_period
    from tasks.submission.journey import _declared

    received_at = row["received_at"]
    if received_at.tzinfo is None:  # SQLite keeps naive UTC
        received_at = received_at.replace(tzinfo=UTC)
    period = parse_declared_period(str(row["period"]), _declared(str(row["department"])).period_type)
    received = Received(path=Path(stored_rel or ""), department=str(row["department"]), period=period,
                        original_name=str(row["original_name"]), sha256=str(row["sha256"]),
                        received_at=received_at, size_bytes=0, source_url=row.get("source_url"),
                        ledger_id=str(row["submission_id"]))
    issues = ledger_issues(engine, str(row["submission_id"]))
    receipt = build_receipt(received, None, None, status=status, load_outcome=outcome, stored=stored_rel)
    by_severity = {s: sum(1 for i in issues if i.severity == s) for s in ("critical", "warning", "info")}
    receipt["issues"] = [i.to_dict() for i in issues]
    receipt["counts"].update({
        "rows_read": int(row.get("rows_read") or 0), "rows_loaded": int(row.get("rows_loaded") or 0),
        "rows_rejected": int(row.get("rows_rejected") or 0), "issues": by_severity,
    })
    receipt["summary_zh"] = receipt["summary_zh"].split("(")[0] + (
        f"(严重{by_severity['critical']}项，警告{by_severity['warning']}项，提示{by_severity['info']}项)")
    receipt["receipt_recovered"] = True
    return receipt


def recover_receipts(engine: Engine, reference: ReferenceFrames, settings: Settings) -> list[str]:
    """Every ledger row without its receipt file gets one (:func:`recover_receipt`): the ids written.

    One row that cannot be recovered is logged and left for the next run; the others go on.
    """
    import logging

    from sqlalchemy import select

    from warehouse import schema

    sub = schema.submission
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(select(sub).where(sub.c.receipt_path.is_not(None))).mappings()]
    written: list[str] = []
    for row in rows:
        if not receipt_missing(row, settings):
            continue
        try:
            if recover_receipt(engine, row, reference, settings):
                written.append(str(row["submission_id"]))
        except Exception as exc:  # one bad row never stops the others (nor the nightly)
            logging.getLogger(__name__).error("receipt of %s not recovered: %s", row["submission_id"], exc)
    return written


def _ledger_summary(row: dict[str, Any]) -> dict[str, Any]:
    keep = ("submission_id", "department", "period", "original_name", "status", "received_at")
    return {k: (str(row[k]) if row.get(k) is not None else None) for k in keep}
