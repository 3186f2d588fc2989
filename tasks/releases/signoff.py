"""Releases, as officials act on them: draft, review, approve, return — each a plain function taking
the acting :class:`~tasks.accounts.Account` (the CLI resolves ``--by LOGIN``; the portal passes
the signed-in account).

Rules (the chain is declared in ``expectations/releases.yaml``):

* drafting needs the chain's ``prepare_role``; a step needs the role the step declares; a
  disabled account does nothing;
* nobody takes a step on a version they prepared or already took a step on since it was last
  drafted (no self-approval);
* a draft for a period with missing returns is refused unless ``allow_incomplete`` (then every
  page of it says 数据不完整 and which returns were missing);
* approval is refused while a flagged value the release publishes has neither a department 说明
  nor an operator's acceptance (review lists them, and goes ahead);
* a return needs a reason and sends the version back to draft (its steps undone);
* of two officials acting on the same state at once, one wins; the other gets
  :class:`~warehouse.releases.ReleaseConflict` naming who acted first (one conditional UPDATE).

After each action the version's site is rendered again from its frozen rows
(``tasks.releases.release_site``); approving publishes it (``reports/published/<kind>/``) and marks the
version it restates 已更正.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from expectations.declaration import load_declarations, load_kpis
from expectations.signoff import Signoff, Step, load_signoff
from tasks.accounts import Account
from tasks.releases.provenance import missing_returns_in, provenance_record
from tasks.releases.release_site import publish, write_release_site
from warehouse.bootstrap import begin_write
from warehouse.release_values import ReleaseError, current_inputs, definitions_of, parse_scope
from warehouse.releases import (
    Actor,
    ReleaseRow,
    ReleaseWarning,
    freeze,
    get_release,
    lock_release,
    release_warnings,
    self_acted,
    store_draft,
    transition,
    versions_of,
)


class NotPermitted(ReleaseError):
    """The acting account may not take this step (unknown, disabled, wrong role, self-approval)."""


class UnexplainedWarnings(ReleaseError):
    """Approval refused: flagged values without a 说明 or an acceptance."""

    def __init__(self, message: str, warnings: list[ReleaseWarning]) -> None:
        super().__init__(message)
        self.warnings = warnings


@dataclass(frozen=True)
class Outcome:
    release_id: str
    action: str
    state: str
    steps_done: int
    site: Path
    published: Path | None = None
    unexplained: list[ReleaseWarning] = field(default_factory=list)
    next_step: Step | None = None


def _who(account: Account | None) -> Account:
    if account is None:
        raise NotPermitted("未知账号 (no such account: create it with duikou accounts add)")
    if account.disabled:
        raise NotPermitted(f"账号 {account.login} 已停用 (account disabled)")
    return account


def _require_role(account: Account, role: str, what: str) -> None:
    if role not in account.roles:
        raise NotPermitted(f"{account.display_name}（{account.login}）没有“{role}”角色，不能{what} "
                           f"(needs role {role}; has {', '.join(sorted(account.roles)) or 'none'})")


def next_step(chain: Signoff, release: ReleaseRow) -> Step | None:
    steps = chain.kind(release.kind).steps
    return None if release.state == "approved" else steps[release.steps_done]


def _unexplained_text(items: list[ReleaseWarning]) -> str:
    return "；".join(f"{w.department} {w.period} {w.township_code} {w.indicator}（{w.followup_id}）" for w in items)


def draft_release(engine: Engine, account: Account | None, kind: str, period: str, *, reports_dir: Path,
                  allow_incomplete: bool = False, note: str = "", now: datetime | None = None,
                  chain: Signoff | None = None) -> Outcome:
    """Freeze (or refreeze the open draft of) the release of ``kind`` for ``period``."""
    chain = chain or load_signoff()
    who = _who(account)
    chain.kind(kind)
    _require_role(who, chain.prepare_role, "编制发布稿")
    scope = parse_scope(kind, period)
    at = now or datetime.now(UTC)
    with begin_write(engine) as conn:
        lock_release(conn, scope.kind, scope.period)
        approved = [v for v in versions_of(conn, scope.kind, scope.period) if v.state == "approved"]
        if approved:
            raise ReleaseError(f"{chain.kind(kind).title_zh}（{scope.title_zh}）已发布 {approved[-1].release_id}；"
                               f"已发布的数字不再重编，"
                               f"报表更正后由 duikou release restate（或夜间运行）生成更正版本 "
                               f"(already published: corrections make the next version)")
        missing = missing_returns_in(conn, scope)
        if missing and not allow_incomplete:
            listed = "、".join(f"{m['department']} {m['period']}" for m in missing)
            raise ReleaseError(f"{scope.title_zh}有 {len(missing)} 份报表未入库（{listed}），不能编制；确需发布请加 "
                               f"--allow-incomplete，每页将标明数据不完整 (returns missing; use --allow-incomplete)")
        inputs = current_inputs(conn, scope, list(load_declarations()))
        if not inputs:
            raise ReleaseError(f"{scope.title_zh}没有任何已入库的报表，无从编制 (no loaded returns for this period)")
        definitions = definitions_of(load_kpis())
        frozen = freeze(conn, scope, inputs, definitions)
        provenance = provenance_record(conn, scope, frozen.rows, definitions, missing)
        release_id, action = store_draft(
            conn, scope=scope, frozen=frozen, actor=Actor(who.login, who.display_name, chain.prepare_role),
            note=note.strip() or "编制", at=at, incomplete=bool(missing), provenance=provenance,
            supersedes=None, restatement=None)
    site = write_release_site(engine, release_id, reports_dir, values=frozen.values_bytes)
    return Outcome(release_id, action, "draft", 0, site, next_step=chain.kind(kind).steps[0])


def _act(engine: Engine, account: Account | None, release_id: str, action: str, note: str, *, reports_dir: Path,
         seen: ReleaseRow | None, now: datetime | None, chain: Signoff | None) -> Outcome:
    chain = chain or load_signoff()
    who = _who(account)
    at = now or datetime.now(UTC)
    if action == "return" and not note.strip():
        raise ReleaseError("退回须写明原因 (a return needs --note with the reason)")
    with begin_write(engine) as conn:
        current = get_release(conn, release_id)
        lock_release(conn, current.kind, current.period)
        release = seen if seen is not None else current
        if release.state == "approved" or current.state == "approved":
            raise ReleaseError(f"{current.release_id} 已审批发布，不能再{_ZH[action]}；更正请走新版本 "
                               f"(approved releases never change)")
        step = chain.kind(release.kind).steps[release.steps_done]
        if action in ("review", "approve") and step.action != action:
            raise ReleaseError(f"{release.release_id} 的下一步是“{step.step_zh}”（duikou release {step.action}），"
                               f"不是{_ZH[action]} (next step is {step.action})")
        _require_role(who, step.role, f"{step.step_zh}")
        if action != "return" and (done := self_acted(conn, current, who.login)):
            raise NotPermitted(f"{who.display_name}（{who.login}）已对 {current.release_id} 做过“{done}”，"
                               f"不能再做“{step.step_zh}” (no one approves what they prepared or reviewed)")
        unexplained = [w for w in release_warnings(conn, current) if not w.explained]
        if action == "approve" and unexplained:
            raise UnexplainedWarnings(
                f"{current.release_id} 有 {len(unexplained)} 个被标记的数值既无部门说明也无运维确认，不能审批："
                f"{_unexplained_text(unexplained)} (flagged values need a 说明 or an acceptance: "
                f"duikou followups explain|accept)", unexplained)
        steps = chain.kind(release.kind).steps
        if action == "return":
            to_state, to_steps = "draft", 0
        else:
            to_steps = release.steps_done + 1
            to_state = "approved" if to_steps == len(steps) else "in_review"
        transition(conn, release, to_state=to_state, to_steps=to_steps, action=action,
                   step_zh=step.step_zh, actor=Actor(who.login, who.display_name, step.role),
                   note=note.strip() or _ZH[action], at=at)
    site = write_release_site(engine, current.release_id, reports_dir)
    published = None
    if to_state == "approved":
        published = publish(engine, current.release_id, reports_dir)
    following = None if to_state == "approved" else steps[to_steps]
    return Outcome(current.release_id, action, to_state, to_steps, site, published,
                   unexplained if action != "approve" else [], following)


_ZH = {"review": "审核", "approve": "审批", "return": "退回"}


def review_release(engine: Engine, account: Account | None, release_id: str, note: str = "", *, reports_dir: Path,
                   seen: ReleaseRow | None = None, now: datetime | None = None,
                   chain: Signoff | None = None) -> Outcome:
    """Take the next review step (e.g. 统计审核). ``seen``: the state the official looked at (the
    portal's page); acting on a state that changed meanwhile is refused."""
    return _act(engine, account, release_id, "review", note, reports_dir=reports_dir, seen=seen, now=now, chain=chain)


def approve_release(engine: Engine, account: Account | None, release_id: str, note: str = "", *, reports_dir: Path,
                    seen: ReleaseRow | None = None, now: datetime | None = None,
                    chain: Signoff | None = None) -> Outcome:
    """Take the last step (e.g. 分管领导审批): the version is published."""
    return _act(engine, account, release_id, "approve", note, reports_dir=reports_dir, seen=seen, now=now,
                chain=chain)


def return_release(engine: Engine, account: Account | None, release_id: str, note: str, *, reports_dir: Path,
                   seen: ReleaseRow | None = None, now: datetime | None = None,
                   chain: Signoff | None = None) -> Outcome:
    """Send the version back to draft with the reason (by whoever holds the next step's role)."""
    return _act(engine, account, release_id, "return", note, reports_dir=reports_dir, seen=seen, now=now, chain=chain)


def read_release(engine: Engine, release_id: str) -> ReleaseRow:
    with engine.connect() as conn:
        return get_release(conn, release_id)
