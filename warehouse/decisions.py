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

**Never older over newer.** A release — and any re-evaluation of a file the ledger already
holds that would now load — must not replace a version of the partition that was *received
later* and is loaded: that is the department's correction. :func:`newer_version_guard` is the
one rule every door calls (the CLI, the ``quarantine-decision`` flow, a portal or API that can
release, and the loader under the partition lock): it raises :class:`NewerVersionLoaded`, which
names the later version, unless the operator forces it (``OperatorDecision.force``, with the
decision's reason). A forced release is recorded like any other — its decision row names the
version it replaced (``overrode_version``) and ``v_restatement`` shows the change, since the
release supersedes that version as any correction does.
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
class LaterVersion:
    """The partition's loaded version that was received after the submission being decided."""

    submission_id: str
    original_name: str
    received_at: datetime
    loaded_at: datetime | None

    def describe(self) -> str:
        return (f"{self.submission_id} ({self.original_name}, received "
                f"{_as_utc(self.received_at):%Y-%m-%d %H:%M}Z)")

    def to_dict(self) -> dict[str, Any]:
        return {"submission_id": self.submission_id, "original_name": self.original_name,
                "received_at": _as_utc(self.received_at).isoformat(),
                "loaded_at": _as_utc(self.loaded_at).isoformat() if self.loaded_at else None}


class NewerVersionLoaded(DecisionError):
    """Loading this submission would replace a later, loaded version of its partition."""

    def __init__(self, submission_id: str, department: str, period: str, later: LaterVersion) -> None:
        self.submission_id, self.later = submission_id, later
        super().__init__(
            f"{department} {period} 已有更新的已入库版本 {later.describe()}，不能用较早的提交 {submission_id} "
            f"覆盖 (a later version is loaded: submission {submission_id} was received before it; "
            f"release with --force and a --reason to replace it anyway)"
        )


@dataclass(frozen=True)
class OperatorDecision:
    """Who decided what, when and why. ``reason`` and ``decided_by`` must say something."""

    decision: DecisionKind
    decided_by: str
    reason: str
    decided_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    #: the operator knowingly replaces a later loaded version of the partition (``--force``)
    force: bool = False

    def __post_init__(self) -> None:
        if self.decision not in RESULTING_STATUS:
            raise ValueError(f"decision must be release or reject, not {self.decision!r}")
        if not self.decided_by.strip():
            raise ValueError("a decision needs the name of who took it")
        if not self.reason.strip():
            raise ValueError("a decision needs a reason")
        if self.decided_at.tzinfo is None:
            raise ValueError("decided_at must be timezone-aware")
        if self.force and self.decision != "release":
            raise ValueError("only a release can be forced over a later version")

    @property
    def resulting_status(self) -> str:
        return RESULTING_STATUS[self.decision]

    def to_dict(self) -> dict[str, Any]:
        """The receipt's ``decision`` block."""
        out: dict[str, Any] = {
            "decision": self.decision,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.astimezone(UTC).isoformat(),
            "reason": self.reason,
        }
        if self.force:
            out["forced"] = True
        return out


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
    #: a version of the partition received later and loaded: releasing this one needs ``--force``
    later_version: LaterVersion | None = None

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
            "later_version": self.later_version.to_dict() if self.later_version else None,
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


def later_loaded_version(
    conn: Connection, department: str, period: str, received_at: datetime, submission_id: str
) -> LaterVersion | None:
    """The partition's loaded version if it was received after ``received_at`` (and is another file)."""
    sub = schema.submission
    row = conn.execute(
        select(sub.c.submission_id, sub.c.original_name, sub.c.received_at, sub.c.loaded_at).where(
            sub.c.department == department, sub.c.period == period, sub.c.status == "loaded",
            sub.c.submission_id != submission_id,
        )
    ).first()
    if row is None or _as_utc(row.received_at) <= _as_utc(received_at):
        return None
    return LaterVersion(row.submission_id, row.original_name, _as_utc(row.received_at),
                        _as_utc(row.loaded_at) if row.loaded_at else None)


def newer_version_guard(
    engine: Engine | Connection, submission_id: str, *, force: bool = False
) -> LaterVersion | None:
    """THE rule: may the ledger's submission ``submission_id`` be loaded without putting older data
    over newer? Returns the later loaded version a forced release replaces (None: nothing later).

    Raises :class:`NewerVersionLoaded` naming the later version unless ``force``; DecisionError
    when there is no such submission. Read-only; the loader calls it again under the partition lock.
    """
    def check(conn: Connection) -> LaterVersion | None:
        sub = schema.submission
        row = conn.execute(
            select(sub.c.department, sub.c.period, sub.c.received_at).where(sub.c.submission_id == submission_id)
        ).first()
        if row is None:
            raise DecisionError(f"no submission {submission_id}")
        later = later_loaded_version(conn, row.department, row.period, row.received_at, submission_id)
        if later is not None and not force:
            raise NewerVersionLoaded(submission_id, row.department, row.period, later)
        return later

    if isinstance(engine, Connection):
        return check(engine)
    with engine.connect() as conn:
        return check(conn)


def write_decision(
    conn: Connection, submission_id: str, decision: OperatorDecision, overrode: str | None = None
) -> int:
    """Append one decision row inside the caller's transaction (partition lock held); its seq.

    ``overrode``: the later loaded version a forced release replaced."""
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
            overrode_version=overrode,
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


def quarantined_submissions(engine: Engine, *, include_overtaken: bool = True) -> list[QuarantinedSubmission]:
    """Every quarantined submission, newest received first, with its critical issues and the later
    loaded version of its partition, if any. ``include_overtaken=False`` leaves out those that
    have one (releasing them would put older data over newer: :func:`newer_version_guard`)."""
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
        later = {r["submission_id"]: later_loaded_version(conn, r["department"], r["period"], r["received_at"],
                                                          r["submission_id"]) for r in rows}
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
            later_version=later[r["submission_id"]],
        )
        for r in rows
        if include_overtaken or later[r["submission_id"]] is None
    ]


def decisions_of(engine: Engine, submission_id: str) -> list[dict[str, Any]]:
    """A submission's decision rows, in order (``decided_at`` in UTC)."""
    table = schema.submission_decision
    with engine.connect() as conn:
        rows = conn.execute(
            select(table).where(table.c.submission_id == submission_id).order_by(table.c.seq)
        ).mappings().all()
    return [{**dict(r), "decided_at": _as_utc(r["decided_at"])} for r in rows]
