"""What the Data Docs of a form and of a registry submission share (``duikou dq docs ID``).

The ledger row the docs are for, where they go, the result and error types, and the GX checkpoint
that writes a Data Docs site. The form docs (``tasks.submission.dq_docs``) and the registry docs
(``tasks.registry.dq_docs``) both import this module and never each other: the caller
(``flows/cli.py``'s ``dq docs``) chooses between them by the submission's department.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from warehouse.ledger import ledger_row as read_ledger_row

SITE_NAME = "duikou"


class DqDocsError(ValueError):
    """The submission cannot be documented: unknown id, no kept file, unreadable file."""


@dataclass(frozen=True)
class DataDocs:
    submission_id: str
    index_html: Path
    checks: int
    success: bool


def ledger_row(engine: Engine, submission_id: str) -> Any:
    """The submission's ledger row (``warehouse.ledger.ledger_row``), read as ``row.department``,
    ``row.archive_path`` …; :class:`DqDocsError` for an unknown id."""
    row = read_ledger_row(engine, submission_id)
    if row is None:
        raise DqDocsError(f"no submission {submission_id!r} in the ledger (ids are 16 hex digits, see receipts)")
    return SimpleNamespace(**row)


def docs_dir(settings: Settings, submission_id: str, out_dir: Path | None = None) -> Path:
    """Where the submission's docs go: ``out_dir``, else ``<reports>/dq-docs/<id>``."""
    return (out_dir or settings.reports_dir / "dq-docs" / submission_id).resolve()


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
