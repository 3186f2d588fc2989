"""The department portal: ``/portal`` on the intake server — sign in, send a return, read its receipt.

Server-rendered HTML (Jinja2 templates in ``flows/portal_templates/``, autoescaped), one stylesheet
served by the app, no script: it works on a county intranet with no internet.

| route | what |
|---|---|
| ``GET  /portal/sign-in``, ``POST /portal/sign-in`` | sign in with login and password |
| ``GET  /portal/link/{token}``, ``POST /portal/link`` | a one-time sign-in link (``duikou accounts link``) |
| ``POST /portal/sign-out`` | end the session |
| ``GET  /portal/submissions`` | 本部门报送: the department's submissions, newest first |
| ``GET  /portal/submissions/{id}`` | 回执: outcome, issues with 怎样改正; refreshes itself until processed |
| ``GET  /portal/submissions/{id}/correction.xlsx`` | 更正工作簿, named ``<原文件名>_更正.xlsx`` |
| ``GET  /portal/send``, ``POST /portal/send`` | 报送: a file for an open or late period |
| ``POST /portal/nil`` | 本期无数据: a nil return, where the declaration allows one |
| ``GET  /portal/blank?period=…`` | 空白报表 of the department's return for that period |

Who is speaking comes from the session only (``tasks/accounts``): the department is the account's,
never a form field. Sessions live in an HttpOnly, SameSite=Lax cookie (``Secure`` over HTTPS);
every POST carries the session's CSRF token (sign-in: the pre-session cookie's); signing in always
starts a new session (a cookie planted before is ended, never adopted). Another department's
submission is answered exactly like an unknown one (404). Uploads go through the intake's own
streaming (size counted as bytes arrive, file name cleaned, never a path).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import Engine

from duikou_settings import Settings
from expectations.declaration import Declaration
from flows.upload_stream import announce, stream_upload
from tasks.accounts import (
    Account,
    SignInRefused,
    WebSession,
    authenticate,
    end_session,
    may,
    redeem_sign_in_link,
    session_of,
    start_session,
)
from tasks.accounts.signin import SESSION_TTL_SECONDS
from tasks.forms.periods import PeriodError
from tasks.landing.landed import UploadRefused
from tasks.portal.blank_form import blank_form, department_names
from tasks.portal.open_periods import PeriodChoice, chosen_period, period_choices
from tasks.portal.views import (
    XLSX_TYPE,
    attachment,
    correction_download_name,
    correction_workbook_path,
    department_submissions,
    ledger_periods,
    line_of,
    owned_submission,
    read_receipt,
    receipt_page,
    waiting_submission,
)
from tasks.submission.journey import SubmissionError
from tasks.submission.nil_return import nil_return_allowed, record_nil_return
from warehouse.refdata import reference_frames

log = logging.getLogger("duikou.portal")

TEMPLATES = Path(__file__).with_name("portal_templates")
SESSION_COOKIE = "duikou_session"
PRE_COOKIE = "duikou_pre"  # the sign-in form's CSRF token, before there is a session
PREFIX = "/portal"
STATIC = {"portal.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}  # every asset the pages use
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # a sign-in link's token never leaves in a Referer
    "Cache-Control": "no-store",
}

_ENV = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Clerk:
    account: Account
    session: WebSession
    department: str

    @property
    def department_zh(self) -> str:
        return department_names().get(self.department, self.department)


def mount_portal(app: FastAPI, settings: Settings, declarations: dict[str, Declaration], api_url: str,
                 engine_of: Callable[[], Engine | None]) -> None:
    """Add the portal's routes to the intake application ``app``."""
    session_seconds = SESSION_TTL_SECONDS

    @app.middleware("http")
    async def portal_headers(request: Request, call_next: Callable[[Request], Any]) -> Response:
        response: Response = await call_next(request)
        if request.url.path.startswith(PREFIX):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    def page(request: Request, template: str, status: int = 200, clerk: Clerk | None = None,
             **context: Any) -> HTMLResponse:
        html = _ENV.get_template(template).render(prefix=PREFIX, clerk=clerk, **context)
        return HTMLResponse(html, status_code=status)

    def refused_page(request: Request, status: int, message: str, clerk: Clerk | None = None) -> HTMLResponse:
        return page(request, "message.html", status, clerk, title="无法完成", message=message)

    def clerk_of(request: Request) -> Clerk | None:
        token = request.cookies.get(SESSION_COOKIE, "")
        engine = engine_of()
        if not token or engine is None:
            return None
        found = session_of(engine, token)
        if found is None:
            return None
        account, session = found
        if account.department is None or not may(account, "read_department", account.department):
            return None
        return Clerk(account, session, account.department)

    def require_clerk(request: Request) -> Clerk:
        clerk = clerk_of(request)
        if clerk is None:
            raise HTTPException(status_code=303, headers={"Location": f"{PREFIX}/sign-in"})
        return clerk

    def check_csrf(sent: str | None, expected: str) -> None:
        if not sent or not expected or not hmac.compare_digest(sent.encode("utf-8"), expected.encode("utf-8")):
            raise HTTPException(status_code=403,
                                detail="表单已失效或来源不明（缺少或错误的 CSRF 令牌），请刷新页面后重试")

    def secure(request: Request) -> bool:
        return request.url.scheme == "https"

    def signed_in(request: Request, account: Account) -> Response:
        """A new session for ``account`` (whatever session cookie came with the request is ended, never kept)."""
        engine = engine_of()
        assert engine is not None
        old = request.cookies.get(SESSION_COOKIE)
        if old:
            end_session(engine, old)  # session fixation: a planted or earlier token dies here
        session = start_session(engine, account, session_seconds)
        response = RedirectResponse(f"{PREFIX}/submissions", status_code=303)
        response.set_cookie(SESSION_COOKIE, session.token, max_age=session_seconds, path=PREFIX, httponly=True,
                            samesite="lax", secure=secure(request))
        response.delete_cookie(PRE_COOKIE, path=PREFIX)
        log.info("portal: %s (%s) signed in from %s", account.login, account.department, _remote(request))
        return response

    def with_pre_cookie(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        pre = request.cookies.get(PRE_COOKIE) or secrets.token_urlsafe(32)
        response = page(request, template, status, None, csrf=pre, **context)
        response.set_cookie(PRE_COOKIE, pre, max_age=3600, path=PREFIX, httponly=True, samesite="lax",
                            secure=secure(request))
        return response

    def clerk_account_problem(account: Account) -> str | None:
        if account.department is None or not may(account, "submit", account.department):
            return "此账户不是部门填报员账户，不能登录报送平台"
        if account.department not in declarations:
            return f"部门“{account.department}”没有申报的报表"
        return None

    @app.exception_handler(HTTPException)
    async def portal_http_errors(request: Request, exc: HTTPException) -> Response:
        if not request.url.path.startswith(PREFIX):  # the JSON API keeps FastAPI's answers
            from fastapi.exception_handlers import http_exception_handler

            return await http_exception_handler(request, exc)
        if exc.status_code == 303 and exc.headers:
            return RedirectResponse(exc.headers["Location"], status_code=303)
        return refused_page(request, exc.status_code, str(exc.detail), clerk_of(request))

    @app.get(f"{PREFIX}/static/{{name}}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in STATIC:  # a fixed list: a name is never a path
            raise HTTPException(status_code=404, detail="没有这个文件")
        return Response((TEMPLATES / name).read_bytes(), media_type=STATIC[name],
                        headers={"Cache-Control": "max-age=3600"})

    @app.get(PREFIX, include_in_schema=False)
    @app.get(f"{PREFIX}/", include_in_schema=False)
    def home(request: Request) -> Response:
        target = "submissions" if clerk_of(request) is not None else "sign-in"
        return RedirectResponse(f"{PREFIX}/{target}", status_code=303)

    @app.get(f"{PREFIX}/sign-in", include_in_schema=False)
    def sign_in_form(request: Request) -> Response:
        if clerk_of(request) is not None:
            return RedirectResponse(f"{PREFIX}/submissions", status_code=303)
        return with_pre_cookie(request, "sign_in.html", error=None, login="")

    @app.post(f"{PREFIX}/sign-in", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await request.form()
        check_csrf(_text(form.get("csrf")), request.cookies.get(PRE_COOKIE, ""))
        login, password = _text(form.get("login")).strip(), _text(form.get("password"))
        engine = engine_of()
        if engine is None:
            return with_pre_cookie(request, "sign_in.html", 503, login=login,
                                   error="系统尚未初始化（没有数据库），请联系运维")
        try:
            account = authenticate(engine, login, password, _remote(request))
        except SignInRefused as exc:
            return with_pre_cookie(request, "sign_in.html", 401, error=str(exc), login=login)
        problem = clerk_account_problem(account)
        if problem is not None:
            return with_pre_cookie(request, "sign_in.html", 403, error=problem, login=login)
        return signed_in(request, account)

    @app.get(f"{PREFIX}/link/{{token}}", include_in_schema=False)
    def link_form(token: str, request: Request) -> Response:
        return with_pre_cookie(request, "link.html", token=token)

    @app.post(f"{PREFIX}/link", include_in_schema=False)
    async def link_sign_in(request: Request) -> Response:
        form = await request.form()
        check_csrf(_text(form.get("csrf")), request.cookies.get(PRE_COOKIE, ""))
        engine = engine_of()
        if engine is None:
            return refused_page(request, 503, "系统尚未初始化（没有数据库），请联系运维")
        try:
            account = redeem_sign_in_link(engine, _text(form.get("token")), _remote(request))
        except SignInRefused as exc:
            log.warning("portal: sign-in link refused from %s: %s", _remote(request), exc)
            return refused_page(request, 403, f"{exc}。登录链接只能使用一次。")
        problem = clerk_account_problem(account)
        if problem is not None:
            return refused_page(request, 403, problem)
        return signed_in(request, account)

    @app.post(f"{PREFIX}/sign-out", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        clerk = require_clerk(request)
        form = await request.form()
        check_csrf(_text(form.get("csrf")), clerk.session.csrf_token)
        engine = engine_of()
        assert engine is not None
        end_session(engine, clerk.session.token)
        response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    @app.get(f"{PREFIX}/submissions", include_in_schema=False)
    def submissions(request: Request) -> Response:
        clerk = require_clerk(request)
        lines = department_submissions(engine_of(), settings, clerk.department)
        return page(request, "submissions.html", clerk=clerk, lines=lines,
                    title_zh=declarations[clerk.department].title_zh)

    def line_for(clerk: Clerk, submission_id: str) -> tuple[Any, dict[str, Any] | None]:
        row = owned_submission(engine_of(), clerk.department, submission_id)
        if row is not None:
            return line_of(row), row
        waiting = waiting_submission(settings, clerk.department, submission_id)
        if waiting is None:  # unknown, or another department's: the same answer
            raise HTTPException(status_code=404, detail="没有这个报送记录")
        return waiting, None

    @app.get(f"{PREFIX}/submissions/{{submission_id}}", include_in_schema=False)
    def receipt(submission_id: str, request: Request) -> Response:
        clerk = require_clerk(request)
        line, row = line_for(clerk, submission_id)
        found = read_receipt(settings, submission_id) if row is not None else None
        if found is None:  # waiting, or in the ledger with its receipt still being written
            line = replace(line, status="received")
        view = receipt_page(found, line, clerk.department)
        return page(request, "receipt.html", clerk=clerk, view=view,
                    title_zh=declarations[clerk.department].title_zh)

    @app.get(f"{PREFIX}/submissions/{{submission_id}}/correction.xlsx", include_in_schema=False)
    def correction(submission_id: str, request: Request) -> Response:
        clerk = require_clerk(request)
        row = owned_submission(engine_of(), clerk.department, submission_id)
        path = correction_workbook_path(settings, submission_id) if row is not None else None
        if row is None or path is None:
            raise HTTPException(status_code=404, detail="没有这个更正工作簿")
        return Response(path.read_bytes(), media_type=XLSX_TYPE,
                        headers=attachment(correction_download_name(str(row["original_name"]))))

    def choices_for(department: str) -> list[PeriodChoice]:
        loaded, first = ledger_periods(engine_of(), department)
        from flows.department_notices import county_today

        return period_choices(declarations[department], county_today(settings), loaded, first,
                              settings.programme_start)

    def send_page(request: Request, clerk: Clerk, status: int = 200, error: str | None = None) -> HTMLResponse:
        return page(request, "send.html", status, clerk, choices=choices_for(clerk.department), error=error,
                    title_zh=declarations[clerk.department].title_zh, max_mb=settings.max_upload_bytes / 2**20,
                    nil_allowed=nil_return_allowed(clerk.department))

    @app.get(f"{PREFIX}/send", include_in_schema=False)
    def send_form(request: Request) -> Response:
        return send_page(request, require_clerk(request))

    @app.post(f"{PREFIX}/send", include_in_schema=False)
    async def send(request: Request) -> Response:
        clerk = require_clerk(request)
        try:
            upload = await stream_upload(request, settings)
        except HTTPException as exc:
            return send_page(request, clerk, exc.status_code, str(exc.detail))
        try:
            check_csrf(upload.fields.get("csrf"), clerk.session.csrf_token)
            if upload.original_name is None:
                raise UploadRefused(422, "请选择要报送的文件")
            period = chosen_period(upload.fields.get("period", ""), declarations[clerk.department],
                                   choices_for(clerk.department))
            landed = upload.writer.commit(clerk.department, period.label, upload.original_name, "portal")
        except HTTPException:
            upload.writer.discard()
            raise
        except (UploadRefused, PeriodError) as exc:
            upload.writer.discard()
            return send_page(request, clerk, getattr(exc, "status", 422), str(exc))
        except BaseException:
            upload.writer.discard()
            raise
        log.info("portal: %s sent %s for %s %s as %s", clerk.account.login, landed.original_name, clerk.department,
                 landed.period, landed.submission_id)
        await announce(landed, api_url, settings)
        return RedirectResponse(f"{PREFIX}/submissions/{landed.submission_id}", status_code=303)

    @app.post(f"{PREFIX}/nil", include_in_schema=False)
    async def nil(request: Request) -> Response:
        """本期无数据: a nil return recorded at once (tasks/submission/nil_return.py), then its receipt."""
        clerk = require_clerk(request)
        form = await request.form()
        check_csrf(_text(form.get("csrf")), clerk.session.csrf_token)
        if not nil_return_allowed(clerk.department):
            raise HTTPException(status_code=403, detail=f"{declarations[clerk.department].title_zh}不接受无数据申报，"
                                                        "请报送填好的报表")
        engine = engine_of()
        if engine is None:
            raise HTTPException(status_code=503, detail="系统尚未初始化（没有数据库），请联系运维")
        try:
            period = chosen_period(_text(form.get("period")), declarations[clerk.department],
                                   choices_for(clerk.department))
            result = await run_in_threadpool(record_nil_return, engine, clerk.department, period.label,
                                             filed_by=clerk.account.display_name, settings=settings)
        except (PeriodError, SubmissionError) as exc:
            return send_page(request, clerk, 422, str(exc))
        log.info("portal: %s filed a nil return for %s %s as %s", clerk.account.login, clerk.department,
                 period.label, result.submission_id)
        return RedirectResponse(f"{PREFIX}/submissions/{result.submission_id}", status_code=303)

    @app.get(f"{PREFIX}/blank", include_in_schema=False)
    def blank(request: Request, period: str = "") -> Response:
        clerk = require_clerk(request)
        declaration = declarations[clerk.department]
        try:
            chosen = chosen_period(period, declaration, choices_for(clerk.department))
        except PeriodError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from None
        form = blank_form(declaration, chosen.label, reference_frames())
        return Response(form.content, media_type=XLSX_TYPE, headers=attachment(form.file_name))


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _remote(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"
