"""One person-level registry submission: the control flow behind ``duikou ingest`` for registries.

receive → (duplicate?) → person key → one streamed task (read, check, key, COPY, marts, in one
transaction) → receipt. Same receipt shape as a form's, without a correction workbook: a
registry's workbook would copy every ID number into receipts/; the receipt lists the rows.

The dispatcher (``flows.pipeline.process_submission``) asks for the person key, receives the file
and answers a file the ledger already has; this module runs the rest. Its plain steps are in
tasks/registry/submission.py, their Prefect wrappers in tasks/registry/steps.py.
"""

from __future__ import annotations

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.registry.steps import ingest_registry_task
from tasks.registry.submission import registry_receipt
from tasks.submission.journey import Received, storage_paths, store_file
from tasks.submission.result import SubmissionResult
from tasks.submission.steps import STEPS as steps
from warehouse.load import current_version
from warehouse.refdata import ReferenceFrames


def process_registry(
    received: Received,
    key: bytes,
    *,
    engine: Engine | None,
    reference: ReferenceFrames,
    settings: Settings,
    dry_run: bool = False,
) -> SubmissionResult | None:
    """stream (read, check, key, load) → keep file → receipt, for a file the ledger did not have.

    ``None`` when the load finds the same file recorded meanwhile (another run, seen under the same
    lock): the caller answers with the winner's duplicate receipt, as for a form.
    """
    department = received.department
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
        return None
    stored, receipt_path = storage_paths(received, status, settings)
    store_file(received, stored)  # the department's own file: the archive is the restricted store
    receipt = registry_receipt(received, stream, status, dry_run=False, rows_loaded=outcome.load.facts_loaded,
                               supersedes=outcome.load.supersedes,
                               stored=stored.relative_to(settings.resolved_data_dir).as_posix(),
                               extra_issues=outcome.reconciliation_issues)
    steps.receipt_task(receipt, receipt_path, stored, engine)  # only while the ledger row says the same
    return SubmissionResult(received.submission_id, department, received.period.label, received.original_name,
                            status, receipt, receipt_path)
