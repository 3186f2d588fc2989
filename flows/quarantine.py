"""``quarantine-decision``: an operator releases or rejects one quarantined submission.

Release: refuse if the partition has a later loaded version (``newer_version_guard``, unless
``force``) → receive the kept file again → read & normalise → history → validate (the ingest
pipeline's own ``read_and_validate``) → refuse if any issue's action is ``reject`` → load with
the decision (one transaction; the later-version rule checked again under the partition lock)
→ receipt (+ correction workbook) → drop the quarantine copy.
Reject: status + decision (one transaction) → receipt. See :mod:`tasks.submission.quarantine` for the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from prefect import flow, tags
from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from flows.pipeline import read_and_validate
from flows.warehouse_access import open_warehouse
from tasks.report.steps import refresh_marts_task
from tasks.submission import steps
from tasks.submission.followup_steps import follow_up_task
from tasks.submission.journey import build_receipt
from tasks.submission.quarantine import (
    DecisionError,
    KeptFileError,
    NewerVersionLoaded,
    OperatorDecision,
    newer_version_guard,
    receipt_paths,
    refusal_message,
    release_blockers,
    released,
    released_paths,
    with_decision,
)
from tasks.submission.quarantine_steps import (
    decided_receipt_task,
    discard_quarantine_copy_task,
    find_quarantined_task,
    receive_kept_task,
    reject_task,
    release_task,
)
from warehouse.refdata import reference_frames


@dataclass(frozen=True)
class DecisionResult:
    """What a decision did. ``status``: loaded / rejected, or refused (nothing was written)."""

    submission_id: str
    department: str
    period: str
    original_name: str
    decision: str
    status: str
    message: str
    receipt: dict[str, Any] | None
    receipt_path: Path | None
    supersedes: str | None = None
    blockers: tuple[dict[str, Any], ...] = ()
    #: the partition's later loaded version: what refused the release, or what a forced one replaced
    later_version: dict[str, Any] | None = None


def _decision_run_name() -> str:
    from prefect.runtime import flow_run

    params = flow_run.parameters
    return f"{params['decision']} {params['department']} {params['period']} ({str(params['submission_id'])[:8]})"


@flow(name="quarantine-decision", flow_run_name=_decision_run_name, log_prints=False)
def quarantine_decision(
    submission_id: str,
    department: str,
    period: str,
    decision: Literal["release", "reject"],
    decided_by: str,
    reason: str,
    force: bool = False,
) -> DecisionResult:
    """Release or reject the quarantined submission ``submission_id`` of (department, period).

    ``department`` and ``period`` name the partition the decision touches (and the run); they
    must match the ledger. DecisionError when the submission is not quarantined (any more).
    A release over a later loaded version of the partition is refused (status ``refused``, the
    version named) unless ``force``: then it goes ahead and its decision row names that version.
    """
    settings = get_settings()
    engine = open_warehouse(settings)
    the_decision = OperatorDecision(decision, decided_by, reason, force=force)
    ledger = find_quarantined_task(engine, submission_id)
    if (ledger["department"], ledger["period"]) != (department, period):
        raise DecisionError(f"submission {ledger['submission_id']} is {ledger['department']} {ledger['period']}, "
                            f"not {department} {period}")
    with tags(f"department:{department}", f"period:{period}", f"decision:{decision}"):
        if the_decision.decision == "reject":
            return _reject(engine, ledger, the_decision, settings)
        return _release(engine, ledger, the_decision, settings)


def _release(engine: Engine, ledger: dict[str, Any], decision: OperatorDecision, settings: Settings) -> DecisionResult:
    try:  # first, before the file is read: never older data over newer unasked
        later = newer_version_guard(engine, str(ledger["submission_id"]), force=decision.force)
    except NewerVersionLoaded as exc:
        return _refused(ledger, decision, str(exc), (), later=exc.later.to_dict())
    try:
        received = receive_kept_task(ledger, settings)
    except KeptFileError as exc:
        return _refused(ledger, decision, str(exc), ())
    parsed, validation = read_and_validate(received, engine, reference_frames())
    blockers = release_blockers(validation)
    if blockers:
        return _refused(ledger, decision, refusal_message(received.submission_id, blockers),
                        tuple(i.to_dict() for i in blockers))
    try:
        outcome = release_task(engine, received, parsed, validation, decision, settings)
    except NewerVersionLoaded as exc:  # a later version was loaded meanwhile (checked under the lock)
        return _refused(ledger, decision, str(exc), (), later=exc.later.to_dict())
    stored, receipt_path, stored_rel = released_paths(received, settings)
    as_loaded = released(validation)
    receipt = build_receipt(received, parsed, as_loaded, status=outcome.status, load_outcome=outcome,
                            stored=stored_rel)
    overridden = tuple(i for i in validation.issues if i.severity == "critical")
    receipt = with_decision(receipt, decision, overridden, later)
    receipt = steps.correction_task(received, receipt, as_loaded, settings)  # as process_submission does
    steps.receipt_task(receipt, receipt_path, stored)
    discard_quarantine_copy_task(ledger, settings, stored)
    follow_up_task(engine, [received.department])  # cross-return checks; its follow-up closes
    refresh_marts_task(engine)  # released facts count in the KPIs (and completeness) at once
    return DecisionResult(received.submission_id, received.department, received.period.label,
                          received.original_name, decision.decision, outcome.status, receipt["summary_zh"],
                          receipt, receipt_path, supersedes=outcome.supersedes,
                          later_version=later.to_dict() if later is not None else None)


def _reject(engine: Engine, ledger: dict[str, Any], decision: OperatorDecision, settings: Settings) -> DecisionResult:
    reject_task(engine, ledger, decision)
    receipt = decided_receipt_task(ledger, decision, settings)
    receipt_path, kept = receipt_paths(ledger, settings)
    steps.receipt_task(receipt, receipt_path, kept if kept is not None and kept.exists() else None)
    follow_up_task(engine, [])  # its follow-up closes
    refresh_marts_task(engine)  # completeness: quarantined → rejected
    return DecisionResult(ledger["submission_id"], ledger["department"], ledger["period"],
                          ledger["original_name"], decision.decision, decision.resulting_status,
                          receipt["summary_zh"], receipt, receipt_path)


def _refused(ledger: dict[str, Any], decision: OperatorDecision, message: str,
             blockers: tuple[dict[str, Any], ...], later: dict[str, Any] | None = None) -> DecisionResult:
    return DecisionResult(ledger["submission_id"], ledger["department"], ledger["period"],
                          ledger["original_name"], decision.decision, "refused", message, None, None,
                          blockers=blockers, later_version=later)
