"""Follow-ups: the findings the ops team works through (``followup``, ``followup_decision``).

Shared contract between the checks and the follow-up list:

* history-aware and cross-return checks write one ``dq_flag`` row per flagged value; before
  flagging, they ask ``accepted_values`` which values an operator has already accepted, and load
  those unflagged (``dq_flag.accepted`` true) — an acceptance covers the value it was made for
  only, so a changed value is flagged again;
* the follow-up list is kept in step with the flags and the ledger (one row per finding, with a
  stable id from its natural key), and operators accept, dismiss or reopen it, each decision an
  append-only ``followup_decision`` row.

What the decisions mean (kinds ``value`` and ``cross``):

* **accept** — "the value is right as reported": the operator vouches for *this* value. In one
  transaction the current version's ``dq_flag`` row becomes ``accepted``, the fact is unflagged
  (unless another, unaccepted check still flags it), the follow-up is closed ``accepted``, and
  every later run of the checks loads the same value unflagged (``accepted_values``). A new
  version with a *different* value is flagged again and the follow-up reopens on its own (a
  ``reopen`` decision by ``duikou``).
* **dismiss** — "not worth pursuing" (known noise, nothing the department can do): the finding
  leaves the open list and stays dismissed across re-runs, whatever the value, but the value is
  *not* vouched for: it stays flagged in the facts and ``dq_flag.accepted`` stays false.

Both need a note and are audited (who, when, why, the value decided on). A decision on a
resolved finding (it disappeared, e.g. a corrected version) is refused. Kind ``submission`` (a
quarantined file) is decided with ``duikou quarantine release|reject``; its follow-up closes as
``resolved`` when the file is released, rejected or superseded by a loaded version.

``sync_followups`` keeps the list in step with the warehouse (after every ingest and in the
nightly): new findings open; findings no longer present become ``resolved``; an accepted one
stays accepted while its value is the same and reopens when it changes; a dismissed one stays
dismissed; a resolved one that comes back opens again (``opened_at`` restarts).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, and_, func, insert, select, update

from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.engine import advisory_lock

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


# ---------------------------------------------------------------- findings and sync

FollowupDecisionKind = Literal["accept", "dismiss"]
SYSTEM_USER = "duikou"
QUARANTINE_CHECK_PREFIX = "quarantined__"
CROSS_CHECK_PREFIX = "cross__"
MIN_ID_PREFIX = 5


class FollowupError(ValueError):
    """A decision cannot be taken: unknown or ambiguous id, wrong kind or state, no note."""


@dataclass(frozen=True)
class Finding:
    """One thing to follow up as the warehouse shows it now."""

    kind: str
    department: str
    period: str
    township_code: str | None
    indicator: str | None
    check_id: str
    submission_id: str
    severity: str
    value: float | None
    reason_zh: str

    @property
    def followup_id(self) -> str:
        return followup_id(self.kind, self.department, self.period, self.township_code, self.indicator,
                           self.check_id)


@dataclass(frozen=True)
class SyncSummary:
    opened: int
    reopened: int
    resolved: int
    unchanged: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def same_value(a: float | None, b: float | None) -> bool:
    """Both blank, or equal up to float noise."""
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


def value_findings(conn: Connection) -> list[Finding]:
    """Every ``dq_flag`` row of a current (loaded) version, severities warning and critical."""
    flag, sub = schema.dq_flag, schema.submission
    rows = conn.execute(
        select(flag, sub.c.department, sub.c.period)
        .join(sub, sub.c.submission_id == flag.c.submission_id)
        .where(sub.c.status == "loaded", flag.c.severity != "info")
    ).mappings()
    return [
        Finding(
            kind="cross" if r["check_id"].startswith(CROSS_CHECK_PREFIX) else "value",
            department=r["department"], period=r["period"], township_code=r["township_code"],
            indicator=r["indicator"], check_id=r["check_id"], submission_id=r["submission_id"],
            severity=r["severity"], value=_as_float(r["value"]), reason_zh=r["reason_zh"],
        )
        for r in rows
    ]


def quarantine_findings(conn: Connection) -> list[Finding]:
    """Quarantined submissions not superseded by a version loaded from a file received later."""
    sub, issue = schema.submission, schema.submission_issue
    current = {
        (r.department, r.period): r.received_at
        for r in conn.execute(select(sub.c.department, sub.c.period, sub.c.received_at)
                              .where(sub.c.status == "loaded"))
    }
    out: list[Finding] = []
    waiting = conn.execute(select(sub.c.submission_id, sub.c.department, sub.c.period, sub.c.received_at,
                                  sub.c.original_name).where(sub.c.status == "quarantined")).all()
    for row in waiting:
        loaded_at = current.get((row.department, row.period))
        if loaded_at is not None and loaded_at >= row.received_at:
            continue
        first = conn.execute(
            select(issue.c.message_zh).where(issue.c.submission_id == row.submission_id,
                                             issue.c.severity == "critical").order_by(issue.c.seq).limit(1)
        ).scalar_one_or_none()
        out.append(Finding(
            kind="submission", department=row.department, period=row.period, township_code=None,
            indicator=None, check_id=f"{QUARANTINE_CHECK_PREFIX}{row.submission_id}",
            submission_id=row.submission_id, severity="critical", value=None,
            reason_zh=f"{row.original_name} 暂存待核" + (f": {first}" if first else ""),
        ))
    return out


def _latest_accepted_value(conn: Connection, fid: str) -> float | None:
    d = schema.followup_decision
    value = conn.execute(
        select(d.c.value_at_decision).where(d.c.followup_id == fid, d.c.decision == "accept")
        .order_by(d.c.seq.desc()).limit(1)
    ).scalar_one_or_none()
    return _as_float(value)


def _append_decision(conn: Connection, fid: str, decision: str, by: str, note: str, value: float | None,
                     at: datetime) -> int:
    d = schema.followup_decision
    seq = int(conn.execute(select(func.coalesce(func.max(d.c.seq), 0)).where(d.c.followup_id == fid))
              .scalar_one()) + 1
    conn.execute(insert(d).values(followup_id=fid, seq=seq, decision=decision, decided_by=by,
                                  decided_at=at, note=note, value_at_decision=value))
    return seq


def _fmt(value: float | None) -> str:
    return "空" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")


def sync_followups(engine: Engine, now: datetime | None = None) -> SyncSummary:
    """Bring ``followup`` in step with the current flags and the ledger (one transaction)."""
    at = now or datetime.now(UTC)
    f = schema.followup
    opened = reopened = resolved = unchanged = 0
    with begin_write(engine) as conn:
        advisory_lock(conn, "followup")
        findings = {x.followup_id: x for x in (*value_findings(conn), *quarantine_findings(conn))}
        existing = {r.followup_id: r for r in conn.execute(select(f)).all()}
        for fid, found in findings.items():
            seen = {"submission_id": found.submission_id, "severity": found.severity, "value": found.value,
                    "reason_zh": found.reason_zh, "last_seen_at": at}
            row = existing.get(fid)
            if row is None:
                conn.execute(insert(f).values(
                    followup_id=fid, kind=found.kind, department=found.department, period=found.period,
                    township_code=found.township_code, indicator=found.indicator, check_id=found.check_id,
                    status="open", opened_at=at, closed_at=None, **seen))
                opened += 1
            elif row.status == "resolved":  # it came back
                conn.execute(update(f).where(f.c.followup_id == fid)
                             .values(status="open", opened_at=at, closed_at=None, **seen))
                reopened += 1
            elif row.status == "accepted" and not same_value(_latest_accepted_value(conn, fid), found.value):
                _append_decision(conn, fid, "reopen", SYSTEM_USER,
                                 f"值已变化: 接受时为{_fmt(_latest_accepted_value(conn, fid))}，"
                                 f"现为{_fmt(found.value)} (value changed since it was accepted)",
                                 found.value, at)
                conn.execute(update(f).where(f.c.followup_id == fid)
                             .values(status="open", closed_at=None, **seen))
                reopened += 1
            else:  # open stays open, accepted (same value) stays accepted, dismissed stays dismissed
                conn.execute(update(f).where(f.c.followup_id == fid).values(**seen))
                unchanged += 1
        gone = [fid for fid, row in existing.items() if fid not in findings and row.status != "resolved"]
        if gone:
            conn.execute(update(f).where(f.c.followup_id.in_(gone)).values(status="resolved", closed_at=at))
            resolved = len(gone)
    return SyncSummary(opened, reopened, resolved, unchanged)


# ---------------------------------------------------------------- flags on facts


def refresh_fact_flags(conn: Connection, submission_id: str, keys: Iterable[tuple[str, str]]) -> None:
    """Set ``fact_indicator_value.flagged`` of the facts ``(township_code, indicator)`` of one
    submission from what still flags them.

    A fact stays flagged when an unaccepted ``dq_flag`` row (severity warning or critical) covers
    it, or when its form row carries a critical issue (an operator released it past a quarantine
    check) or a warning of a check that writes no ``dq_flag`` rows (a declared row rule flags the
    whole township row; issues of checks that do write ``dq_flag`` rows share their ``check_id``
    as ``rule_id`` and are governed by the flag).
    """
    flag, fact, issue = schema.dq_flag, schema.fact_indicator_value, schema.submission_issue
    tracked = set(conn.execute(select(flag.c.check_id).where(flag.c.submission_id == submission_id).distinct())
                  .scalars())
    row_flagged: dict[int, bool] = {}
    for row_number, severity, rule_id in conn.execute(
        select(issue.c.row_number, issue.c.severity, issue.c.rule_id)
        .where(issue.c.submission_id == submission_id, issue.c.row_number.is_not(None))
    ):
        if severity == "critical" or (severity == "warning" and rule_id is not None and rule_id not in tracked):
            row_flagged[int(row_number)] = True
    for township_code, indicator in set(keys):
        unaccepted = conn.execute(
            select(func.count()).select_from(flag).where(
                flag.c.submission_id == submission_id, flag.c.township_code == township_code,
                flag.c.indicator == indicator, flag.c.accepted.is_(False), flag.c.severity != "info")
        ).scalar_one()
        where = (fact.c.submission_id == submission_id, fact.c.township_code == township_code,
                 fact.c.indicator == indicator)
        source_row = conn.execute(select(fact.c.source_row).where(*where)).scalar_one_or_none()
        flagged = bool(unaccepted) or (source_row is not None and row_flagged.get(int(source_row), False))
        conn.execute(update(fact).where(*where).values(flagged=flagged))


# ---------------------------------------------------------------- listing and decisions


@dataclass(frozen=True)
class FollowupView:
    """One follow-up as operators see it."""

    followup_id: str
    kind: str
    status: str
    severity: str
    department: str
    period: str
    township_code: str | None
    township_name: str | None
    indicator: str | None
    check_id: str
    submission_id: str | None
    value: float | None
    reason_zh: str
    opened_at: datetime
    last_seen_at: datetime
    closed_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("opened_at", "last_seen_at", "closed_at"):
            out[key] = out[key].isoformat() if out[key] is not None else None
        return out


def _views(conn: Connection, *conditions: Any) -> list[FollowupView]:
    f, t = schema.followup, schema.ref_township
    rows = conn.execute(
        select(f, t.c.name_zh.label("township_name"))
        .outerjoin(t, t.c.township_code == f.c.township_code)
        .where(*conditions)
        .order_by(f.c.department, f.c.period, f.c.township_code, f.c.check_id)
    ).mappings()
    fields = FollowupView.__dataclass_fields__
    return [FollowupView(**{k: r[k] for k in fields}) for r in rows]


def list_followups(engine: Engine, status: str | None = None, department: str | None = None) -> list[FollowupView]:
    """Follow-ups, optionally of one status and one department, by department, period, township."""
    f = schema.followup
    conditions = []
    if status is not None:
        if status not in schema.FOLLOWUP_STATUSES:
            raise FollowupError(f"unknown status {status!r} (one of {', '.join(schema.FOLLOWUP_STATUSES)})")
        conditions.append(f.c.status == status)
    if department is not None:
        conditions.append(f.c.department == department)
    with engine.connect() as conn:
        return _views(conn, *conditions)


def decision_history(engine: Engine, fid: str) -> list[dict[str, Any]]:
    """The audit trail of one follow-up, oldest first."""
    d = schema.followup_decision
    with engine.connect() as conn:
        rows = conn.execute(select(d).where(d.c.followup_id == fid).order_by(d.c.seq)).mappings()
        return [dict(r) for r in rows]


def resolve_followup_id(conn: Connection, given: str) -> str:
    """The id of the follow-up ``given`` names (the id or a unique prefix of ≥ 5 characters)."""
    f = schema.followup
    text = given.strip()
    text = "F" + text[1:].lower() if text[:1] in ("f", "F") else text  # ids are F + lower-case hex
    if len(text) < MIN_ID_PREFIX:
        raise FollowupError(f"follow-up id {given!r} is too short (give at least {MIN_ID_PREFIX} characters)")
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    matches = list(conn.execute(select(f.c.followup_id).where(f.c.followup_id.like(escaped + "%", escape="\\")))
                   .scalars())
    if not matches:
        raise FollowupError(f"no follow-up {given!r} (see duikou followups list)")
    if len(matches) > 1:
        raise FollowupError(f"follow-up id {given!r} is ambiguous: {', '.join(sorted(matches))}")
    return str(matches[0])


def decide(
    engine: Engine,
    given_id: str,
    decision: FollowupDecisionKind,
    decided_by: str,
    note: str,
    now: datetime | None = None,
) -> FollowupView:
    """Accept or dismiss one follow-up (see the module docstring), audited, in one transaction."""
    if decision not in ("accept", "dismiss"):
        raise FollowupError(f"decision must be accept or dismiss, not {decision!r}")
    if not note or not note.strip():
        raise FollowupError("a decision needs a note saying why (--note)")
    if not decided_by or not decided_by.strip():
        raise FollowupError("a decision needs the name of who took it (--by)")
    at = now or datetime.now(UTC)
    f, flag, sub = schema.followup, schema.dq_flag, schema.submission
    with begin_write(engine) as conn:
        advisory_lock(conn, "followup")
        fid = resolve_followup_id(conn, given_id)
        row = conn.execute(select(f).where(f.c.followup_id == fid)).mappings().one()
        if row["kind"] == "submission":
            raise FollowupError(f"{fid} is a quarantined submission: decide it with duikou quarantine "
                                f"release|reject {str(row['submission_id'])[:8]}")
        if row["status"] == "resolved":
            raise FollowupError(f"{fid} is resolved (the finding is no longer in the current data): nothing to decide")
        target = "accepted" if decision == "accept" else "dismissed"
        if row["status"] == target:
            raise FollowupError(f"{fid} is already {target}")
        current = conn.execute(select(sub.c.submission_id).where(
            sub.c.department == row["department"], sub.c.period == row["period"], sub.c.status == "loaded")
        ).scalar_one_or_none()
        key = (flag.c.submission_id == current, flag.c.township_code == row["township_code"],
               flag.c.indicator == row["indicator"], flag.c.check_id == row["check_id"])
        flag_row = conn.execute(select(flag.c.value, flag.c.accepted).where(*key)).first() if current else None
        value = _as_float(flag_row.value) if flag_row is not None else _as_float(row["value"])
        _append_decision(conn, fid, decision, decided_by.strip(), note.strip(), value, at)
        conn.execute(update(f).where(f.c.followup_id == fid).values(status=target, closed_at=at, value=value))
        if flag_row is not None and current is not None and bool(flag_row.accepted) != (decision == "accept"):
            conn.execute(update(flag).where(*key).values(accepted=decision == "accept"))
            refresh_fact_flags(conn, current, [(str(row["township_code"]), str(row["indicator"]))])
        return _views(conn, f.c.followup_id == fid)[0]


def open_counts(engine: Engine) -> dict[str, int]:
    """Follow-ups by status (every status present, 0 when none)."""
    f = schema.followup
    with engine.connect() as conn:
        rows = conn.execute(select(f.c.status, func.count()).group_by(f.c.status)).all()
    counts = dict.fromkeys(schema.FOLLOWUP_STATUSES, 0)
    counts.update({str(s): int(n) for s, n in rows})
    return counts


def explain(engine: Engine, given_id: str, explained_by: str, department: str, note: str,
            now: datetime | None = None) -> FollowupView:
    """Record a department's 说明 on one of its follow-ups (append-only ``followup_explanation``).

    The 说明 does not close the follow-up nor unflag the value (only an operator's ``accept`` vouches
    for a value); it travels with the value into a release, which needs a 说明 or an acceptance for
    every flagged value it publishes, and shows it as a footnote. Refused: an empty note, a
    follow-up of another department, a quarantined-file follow-up (kind ``submission``)."""
    if not note or not note.strip():
        raise FollowupError("说明不能为空 (an explanation needs text: --note)")
    if not explained_by or not explained_by.strip():
        raise FollowupError("a 说明 needs the login of who wrote it (--by)")
    at = now or datetime.now(UTC)
    f, ex = schema.followup, schema.followup_explanation
    with begin_write(engine) as conn:
        advisory_lock(conn, "followup")
        fid = resolve_followup_id(conn, given_id)
        row = conn.execute(select(f).where(f.c.followup_id == fid)).mappings().one()
        if row["department"] != department:
            raise FollowupError(f"{fid} 属于 {row['department']}，不是 {department} 的待跟进事项 "
                                f"(a department explains only its own follow-ups)")
        if row["kind"] == "submission":
            raise FollowupError(f"{fid} is a quarantined submission, not a flagged value: nothing to explain")
        seq = conn.execute(select(func.coalesce(func.max(ex.c.seq), 0)).where(ex.c.followup_id == fid)).scalar_one()
        conn.execute(insert(ex).values(followup_id=fid, seq=int(seq) + 1, explained_by=explained_by.strip(),
                                       department=department, explained_at=at, note=note.strip(),
                                       value_at_explanation=_as_float(row["value"])))
        return _views(conn, f.c.followup_id == fid)[0]


def explanations_of(engine: Engine, fid: str) -> list[dict[str, Any]]:
    """A follow-up's 说明, oldest first."""
    ex = schema.followup_explanation
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(ex).where(ex.c.followup_id == fid).order_by(ex.c.seq)).mappings()]
