"""One department's landing files through the pipeline, oldest first: the per-file loop that the
thread path's ``ingest-department`` task (``flows/nightly.py``) and the work pool's
``ingest-department`` flow (``flows/workpool.py``) both run.

The files' steps run as plain calls inside the caller's run (``tasks.submission.steps.inline_steps``:
no task run per step — that cost as much as the work itself — the same retries on transient I/O).
Per file: a malformed period folder is *skipped*, an unexpected error *failed*, and the next file
goes on; what became of each file is a :class:`FileOutcome`. A file not loaded as it came —
rejected, quarantined, skipped, failed — gets one warning line in the run's log naming the file
and why; a rejected or quarantined one also its event (``flows/outcomes.py``). Progress goes to
``flows/progress.py`` (``duikou nightly`` on a terminal).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger
from sqlalchemy import Engine

from duikou_settings import Settings
from flows import progress
from flows.outcomes import STATUS_ZH, announce, file_line
from flows.pipeline import process_submission
from tasks.submission.journey import SubmissionError
from tasks.submission.result import SubmissionResult
from tasks.submission.steps import inline_steps
from warehouse.refdata import ReferenceFrames


@dataclass(frozen=True)
class FileOutcome:
    path: str
    kind: str  # processed / skipped / failed
    result: SubmissionResult | None = None
    reason: str = ""


def ingest_files(department: str, files: Sequence[tuple[Path, str]], *, engine: Engine,
                 reference: ReferenceFrames, settings: Settings) -> list[FileOutcome]:
    """``files``: (path, period) of one department's files in arrival order; one outcome per file, in order."""
    out: list[FileOutcome] = []
    logger = get_run_logger()
    with inline_steps():  # the files' steps as plain calls in this run: no task run per step
        for path, period in files:
            out.append(_ingest_file(department, path, period, engine=engine, reference=reference,
                                    settings=settings, logger=logger))
    return out


def _ingest_file(department: str, path: Path, period: str, *, engine: Engine, reference: ReferenceFrames,
                 settings: Settings, logger: Any) -> FileOutcome:
    try:
        result = process_submission(path, department, period, engine=engine, reference=reference,
                                    settings=settings, follow_up=False)
    except SubmissionError as exc:  # a malformed period folder: say so, keep going
        logger.warning("%s skipped %s %s %s: %s", STATUS_ZH["skipped"], department, period, path.name, exc)
        progress.file_done(department, path.name, "skipped")
        return FileOutcome(str(path), "skipped", reason=str(exc))
    except Exception as exc:  # one broken submission must not stop the others
        logger.exception("%s failed %s %s %s", STATUS_ZH["failed"], department, period, path.name)
        progress.file_done(department, path.name, "failed")
        return FileOutcome(str(path), "failed", reason=f"{type(exc).__name__}: {exc}")
    if result.status in ("rejected", "quarantined"):
        logger.warning("%s", file_line(result))  # one line per file not loaded, with why
        announce(result)
    progress.file_done(department, result.original_name, result.status)
    return FileOutcome(str(path), "processed", result=result)
