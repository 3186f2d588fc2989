"""``duikou intake-server``: the HTTP door departments submit their returns through.

    POST /submissions       multipart: ``file`` (.xlsx/.xls/.csv) and ``period``; 202 + submission id
    GET  /submissions       the department's own submissions, newest first
    GET  /submissions/{id}  status and, once the flow has finished, the receipt
    GET  /submissions/{id}/receipt.json, /submissions/{id}/correction.xlsx   downloads
    GET  /healthz           liveness (no token)
    /portal/…               the department portal (``flows/portal.py``: sign-in, HTML pages)

There is no ``/docs`` nor ``/redoc``: FastAPI's pages load Swagger UI from a CDN, and the county
intranet has no internet (``/openapi.json`` still describes the API).

Every request but ``/healthz`` carries ``Authorization: Bearer <token>``; the token alone says
which department is speaking (``tasks/landing/intake_tokens.py``). A ``department`` field in the form,
if sent, must agree with the token or the request is refused (403) — it is never used. A
department reads only its own submissions: another department's id is answered exactly like an
unknown one (404), so an id never reveals that it exists.

Uploads are checked before the body is read: the token, the ``Content-Length`` against
``DUIKOU_MAX_UPLOAD_BYTES``; then the body is streamed into ``landing/.incoming/`` (counted as
it arrives, refused with 413 the moment it passes the limit; ``flows/upload_stream.py``, which the
portal's 报送 page shares) and moved to ``landing/<department>/<period>/<id><suffix>`` only when
complete and valid: a file is committed only once the parser has reached the end of the body, so a
cut-off upload is never stored truncated. The period must lie in the plausible window
(``tasks/periods.parse_plausible_period``, 422 naming the window) and the department's file name
is cleaned (``tasks/landing.clean_original_name``) before it is stored anywhere. Then
``duikou.submission.received`` is emitted and the answer goes out at once; if the event cannot
be sent, the file still waits in the landing area and the nightly run loads it.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prefect.settings import PREFECT_API_URL
from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from expectations.declaration import load_declarations
from flows.ops_files import ops_files_router
from flows.portal import mount_portal
from flows.upload_stream import Upload, announce, refuse, stream_upload
from tasks.forms.periods import parse_plausible_period
from tasks.landing.intake_tokens import TokenRegistry
from tasks.landing.landed import LandedFile, UploadRefused, find_landed
from tasks.portal.views import (
    XLSX_TYPE,
    attachment,
    correction_download_name,
    correction_workbook_path,
    department_submissions,
    owned_submission,
    read_receipt,
)

log = logging.getLogger("duikou.intake")

SUBMISSION_ID = re.compile(r"^[0-9a-f]{16}$")
NOT_FOUND = "没有这个提交 (no such submission)"  # an unknown id and another department's id: the same answer


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def create_app(settings: Settings | None = None, prefect_api_url: str | None = None) -> FastAPI:
    """The intake application; ``settings`` default to the environment's, ``prefect_api_url`` to
    ``PREFECT_API_URL`` read now ("" = no Prefect server: files wait for the nightly run)."""
    settings = settings or get_settings()
    api_url = str(PREFECT_API_URL.value() or "") if prefect_api_url is None else prefect_api_url
    registry = TokenRegistry(settings.resolved_intake_tokens_file, settings.intake_token_hashes)
    declarations = load_declarations()
    warehouse: dict[str, Engine] = {}  # opened on the first status request that finds a warehouse
    # no /docs nor /redoc: FastAPI's pages load Swagger UI from a CDN, and the county intranet has no internet
    app = FastAPI(title="duikou intake", description="Departments submit returns; the token names the department.",
                  docs_url=None, redoc_url=None)
    app.include_router(ops_files_router(settings))  # /ops/files/…: receipts and reports for the ops team

    def engine_of() -> Engine | None:
        """The warehouse once it exists (the intake never creates one)."""
        return _warehouse_engine(warehouse, settings)

    def department_of(request: Request) -> str:
        token = _bearer(request)
        department = registry.department_for(token) if token else None
        if department is None:
            raise refuse(401, "缺少或无效的令牌 (missing or unknown bearer token)")
        return department

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/submissions", status_code=202)
    async def submit(request: Request) -> dict[str, Any]:
        department = department_of(request)
        upload = await stream_upload(request, settings)
        try:
            landed = _accept(upload, department, declarations, settings, via="intake")
        except UploadRefused as exc:
            upload.writer.discard()
            raise refuse(exc.status, str(exc)) from None
        except Exception:
            upload.writer.discard()
            raise
        event_note = await announce(landed, api_url, settings)
        return {"submission_id": landed.submission_id, "status": "received", "department": department,
                "period": landed.period, "original_name": landed.original_name,
                "received_at": landed.received_at.isoformat(), "receipt_url": f"/submissions/{landed.submission_id}",
                "event": event_note}

    @app.get("/submissions/{submission_id}")
    def status(submission_id: str, request: Request) -> JSONResponse:
        department = department_of(request)
        if not SUBMISSION_ID.match(submission_id):
            raise refuse(404, NOT_FOUND)
        ledger = _ledger_row(warehouse, settings, submission_id)
        if ledger is not None and ledger["department"] == department:
            receipt_path = settings.receipts_dir / f"{submission_id}.json"
            receipt = json.loads(receipt_path.read_text(encoding="utf-8")) if receipt_path.exists() else None
            return JSONResponse({"submission_id": submission_id, "department": department,
                                 "period": ledger["period"], "original_name": ledger["original_name"],
                                 "status": ledger["status"] if receipt else "processing", "receipt": receipt})
        landed = find_landed(settings.landing_dir, department, submission_id)
        if landed is not None:
            return JSONResponse({"submission_id": submission_id, "department": department,
                                 "period": landed.parent.name, "status": "received", "receipt": None})
        raise refuse(404, NOT_FOUND)  # unknown, or another department's: the same answer either way

    @app.get("/submissions")
    def listing(request: Request) -> JSONResponse:
        """The department's own submissions, newest first (the portal's 本部门报送 as JSON)."""
        department = department_of(request)
        lines = department_submissions(engine_of(), settings, department)
        return JSONResponse({"department": department, "submissions": [
            {"submission_id": line.submission_id, "period": line.period, "original_name": line.original_name,
             "received_at": line.received_at.isoformat(), "status": line.status} for line in lines]})

    @app.get("/submissions/{submission_id}/receipt.json")
    def receipt_download(submission_id: str, request: Request) -> Response:
        department = department_of(request)
        row = owned_submission(engine_of(), department, submission_id)
        receipt = read_receipt(settings, submission_id) if row is not None else None
        if row is None or receipt is None:
            raise refuse(404, NOT_FOUND)
        return Response(json.dumps(receipt, ensure_ascii=False, indent=2), media_type="application/json",
                        headers=attachment(f"{submission_id}.json"))

    @app.get("/submissions/{submission_id}/correction.xlsx")
    def correction_download(submission_id: str, request: Request) -> Response:
        department = department_of(request)
        row = owned_submission(engine_of(), department, submission_id)
        path = correction_workbook_path(settings, submission_id) if row is not None else None
        if row is None or path is None:
            raise refuse(404, NOT_FOUND)
        return Response(path.read_bytes(), media_type=XLSX_TYPE,
                        headers=attachment(correction_download_name(str(row["original_name"]))))

    mount_portal(app, settings, declarations, api_url, engine_of)
    return app


def _accept(upload: Upload, department: str, declarations: dict[str, Any], settings: Settings,
            via: str) -> LandedFile:
    claimed = upload.fields.get("department")
    if claimed and claimed != department:
        raise UploadRefused(403, f"令牌属于 {department}，不能以 {claimed} 名义提交 "
                                 f"(this token submits for {department} only)")
    if upload.original_name is None:
        raise UploadRefused(422, "缺少文件字段 file (multipart field 'file' missing)")
    period = upload.fields.get("period", "")
    if department not in declarations:
        raise UploadRefused(403, f"department {department!r} of this token has no declared return")
    try:
        label = parse_plausible_period(period, declarations[department].period_type,
                                       settings.submission_window_today, settings.programme_start).label
    except ValueError as exc:
        raise UploadRefused(422, f"报告期 period {period!r}: {exc}") from exc
    return upload.writer.commit(department, label, upload.original_name, via)


def _warehouse_engine(warehouse: dict[str, Engine], settings: Settings) -> Engine | None:
    from flows.warehouse_access import existing_warehouse

    if "engine" not in warehouse:
        found = existing_warehouse(settings)
        if found is None:
            return None
        warehouse["engine"] = found
    return warehouse["engine"]


def _ledger_row(warehouse: dict[str, Engine], settings: Settings, submission_id: str) -> dict[str, Any] | None:
    """The ledger row, or None — also while no warehouse exists yet (the intake never creates one)."""
    from warehouse.ledger import ledger_row

    engine = _warehouse_engine(warehouse, settings)
    return ledger_row(engine, submission_id) if engine is not None else None


def run_server(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
