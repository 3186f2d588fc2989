"""``nightly``: reconcile the landing area with the ledger, ingest what is new, refresh marts and
the report.

The landing area is ``<landing>/<department>/<period>/<file>``: ``<data>/landing``, and the fsspec
URL ``DUIKOU_LANDING_URL`` (``s3://bucket/duikou/landing``, …) when set (``tasks/landing/store.py``).
Files stay there; the ledger (keyed by department and SHA-256) says which were already processed,
so a second run over the same landing area loads nothing. Every ledger row whose receipt is missing
(a run killed between its commit and its receipt) gets it from :func:`recover_receipts_task`.
Objects of a remote landing area are fetched into ``<data>/staging/`` before they are read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner
from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from expectations.declaration import load_declarations
from expectations.registry_declaration import load_registry_declarations
from flows import progress
from flows.department_ingest import FileOutcome, ingest_files
from flows.department_notices import notify_departments_task
from flows.missing_alerts import alert_missing_returns_task
from flows.outcomes import STATUS_ZH, refusals_digest_task
from flows.pipeline import recover_receipts
from flows.release_alerts import restatements_task
from flows.warehouse_access import open_warehouse
from flows.workpool import WorkPoolRunsFailed, ingest_on_work_pool
from tasks.landing.reconcile import LandingFile, by_department, reconcile_landing, scan_in_place
from tasks.landing.store import LandingStore
from tasks.registry.steps import reconcile_registries_checked_task
from tasks.report.steps import refresh_marts_checked_task, report_task
from tasks.submission.followup_steps import follow_up_task
from tasks.submission.journey import SubmissionError, request_period, upload_limit
from tasks.submission.result import SubmissionResult
from warehouse.refdata import ReferenceFrames, reference_frames


@dataclass
class NightlySummary:
    processed: list[SubmissionResult] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    mart_rows: int = 0
    report_path: str | None = None
    missing: list[dict[str, Any]] = field(default_factory=list)  # returns past their deadline, alerted
    cross_checks: dict[str, int] = field(default_factory=dict)  # warehouse.cross_returns.CrossCheckRun
    receipts_recovered: list[str] = field(default_factory=list)  # ledger rows whose receipt was missing
    followups: dict[str, int] = field(default_factory=dict)  # warehouse.followups.SyncSummary
    #: what the marts left out, each named (a ledger row the calendar cannot place, a KPI): warehouse.marts
    marts_skipped: list[str] = field(default_factory=list)
    #: steps that failed ({step, reason}); every later step still ran: the run ends Failed naming them
    steps_failed: list[dict[str, str]] = field(default_factory=list)
    #: published releases a correction moved, each with the draft that restates it (flows/release_alerts.py)
    restatements: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {"unchanged": self.unchanged, "skipped": len(self.skipped), "failed": len(self.failed)}
        if self.marts_skipped:
            out["marts_skipped"] = len(self.marts_skipped)
        if self.steps_failed:
            out["steps_failed"] = len(self.steps_failed)
        for result in self.processed:
            out[result.status] = out.get(result.status, 0) + 1
        if self.receipts_recovered:
            out["receipts_recovered"] = len(self.receipts_recovered)
        return out


def _departments() -> set[str]:
    return set(load_declarations()) | set(load_registry_declarations())


def period_problem(settings: Settings) -> Callable[[str, str], str | None]:
    """The landing scan's period check: why a ``<department>/<period>/`` folder is not a period
    this door takes (malformed, or outside the plausible window), or None."""
    def problem(department: str, period: str) -> str | None:
        try:
            request_period(department, period, settings)
        except SubmissionError as exc:
            return str(exc)
        return None

    return problem


@task(name="reconcile-landing", cache_policy=NO_CACHE)
def reconcile_task(
    engine: Engine, settings: Settings
) -> tuple[list[LandingFile], int, list[dict[str, str]], list[dict[str, str]]]:
    """(pending, unchanged, skipped, failed) of every landing area: ``tasks.landing.reconcile``, with
    this deployment's departments, upload limits and period window."""
    return reconcile_landing(engine, settings, _departments(), partial(upload_limit, settings=settings),
                             period_problem(settings),
                             get_run_logger())


def scan_landing_area(landing: Path | LandingStore) -> tuple[list[LandingFile], list[dict[str, str]]]:
    """Every candidate file of one local landing area, in arrival order (``tasks.landing.reconcile``)."""
    return scan_in_place(landing, _departments(), period_problem(get_settings()))


@task(name="recover-receipts", cache_policy=NO_CACHE)
def recover_receipts_task(engine: Engine, reference: ReferenceFrames, settings: Settings) -> list[str]:
    """Every ledger row without its receipt — loaded, superseded, rejected or quarantined — gets it,
    re-derived from the kept file (``flows.pipeline.recover_receipt``): the ids written."""
    recovered = recover_receipts(engine, reference, settings)
    if recovered:
        get_run_logger().warning("receipts recovered (their runs died after the commit): %s", ", ".join(recovered))
    return recovered


@task(name="ingest-department", task_run_name="ingest {files[0].department}", cache_policy=NO_CACHE)
def ingest_department_task(
    files: list[LandingFile], reference: ReferenceFrames, settings: Settings
) -> list[FileOutcome]:
    """One department's new files, oldest first; opens its own warehouse engine (a Dask worker may run it)."""
    return ingest_files(files[0].department, [(item.path, item.period) for item in files],
                        engine=open_warehouse(settings), reference=reference, settings=settings)


def _nightly_run_name() -> str:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from prefect.runtime import flow_run

    label = flow_run.parameters.get("run_label") or ""
    stamp = datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
    return f"nightly {stamp}" + (f" ({label})" if label else "")


#: bounded (Prefect's default pool is unbounded); `duikou nightly` applies DUIKOU_TASK_RUNNER (flows/runners.py)
_DEFAULT_RUNNER: Any = ThreadPoolTaskRunner(max_workers=2)


@flow(name="nightly", flow_run_name=_nightly_run_name, task_runner=_DEFAULT_RUNNER)
def nightly(run_label: str = "", build_report: bool = True) -> NightlySummary:
    """Reconcile → ingest pending → cross-return checks → follow-ups → refresh marts (KPIs,
    completeness) → alert missing returns → report. ``run_label`` only names the run."""
    logger = get_run_logger()
    settings = get_settings()
    engine = open_warehouse(settings)
    reference = reference_frames()
    summary = NightlySummary()
    step = _StepRunner(summary, logger)
    reconciled = step("reconcile-landing", lambda: reconcile_task(engine, settings))
    pending: list[LandingFile] = []
    if reconciled is not None:
        pending, summary.unchanged, summary.skipped, summary.failed = reconciled
    logger.info("landing area: %d new, %d already in the ledger, %d skipped", len(pending), summary.unchanged,
                len(summary.skipped))
    progress.files_found(len(pending))
    for item in summary.skipped:  # each named, with why (the landing scan's own skips)
        logger.warning("跳过 skipped %s: %s", item["path"], item["reason"])
    # fan out per department through the flow's task runner (flows/runners.py), or as flow runs on a
    # work pool (flows/workpool.py); in arrival order within one department
    groups = by_department(pending)
    problems: list[str] = []  # work-pool runs that did not complete: raised once the rest is done
    outcomes: list[list[FileOutcome]] = []
    if settings.task_runner == "workpool":
        ran = step("ingest-on-work-pool", lambda: ingest_on_work_pool(groups, settings))
        if ran is not None:
            outcomes, problems = ran
        for problem in problems:
            logger.error("work pool: %s", problem)
    else:
        futures = [ingest_department_task.submit(files, reference, settings) for files in groups]
        for files, future in zip(groups, futures, strict=True):
            try:  # files are isolated inside the task; this is the task itself failing (its engine, …)
                outcomes.append(future.result())
            except Exception as exc:
                logger.error("ingest %s failed: %s", files[0].department, exc)
                summary.failed.extend({"path": str(item.path), "reason": f"ingest {item.department}: "
                                       f"{type(exc).__name__}: {exc}"} for item in files)
    for group in outcomes:
        for outcome in group:
            if outcome.result is not None:
                summary.processed.append(outcome.result)
            elif outcome.kind == "skipped":
                summary.skipped.append({"path": outcome.path, "reason": outcome.reason})
            else:
                logger.error("processing %s failed: %s", outcome.path, outcome.reason)
                summary.failed.append({"path": outcome.path, "reason": outcome.reason})
    # every later step runs even when an earlier one failed: the run ends Failed naming each failure
    summary.receipts_recovered = step("recover-receipts",
                                      lambda: recover_receipts_task(engine, reference, settings)) or []
    followed = step("cross-checks-and-follow-ups", lambda: follow_up_task(engine, None))
    if followed is not None:  # every cross-return check, then the follow-up list
        summary.cross_checks, summary.followups = followed.cross_checks.to_dict(), followed.followups.to_dict()
        logger.info("cross-return checks: %s; follow-ups: %s", summary.cross_checks, summary.followups)
    refreshed = step("refresh-marts", lambda: refresh_marts_checked_task(engine))  # KPIs, completeness
    if refreshed is not None:
        summary.mart_rows, summary.marts_skipped = refreshed.rows, list(refreshed.skipped)
    registries = step("reconcile-registries", lambda: reconcile_registries_checked_task(engine))
    if registries is not None:  # registry counts vs returns that arrived since
        summary.mart_rows += registries[0]
        summary.marts_skipped += registries[1]
    summary.missing = step("alert-missing-returns", lambda: alert_missing_returns_task(engine)) or []
    step("notify-departments", lambda: notify_departments_task(engine, settings, summary.processed))
    step("refusals-digest", lambda: refusals_digest_task(engine))
    reports_dir = settings.resolved_data_dir / "reports"
    summary.restatements = step("release-restatements", lambda: restatements_task(engine, reports_dir)) or []
    if build_report:
        built = step("build-report", lambda: report_task(engine, settings.resolved_data_dir))
        summary.report_path = str(built) if built is not None else None
    _publish_artifact(summary)
    logger.info("nightly done: %s", summary.counts())
    if problems:  # the departments that did load were checked, followed up, reported; these were not
        raise WorkPoolRunsFailed("; ".join(problems + _step_texts(summary)))
    if summary.failed or summary.steps_failed:
        raise NightlyIncomplete(summary)
    return summary


_T = TypeVar("_T")


class _StepRunner:
    """Runs one nightly step; a step that raises is logged and recorded in ``steps_failed`` (None
    returned) so that every later step still runs."""

    def __init__(self, summary: NightlySummary, logger: Any) -> None:
        self._summary, self._logger = summary, logger

    def __call__(self, name: str, run: Callable[[], _T]) -> _T | None:
        try:
            return run()
        except Exception as exc:
            self._logger.error("nightly step %s failed: %s: %s", name, type(exc).__name__, exc)
            self._summary.steps_failed.append({"step": name, "reason": f"{type(exc).__name__}: {exc}"})
            return None


def _step_texts(summary: NightlySummary) -> list[str]:
    return [f"step {f['step']} failed: {f['reason']}" for f in summary.steps_failed]


class NightlyIncomplete(RuntimeError):
    """Some submissions or steps failed with an unexpected error; the rest were processed, and every
    step after a failed one still ran (``summary`` says what each did)."""

    def __init__(self, summary: NightlySummary) -> None:
        parts: list[str] = []
        if summary.failed:
            listed = "; ".join(f"{f['path']}: {f['reason']}" for f in summary.failed)
            parts.append(f"{len(summary.failed)} submission(s) failed unexpectedly: {listed}")
        if summary.steps_failed:
            parts.append(f"{len(summary.steps_failed)} step(s) failed (the later steps ran): "
                         + "; ".join(_step_texts(summary)))
        super().__init__(" — ".join(parts))
        self.summary = summary


#: the artifact's order: what needs a person first
_PROBLEM_RANK = {"failed": 0, "step failed": 0, "quarantined": 1, "rejected": 2, "skipped": 3, "marts skipped": 4,
                 "duplicate": 5, "loaded": 6}


def artifact_rows(summary: NightlySummary) -> list[dict[str, Any]]:
    """The nightly artifact's table: one row per file (and per step or mart row that did not go
    through), problems first — failed, quarantined, rejected, skipped — each with why; then the loads."""
    from tasks.submission.result import problem_of

    rows: list[dict[str, Any]] = [
        {
            "状态 status": f"{STATUS_ZH.get(r.status, r.status)} {r.status}",
            "部门 department": r.department,
            "报告期 period": r.period,
            "文件 file": r.original_name,
            "原因 reason": "" if r.status in ("loaded", "duplicate") else problem_of(r.receipt),
            "严重 critical": r.receipt["counts"]["issues"]["critical"] if "counts" in r.receipt else 0,
            "警告 warnings": r.receipt["counts"]["issues"]["warning"] if "counts" in r.receipt else 0,
            "submission_id": r.submission_id,
            "_rank": _PROBLEM_RANK.get(r.status, 9),
        }
        for r in summary.processed
    ]
    # what did not go through, each named: a file skipped or failed, a row the marts left out, a failed step
    named = [*(("skipped", s["path"], s["reason"]) for s in summary.skipped),
             *(("failed", f["path"], f["reason"]) for f in summary.failed),
             *(("marts skipped", "", text) for text in summary.marts_skipped),
             *(("step failed", f["step"], f["reason"]) for f in summary.steps_failed)]
    for status, where, reason in named:
        department, period = _landing_partition(where)
        rows.append({"状态 status": f"{STATUS_ZH.get(status, '')} {status}".strip(), "部门 department": department,
                     "报告期 period": period, "文件 file": Path(where).name if where else "", "原因 reason": reason,
                     "严重 critical": 0, "警告 warnings": 0, "submission_id": "", "_rank": _PROBLEM_RANK[status]})
    rows.sort(key=lambda r: (r["_rank"], r["部门 department"], r["报告期 period"], r["文件 file"]))
    return [{k: v for k, v in row.items() if k != "_rank"} for row in rows]


def _landing_partition(where: str) -> tuple[str, str]:
    """(department, period) of a landing path ``…/<department>/<period>/<file>``, else blanks."""
    parts = Path(where).parts
    if len(parts) >= 3 and parts[-3] in _departments():
        return parts[-3], parts[-2]
    return "", ""


def _publish_artifact(summary: NightlySummary) -> None:
    counts = summary.counts()
    problems = sum(counts.get(k, 0) for k in ("failed", "quarantined", "rejected", "skipped", "steps_failed"))
    told = "，".join(f"{STATUS_ZH.get(k, k)} {k} {v}" for k, v in counts.items() if v)
    create_table_artifact(
        key="nightly-submissions", table=artifact_rows(summary) or [{"状态 status": "没有新文件 nothing new"}],
        description=(f"夜间运行 nightly: {problems} 个问题在前 (problems first)；{told}" if problems
                     else f"夜间运行 nightly: 没有问题 (no problems)；{told}"))
