"""Operators' decisions on quarantined submissions: the ``submission_decision`` audit trail.

A quarantined submission waits for a person. Two decisions end the wait:

* **release** — load it despite its quarantine-level issues. The load itself is
  ``warehouse.load.record_submission(..., decision=...)``: the same transaction, the same
  supersession rules as any load, plus the decision row;
* **reject** — ``reject_submission``: the ledger status becomes ``rejected`` and the decision
  row is written, in one transaction; nothing is loaded.

Both take the partition lock (``advisory_lock("submission", department, period)``) the loader
takes and check, under it, that the submission is still ``quarantined``: two operators deciding
at once serialise, and the second gets a ``DecisionError``. Decision rows are only ever
inserted (the table is the audit trail); a file received again keeps its earlier decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, Engine, func, insert, select, update

from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.engine import advisory_lock

DecisionKind = Literal["release", "reject"]
RESULTING_STATUS: dict[DecisionKind, str] = {"release": "loaded", "reject": "rejected"}
MIN_ID_PREFIX = 6
_HEX_PREFIX = re.compile(r"^[0-9a-f]+$")


class DecisionError(ValueError):
    """The decision cannot be taken: unknown or ambiguous id, or not (any more) quarantined."""


@dataclass(frozen=True)
class OperatorDecision:
    """Who decided what, when and why. ``reason`` and ``decided_by`` must say something."""

    decision: DecisionKind
    decided_by: str
    reason: str
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.decision not in RESULTING_STATUS:
            raise ValueError(f"decision must be release or reject, not {self.decision!r}")
        if not self.decided_by.strip():
            raise ValueError("a decision needs the name of who took it")
        if not self.reason.strip():
            raise ValueError("a decision needs a reason")
        if self.decided_at.tzinfo is None:
            raise ValueError("decided_at must be timezone-aware")

    @property
    def resulting_status(self) -> str:
        return RESULTING_STATUS[self.decision]

    def to_dict(self) -> dict[str, str]:
        """The receipt's ``decision`` block."""
        return {
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.astimezone(UTC).isoformat(),
            "reason": self.reason,
        }


@dataclass(frozen=True)
class QuarantinedSubmission:
    """One quarantined ledger row and its critical issues (codes in order, first message)."""

    submission_id: str
    department: str
    period: str
    original_name: str
    received_at: datetime
    archive_path: str | None
    receipt_path: str | None
    issue_codes: tuple[str, ...]
    first_message: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "submission_id": self.submission_id,
            "department": self.department,
            "period": self.period,
            "original_name": self.original_name,
            "received_at": _as_utc(self.received_at).isoformat(),
            "archive_path": self.archive_path,
            "receipt_path": self.receipt_path,
            "issue_codes": list(self.issue_codes),
            "first_message": self.first_message,
        }


def _as_utc(moment: datetime) -> datetime:
    """SQLite hands back naive UTC; PostgreSQL an aware timestamp."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def resolve_submission(engine: Engine, id_or_prefix: str) -> dict[str, Any]:
    """The ledger row whose submission_id is ``id_or_prefix`` or starts with it (≥ 6 hex digits).

    DecisionError when the text is not such a prefix, matches nothing, or matches several rows.
    The status is not checked here; see ``require_quarantined``.
    """
    prefix = id_or_prefix.strip().lower()
    if len(prefix) < MIN_ID_PREFIX or len(prefix) > 16 or not _HEX_PREFIX.match(prefix):
        raise DecisionError(
            f"{id_or_prefix!r} is not a submission id: give {MIN_ID_PREFIX} to 16 of its hex digits"
        )
    sub = schema.submission
    # prefix is hex only (checked above), so it carries no LIKE wildcards
    stmt = select(sub).where(sub.c.submission_id.like(prefix + "%")).order_by(sub.c.submission_id).limit(3)
    with engine.connect() as conn:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    if not rows:
        raise DecisionError(f"no submission with id {prefix}…")
    if len(rows) > 1:
        listed = ", ".join(r["submission_id"] for r in rows)
        raise DecisionError(f"id {prefix} is ambiguous: it starts {listed}{' …' if len(rows) > 2 else ''}")
    return rows[0]


def require_quarantined(status: str | None, submission_id: str) -> None:
    """DecisionError unless ``status`` is ``quarantined`` (None: no such ledger row)."""
    if status is None:
        raise DecisionError(f"no submission {submission_id}")
    if status != "quarantined":
        raise DecisionError(f"submission {submission_id} is {status}, not quarantined: nothing to decide")


def write_decision(conn: Connection, submission_id: str, decision: OperatorDecision) -> int:
    """Append one decision row inside the caller's transaction (partition lock held); its seq."""
    table = schema.submission_decision
    seq = int(
        conn.execute(
            select(func.coalesce(func.max(table.c.seq), 0)).where(table.c.submission_id == submission_id)
        ).scalar_one()
    ) + 1
    conn.execute(
        insert(table).values(
            submission_id=submission_id,
            seq=seq,
            decision=decision.decision,
            decided_by=decision.decided_by.strip(),
            decided_at=decision.decided_at.astimezone(UTC),
            reason=decision.reason.strip(),
            resulting_status=decision.resulting_status,
        )
    )
    return seq


def reject_submission(engine: Engine, submission_id: str, decision: OperatorDecision) -> int:
    """Reject a quarantined submission: status ``rejected`` + the decision row, one transaction.

    Returns the decision's seq. DecisionError when the submission is not quarantined (any more).
    """
    if decision.decision != "reject":
        raise ValueError("reject_submission takes a reject decision")
    sub = schema.submission
    with engine.connect() as conn:
        partition = conn.execute(
            select(sub.c.department, sub.c.period).where(sub.c.submission_id == submission_id)
        ).first()
    if partition is None:
        raise DecisionError(f"no submission {submission_id}")
    with begin_write(engine) as conn:
        advisory_lock(conn, "submission", partition.department, partition.period)
        status = conn.execute(select(sub.c.status).where(sub.c.submission_id == submission_id)).scalar_one_or_none()
        require_quarantined(status, submission_id)
        conn.execute(
            update(sub)
            .where(sub.c.submission_id == submission_id)
            .values(status=decision.resulting_status, processed_at=datetime.now(UTC))
        )
        return write_decision(conn, submission_id, decision)


def quarantined_submissions(engine: Engine) -> list[QuarantinedSubmission]:
    """Every quarantined submission, newest received first, with its critical issues."""
    sub, iss = schema.submission, schema.submission_issue
    with engine.connect() as conn:
        rows = conn.execute(
            select(sub)
            .where(sub.c.status == "quarantined")
            .order_by(sub.c.received_at.desc(), sub.c.submission_id)
        ).mappings().all()
        issues = conn.execute(
            select(iss.c.submission_id, iss.c.code, iss.c.message_zh)
            .join(sub, sub.c.submission_id == iss.c.submission_id)
            .where(sub.c.status == "quarantined", iss.c.severity == "critical")
            .order_by(iss.c.submission_id, iss.c.seq)
        ).all()
    codes: dict[str, list[str]] = {}
    first: dict[str, str] = {}
    for submission_id, code, message in issues:
        seen = codes.setdefault(submission_id, [])
        if code not in seen:
            seen.append(code)
        first.setdefault(submission_id, message)
    return [
        QuarantinedSubmission(
            submission_id=r["submission_id"],
            department=r["department"],
            period=r["period"],
            original_name=r["original_name"],
            received_at=_as_utc(r["received_at"]),
            archive_path=r["archive_path"],
            receipt_path=r["receipt_path"],
            issue_codes=tuple(codes.get(r["submission_id"], ())),
            first_message=first.get(r["submission_id"]),
        )
        for r in rows
    ]


def decisions_of(engine: Engine, submission_id: str) -> list[dict[str, Any]]:
    """A submission's decision rows, in order (``decided_at`` in UTC)."""
    table = schema.submission_decision
    with engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.submission_id == submission_id).order_by(table.c.seq)
        ).mappings().all()
    return [{**dict(r), "decided_at": _as_utc(r["decided_at"])} for r in rows]
