"""Accounts in the warehouse (tables ``account`` and ``account_role``): create, find, list, disable."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, Engine, select

from tasks.accounts.model import ROLE_LABELS_ZH, ROLES, Account, AccountError
from tasks.accounts.passwords import hash_password, password_problem
from warehouse.schema import account, account_role, ref_department

LOGIN_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")


def _now() -> datetime:
    return datetime.now(UTC)


def _accounts(conn: Connection, where: object | None = None) -> list[Account]:
    query = select(account).order_by(account.c.login)
    if where is not None:
        query = query.where(where)  # type: ignore[arg-type]
    rows = conn.execute(query).mappings().all()
    roles: dict[int, set[str]] = {}
    ids = [r["account_id"] for r in rows]
    if ids:
        for account_id, role in conn.execute(
                select(account_role.c.account_id, account_role.c.role).where(account_role.c.account_id.in_(ids))):
            roles.setdefault(account_id, set()).add(role)
    return [Account(account_id=r["account_id"], login=r["login"], display_name=r["display_name"],
                    department=r["department"], roles=frozenset(roles.get(r["account_id"], ())),
                    disabled=r["disabled_at"] is not None) for r in rows]


def create_account(engine: Engine, login: str, display_name: str, roles: Iterable[str], *,
                   department: str | None = None, password: str | None = None) -> Account:
    """A new account; :class:`AccountError` naming what is wrong (login taken or malformed, unknown role
    or department, a clerk without a department, a department on an account that is no clerk, a weak password)."""
    login = login.strip().lower()
    role_set = frozenset(roles)
    if not LOGIN_RE.match(login):
        raise AccountError(f"登录名 {login!r} 不合规：2–64个小写字母、数字或 . _ - "
                           "(login must be 2–64 of a-z 0-9 . _ -)")
    if not display_name.strip():
        raise AccountError("请填写姓名 (display name is empty)")
    if not role_set:
        raise AccountError(f"至少需要一个角色 (give at least one role: {', '.join(ROLES)})")
    unknown = sorted(role_set - set(ROLES))
    if unknown:
        raise AccountError(f"未知角色 {', '.join(unknown)} (unknown role; known: "
                           + ", ".join(f"{r} {ROLE_LABELS_ZH[r]}" for r in ROLES) + ")")
    if "clerk" in role_set and not department:
        raise AccountError("填报员必须属于一个部门 (a clerk needs --department)")
    if department and "clerk" not in role_set:
        raise AccountError("只有填报员属于部门 (only a clerk has a department)")
    if password is not None and (problem := password_problem(password)):
        raise AccountError(problem)
    with engine.begin() as conn:
        if department is not None:
            known = list(conn.execute(select(ref_department.c.department)
                                      .order_by(ref_department.c.department)).scalars())
            if department not in known:
                raise AccountError(f"未知部门 {department!r} (unknown department; known: {', '.join(known)})")
        if conn.execute(select(account.c.account_id).where(account.c.login == login)).first() is not None:
            raise AccountError(f"登录名 {login} 已存在 (login already taken)")
        now = _now()
        account_id = conn.execute(account.insert().values(
            login=login, display_name=display_name.strip(), department=department,
            password_hash=hash_password(password) if password is not None else None, created_at=now,
        )).inserted_primary_key[0]  # type: ignore[index]
        conn.execute(account_role.insert(), [{"account_id": account_id, "role": r, "granted_at": now}
                                             for r in sorted(role_set)])
        return _accounts(conn, account.c.account_id == account_id)[0]


def find_account(engine: Engine | Connection, login: str) -> Account | None:
    if isinstance(engine, Connection):
        found = _accounts(engine, account.c.login == login.strip().lower())
    else:
        with engine.connect() as conn:
            found = _accounts(conn, account.c.login == login.strip().lower())
    return found[0] if found else None


def account_by_id(conn: Connection, account_id: int) -> Account | None:
    found = _accounts(conn, account.c.account_id == account_id)
    return found[0] if found else None


def list_accounts(engine: Engine) -> list[Account]:
    with engine.connect() as conn:
        return _accounts(conn)


def _existing(conn: Connection, login: str) -> Account:
    found = find_account(conn, login)
    if found is None:
        raise AccountError(f"没有登录名为 {login!r} 的账号 (no such account)")
    return found


def set_password(engine: Engine, login: str, password: str) -> Account:
    if problem := password_problem(password):
        raise AccountError(problem)
    with engine.begin() as conn:
        found = _existing(conn, login)
        conn.execute(account.update().where(account.c.account_id == found.account_id)
                     .values(password_hash=hash_password(password)))
        return found


def disable_account(engine: Engine, login: str) -> Account:
    """The account may no longer sign in or act; its sessions end at once (``session_of`` checks it)."""
    with engine.begin() as conn:
        found = _existing(conn, login)
        conn.execute(account.update().where(account.c.account_id == found.account_id,
                                            account.c.disabled_at.is_(None)).values(disabled_at=_now()))
        return _existing(conn, login)
