"""``/ops/files/…``: receipts, correction workbooks and reports over HTTP, for the ops team.

Prefect artifacts and notices link here (:func:`ops_file_url`) instead of to ``file://`` paths, which
browsers refuse to open from a web page. The intake application mounts :func:`ops_files_router`
(``flows/intake.py``, one line); nothing else of it changes.

    GET /ops/files/receipts/<id>.json                the receipt
    GET /ops/files/receipts/<id>.correction.xlsx     the department's sheet with its problems marked
    GET /ops/files/reports/latest/index.html         the report (and every file of the site)

Who may read: an account allowed ``read_all`` (the ``ops`` role, and the release officials;
``tasks/accounts``), identified by HTTP Basic with its login and password (checked by
:func:`tasks.accounts.authenticate`: rate-limited and logged like any sign-in) or by a session cookie
(:data:`SESSION_COOKIE`) sent with the request. Without either the answer is 401 with
``WWW-Authenticate: Basic``: a browser opening an artifact's link asks for the ops login and password
itself, and sends them with every later ``/ops/files`` link of that window; ``curl -u`` does the same.
(The portal's sign-in is for department clerks only and its cookie is scoped to ``/portal``.) A
clerk's account gets 403 — a department reads its own receipts through the portal.

Only files under ``<data>/receipts`` and ``<data>/reports`` are served: a path that leaves them
(``..``, a symbolic link pointing out), names a hidden file (``.receipts.lock``) or a folder is 404.
"""

from __future__ import annotations

import base64
import binascii
import mimetypes
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, Response
from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from flows.warehouse_access import open_warehouse
from tasks.accounts import Account, SignInRefused, authenticate, may, session_of

PREFIX = "/ops/files"
SESSION_COOKIE = "duikou_session"
SERVED_ROOTS = ("receipts", "reports")
NOT_FOUND = "没有这个文件 (no such file)"


def ops_file_url(path: Path, settings: Settings | None = None) -> str | None:
    """The HTTP address of a file under receipts/ or reports/ (``DUIKOU_PUBLIC_URL``), else None."""
    settings = settings or get_settings()
    try:
        relative = path.resolve().relative_to(settings.resolved_data_dir.resolve())
    except ValueError:
        return None
    if not relative.parts or relative.parts[0] not in SERVED_ROOTS:
        return None
    return f"{settings.resolved_public_url}{PREFIX}/{quote(relative.as_posix())}"


def served_file(settings: Settings, relative: str) -> Path | None:
    """The file ``relative`` names under a served root, or None (outside, hidden, a folder, missing)."""
    parts = Path(relative).parts
    if not parts or parts[0] not in SERVED_ROOTS or any(p.startswith(".") for p in parts):
        return None
    data = settings.resolved_data_dir.resolve()
    root = (data / parts[0]).resolve()
    target = (data / relative).resolve()  # symbolic links followed: where it really is must stay inside
    if not target.is_relative_to(root) or not target.is_file():
        return None
    return target


def _basic(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        login, sep, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return (login, password) if sep and login else None


def _who(engine: Engine, request: Request) -> Account | None:
    """The account behind the request's session cookie or Basic credentials; None when neither is given.
    HTTPException 401 for wrong Basic credentials (the sign-in refusal's own Chinese message)."""
    signed_in = session_of(engine, request.cookies.get(SESSION_COOKIE))
    if signed_in is not None:
        return signed_in[0]
    credentials = _basic(request)
    if credentials is None:
        return None
    remote = request.client.host if request.client else "unknown"
    try:
        return authenticate(engine, credentials[0], credentials[1], remote)
    except SignInRefused as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": 'Basic realm="duikou ops"'}) from exc


def ops_files_router(settings: Settings) -> APIRouter:
    """The ``/ops/files`` routes over ``settings``' data directory and warehouse (accounts)."""
    router = APIRouter()

    @router.get(PREFIX + "/{relative:path}")
    def ops_file(relative: str, request: Request) -> Response:
        account = _who(open_warehouse(settings), request)
        if account is None:  # a browser asks for the login itself (Basic), a script is told 401
            raise HTTPException(401, "请先登录 (sign in: an ops session or HTTP Basic)",
                                headers={"WWW-Authenticate": 'Basic realm="duikou ops"'})
        if not may(account, "read_all"):
            raise HTTPException(403, "此账号无权查看全部门文件 (this account may not read every department's files)")
        target = served_file(settings, relative)
        if target is None:
            raise HTTPException(404, NOT_FOUND)
        kind = "application/json" if target.suffix == ".json" else (
            mimetypes.guess_type(target.name)[0] or "application/octet-stream")
        return FileResponse(target, media_type=kind, headers={"Cache-Control": "private, no-store",
                                                             "X-Content-Type-Options": "nosniff"})

    return router
