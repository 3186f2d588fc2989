"""The events duikou emits, built in one place so emitters and triggers agree on their shape.

| event | resource | emitted by | starts |
|---|---|---|---|
| ``duikou.submission.received`` | ``duikou.submission.<id>`` | intake, ``duikou submit`` | ``ingest-submission`` |
| ``duikou.submission.started`` | ``duikou.submission.<id>`` | intake (``duikou serve`` started it) | nothing |
| ``duikou.warehouse.updated`` | ``duikou.warehouse`` | ``ingest-submission`` after a load | ``refresh-reports`` |
| ``duikou.returns.missing`` | ``duikou.returns.<department>`` | ``nightly`` | a notification |
| ``duikou.submission.quarantined`` | ``duikou.submission.<id>`` | ingest, ``nightly`` | the quarantine notice |
| ``duikou.submission.rejected`` | ``duikou.submission.<id>`` | ingest, ``nightly`` | (counted in the digest) |
| ``duikou.submissions.refused`` | ``duikou.submissions`` | ``nightly``, when any in 24 h | the daily digest |

The outcome events carry the run's page (``run_url``, from ``PREFECT_UI_URL`` or inferred from
``PREFECT_API_URL``) in their payload: the notification's link is made where the run is known,
not by the server's ``ui_url`` filter, which says ``None`` unless the server has ``PREFECT_UI_URL``.
| ``duikou.release.restatement_needed`` | ``duikou.release.<id>`` | ``nightly``, ``release restate`` | a notification |

``submission_received`` carries everything the ingest flow needs as its parameters (path,
department, period, original name), so the deployment trigger maps the payload onto parameters
and nothing has to be looked up. An upload whose run the running ``duikou serve`` started at the
intake's request is announced as ``duikou.submission.started`` instead (same resource and payload,
the run a related resource), which no trigger starts anything for.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime

from prefect.events import Event, RelatedResource, Resource

SUBMISSION_RECEIVED = "duikou.submission.received"
SUBMISSION_STARTED = "duikou.submission.started"
WAREHOUSE_UPDATED = "duikou.warehouse.updated"
RETURNS_MISSING = "duikou.returns.missing"
RESTATEMENT_NEEDED = "duikou.release.restatement_needed"
WAREHOUSE_RESOURCE = "duikou.warehouse"
SUBMISSION_QUARANTINED = "duikou.submission.quarantined"
SUBMISSION_REJECTED = "duikou.submission.rejected"
SUBMISSIONS_REFUSED = "duikou.submissions.refused"
OUTCOME_EVENTS = {"quarantined": SUBMISSION_QUARANTINED, "rejected": SUBMISSION_REJECTED}


def submission_received(*, submission_id: str, path: str, department: str, period: str, original_name: str,
                        via: str, run_id: str | None = None) -> Event:
    """The event of a landed file; ``via`` is ``intake``, ``portal`` or ``cli``. Without ``run_id``
    it is ``duikou.submission.received``, which starts an ``ingest-submission`` run (the deployment's
    trigger); with it, ``duikou.submission.started``: the run ``duikou serve`` already started for
    the file (``flows/handoff.py``), named as a related resource — no trigger listens to it."""
    related = [RelatedResource({"prefect.resource.id": f"prefect.flow-run.{run_id}",
                                "prefect.resource.role": "flow-run"})] if run_id else []
    return Event(
        event=SUBMISSION_STARTED if run_id else SUBMISSION_RECEIVED,
        resource=Resource({
            "prefect.resource.id": f"duikou.submission.{submission_id}",
            "prefect.resource.name": original_name,
            "duikou.department": department,
            "duikou.period": period,
        }),
        related=related,
        payload={"submission_id": submission_id, "path": path, "department": department, "period": period,
                 "original_name": original_name, "via": via, "flow_run_id": run_id or ""},
    )


def warehouse_updated(*, submission_id: str, department: str, period: str, status: str) -> Event:
    return Event(
        event=WAREHOUSE_UPDATED,
        resource=Resource({"prefect.resource.id": WAREHOUSE_RESOURCE, "prefect.resource.name": "duikou warehouse"}),
        related=[RelatedResource({"prefect.resource.id": f"duikou.submission.{submission_id}",
                                  "prefect.resource.role": "submission"})],
        payload={"submission_id": submission_id, "department": department, "period": period, "status": status},
    )


def submission_outcome(*, submission_id: str, department: str, period: str, original_name: str, status: str,
                       reason: str, issue_codes: list[str], run_url: str | None, receipt_url: str | None) -> Event:
    """A submission that needs a person (quarantined) or went back to its department (rejected)."""
    return Event(
        event=OUTCOME_EVENTS[status],
        resource=Resource({
            "prefect.resource.id": f"duikou.submission.{submission_id}",
            "prefect.resource.name": original_name,
            "duikou.department": department,
            "duikou.period": period,
        }),
        payload={"submission_id": submission_id, "department": department, "period": period,
                 "original_name": original_name, "status": status, "reason": reason, "issue_codes": issue_codes,
                 "run_url": run_url or "", "receipt_url": receipt_url or ""},
    )


def submissions_refused(items: list[dict[str, str]], since: datetime) -> Event:
    """The nightly's digest: every submission rejected or quarantined since ``since`` (one line each)."""
    lines = [f"{i['status']} {i['department']} {i['period']} {i['original_name']} ({i['submission_id']}): {i['reason']}"
             for i in items]
    return Event(
        event=SUBMISSIONS_REFUSED,
        resource=Resource({"prefect.resource.id": "duikou.submissions", "prefect.resource.name": "duikou submissions"}),
        payload={"count": len(items), "since": since.isoformat(), "items": items, "text": "\n".join(lines),
                 "quarantined": sum(1 for i in items if i["status"] == "quarantined"),
                 "rejected": sum(1 for i in items if i["status"] == "rejected")},
    )


def returns_missing(*, department: str, title_zh: str, periods: list[str], oldest_due: date) -> Event:
    """One event per department and night, listing every period past its deadline (oldest first):
    a department that stopped reporting a year ago raises one notification, not twelve."""
    return Event(
        event=RETURNS_MISSING,
        resource=Resource({
            "prefect.resource.id": f"duikou.returns.{department}",
            "prefect.resource.name": title_zh,
            "duikou.department": department,
        }),
        payload={"department": department, "title_zh": title_zh, "periods": periods, "count": len(periods),
                 "oldest_due_date": oldest_due.isoformat(), "latest_period": periods[-1],
                 "detected_at": datetime.now(UTC).isoformat()},
    )


def restatement_needed(*, published_id: str, draft_id: str, kind: str, period: str,
                       kpi_changes: list[dict[str, object]],
                       changed_figures: int, corrected_inputs: list[dict[str, object]]) -> Event:
    """A correction moved figures of a published release; ``draft_id`` restates it (to be signed off)."""
    return Event(
        event=RESTATEMENT_NEEDED,
        resource=Resource({"prefect.resource.id": f"duikou.release.{published_id}",
                           "prefect.resource.name": published_id, "duikou.release.kind": kind,
                           "duikou.release.period": period}),
        related=[RelatedResource({"prefect.resource.id": f"duikou.release.{draft_id}",
                                  "prefect.resource.role": "restatement-draft"})],
        payload={"published_id": published_id, "draft_id": draft_id, "kind": kind, "period": period,
                 "kpi_changes": kpi_changes, "changed_figures": changed_figures,
                 "corrected_inputs": corrected_inputs, "detected_at": datetime.now(UTC).isoformat()},
    )


async def aemit(*to_send: Event, api_url: str | None = None) -> None:
    """Send events over one connection and wait until the server has them (no background worker
    left to flush). ``api_url``: this server instead of the one in Prefect's settings."""
    from prefect.events.clients import EventsClient, PrefectEventsClient, get_events_client

    client: EventsClient = (PrefectEventsClient(api_url=api_url, checkpoint_every=1) if api_url
                            else get_events_client(checkpoint_every=1))
    async with client:
        for event in to_send:
            await client.emit(event)


def emit(*to_send: Event) -> None:
    """:func:`aemit` from synchronous code that has no running event loop (the CLI)."""
    asyncio.run(aemit(*to_send))


def emit_from_run(event: Event) -> None:
    """Inside a flow run: hand the event to Prefect's events worker, which sends it in the background."""
    from prefect.events import emit_event

    emit_event(event=event.event, resource=dict(event.resource.items()),
               related=[dict(r.items()) for r in event.related], payload=event.payload, id=event.id,
               occurred=event.occurred)
