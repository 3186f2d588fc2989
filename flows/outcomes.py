"""How a submission's outcome shows in Prefect: a named state, one log line per cause, an event.

* **States.** A run whose return was rejected or quarantined ends ``Completed`` named ``Rejected``
  / ``Quarantined`` (:func:`outcome_state`): the run did its job — the form was judged and the
  department has its receipt — so the state type stays COMPLETED and ``Failed`` keeps meaning
  "the system broke, look at it" (the failed-run alert, Prefect's retries); the name tells the
  outcomes apart in the runs list, its state filter and the run page. docs/operations.md has the table.
* **Logs.** :func:`log_causes`: one line per issue cause — code, Chinese message, where it first
  occurs, how often — critical first.
* **Events.** :func:`announce`: ``duikou.submission.quarantined`` / ``.rejected`` with the run's
  page, for the quarantine notice (flows/automations.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.states import Completed, State
from sqlalchemy import Engine, select

from flows import events
from tasks.submission.result import SubmissionResult, issue_causes, problem_of
from warehouse import schema

STATE_NAMES = {"rejected": "Rejected", "quarantined": "Quarantined"}
STATUS_ZH = {"loaded": "已入库", "duplicate": "重复", "rejected": "已退回", "quarantined": "待核",
             "skipped": "跳过", "failed": "出错", "unchanged": "已处理过"}


def outcome_state(result: SubmissionResult) -> State[Any] | SubmissionResult:
    """What the flow returns: a named Completed state for a rejected or quarantined return, else the result."""
    name = STATE_NAMES.get(result.status)
    if name is None:
        return result
    return Completed(name=name, data=result,
                     message=f"{STATUS_ZH[result.status]} {result.status}: {problem_of(result.receipt)}")


def log_causes(logger: logging.Logger | logging.LoggerAdapter[Any], result: SubmissionResult) -> None:
    """One line per issue cause (critical and warning; info stays in the receipt)."""
    for cause in issue_causes(result.receipt):
        if cause["severity"] == "info":
            continue
        level = logging.WARNING if result.status in STATE_NAMES else logging.INFO
        times = f"，共{cause['count']}处 ({cause['count']}×)" if cause["count"] > 1 else ""
        where = f" {cause['where']}" if cause["where"] else ""
        logger.log(level, "%s %s %s: %s%s%s", result.department, result.period, cause["code"], cause["message"],
                   where, times)


def file_line(result: SubmissionResult) -> str:
    """The nightly's line for a file that was not loaded as it came."""
    return (f"{STATUS_ZH.get(result.status, result.status)} {result.status} {result.department} {result.period} "
            f"{result.original_name} ({result.submission_id}): {problem_of(result.receipt)}")


def current_run_url() -> str | None:
    """The page of the flow run this code runs in (PREFECT_UI_URL, or inferred from PREFECT_API_URL)."""
    from prefect.runtime import flow_run
    from prefect.settings import PREFECT_UI_URL

    run_id, base = flow_run.get_id(), PREFECT_UI_URL.value()
    if not run_id or not base:
        return None
    return f"{str(base).rstrip('/')}/runs/flow-run/{run_id}"


def announce(result: SubmissionResult) -> None:
    """Emit ``duikou.submission.quarantined`` / ``.rejected`` from the run (nothing for other outcomes),
    with the run's page and the receipt's address on the intake server (``/ops/files``)."""
    if result.status not in events.OUTCOME_EVENTS:
        return
    from flows.ops_files import ops_file_url

    codes = [c["code"] for c in issue_causes(result.receipt) if c["severity"] == "critical"]
    receipt_url = ops_file_url(result.receipt_path) if result.receipt_path is not None else None
    events.emit_from_run(events.submission_outcome(
        submission_id=result.submission_id, department=result.department, period=result.period,
        original_name=result.original_name, status=result.status, reason=problem_of(result.receipt),
        issue_codes=codes, run_url=current_run_url(), receipt_url=receipt_url))


def refusals_since(engine: Engine, since: datetime) -> list[dict[str, str]]:
    """Every submission rejected or quarantined (and still so) whose processing ended after ``since``,
    with its first critical issue: the daily digest's lines, oldest first."""
    sub, iss = schema.submission, schema.submission_issue
    with engine.connect() as conn:
        rows = conn.execute(
            select(sub.c.submission_id, sub.c.department, sub.c.period, sub.c.original_name, sub.c.status)
            .where(sub.c.status.in_(("rejected", "quarantined")), sub.c.processed_at >= since)
            .order_by(sub.c.processed_at, sub.c.submission_id)
        ).all()
        first: dict[str, str] = {}
        if rows:
            for sid, code, message in conn.execute(
                select(iss.c.submission_id, iss.c.code, iss.c.message_zh)
                .where(iss.c.submission_id.in_([r.submission_id for r in rows]), iss.c.severity == "critical")
                .order_by(iss.c.submission_id, iss.c.seq)
            ):
                first.setdefault(sid, f"{code} {message}")
    return [{"submission_id": r.submission_id, "department": r.department, "period": r.period,
             "original_name": r.original_name, "status": r.status, "reason": first.get(r.submission_id, "")}
            for r in rows]


@task(name="refusals-digest", cache_policy=NO_CACHE)
def refusals_digest_task(engine: Engine) -> int:
    """The nightly's ``duikou.submissions.refused``: what was rejected or quarantined in the last 24 h
    (none: no event). Returns how many."""
    since = datetime.now(UTC) - timedelta(hours=24)
    items = refusals_since(engine, since)
    if items:
        events.emit_from_run(events.submissions_refused(items, since))
    return len(items)
