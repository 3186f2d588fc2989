"""GX Data Docs for one submission, on demand (``duikou dq docs SUBMISSION_ID``).

Data Docs are not built on every run: the site grows with every validation and rendering costs
more than validating. On request, the submission's kept file is read again and validated with
the same suite the pipeline ran (:func:`tasks.validation.validate.prepare_suite`: the declaration's checks
plus the history-aware ones against the warehouse's current history), through a GX checkpoint
whose ``UpdateDataDocsAction`` writes a static site into the output directory.

This uses its own short-lived GX context with a Data Docs site, not the process's validation
context (which has no site and must stay cheap). Nothing is written to the warehouse.

A person-level registry submission is documented by ``tasks.registry.dq_docs`` instead: its
declared checks with the counts the load stored in ``dq_result``, and GX Data Docs of the
de-identified sample (no ID number, no name). The caller (``flows/cli.py``'s ``dq docs``) chooses
between the two; what both share is in ``tasks.validation.data_docs``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.submission.journey import declaration_for, parse, receive
from tasks.validation.data_docs import DataDocs, DqDocsError, validate_into_site
from tasks.validation.validate import gx_suite, prepare_suite
from warehouse.history import read_check_history
from warehouse.refdata import reference_frames


def build_form_docs(engine: Engine, settings: Settings, row: Any, out: Path) -> DataDocs:
    """Re-validate the form submission's kept file (``row``: its ledger row, ``tasks.validation.data_docs.ledger_row``)
    and write its Data Docs into ``out``; returns where index.html is."""
    submission_id = row.submission_id
    if not row.archive_path:
        raise DqDocsError(f"submission {submission_id}: the ledger keeps no file for it")
    kept = settings.resolved_data_dir / row.archive_path
    if not kept.is_file():
        raise DqDocsError(f"submission {submission_id}: its kept file {kept} is missing")
    parsed = parse(receive(kept, row.department, row.period), reference_frames())
    if parsed.form is None:
        reasons = "; ".join(i.message for i in parsed.fatal)
        raise DqDocsError(f"submission {submission_id}: the kept file cannot be read ({reasons}), no checks to show")
    history = read_check_history(engine, row.department, row.period)
    frame, checks = prepare_suite(parsed.form, declaration_for(row.department), history.values)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{row.department}-{row.period}-{submission_id}"
    result = validate_into_site(frame, gx_suite(checks, name), name, out)
    index = out / "index.html"
    if not index.is_file():
        raise DqDocsError(f"GX wrote no index.html under {out}")
    return DataDocs(submission_id, index, len(checks), bool(result.success))
