"""The one accounts-and-roles model (tasks/accounts/): roles, passwords, links, sessions, rate limit.

Both backends: the accounts live in the warehouse.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select, update

from tasks.accounts import (
    AccountError,
    NotAllowed,
    SignInRefused,
    authenticate,
    create_account,
    csrf_matches,
    disable_account,
    end_session,
    find_account,
    issue_sign_in_link,
    list_accounts,
    may,
    redeem_sign_in_link,
    require,
    session_of,
    set_password,
    start_session,
)
from tasks.accounts.signin import MAX_FAILURES_PER_LOGIN
from warehouse.schema import sign_in_attempt, sign_in_link, web_session

PASSWORD = "correct horse battery"


def test_roles_grant_what_they_say_and_a_clerk_only_for_its_department(warehouse_engine: Engine) -> None:
    clerk = create_account(warehouse_engine, "edu.zhang", "张老师", ["clerk"], department="education")
    ops = create_account(warehouse_engine, "ops.li", "李工", ["ops"])
    approver = create_account(warehouse_engine, "lead.wang", "王局长", ["approver"])

    assert may(clerk, "submit", "education") and not may(clerk, "submit", "health")
    assert not may(clerk, "submit")  # whose data must be said
    assert may(clerk, "read_department", "education") and not may(clerk, "read_department", "health")
    assert not may(clerk, "read_all") and not may(clerk, "release_quarantine")
    assert may(ops, "read_all") and may(ops, "read_department", "health") and may(ops, "release_quarantine")
    assert not may(ops, "submit", "education") and not may(ops, "release_approve")
    assert may(approver, "release_approve") and not may(approver, "release_prepare")
    assert not may(None, "read_all")
    with pytest.raises(NotAllowed, match=r"张老师.*无权"):
        require(clerk, "read_department", "health")
    with pytest.raises(ValueError, match="unknown action"):
        may(clerk, "delete_everything")
    assert [a.login for a in list_accounts(warehouse_engine)] == ["edu.zhang", "lead.wang", "ops.li"]


@pytest.mark.parametrize(("login", "roles", "department", "password", "message"), [
    ("Bad Login!", ["clerk"], "education", None, "登录名"),
    ("edu.x", [], "education", None, "至少需要一个角色"),
    ("edu.x", ["boss"], None, None, "未知角色 boss"),
    ("edu.x", ["clerk"], None, None, "填报员必须属于一个部门"),
    ("ops.x", ["ops"], "education", None, "只有填报员属于部门"),
    ("edu.x", ["clerk"], "finance", None, "未知部门 'finance'.*education"),
    ("edu.x", ["clerk"], "education", "short", "密码至少10个字符"),
])
def test_a_malformed_account_is_refused_naming_what(warehouse_engine: Engine, login: str, roles: list[str],
                                                    department: str | None, password: str | None,
                                                    message: str) -> None:
    with pytest.raises(AccountError, match=message):
        create_account(warehouse_engine, login, "某人", roles, department=department, password=password)
    assert list_accounts(warehouse_engine) == []


def test_password_sign_in_and_a_taken_login(warehouse_engine: Engine) -> None:
    create_account(warehouse_engine, "edu.zhang", "张老师", ["clerk"], department="education", password=PASSWORD)
    with pytest.raises(AccountError, match="已存在"):
        create_account(warehouse_engine, "EDU.ZHANG", "另一人", ["ops"])
    assert authenticate(warehouse_engine, " Edu.Zhang ", PASSWORD, "10.0.0.1").login == "edu.zhang"
    with pytest.raises(SignInRefused) as wrong:
        authenticate(warehouse_engine, "edu.zhang", "wrong password!", "10.0.0.1")
    with pytest.raises(SignInRefused) as unknown:
        authenticate(warehouse_engine, "nobody", PASSWORD, "10.0.0.1")
    assert str(wrong.value) == str(unknown.value)  # the page does not tell which logins exist
    assert (wrong.value.reason, unknown.value.reason) == ("password", "unknown")
    set_password(warehouse_engine, "edu.zhang", "a new long password")
    with pytest.raises(SignInRefused):
        authenticate(warehouse_engine, "edu.zhang", PASSWORD, "10.0.0.1")
    assert authenticate(warehouse_engine, "edu.zhang", "a new long password", "10.0.0.1").department == "education"


def test_failed_sign_ins_are_rate_limited_and_logged(warehouse_engine: Engine,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    create_account(warehouse_engine, "edu.zhang", "张老师", ["clerk"], department="education", password=PASSWORD)
    for _ in range(MAX_FAILURES_PER_LOGIN):
        with pytest.raises(SignInRefused):
            authenticate(warehouse_engine, "edu.zhang", "guess guess guess", "10.0.0.9")
    with pytest.raises(SignInRefused) as throttled:  # the right password too: guessing gains nothing
        authenticate(warehouse_engine, "edu.zhang", PASSWORD, "10.0.0.9")
    assert throttled.value.reason == "throttled" and "失败次数过多" in str(throttled.value)
    assert "sign-in refused (throttled)" in caplog.text
    with warehouse_engine.connect() as conn:
        reasons = [r for (r,) in conn.execute(select(sign_in_attempt.c.reason).order_by(sign_in_attempt.c.attempt_id))]
        assert reasons == ["password"] * MAX_FAILURES_PER_LOGIN + ["throttled"]
    with warehouse_engine.begin() as conn:  # the window passes
        conn.execute(update(sign_in_attempt).values(attempted_at=datetime.now(UTC) - timedelta(hours=1)))
    assert authenticate(warehouse_engine, "edu.zhang", PASSWORD, "10.0.0.9").login == "edu.zhang"


def test_a_sign_in_link_works_once_and_not_after_it_expires(warehouse_engine: Engine) -> None:
    create_account(warehouse_engine, "lead.wang", "王局长", ["approver"])
    secret = issue_sign_in_link(warehouse_engine, "lead.wang")
    with warehouse_engine.connect() as conn:  # stored as its hash only
        assert conn.execute(select(func.count()).where(sign_in_link.c.link_sha256 == secret)).scalar_one() == 0
    assert redeem_sign_in_link(warehouse_engine, secret, "10.0.0.2").login == "lead.wang"
    with pytest.raises(SignInRefused, match="已使用或已过期"):  # replayed
        redeem_sign_in_link(warehouse_engine, secret, "10.0.0.2")
    expired = issue_sign_in_link(warehouse_engine, "lead.wang", ttl_seconds=-1)
    with pytest.raises(SignInRefused):
        redeem_sign_in_link(warehouse_engine, expired, "10.0.0.2")
    with pytest.raises(SignInRefused):
        redeem_sign_in_link(warehouse_engine, "made-up", "10.0.0.2")
    with pytest.raises(AccountError, match="没有登录名"):
        issue_sign_in_link(warehouse_engine, "nobody")


def test_two_browsers_redeeming_one_link_at_once_sign_in_one(warehouse_engine: Engine) -> None:
    create_account(warehouse_engine, "lead.wang", "王局长", ["approver"])
    secret = issue_sign_in_link(warehouse_engine, "lead.wang")
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def redeem() -> None:
        barrier.wait()
        try:
            redeem_sign_in_link(warehouse_engine, secret, "10.0.0.3")
            outcomes.append("in")
        except SignInRefused:
            outcomes.append("refused")
        except Exception as exc:  # SQLite may answer "database is locked" to the loser: also refused
            outcomes.append(f"error {type(exc).__name__}")

    threads = [threading.Thread(target=redeem) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("in") == 1, outcomes


def test_sessions_end_at_sign_out_expiry_and_disable(warehouse_engine: Engine) -> None:
    clerk = create_account(warehouse_engine, "edu.zhang", "张老师", ["clerk"], department="education",
                           password=PASSWORD)
    first = start_session(warehouse_engine, clerk)
    second = start_session(warehouse_engine, clerk)
    assert first.token != second.token and first.csrf_token != second.csrf_token  # new at every sign-in
    found = session_of(warehouse_engine, first.token)
    assert found is not None and found[0].login == "edu.zhang"
    assert csrf_matches(found[1], first.csrf_token) and not csrf_matches(found[1], second.csrf_token)
    assert not csrf_matches(found[1], None)
    with warehouse_engine.connect() as conn:
        assert conn.execute(select(func.count()).where(web_session.c.session_sha256 == first.token)).scalar_one() == 0
    end_session(warehouse_engine, first.token)
    assert session_of(warehouse_engine, first.token) is None
    assert session_of(warehouse_engine, "forged") is None and session_of(warehouse_engine, None) is None
    short = start_session(warehouse_engine, clerk, ttl_seconds=-1)
    assert session_of(warehouse_engine, short.token) is None
    disable_account(warehouse_engine, "edu.zhang")
    assert session_of(warehouse_engine, second.token) is None
    with pytest.raises(SignInRefused, match="已停用"):
        authenticate(warehouse_engine, "edu.zhang", PASSWORD, "10.0.0.1")
    disabled = find_account(warehouse_engine, "edu.zhang")
    assert disabled is not None and disabled.disabled and not may(disabled, "submit", "education")
