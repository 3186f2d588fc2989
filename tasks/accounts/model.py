"""Roles and what each may do: the one place that answers "may this person do this?".

A role grants actions; a clerk's actions hold only for the clerk's own department. Every caller —
the portal, the intake's ops routes, the release commands — asks :func:`may` or :func:`require`,
so a rule changes here once.
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.schema import ACCOUNT_ROLES

ROLES: tuple[str, ...] = ACCOUNT_ROLES
ROLE_LABELS_ZH: dict[str, str] = {
    "clerk": "填报员", "ops": "运维", "preparer": "编制", "reviewer": "审核", "approver": "审批",
}

#: action → what it lets a person do (the portal and the docs show these texts)
ACTIONS: dict[str, str] = {
    "submit": "为本部门报送报表（含无数据申报）",
    "read_department": "查看本部门的报送、回执和更正工作簿",
    "explain_followup": "为本部门被标记的数值填写说明",
    "read_all": "查看所有部门的报送、回执、更正工作簿和报告",
    "release_quarantine": "放行或退回待核实的报送",
    "accept_warning": "接受被标记的数值（填写接受说明）",
    "release_prepare": "编制发布稿（草稿）",
    "release_review": "统计审核发布稿",
    "release_approve": "审批发布稿",
}

#: role → the actions it grants
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "clerk": frozenset({"submit", "read_department", "explain_followup"}),
    "ops": frozenset({"read_all", "release_quarantine", "accept_warning"}),
    "preparer": frozenset({"read_all", "release_prepare"}),
    "reviewer": frozenset({"read_all", "release_review", "accept_warning"}),
    "approver": frozenset({"read_all", "release_approve"}),
}
#: actions that hold only for the account's own department
DEPARTMENT_SCOPED = frozenset({"submit", "read_department", "explain_followup"})


class AccountError(ValueError):
    """An account cannot be created or changed as asked (the message says why, in Chinese first)."""


class NotAllowed(PermissionError):
    """The acting account may not do this."""


@dataclass(frozen=True)
class Account:
    account_id: int
    login: str
    display_name: str
    department: str | None
    roles: frozenset[str]
    disabled: bool

    @property
    def roles_zh(self) -> str:
        return "、".join(ROLE_LABELS_ZH[r] for r in ROLES if r in self.roles)


def may(account: Account | None, action: str, department: str | None = None) -> bool:
    """Whether ``account`` may do ``action`` (for ``department`` where the action is a department's).

    A department-scoped action asked without a department is refused: the caller must say whose
    data it is. ``read_all`` also answers ``read_department`` for every department.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; known: {', '.join(ACTIONS)}")
    if account is None or account.disabled:
        return False
    granted = frozenset().union(*(ROLE_ACTIONS[r] for r in account.roles if r in ROLE_ACTIONS))
    if action == "read_department" and "read_all" in granted:
        return True
    if action not in granted:
        return False
    if action in DEPARTMENT_SCOPED:
        return department is not None and account.department == department
    return True


def require(account: Account | None, action: str, department: str | None = None) -> Account:
    """``account`` when it may do ``action``; else :class:`NotAllowed` naming who and what."""
    if may(account, action, department):
        assert account is not None
        return account
    who = "未登录" if account is None else f"{account.display_name}（{account.login}）"
    where = f"（{department}）" if department else ""
    raise NotAllowed(f"{who} 无权{ACTIONS[action]}{where} (not allowed: {action})")
