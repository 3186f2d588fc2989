"""The department portal in-process (FastAPI's TestClient), with real accounts in a real warehouse and a
return really processed: every route walked with another department's session and with none; session
fixation, a missing CSRF token, a replayed sign-in link and an expired session each refused; file
names and periods at the door.

The browser's walk through the whole loop is tests/portal/test_portal_browser.py.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from duikou_settings import Settings
from expectations.declaration import load_declarations
from flows.pipeline import process_submission
from flows.portal import SESSION_COOKIE
from flows.warehouse_access import open_warehouse
from tasks.accounts import create_account, issue_sign_in_link, session_of
from tasks.landing.intake_tokens import create_token
from tasks.landing.landed import land_file
from tasks.portal.blank_form import blank_form
from tests.helpers.blank_forms import fill_blank
from warehouse import schema
from warehouse.refdata import reference_frames

EDU = load_declarations()["education"]
NAMES = [ind.name for ind in EDU.indicators]
PASSWORD = {"edu-clerk": "教育局-填报-2017!", "health-clerk": "卫健局-填报-2017!"}


@dataclass
class Portal:
    settings: Settings
    engine: Engine
    client: TestClient
    edu_id: str  # an education return, refused, with its receipt and correction workbook
    tokens: dict[str, str]


def sign_in(client: TestClient, login: str) -> str:
    """Sign in through the form; returns the session's CSRF token (read from the page, as a browser would)."""
    client.cookies.clear()
    form = client.get("/portal/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    answer = client.post("/portal/sign-in", data={"login": login, "password": PASSWORD[login], "csrf": csrf.group(1)},
                         follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/submissions", answer.text
    return csrf_of(client)


def csrf_of(client: TestClient) -> str:
    page = client.get("/portal/send")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[Portal]:
    from flows.intake import create_app

    root = tmp_path_factory.mktemp("portal")
    settings = Settings(data_dir=root / "data", as_of="2017-06-05", max_upload_bytes=256 * 1024)
    engine = open_warehouse(settings)
    create_account(engine, "edu-clerk", "王老师", {"clerk"}, department="education", password=PASSWORD["edu-clerk"])
    create_account(engine, "health-clerk", "李医生", {"clerk"}, department="health",
                   password=PASSWORD["health-clerk"])
    tokens = {d: create_token(settings.resolved_intake_tokens_file, d, replace=False)[0]
              for d in ("education", "health")}
    form = blank_form(EDU, "2017-05", reference_frames()).content
    flawed = root / "教育扶贫2017年5月.xlsx"
    flawed.write_bytes(fill_blank(form, NAMES, override={("巴底镇", "school_age_children_persons"): "约600"}))
    landed = land_file(flawed, settings.landing_dir, settings.max_upload_bytes, "education", "2017-05", "test")
    result = process_submission(landed.path, "education", "2017-05", engine=engine, reference=reference_frames(),
                                settings=settings)
    assert result.status == "rejected" and result.receipt.get("correction_workbook")
    with TestClient(create_app(settings, prefect_api_url="")) as client:
        yield Portal(settings, engine, client, result.submission_id, tokens)
    engine.dispose()


def _landed(settings: Settings) -> list[Path]:
    return sorted(p for p in settings.landing_dir.rglob("*") if p.is_file() and ".incoming" not in p.parts)


# every route of the app, with what it takes: (method, path with the education submission's id)
def _routes(edu_id: str) -> list[tuple[str, str]]:
    return [
        ("GET", "/portal/submissions"), ("GET", f"/portal/submissions/{edu_id}"),
        ("GET", f"/portal/submissions/{edu_id}/correction.xlsx"), ("GET", "/portal/send"),
        ("POST", "/portal/send"), ("POST", "/portal/nil"), ("GET", "/portal/blank?period=2017-05"),
        ("POST", "/portal/sign-out"),
        ("GET", f"/submissions/{edu_id}"), ("GET", f"/submissions/{edu_id}/receipt.json"),
        ("GET", f"/submissions/{edu_id}/correction.xlsx"), ("GET", "/submissions"), ("POST", "/submissions"),
        ("GET", f"/ops/files/receipts/{edu_id}.json"),  # the ops team's files (flows/ops_files.py)
    ]


OPEN_ROUTES = {"/healthz", "/portal", "/portal/", "/portal/sign-in", "/portal/link/{token}", "/portal/link",
               "/portal/static/{name}", "/openapi.json"}  # the API schema: routes, never data


def test_the_walk_covers_every_route_of_the_app(portal: Portal) -> None:
    walked = {"/ops/files/{relative:path}" if path.startswith("/ops/files/")
              else path.split("?")[0].replace(portal.edu_id, "{submission_id}") for _, path in _routes(portal.edu_id)}
    def paths(routes: list[object]) -> set[str]:  # an included router (FastAPI's _IncludedRouter) holds its own
        found: set[str] = set()
        for route in routes:
            inner = getattr(route, "original_router", None)
            found |= paths(inner.routes) if inner is not None else {getattr(route, "path", "")}
        return found

    app_paths = paths(portal.client.app.routes)  # type: ignore[attr-defined]
    assert app_paths - OPEN_ROUTES - walked == set(), "a new route must join the walk"


def test_without_a_session_every_portal_route_sends_to_sign_in_and_the_api_wants_a_token(portal: Portal) -> None:
    client = portal.client
    client.cookies.clear()
    before = _landed(portal.settings)
    for method, path in _routes(portal.edu_id):
        answer = client.request(method, path, follow_redirects=False,
                                files={"file": ("a.xlsx", b"x")} if method == "POST" else None)
        if path.startswith("/portal"):
            assert answer.status_code == 303 and answer.headers["location"] == "/portal/sign-in", (method, path)
        else:
            assert answer.status_code == 401, (method, path)
    assert _landed(portal.settings) == before


def test_another_departments_session_and_token_reach_nothing_of_education(portal: Portal) -> None:
    client = portal.client
    csrf = sign_in(client, "health-clerk")
    listing = client.get("/portal/submissions")
    assert listing.status_code == 200 and portal.edu_id not in listing.text and "教育" not in listing.text
    for path in (f"/portal/submissions/{portal.edu_id}", f"/portal/submissions/{portal.edu_id}/correction.xlsx"):
        answer = client.get(path)
        assert answer.status_code == 404 and "教育" not in answer.text, path
    unknown = client.get("/portal/submissions/0000000000000000")
    assert unknown.status_code == 404 and unknown.text.replace("0000000000000000", portal.edu_id) == \
        client.get(f"/portal/submissions/{portal.edu_id}").text  # the same answer: an id reveals nothing
    blank = client.get("/portal/blank?period=2017-05")  # the blank form is health's own, never education's
    assert blank.status_code == 200 and "%E5%81%A5%E5%BA%B7" in blank.headers["content-disposition"]  # 健康
    before = _landed(portal.settings)
    sent = client.post("/portal/send", data={"csrf": csrf, "period": "2017-05", "department": "education"},
                       files={"file": ("卫健5月.xlsx", b"PK not parsed here")}, follow_redirects=False)
    assert sent.status_code == 303
    new = sorted(set(_landed(portal.settings)) - set(before))
    assert new and all(p.relative_to(portal.settings.landing_dir).parts[0] == "health" for p in new)
    headers = {"Authorization": f"Bearer {portal.tokens['health']}"}
    for path in (f"/submissions/{portal.edu_id}", f"/submissions/{portal.edu_id}/receipt.json",
                 f"/submissions/{portal.edu_id}/correction.xlsx"):
        assert client.get(path, headers=headers).status_code == 404, path
    assert portal.edu_id not in client.get("/submissions", headers=headers).text
    # the ops files: a clerk's account, however it signs in, reads none of them (403), nobody at all: 401
    basic = httpx.BasicAuth("health-clerk", PASSWORD["health-clerk"])
    assert client.get(f"/ops/files/receipts/{portal.edu_id}.json", auth=basic).status_code == 403


def test_educations_own_session_and_token_reach_its_receipt_and_workbook(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "edu-clerk")
    page = client.get(f"/portal/submissions/{portal.edu_id}")
    assert page.status_code == 200 and "已退回" in page.text and "只填数字" in page.text  # VALUE_NOT_NUMBER's advice
    assert '<meta http-equiv="refresh"' not in page.text  # processed: no more refreshing
    workbook = client.get(f"/portal/submissions/{portal.edu_id}/correction.xlsx")
    assert workbook.status_code == 200 and workbook.content[:2] == b"PK"
    assert "filename*=UTF-8''%E6%95%99%E8%82%B2%E6%89%B6%E8%B4%AB2017%E5%B9%B45%E6%9C%88_%E6%9B%B4%E6%AD%A3.xlsx" \
        in workbook.headers["content-disposition"]  # 教育扶贫2017年5月_更正.xlsx
    headers = {"Authorization": f"Bearer {portal.tokens['education']}"}
    listing = client.get("/submissions", headers=headers).json()
    assert [s["status"] for s in listing["submissions"] if s["submission_id"] == portal.edu_id] == ["rejected"]
    assert client.get(f"/submissions/{portal.edu_id}/receipt.json", headers=headers).json()["status"] == "rejected"
    assert client.get(f"/submissions/{portal.edu_id}/correction.xlsx", headers=headers).content[:2] == b"PK"


def test_pages_carry_no_outside_asset_and_strict_headers(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "edu-clerk")
    page = client.get("/portal/send")
    assert "http://" not in page.text and "https://" not in page.text and "<script" not in page.text
    assert page.headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in page.headers[
        "content-security-policy"]
    cookie = next(c for c in client.cookies.jar if c.name == SESSION_COOKIE)
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.path == "/portal"
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404  # no CDN-loaded Swagger


def test_session_fixation_a_planted_cookie_is_never_adopted(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "edu-clerk")
    planted = client.cookies.get(SESSION_COOKIE, path="/portal")  # a token the attacker knows
    assert planted and session_of(portal.engine, planted) is not None
    client.cookies.clear()
    page = client.get("/portal/sign-in")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    client.cookies.set(SESSION_COOKIE, planted, path="/portal")  # planted in the victim's browser before sign-in
    answer = client.post("/portal/sign-in", data={"login": "edu-clerk", "password": PASSWORD["edu-clerk"],
                                                  "csrf": csrf.group(1)}, follow_redirects=False)
    assert answer.status_code == 303
    fresh = answer.cookies.get(SESSION_COOKIE)
    assert fresh and fresh != planted
    assert session_of(portal.engine, planted) is None  # the session that came in is ended, never adopted
    assert session_of(portal.engine, fresh) is not None


def test_a_post_without_its_csrf_token_is_refused_and_does_nothing(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "edu-clerk")
    token = client.cookies.get(SESSION_COOKIE, path="/portal")
    before = _landed(portal.settings)
    for csrf in (None, "forged", "伪造的令牌"):
        data = {"period": "2017-05"} | ({"csrf": csrf} if csrf else {})
        sent = client.post("/portal/send", data=data, files={"file": ("教育.xlsx", b"PK bytes")},
                           follow_redirects=False)
        assert sent.status_code == 403 and "CSRF" in sent.text
        out = client.post("/portal/sign-out", data=data, follow_redirects=False)
        assert out.status_code == 403
    assert _landed(portal.settings) == before
    assert token and session_of(portal.engine, token) is not None  # sign-out without the token ended nothing
    client.cookies.clear()
    bare = client.post("/portal/sign-in", data={"login": "edu-clerk", "password": PASSWORD["edu-clerk"]},
                       follow_redirects=False)
    assert bare.status_code == 403 and SESSION_COOKIE not in bare.cookies


def test_a_sign_in_link_works_once(portal: Portal) -> None:
    client = portal.client
    client.cookies.clear()
    token = issue_sign_in_link(portal.engine, "edu-clerk", 600)  # as `duikou accounts link` prints in a URL
    for attempt in (1, 2):
        page = client.get(f"/portal/link/{token}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf and page.headers["referrer-policy"] == "no-referrer"
        answer = client.post("/portal/link", data={"token": token, "csrf": csrf.group(1)}, follow_redirects=False)
        if attempt == 1:
            assert answer.status_code == 303 and answer.cookies.get(SESSION_COOKIE)
            client.cookies.clear()
        else:
            assert answer.status_code == 403 and "只能使用一次" in answer.text and SESSION_COOKIE not in answer.cookies


def test_an_expired_session_is_refused(portal: Portal) -> None:
    client = portal.client
    sign_in(client, "edu-clerk")
    token = client.cookies.get(SESSION_COOKIE, path="/portal")
    with portal.engine.begin() as conn:  # the clock moved past its end
        conn.execute(update(schema.web_session).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    assert token and session_of(portal.engine, token) is None
    answer = client.get("/portal/submissions", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/portal/sign-in"


def test_file_names_are_never_paths_and_periods_must_be_open_or_late(portal: Portal) -> None:
    client = portal.client
    csrf = sign_in(client, "edu-clerk")
    hostile = "../../etc/\x07passwd" + "长" * 300 + ".xlsx"
    sent = client.post("/portal/send", data={"csrf": csrf, "period": "2017年5月"},
                       files={"file": (hostile, b"PK not parsed here")}, follow_redirects=False)
    assert sent.status_code == 303
    submission_id = sent.headers["location"].rsplit("/", 1)[-1]
    stored = [p for p in _landed(portal.settings) if p.name == f"{submission_id}.xlsx"]
    assert [p.relative_to(portal.settings.landing_dir).parts[:2] for p in stored] == [("education", "2017-05")]
    page = client.get(f"/portal/submissions/{submission_id}")
    assert page.status_code == 200 and "../" not in page.text and "\x07" not in page.text
    assert '<meta http-equiv="refresh" content="1">' in page.text  # waiting for its run: refreshes itself,
    assert "本页每1秒自动刷新一次" in page.text  # every second while fresh (its receipt is due within one)
    closed = client.post("/portal/send", data={"csrf": csrf, "period": "2016-01"},
                         files={"file": ("教育.xlsx", b"PK other bytes")}, follow_redirects=False)
    assert closed.status_code == 422 and "现在不能报送" in closed.text
    too_big = client.post("/portal/send", data={"csrf": csrf, "period": "2017-05"},
                          files={"file": ("教育.xlsx", b"x" * (300 * 1024))}, follow_redirects=False)
    assert too_big.status_code == 413 and "上限" in too_big.text


def test_failed_sign_ins_are_refused_alike_then_throttled(portal: Portal) -> None:
    client = portal.client
    create_account(portal.engine, "tourism-clerk", "赵导", {"clerk"}, department="tourism",
                   password="旅游局-填报-2017!")
    client.cookies.clear()
    answers = []
    for password in ["wrong-1", "wrong-2", "wrong-3", "wrong-4", "wrong-5", "旅游局-填报-2017!"]:
        page = client.get("/portal/sign-in")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf
        answer = client.post("/portal/sign-in", data={"login": "tourism-clerk", "password": password,
                                                      "csrf": csrf.group(1)}, follow_redirects=False)
        answers.append((answer.status_code, SESSION_COOKIE in answer.cookies, "失败次数过多" in answer.text))
    assert answers[:5] == [(401, False, False)] * 5
    assert answers[5] == (401, False, True)  # the right password too, until the window has passed


def test_a_nil_return_where_the_declaration_allows_one_and_nowhere_else(portal: Portal) -> None:
    client = portal.client
    csrf = sign_in(client, "edu-clerk")
    assert 'action="/portal/nil"' not in client.get("/portal/send").text  # education: never nil
    refused = client.post("/portal/nil", data={"csrf": csrf, "period": "2017-05"}, follow_redirects=False)
    assert refused.status_code == 403 and "不接受无数据申报" in refused.text
    create_account(portal.engine, "labour-clerk", "孙科长", {"clerk"}, department="labour",
                   password="人社局-填报-2017!")
    PASSWORD["labour-clerk"] = "人社局-填报-2017!"
    csrf = sign_in(client, "labour-clerk")
    assert 'action="/portal/nil"' in client.get("/portal/send").text
    assert client.post("/portal/nil", data={"period": "2017-05"}, follow_redirects=False).status_code == 403
    filed = client.post("/portal/nil", data={"csrf": csrf, "period": "2017年5月"}, follow_redirects=False)
    assert filed.status_code == 303, filed.text
    receipt = client.get(filed.headers["location"])
    assert "已入库（无数据申报）" in receipt.text and '<meta http-equiv="refresh"' not in receipt.text
    listing = client.get("/portal/submissions").text
    assert "2017-05" in listing and "已入库" in listing


def test_a_waiting_receipt_page_asks_every_second_while_fresh_then_every_three() -> None:
    from datetime import timedelta

    from tasks.portal.views import SubmissionLine, receipt_page

    now = datetime.now(UTC)
    fresh = receipt_page(None, SubmissionLine("a1b2c3d4e5f60718", "2017-05", "教育.xlsx", now, "received"), "education")
    queued = receipt_page(None, SubmissionLine("a1b2c3d4e5f60719", "2017-05", "教育.xlsx", now - timedelta(minutes=2),
                                               "received"), "education")
    assert (fresh.done, fresh.refresh_seconds, queued.refresh_seconds) == (False, 1, 3)
