"""``refresh-reports``: rebuild the marts and the report after the warehouse changed — once per burst.

Debouncing is done in the flow, "newer event wins": every ``duikou.warehouse.updated`` event
starts a run (the deployment trigger fires on each one) that carries the event's id and time.
The run waits until ``DUIKOU_REPORT_DEBOUNCE_SECONDS`` have passed since its event, then asks
the Prefect API whether a newer ``duikou.warehouse.updated`` event exists. If one does, that
event's own run will build, and this one ends at once (Completed, "superseded"); if none does,
it builds (tags ``refresh:superseded`` / ``refresh:built`` say which in the UI). Fifteen returns
arriving within the window therefore rebuild once, after the last;
the last load is never left out of the report — which a trigger-level ``within`` window would do
(Prefect's reactive triggers fire on the first event of a window and drop the rest). The server
makes events readable after its event persister's flush interval
(``PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL``, 5 s by default), so the debounce must
be longer than that; the default 30 s is.

In ``duikou serve`` a load inside the window of the last update that process sent is not
announced again (``flows/warehouse_updates.py``): one event and one run per window, not per load.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

from duikou_settings import get_settings
from flows.events import WAREHOUSE_UPDATED
from flows.ops_files import ops_file_url
from flows.release_alerts import restatements_task
from flows.run_ui import tag_current_run
from flows.warehouse_access import open_warehouse
from tasks.report.steps import refresh_marts_task, report_task


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.strip())
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def newer_update_exists(event_id: str, occurred: datetime) -> bool:
    """Whether the API holds a ``duikou.warehouse.updated`` event after (or beside) this one."""
    until = datetime.now(UTC) + timedelta(seconds=5)
    window = EventFilter(event=EventNameFilter(name=[WAREHOUSE_UPDATED]),
                         occurred=EventOccurredFilter(since=occurred, until=until))  # type: ignore[arg-type]
    with get_client(sync_client=True) as client:
        page = client.read_events(filter=window, limit=50)
    return any(str(e.id) != event_id and e.occurred >= occurred for e in page.events)


def superseded_after_debounce(parameters: dict[str, object], stopping: threading.Event | None = None) -> bool:
    """Wait out a ``refresh-reports`` run's debounce (its ``debounce_seconds`` parameter, else
    ``DUIKOU_REPORT_DEBOUNCE_SECONDS``), then whether a newer update supersedes it: the flow's own
    check, and ``duikou serve``'s before it starts a process for the run — such a run ends at once in
    the serve process instead of paying a process's imports (~3.5 s of CPU) to find out. False for a
    manual run (no event) or a stop requested while waiting."""
    event_id, updated_at = str(parameters.get("event_id") or ""), str(parameters.get("updated_at") or "")
    if not updated_at:
        return False
    debounce = parameters.get("debounce_seconds")
    debounce_seconds = get_settings().report_debounce_seconds if debounce is None else float(str(debounce))
    occurred = _parse_time(updated_at)
    remaining = (occurred + timedelta(seconds=debounce_seconds) - datetime.now(UTC)).total_seconds()
    if remaining > 0 and (stopping or threading.Event()).wait(remaining):
        return False  # a stop requested while waiting
    return newer_update_exists(event_id, occurred)


@flow(name="refresh-reports", flow_run_name="refresh reports", log_prints=False)
def refresh_reports(event_id: str = "", updated_at: str = "", debounce_seconds: float | None = None) -> str | None:
    """Refresh the marts, write the report and draft the restatements a correction made necessary
    (``flows/release_alerts.py``); started by ``duikou.warehouse.updated``.

    Without ``updated_at`` (a manual run) it builds at once. Returns the report's path, or None
    when a newer update made this run unnecessary.
    """
    logger = get_run_logger()
    settings = get_settings()
    if superseded_after_debounce({"event_id": event_id, "updated_at": updated_at,
                                  "debounce_seconds": debounce_seconds}):
        logger.info("a newer warehouse update (after %s) will rebuild the report: nothing to do", updated_at)
        tag_current_run("refresh:superseded")
        return None
    engine = open_warehouse(settings)
    rows = refresh_marts_task(engine)
    path: Path = report_task(engine, settings.resolved_data_dir)
    logger.info("marts refreshed (%d rows), report written to %s", rows, path)
    restated = restatements_task(engine, settings.resolved_data_dir / "reports")  # a correction inside a release
    if restated:
        logger.warning("restatements drafted: %s", ", ".join(r["draft_id"] for r in restated))
    tag_current_run("refresh:built")
    create_markdown_artifact(
        key="duikou-report",
        markdown=f"## 报告 report rebuilt\n\n- [{path.name}]({ops_file_url(path, settings) or path.name})\n"
                 f"- mart rows: {rows}\n"
                 f"- after warehouse update at {updated_at or 'manual run'}",
        description="the latest report",
    )
    return str(path)
