"""GX Data Docs for one submission, on demand (``duikou dq docs SUBMISSION_ID``).

Data Docs are not built on every run: the site grows with every validation and rendering costs
more than validating. On request, the submission's kept file is read again and validated with
the same suite the pipeline ran (:func:`tasks.validate.prepare_suite`: the declaration's checks
plus the history-aware ones against the warehouse's current history), through a GX checkpoint
whose ``UpdateDataDocsAction`` writes a static site into the output directory.

This uses its own short-lived GX context with a Data Docs site, not the process's validation
context (which has no site and must stay cheap). Nothing is written to the warehouse.

A person-level registry submission is documented by ``tasks.registry_dq_docs`` instead: its
declared checks with the counts the load stored in ``dq_result``, and GX Data Docs of the
de-identified sample (no ID number, no name).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from tasks.submission import declaration_for, is_registry, parse, receive
from tasks.validate import gx_suite, prepare_suite
from warehouse.history import read_check_history
from warehouse.ledger import ledger_row
from warehouse.refdata import reference_frames

SITE_NAME = "duikou"


class DqDocsError(ValueError):
    """The submission cannot be documented: unknown id, no kept file, unreadable file."""


@dataclass(frozen=True)
class DataDocs:
    submission_id: str
    index_html: Path
    checks: int
    success: bool


def _ledger_row(engine: Engine, submission_id: str) -> Any:
    row = ledger_row(engine, submission_id)
    if row is None:
        raise DqDocsError(f"no submission {submission_id!r} in the ledger (ids are 16 hex digits, see receipts)")
    return SimpleNamespace(**row)  # read as row.department, row.archive_path ... here and in registry_dq_docs


def build_data_docs(engine: Engine, settings: Settings, submission_id: str, out_dir: Path | None = None) -> DataDocs:
    """Re-validate the submission's kept file and write its Data Docs; returns where index.html is."""
    row = _ledger_row(engine, submission_id)
    out = (out_dir or settings.reports_dir / "dq-docs" / submission_id).resolve()
    if is_registry(row.department):
        from tasks.registry_dq_docs import build_registry_docs

        return build_registry_docs(engine, settings, row, out)
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


def validate_into_site(frame: Any, suite: Any, name: str, out: Path, asset: str = "township_rows") -> Any:
    """Validate ``frame`` with the GX ``suite`` through a checkpoint that writes Data Docs to ``out``."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.add_data_docs_site(SITE_NAME, {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
    })
    batch_definition = (
        context.data_sources.add_pandas("duikou_submission")
        .add_dataframe_asset(asset)
        .add_batch_definition_whole_dataframe("whole_submission")
    )
    suite = context.suites.add(suite)
    definition = context.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch_definition,
                                                                            suite=suite))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=name, validation_definitions=[definition],
        actions=[UpdateDataDocsAction(name="data-docs", site_names=[SITE_NAME])],
        result_format={"result_format": "COMPLETE"},
    ))
    return checkpoint.run(batch_parameters={"dataframe": frame})
