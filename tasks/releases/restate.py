"""Restatements: a correction landed for a period inside a published release.

``find_restatements`` looks at the latest approved version of every release not yet restated: when
a return it pinned has since been superseded (a department corrected it) — or a return it feeds on
arrived since —, it refreezes the figures with the versions current now and the release's own
frozen KPI definitions (so only the correction moves figures, never a change of 口径), and compares
them with the published ones. When figures moved, it drafts the next version (prepared by the
system account ``duikou``, so every official may sign it) with its 更正说明: each moved figure
(old → new, difference, township) and each corrected return (old and new version, file, received
time, the department's 说明 on the new values when given). An open draft of that next version is
refrozen instead; one being reviewed is left alone (returned first, it is refrozen by the next run).
It returns what it did; the flow raises ``duikou.release.restatement_needed`` for each.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from expectations.declaration import load_declarations
from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.release_values import current_inputs, moved_figures, stored_values
from warehouse.releases import (
    Actor,
    ReleaseError,
    ReleaseRow,
    freeze,
    get_release,
    inputs_of,
    lock_release,
    store_draft,
    versions_of,
)

SYSTEM = Actor("duikou", "duikou（系统）", "preparer")


@dataclass(frozen=True)
class RestatementNeeded:
    """One published release whose figures a correction moves, and the draft that restates it."""

    published_id: str
    draft_id: str
    action: str  # draft | redraft
    kind: str
    period: str
    changes: list[dict[str, Any]]
    corrected_inputs: list[dict[str, Any]]

    def kpi_changes(self) -> list[dict[str, Any]]:
        return [c for c in self.changes if c["value_kind"] == "kpi"]


def _corrected(conn: Any, old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Partitions whose pinned version differs (or that are new), with the new version's ledger facts."""
    before = {(i["department"], i["period"]): i for i in old}
    ex, f = schema.followup_explanation, schema.followup
    out = []
    for i in new:
        key = (i["department"], i["period"])
        previous = before.get(key)
        if previous is not None and previous["submission_id"] == i["submission_id"]:
            continue
        notes = conn.execute(select(ex.c.note).join(f, f.c.followup_id == ex.c.followup_id)
                             .where(f.c.department == i["department"], f.c.period == i["period"],
                                    f.c.submission_id == i["submission_id"]).order_by(ex.c.explained_at)).scalars()
        out.append({"department": i["department"], "period": i["period"],
                    "old": None if previous is None else previous["submission_id"], "new": i["submission_id"],
                    "original_name": i["original_name"], "received_at": i["received_at"],
                    "note": "；".join(notes) or f"部门报送更正文件 {i['original_name']}"})
    return out


def _candidates(conn: Any) -> list[ReleaseRow]:
    """The latest approved version of each (kind, period) not yet restated by an approved one."""
    rel = schema.release
    rows = conn.execute(select(rel.c.kind, rel.c.period).where(rel.c.state == "approved").distinct()).all()
    out = []
    for kind, period in rows:
        approved = [v for v in versions_of(conn, kind, period) if v.state == "approved"]
        if approved and approved[-1].superseded_by is None:
            out.append(approved[-1])
    return sorted(out, key=lambda r: (r.kind, r.period))


def find_restatements(engine: Engine, reports_dir: Path, now: datetime | None = None) -> list[RestatementNeeded]:
    """Draft the restatement of every published release a correction moved; what was drafted."""
    from tasks.releases.release_site import write_release_site

    at = now or datetime.now(UTC)
    departments = list(load_declarations())
    done: list[RestatementNeeded] = []
    with engine.connect() as conn:
        candidates = _candidates(conn)
    for published in candidates:
        with begin_write(engine) as conn:
            lock_release(conn, published.kind, published.period)
            published = get_release(conn, published.release_id)
            pinned = inputs_of(conn, published.release_id)
            current = current_inputs(conn, published.scope, departments)
            corrected = _corrected(conn, pinned, current)
            if not corrected:
                continue
            following = [v for v in versions_of(conn, published.kind, published.period)
                         if v.version > published.version]
            if following and following[-1].state != "draft":
                continue  # in review: the officials return it before it can be refrozen
            frozen = freeze(conn, published.scope, current, published.provenance["kpi_definitions"])
            changes = moved_figures(stored_values(conn, published.release_id), frozen.rows)
            if not changes:
                continue
            provenance = {**published.provenance, "restated_at": at.isoformat()}
            from tasks.releases.provenance import code_version, definition_hashes, missing_returns_in, open_followups

            missing = missing_returns_in(conn, published.scope)
            provenance.update(code=code_version(), definition_hashes=definition_hashes(),
                              missing_returns=missing, open_followups=open_followups(conn))
            restatement = {"supersedes": published.release_id, "changes": changes, "corrected_inputs": corrected}
            try:
                draft_id, action = store_draft(
                    conn, scope=published.scope, frozen=frozen, actor=SYSTEM,
                    note=f"更正：{len(corrected)} 份报表更正，{len(changes)} 个已发布数字变动", at=at,
                    incomplete=bool(missing), provenance=provenance, supersedes=published.release_id,
                    restatement=restatement)
            except ReleaseError:
                continue
        write_release_site(engine, draft_id, reports_dir, values=frozen.values_bytes)
        done.append(RestatementNeeded(published.release_id, draft_id, action, published.kind, published.period,
                                      changes, corrected))
    return done
