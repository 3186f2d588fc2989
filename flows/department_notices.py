"""Notices to a department's own channel: a return falls due soon, or one was refused or quarantined.

Each department's notices go through its own Prefect notification block
(``DUIKOU_DEPARTMENT_NOTIFY_BLOCKS``: ``education=custom-webhook/edu-chat,…``; a WeCom or DingTalk
group robot is a custom webhook). A department without a block gets no notices and nothing is
asked of the Prefect server. What to say is ``tasks/portal/reminders.py``; this module sends it:

* the nightly run's ``notify-departments`` step sends the due reminders of the day
  (``DUIKOU_REMIND_DAYS_BEFORE`` days before each due day, default 3 and 1) and the outcome notice
  of every return it refused or quarantined;
* ``ingest-submission`` sends the outcome notice of its own return (a return uploaded through the
  portal or the API is answered within the minute).

A notice that cannot be sent is logged and never fails the run that decided the outcome.
"""

from __future__ import annotations

import inspect
import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any

from prefect import task
from prefect.blocks.abstract import NotificationBlock
from prefect.blocks.core import Block
from prefect.cache_policies import NO_CACHE
from prefect.utilities.asyncutils import run_coro_as_sync
from sqlalchemy import Engine, select

from duikou_settings import Settings
from expectations.declaration import load_declarations
from tasks.portal.reminders import Notice, due_reminders, outcome_notice, parse_days
from tasks.submission.result import SubmissionResult
from warehouse import schema

log = logging.getLogger("duikou.notices")
COUNTY_TIME = timezone(timedelta(hours=8))


def send_notice(notice: Notice, slug: str) -> None:
    """Send ``notice`` through the notification block ``slug`` (``<block type>/<name>``)."""
    block: Any = Block.load(slug)
    if not isinstance(block, NotificationBlock):
        raise TypeError(f"block {slug!r} is a {type(block).__name__}, not a notification block")
    sent = block.notify(body=notice.body, subject=notice.subject)  # sync here: async_dispatch runs it
    if inspect.iscoroutine(sent):  # a block type whose notify is only async
        run_coro_as_sync(sent)


def deliver(notices: list[Notice], settings: Settings) -> list[dict[str, str]]:
    """Send each notice through its department's block; one that fails is logged and reported, not raised."""
    blocks = settings.department_blocks()
    out = []
    for notice in notices:
        slug = blocks.get(notice.department)
        if slug is None:
            continue
        try:
            send_notice(notice, slug)
        except Exception as exc:  # the department's chat being down must not fail a load
            log.error("notice to %s through %s not sent: %s: %s", notice.department, slug, type(exc).__name__, exc)
            out.append({"department": notice.department, "kind": notice.kind, "sent": "no",
                        "reason": f"{type(exc).__name__}: {exc}"})
            continue
        out.append({"department": notice.department, "kind": notice.kind, "sent": "yes", "subject": notice.subject})
    return out


def receipt_url(settings: Settings, submission_id: str) -> str:
    return f"{settings.resolved_portal_url}/submissions/{submission_id}"


def result_notices(results: list[SubmissionResult], settings: Settings) -> list[Notice]:
    declarations = load_declarations()
    out = []
    for result in results:
        decl = declarations.get(result.department)
        title = decl.title_zh if decl is not None else result.department
        found = outcome_notice(result.department, title, result.period, result.original_name, result.status,
                               list(result.receipt.get("issues") or []), receipt_url(settings, result.submission_id))
        if found is not None:
            out.append(found)
    return out


def notify_outcome(result: SubmissionResult, settings: Settings) -> list[dict[str, str]]:
    """The outcome notice of one processed return (refused or quarantined only), if its department has a block."""
    if result.department not in settings.department_blocks():
        return []
    return deliver(result_notices([result], settings), settings)


def county_today(settings: Settings) -> date:
    """The day the calendar is read at: ``DUIKOU_AS_OF`` (as completeness is judged), else today in county time."""
    return settings.as_of if settings.as_of is not None else datetime.now(COUNTY_TIME).date()


def due_notices(engine: Engine, settings: Settings, today: date) -> list[Notice]:
    """Today's due reminders for the departments that have a block (the ledger says what was received)."""
    blocks = settings.department_blocks()
    declarations = {d: decl for d, decl in load_declarations().items() if d in blocks}
    if not declarations:
        return []
    sub = schema.submission
    received: dict[str, set[str]] = {}
    with engine.connect() as conn:
        for row in conn.execute(select(sub.c.department, sub.c.period).where(sub.c.department.in_(declarations))):
            received.setdefault(row.department, set()).add(row.period)
    return due_reminders(declarations, received, today, parse_days(settings.remind_days_before),
                         settings.resolved_portal_url)


@task(name="notify-departments", cache_policy=NO_CACHE)
def notify_departments_task(engine: Engine, settings: Settings, processed: list[SubmissionResult],
                            today: date | None = None) -> list[dict[str, Any]]:
    """The nightly's step: today's due reminders and the outcome notices of what it processed."""
    if not settings.department_blocks():
        return []
    notices = due_notices(engine, settings, today or county_today(settings)) + result_notices(processed, settings)
    return list(deliver(notices, settings))
