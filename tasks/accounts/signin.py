"""Signing in: passwords and one-time links (rate-limited, every attempt logged), and browser sessions.

Secrets (session cookies, link tokens) are 32 random bytes; only their SHA-256 is stored, so a copy
of the warehouse signs nobody in. A new session is made at every sign-in (no session fixation); a
link works once, before it expires; a session ends at sign-out, at expiry, or when its account is
disabled.

Rate limit: after ``MAX_FAILURES_PER_LOGIN`` failed attempts for one login, or
``MAX_FAILURES_PER_REMOTE`` from one address, within ``FAILURE_WINDOW``, every further attempt is
refused (``throttled``) until the window has passed — a correct password too, so guessing gains
nothing. Each attempt is a row of ``sign_in_attempt`` and a line on the ``tasks.accounts`` logger.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, func, select

from tasks.accounts.model import Account, AccountError
from tasks.accounts.passwords import password_matches
from tasks.accounts.store import account_by_id, find_account
from warehouse.schema import account, sign_in_attempt, sign_in_link, web_session

log = logging.getLogger("tasks.accounts")

FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES_PER_LOGIN = 5
MAX_FAILURES_PER_REMOTE = 20
SESSION_TTL_SECONDS = 8 * 3600  # one working day
LINK_TTL_SECONDS = 24 * 3600


class SignInRefused(PermissionError):
    """Sign-in refused; ``reason`` is a code (unknown, password, disabled, throttled, link), the message Chinese.

    ``unknown`` and ``password`` show the same message, so the page does not tell which logins exist.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class WebSession:
    token: str  # the cookie's value: shown once, stored only as its SHA-256
    csrf_token: str
    expires_at: datetime


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # SQLite returns naive UTC


_WRONG = "登录名或密码不正确 (wrong login or password)"


def _record(conn: Connection, login: str, remote: str, succeeded: bool, reason: str | None) -> None:
    conn.execute(sign_in_attempt.insert().values(login=login[:64], remote=remote[:64], attempted_at=_now(),
                                                 succeeded=succeeded, reason=reason))
    if succeeded:
        log.info("sign-in %s from %s", login[:64], remote[:64])
    else:
        log.warning("sign-in refused (%s): %r from %s", reason, login[:64], remote[:64])


def _throttled(conn: Connection, login: str, remote: str) -> bool:
    since = _now() - FAILURE_WINDOW
    failed = sign_in_attempt.c.succeeded.is_(False) & (sign_in_attempt.c.attempted_at >= since)
    by_login = conn.execute(select(func.count()).where(failed, sign_in_attempt.c.login == login[:64])).scalar_one()
    by_remote = conn.execute(select(func.count()).where(failed, sign_in_attempt.c.remote == remote[:64])).scalar_one()
    return by_login >= MAX_FAILURES_PER_LOGIN or by_remote >= MAX_FAILURES_PER_REMOTE


def authenticate(engine: Engine, login: str, password: str, remote: str) -> Account:
    """The account ``login`` names when ``password`` is its password; else :class:`SignInRefused`.

    The attempt is recorded in the same transaction as the check, which commits also when the
    attempt fails (the refusal is raised after the commit, or the failure would not count)."""
    login = login.strip().lower()
    refusal: SignInRefused | None = None
    with engine.begin() as conn:
        row = conn.execute(select(account.c.account_id, account.c.password_hash, account.c.disabled_at)
                           .where(account.c.login == login)).first()
        if _throttled(conn, login, remote):
            minutes = int(FAILURE_WINDOW.total_seconds() // 60)
            refusal = SignInRefused("throttled", f"失败次数过多，请{minutes}分钟后再试 (too many failed sign-ins; "
                                                 "try again later)")
        elif row is None or not password_matches(password, row.password_hash):
            refusal = SignInRefused("unknown" if row is None else "password", _WRONG)
        elif row.disabled_at is not None:
            refusal = SignInRefused("disabled", "账号已停用，请联系管理员 (account disabled)")
        _record(conn, login, remote, refusal is None, refusal.reason if refusal else None)
        found = account_by_id(conn, row.account_id) if refusal is None and row is not None else None
    if refusal is not None:
        raise refusal
    assert found is not None
    return found


def issue_sign_in_link(engine: Engine, login: str, ttl_seconds: int = LINK_TTL_SECONDS) -> str:
    """A one-time sign-in secret for ``login`` (put it in a URL); stored only as its SHA-256."""
    found = find_account(engine, login)
    if found is None:
        raise AccountError(f"没有登录名为 {login!r} 的账号 (no such account)")
    if found.disabled:
        raise AccountError(f"账号 {login} 已停用 (account disabled)")
    secret = secrets.token_urlsafe(32)
    now = _now()
    with engine.begin() as conn:
        conn.execute(sign_in_link.insert().values(link_sha256=_sha(secret), account_id=found.account_id,
                                                  created_at=now, expires_at=now + timedelta(seconds=ttl_seconds)))
    return secret


_LINK_REFUSED = "登录链接无效、已使用或已过期，请向管理员索取新链接 (sign-in link unknown, used or expired)"


def redeem_sign_in_link(engine: Engine, secret: str, remote: str) -> Account:
    """The account a link was made for, marking the link used; :class:`SignInRefused` when it is unknown,
    used or expired (each counts as a failed attempt from ``remote``)."""
    refusal: SignInRefused | None = None
    found: Account | None = None
    with engine.begin() as conn:
        now = _now()
        row = conn.execute(select(sign_in_link).where(sign_in_link.c.link_sha256 == _sha(secret))).first()
        if _throttled(conn, "(link)", remote):
            refusal = SignInRefused("throttled", "失败次数过多，请稍后再试 (too many failed sign-ins)")
        elif row is None or row.used_at is not None or _aware(row.expires_at) <= now:
            refusal = SignInRefused("link", _LINK_REFUSED)
        else:
            # one use: the conditional update lets only one of two simultaneous redemptions through
            used = conn.execute(sign_in_link.update().where(sign_in_link.c.link_sha256 == row.link_sha256,
                                                            sign_in_link.c.used_at.is_(None)).values(used_at=now))
            found = account_by_id(conn, row.account_id)
            if used.rowcount != 1 or found is None or found.disabled:
                refusal = SignInRefused("link", _LINK_REFUSED)
        _record(conn, found.login if refusal is None and found else "(link)", remote, refusal is None,
                refusal.reason if refusal else None)
    if refusal is not None:
        raise refusal
    assert found is not None
    return found


def start_session(engine: Engine, signed_in: Account, ttl_seconds: int = SESSION_TTL_SECONDS) -> WebSession:
    """A new browser session for an account that has just signed in (always new: no fixation)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    now = _now()
    expires = now + timedelta(seconds=ttl_seconds)
    with engine.begin() as conn:
        conn.execute(web_session.insert().values(session_sha256=_sha(token), account_id=signed_in.account_id,
                                                 csrf_token=csrf, created_at=now, expires_at=expires))
    return WebSession(token=token, csrf_token=csrf, expires_at=expires)


def session_of(engine: Engine, token: str | None) -> tuple[Account, WebSession] | None:
    """The signed-in account and its session for a cookie value; None when unknown, ended, expired or
    the account is disabled."""
    if not token:
        return None
    with engine.connect() as conn:
        row = conn.execute(select(web_session).where(web_session.c.session_sha256 == _sha(token))).first()
        if row is None or row.ended_at is not None or _aware(row.expires_at) <= _now():
            return None
        found = account_by_id(conn, row.account_id)
    if found is None or found.disabled:
        return None
    return found, WebSession(token=token, csrf_token=row.csrf_token, expires_at=_aware(row.expires_at))


def end_session(engine: Engine, token: str | None) -> None:
    """Sign out: the session no longer answers (also when it had already ended)."""
    if not token:
        return
    with engine.begin() as conn:
        conn.execute(web_session.update().where(web_session.c.session_sha256 == _sha(token),
                                                web_session.c.ended_at.is_(None)).values(ended_at=_now()))


def csrf_matches(session: WebSession, given: str | None) -> bool:
    """Whether a POST's CSRF token is its session's (constant-time)."""
    return given is not None and secrets.compare_digest(session.csrf_token, given)
