"""The nightly's release step: restatements a correction made necessary.

``tasks.releases.restate.find_restatements`` drafts the next version of every published release
whose figures a correction moved; this module logs each and raises one
``duikou.release.restatement_needed`` event per release (the ``duikou: restatement needed``
automation notifies ops). ``restatement_events`` is shared with ``duikou release restate``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.events import Event
from sqlalchemy import Engine

from flows import events
from tasks.releases.restate import RestatementNeeded


def restatement_events(found: list[RestatementNeeded]) -> list[Event]:
    return [events.restatement_needed(
        published_id=r.published_id, draft_id=r.draft_id, kind=r.kind, period=r.period,
        kpi_changes=[{k: c[k] for k in ("name", "period", "old_value", "new_value", "difference", "unit")}
                     for c in r.kpi_changes()],
        changed_figures=len(r.changes),
        corrected_inputs=[{"department": i["department"], "period": i["period"], "old": i["old"], "new": i["new"],
                           "original_name": i["original_name"]} for i in r.corrected_inputs],
    ) for r in found]  # fmt: skip


def summary_of(r: RestatementNeeded) -> dict[str, Any]:
    return {"published_id": r.published_id, "draft_id": r.draft_id, "action": r.action,
            "changed_figures": len(r.changes), "kpis_moved": [c["name"] for c in r.kpi_changes()]}


@task(name="release-restatements", cache_policy=NO_CACHE)
def restatements_task(engine: Engine, reports_dir: Path) -> list[dict[str, Any]]:
    """Draft the restatements a correction made necessary and raise one event per published release."""
    from tasks.releases.restate import find_restatements

    logger = get_run_logger()
    found = find_restatements(engine, reports_dir)
    for item, event in zip(found, restatement_events(found), strict=True):
        logger.warning("restatement needed: %s — %d figure(s) moved (%s); %s %s", item.published_id,
                       len(item.changes), ", ".join(c["name"] for c in item.kpi_changes()) or "township values",
                       item.action, item.draft_id)
        try:
            events.emit_from_run(event)
        except Exception as exc:
            logger.error("restatement event of %s not sent: %s: %s", item.published_id, type(exc).__name__, exc)
    return [summary_of(r) for r in found]
