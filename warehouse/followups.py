"""Follow-ups: the findings the ops team works through (``followup``, ``followup_decision``).

Shared contract between the checks and the follow-up list:

* history-aware and cross-return checks write one ``dq_flag`` row per flagged value; before
  flagging, they ask ``accepted_values`` which values an operator has already accepted, and load
  those unflagged (``dq_flag.accepted`` true) — an acceptance covers the value it was made for
  only, so a changed value is flagged again;
* the follow-up list is kept in step with the flags and the ledger (one row per finding, with a
  stable id from its natural key), and operators accept, dismiss or reopen it, each decision an
  append-only ``followup_decision`` row.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import Connection, and_, func, select

from warehouse import schema

#: (township_code, indicator, check_id)
ValueKey = tuple[str, str, str]


def followup_id(
    kind: str,
    department: str,
    period: str,
    township_code: str | None,
    indicator: str | None,
    check_id: str,
) -> str:
    """Stable id of a finding: ``F`` + 10 hex digits of its natural key's sha256."""
    key = "\x1f".join((kind, department, period, township_code or "", indicator or "", check_id))
    return "F" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:10]


def accepted_values(conn: Connection, department: str, period: str) -> dict[ValueKey, float | None]:
    """Values an operator accepted for this partition: key → the value the acceptance covers.

    Only follow-ups whose status is ``accepted`` count; the covered value is that of the latest
    ``accept`` decision. A check loads a value unflagged when it equals the covered value (both
    null counts as equal).
    """
    f, d = schema.followup, schema.followup_decision
    latest_accept = (
        select(d.c.followup_id, func.max(d.c.seq).label("seq"))
        .where(d.c.decision == "accept")
        .group_by(d.c.followup_id)
        .subquery()
    )
    rows = conn.execute(
        select(f.c.township_code, f.c.indicator, f.c.check_id, d.c.value_at_decision)
        .join(latest_accept, latest_accept.c.followup_id == f.c.followup_id)
        .join(d, and_(d.c.followup_id == latest_accept.c.followup_id, d.c.seq == latest_accept.c.seq))
        .where(
            f.c.department == department,
            f.c.period == period,
            f.c.status == "accepted",
            f.c.kind.in_(("value", "cross")),
        )
    )
    return {(r.township_code, r.indicator, r.check_id): r.value_at_decision for r in rows}
