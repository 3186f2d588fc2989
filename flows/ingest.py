"""``ingest-submission``: one department return, from file to receipt."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from prefect import flow, get_run_logger, tags

from duikou_settings import get_settings
from flows import events
from flows.department_notices import notify_outcome
from flows.outcomes import announce, log_causes, outcome_state
from flows.pipeline import process_submission
from flows.run_ui import ingest_run_name, publish_run_summary, tag_current_run
from flows.warehouse_access import existing_warehouse, open_warehouse
from flows.warehouse_updates import update_needs_event, update_not_sent
from tasks.submission.result import SubmissionResult
from tasks.submission.steps import format_step_timings, inline_steps
from warehouse.refdata import reference_frames


@flow(name="ingest-submission", flow_run_name=ingest_run_name, log_prints=False)
def ingest_submission(path: str, department: str, period: str, dry_run: bool = False) -> SubmissionResult:
    """Read, normalise, validate and load one submission; write its receipt. Returns the
    :class:`SubmissionResult` — a rejected or quarantined one inside a ``Completed`` state named
    ``Rejected`` / ``Quarantined`` (flows/outcomes.py), which a caller of the flow receives as the result.

    The ``duikou.submission.received`` trigger and ``duikou ingest`` start it alike; after a load
    it emits ``duikou.warehouse.updated`` (which starts ``refresh-reports``; in ``duikou serve`` once
    per debounce window: ``flows/warehouse_updates.py``); a rejected or
    quarantined return emits ``duikou.submission.rejected`` / ``.quarantined``, and the department
    is told through its notification block (``flows/department_notices.py``).
    """
    settings = get_settings()
    engine = existing_warehouse(settings) if dry_run else open_warehouse(settings)
    timings: list[tuple[str, float]] = []
    logger = get_run_logger()
    # the steps as plain calls in this run (one task run each cost the clerk more than the work)
    try:
        with tags(f"department:{department}", f"period:{period}"), inline_steps(timings):
            result = process_submission(
                Path(path), department, period, engine=engine, reference=reference_frames(),
                settings=settings, dry_run=dry_run,
            )
    finally:  # a failed run says how far it got
        logger.info("steps: %s", format_step_timings(timings))
    log_causes(logger, result)  # one line per issue cause
    # the run's tags after the receipt (two API calls the clerk need not wait on); its task runs carry them
    tag_current_run(f"department:{department}", f"period:{period}", *(() if dry_run else (f"status:{result.status}",)))
    if not dry_run:
        publish_run_summary(result, settings)
        notify_outcome(result, settings)  # refused / quarantined: to the department's own channel, if it has one
        if result.status == "loaded" and update_needs_event():  # in duikou serve: once per debounce window
            try:
                events.emit_from_run(events.warehouse_updated(
                    submission_id=result.submission_id, department=result.department, period=result.period,
                    status=result.status))
            except Exception:
                update_not_sent()
                raise
        elif result.status == "loaded":
            logger.info("duikou.warehouse.updated not sent again: the refresh-reports run of the last one "
                        "this duikou serve sent has not begun building, and its report includes this load")
        announce(result)
    # a named state's data is what the caller of the flow receives: still a SubmissionResult
    return cast(SubmissionResult, outcome_state(result))
