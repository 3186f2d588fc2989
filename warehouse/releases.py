"""Releases in the warehouse: freezing a version, its sign-off state, its warnings, verifying it.

Tables (``warehouse/schema.py``): ``release`` (one row per version, its state and provenance),
``release_input`` (the ledger versions pinned), ``release_value`` (the frozen figures),
``release_signoff`` (append-only audit trail). Who may act is decided above, in
``tasks/releases`` (accounts and the declared chain); here the rules that hold whoever acts:

* a state change is one conditional ``UPDATE … WHERE state = :seen AND steps_done = :seen``: of
  two officials acting on the same state at once, one changes it and the other's update matches no
  row and is refused with :class:`ReleaseConflict` (nothing written);
* only a ``draft`` is refrozen (a returned or not yet reviewed one); ``in_review`` and
  ``approved`` versions keep their values; an approved version's rows are never touched again
  (its successor only sets ``superseded_by`` on it);
* nobody takes a step on a version they prepared or took an earlier step on (``self_acted``).

``release_warnings`` lists the flagged values a version publishes with their 说明 or acceptance;
``verify_release`` recomputes a version from its pins and compares the bytes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, and_, delete, func, insert, select, update

from expectations.declaration import load_declarations
from warehouse import schema
from warehouse.engine import advisory_lock
from warehouse.followups import CROSS_CHECK_PREFIX, followup_id
from warehouse.release_values import (
    ReleaseError,
    Scope,
    canonical_values,
    freeze_values,
    kpis_from,
    parse_scope,
    pinned_facts,
    stored_values,
    townships_frame,
    unit_map,
)


class UnknownRelease(ReleaseError):
    """No release has this id."""


class ReleaseConflict(ReleaseError):
    """The release changed between reading and acting (another official acted first)."""


@dataclass(frozen=True)
class ReleaseRow:
    release_id: str
    kind: str
    period: str
    version: int
    state: str
    steps_done: int
    prepared_by: str
    frozen_at: datetime
    incomplete: bool
    values_sha256: str
    provenance: dict[str, Any]
    supersedes: str | None
    restatement: dict[str, Any] | None
    approved_at: datetime | None
    superseded_by: str | None

    @property
    def scope(self) -> Scope:
        return parse_scope(self.kind, self.period)


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(r: Mapping[Any, Any]) -> ReleaseRow:
    return ReleaseRow(
        release_id=str(r["release_id"]), kind=str(r["kind"]), period=str(r["period"]), version=int(r["version"]),
        state=str(r["state"]), steps_done=int(r["steps_done"]), prepared_by=str(r["prepared_by"]),
        frozen_at=_utc(r["frozen_at"]) or datetime.now(UTC), incomplete=bool(r["incomplete"]),
        values_sha256=str(r["values_sha256"]), provenance=json.loads(r["provenance"]),
        supersedes=r["supersedes"], restatement=json.loads(r["restatement"]) if r["restatement"] else None,
        approved_at=_utc(r["approved_at"]), superseded_by=r["superseded_by"],
    )  # fmt: skip


def get_release(conn: Connection, release_id: str) -> ReleaseRow:
    rel = schema.release
    row = conn.execute(select(rel).where(rel.c.release_id == release_id.strip())).mappings().first()
    if row is None:
        raise UnknownRelease(f"没有发布版本 {release_id!r} (no release with this id; see duikou release list)")
    return _row(row)


def list_releases(engine: Engine, kind: str | None = None) -> list[ReleaseRow]:
    rel = schema.release
    query = select(rel).order_by(rel.c.kind, rel.c.period, rel.c.version)
    if kind is not None:
        query = query.where(rel.c.kind == kind)
    with engine.connect() as conn:
        return [_row(r) for r in conn.execute(query).mappings()]


def latest_approved(conn: Connection) -> dict[str, ReleaseRow]:
    """kind → its latest approved version (latest period, then highest version)."""
    rel = schema.release
    rows = [_row(r) for r in conn.execute(select(rel).where(rel.c.state == "approved")).mappings()]
    out: dict[str, ReleaseRow] = {}
    for row in sorted(rows, key=lambda r: (r.period, r.version)):
        out[row.kind] = row
    return out


def versions_of(conn: Connection, kind: str, period: str) -> list[ReleaseRow]:
    rel = schema.release
    return [_row(r) for r in conn.execute(
        select(rel).where(rel.c.kind == kind, rel.c.period == period).order_by(rel.c.version)).mappings()]


def inputs_of(conn: Connection, release_id: str) -> list[dict[str, Any]]:
    ri = schema.release_input
    rows = conn.execute(select(ri).where(ri.c.release_id == release_id).order_by(ri.c.department, ri.c.period))
    return [dict(r) for r in rows.mappings()]


def signoffs_of(conn: Connection, release_id: str) -> list[dict[str, Any]]:
    so = schema.release_signoff
    rows = conn.execute(select(so).where(so.c.release_id == release_id).order_by(so.c.seq)).mappings()
    return [{**dict(r), "acted_at": _utc(r["acted_at"])} for r in rows]


# ---------------------------------------------------------------- writing
@dataclass(frozen=True)
class Frozen:
    """What freezing computed, before it is written."""

    rows: list[dict[str, Any]]
    inputs: list[dict[str, Any]]
    values_bytes: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.values_bytes).hexdigest()


def freeze(conn: Connection, scope: Scope, inputs: Sequence[Mapping[str, Any]],
           definitions: Sequence[Mapping[str, Any]]) -> Frozen:
    """Compute a version's rows from ``inputs`` (ledger rows to pin) and the frozen KPI ``definitions``."""
    facts = pinned_facts(conn, [str(i["submission_id"]) for i in inputs])
    rows = freeze_values(facts, townships_frame(conn), scope, kpis_from(definitions), load_declarations(),
                         unit_map(conn))
    return Frozen(rows, [dict(i) for i in inputs], canonical_values(rows))


def _append_signoff(conn: Connection, release_id: str, action: str, step_zh: str, role: str, login: str,
                    name: str, note: str, at: datetime) -> None:
    so = schema.release_signoff
    seq = conn.execute(select(func.coalesce(func.max(so.c.seq), 0)).where(so.c.release_id == release_id)).scalar_one()
    conn.execute(insert(so).values(release_id=release_id, seq=int(seq) + 1, action=action, step_zh=step_zh, role=role,
                                   acted_by=login, acted_by_name=name, acted_at=at, note=note))


def _write_rows(conn: Connection, release_id: str, frozen: Frozen) -> None:
    rv, ri = schema.release_value, schema.release_input
    conn.execute(delete(rv).where(rv.c.release_id == release_id))
    conn.execute(delete(ri).where(ri.c.release_id == release_id))
    if frozen.inputs:
        conn.execute(insert(ri), [
            {"release_id": release_id, "submission_id": i["submission_id"], "department": i["department"],
             "period": i["period"], "sha256": i["sha256"], "original_name": i["original_name"],
             "received_at": i["received_at"]} for i in frozen.inputs])
    for start in range(0, len(frozen.rows), 2000):
        conn.execute(insert(rv), [{"release_id": release_id, **r} for r in frozen.rows[start:start + 2000]])


@dataclass(frozen=True)
class Actor:
    """Who acts, as the warehouse records it (the account check happens in tasks/releases)."""

    login: str
    name: str
    role: str


def store_draft(conn: Connection, *, scope: Scope, frozen: Frozen, actor: Actor, note: str, at: datetime,
                incomplete: bool, provenance: Mapping[str, Any], supersedes: str | None,
                restatement: Mapping[str, Any] | None) -> tuple[str, str]:
    """Write a new draft version, or refreeze the open draft of (kind, period). Returns (id, action).

    Refused: a version of (kind, period) is being reviewed (return it first). After the latest
    approved version, a new draft is the next version (a restatement when ``supersedes`` is set).
    Caller holds the ``release`` lock (``advisory_lock(conn, "release", kind, period)``).
    """
    rel = schema.release
    versions = versions_of(conn, scope.kind, scope.period)
    open_ones = [v for v in versions if v.state != "approved"]
    values = {"frozen_at": at, "incomplete": incomplete, "values_sha256": frozen.sha256,
              "provenance": json.dumps(provenance, ensure_ascii=False, sort_keys=True, default=str),
              "prepared_by": actor.login, "supersedes": supersedes,
              "restatement": None if restatement is None else json.dumps(restatement, ensure_ascii=False,
                                                                          sort_keys=True, default=str)}
    if open_ones:
        current = open_ones[-1]
        if current.state != "draft":
            raise ReleaseError(f"{current.release_id} 正在审核中（已完成 {current.steps_done} 步），不能重新编制；"
                               f"请审核人先退回 (it is in review: return it before redrafting)")
        done = conn.execute(update(rel).where(rel.c.release_id == current.release_id, rel.c.state == "draft")
                            .values(**values))
        if done.rowcount != 1:
            raise ReleaseConflict(f"{current.release_id} 刚被他人处理，请重试 (changed meanwhile; try again)")
        release_id, action = current.release_id, "redraft"
    else:
        version = (versions[-1].version + 1) if versions else 1
        release_id, action = f"{scope.kind}-{scope.period}-v{version}", "draft"
        conn.execute(insert(rel).values(release_id=release_id, kind=scope.kind, period=scope.period, version=version,
                                        state="draft", steps_done=0, approved_at=None, superseded_by=None, **values))
    _write_rows(conn, release_id, frozen)
    _append_signoff(conn, release_id, action, "编制", actor.role, actor.login, actor.name, note, at)
    return release_id, action


def self_acted(conn: Connection, release: ReleaseRow, login: str) -> str | None:
    """What ``login`` already did on this version since it was last drafted (a step nobody may
    follow with another of their own), or None."""
    if release.prepared_by == login:
        return "编制"
    trail = signoffs_of(conn, release.release_id)
    last_draft = max((s["seq"] for s in trail if s["action"] in ("draft", "redraft")), default=0)
    for s in trail:
        if s["seq"] > last_draft and s["action"] == "review" and s["acted_by"] == login:
            return str(s["step_zh"])
    return None


def transition(conn: Connection, release: ReleaseRow, *, to_state: str, to_steps: int, action: str, step_zh: str,
               actor: Actor, note: str, at: datetime) -> None:
    """Move ``release`` from the state the caller saw to ``to_state``: one conditional UPDATE.

    :class:`ReleaseConflict` when the row is no longer in the seen state (another official acted)."""
    rel = schema.release
    extra: dict[str, Any] = {"approved_at": at} if to_state == "approved" else {}
    done = conn.execute(
        update(rel)
        .where(rel.c.release_id == release.release_id, rel.c.state == release.state,
               rel.c.steps_done == release.steps_done)
        .values(state=to_state, steps_done=to_steps, **extra)
    )
    if done.rowcount != 1:
        now = get_release(conn, release.release_id)
        last = signoffs_of(conn, release.release_id)[-1]
        raise ReleaseConflict(
            f"{release.release_id} 已被 {last['acted_by_name']}（{last['acted_by']}）于 "
            f"{last['acted_at']:%Y-%m-%d %H:%M:%S}Z {_ACTION_ZH.get(str(last['action']), last['action'])}，"
            f"当前状态 {now.state}；您的操作未执行 (another official acted first; nothing done)")
    if to_state == "approved" and release.supersedes:
        conn.execute(update(rel).where(rel.c.release_id == release.supersedes).values(superseded_by=release.release_id))
    _append_signoff(conn, release.release_id, action, step_zh, actor.role, actor.login, actor.name, note, at)


_ACTION_ZH = {"draft": "编制", "redraft": "重新编制", "review": "审核", "approve": "审批", "return": "退回"}


def lock_release(conn: Connection, kind: str, period: str) -> None:
    advisory_lock(conn, "release", kind, period)


# ---------------------------------------------------------------- warnings: flagged values a release publishes
@dataclass(frozen=True)
class ReleaseWarning:
    followup_id: str
    department: str
    period: str
    township_code: str
    indicator: str
    check_id: str
    value: float | None
    reason_zh: str
    explanation: str | None  # the department's latest 说明
    explained_by: str | None
    acceptance: str | None  # the operator's acceptance note
    accepted_by: str | None

    @property
    def explained(self) -> bool:
        return bool(self.explanation or self.acceptance)

    @property
    def footnote(self) -> str:
        parts = []
        if self.explanation:
            parts.append(f"部门说明（{self.explained_by}）：{self.explanation}")
        if self.acceptance:
            parts.append(f"运维确认（{self.accepted_by}）：{self.acceptance}")
        return "；".join(parts)


def release_warnings(conn: Connection, release: ReleaseRow) -> list[ReleaseWarning]:
    """The values a version publishes (its own period) that a check flagged, with their 说明 or
    acceptance: ``dq_flag`` rows of the pinned versions. A value an operator accepted (the flag's
    ``accepted``, or the follow-up's latest ``accept``) carries that note; a dismissed one does not."""
    scope = release.scope
    flag, ri, f = schema.dq_flag, schema.release_input, schema.followup
    ex, dec = schema.followup_explanation, schema.followup_decision
    flags = conn.execute(
        select(flag.c.submission_id, flag.c.indicator, flag.c.township_code, flag.c.check_id, flag.c.value,
               flag.c.reason_zh, ri.c.department, ri.c.period)
        .join(ri, and_(ri.c.submission_id == flag.c.submission_id, ri.c.release_id == release.release_id))
        .order_by(ri.c.department, ri.c.period, flag.c.township_code, flag.c.indicator, flag.c.check_id)
    ).mappings().all()
    out: list[ReleaseWarning] = []
    for r in flags:
        if not scope.shows(str(r["period"])):
            continue
        kind = "cross" if str(r["check_id"]).startswith(CROSS_CHECK_PREFIX) else "value"
        fid = followup_id(kind, str(r["department"]), str(r["period"]), str(r["township_code"]), str(r["indicator"]),
                          str(r["check_id"]))
        explanation = conn.execute(select(ex.c.note, ex.c.explained_by).where(ex.c.followup_id == fid)
                                   .order_by(ex.c.seq.desc()).limit(1)).first()
        status = conn.execute(select(f.c.status).where(f.c.followup_id == fid)).scalar_one_or_none()
        acceptance = None
        if status == "accepted":
            acceptance = conn.execute(select(dec.c.note, dec.c.decided_by).where(
                dec.c.followup_id == fid, dec.c.decision == "accept").order_by(dec.c.seq.desc()).limit(1)).first()
        out.append(ReleaseWarning(
            followup_id=fid, department=str(r["department"]), period=str(r["period"]),
            township_code=str(r["township_code"]), indicator=str(r["indicator"]), check_id=str(r["check_id"]),
            value=None if r["value"] is None else float(r["value"]), reason_zh=str(r["reason_zh"]),
            explanation=None if explanation is None else str(explanation.note),
            explained_by=None if explanation is None else str(explanation.explained_by),
            acceptance=None if acceptance is None else str(acceptance.note),
            accepted_by=None if acceptance is None else str(acceptance.decided_by),
        ))  # fmt: skip
    return out


# ---------------------------------------------------------------- verifying
@dataclass(frozen=True)
class Verification:
    release_id: str
    stored_sha256: str
    rows_sha256: str
    rebuilt_sha256: str
    rows: int
    differences: list[str]

    @property
    def ok(self) -> bool:
        return not self.differences


def verify_release(engine: Engine, release_id: str, values_file: bytes | None = None) -> Verification:
    """Recompute a version from its pinned versions and its frozen KPI definitions; compare the bytes
    with the stored rows, the recorded hash and (when given) the published ``values.json``."""
    with engine.connect() as conn:
        rel = get_release(conn, release_id)
        inputs = inputs_of(conn, rel.release_id)
        fact = schema.fact_indicator_value
        present = set(conn.execute(select(fact.c.submission_id).where(fact.c.submission_id.in_(
            [i["submission_id"] for i in inputs])).distinct()).scalars())
        missing = [str(i["submission_id"]) for i in inputs if i["submission_id"] not in present]
        rebuilt = freeze(conn, rel.scope, inputs, rel.provenance["kpi_definitions"])
        stored = canonical_values(stored_values(conn, rel.release_id))
    differences: list[str] = []
    if missing:
        differences.append(f"pinned versions without facts in the ledger: {', '.join(missing)}")
    rows_sha = hashlib.sha256(stored).hexdigest()
    if rows_sha != rel.values_sha256:
        differences.append(f"release_value rows hash {rows_sha} ≠ recorded {rel.values_sha256}")
    if rebuilt.values_bytes != stored:
        old = set(stored.decode("utf-8").splitlines())
        new = set(rebuilt.values_bytes.decode("utf-8").splitlines())
        for line in sorted(old - new)[:5]:
            differences.append(f"stored, not rebuilt: {line}")
        for line in sorted(new - old)[:5]:
            differences.append(f"rebuilt, not stored: {line}")
    if values_file is not None and values_file != stored:
        differences.append(f"values.json (sha256 {hashlib.sha256(values_file).hexdigest()}) ≠ the stored rows")
    return Verification(rel.release_id, rel.values_sha256, rows_sha, rebuilt.sha256, len(stored.splitlines()),
                        differences)
