"""``ingest-submission``: one department return, from file to receipt."""

from __future__ import annotations

from pathlib import Path

from prefect import flow, tags

from duikou_settings import get_settings
from flows.pipeline import SubmissionResult, process_submission
from flows.warehouse_access import existing_warehouse, open_warehouse
from warehouse.refdata import reference_frames


@flow(name="ingest-submission", flow_run_name="ingest {department} {period}", log_prints=False)
def ingest_submission(path: str, department: str, period: str, dry_run: bool = False) -> SubmissionResult:
    """Read, normalise, validate and load one submission; write its receipt."""
    settings = get_settings()
    engine = existing_warehouse(settings) if dry_run else open_warehouse(settings)
    with tags(f"department:{department}", f"period:{period}"):
        return process_submission(
            Path(path), department, period, engine=engine, reference=reference_frames(),
            settings=settings, dry_run=dry_run,
        )
