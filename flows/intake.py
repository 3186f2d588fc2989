"""``duikou intake-server``: the HTTP door departments submit their returns through.

    POST /submissions       multipart: ``file`` (.xlsx/.xls/.csv) and ``period``; 202 + submission id
    GET  /submissions/{id}  status and, once the flow has finished, the receipt
    GET  /healthz           liveness (no token)

Every request but ``/healthz`` carries ``Authorization: Bearer <token>``; the token alone says
which department is speaking (``tasks/landing/intake_tokens.py``). A ``department`` field in the form,
if sent, must agree with the token or the request is refused (403) — it is never used. A
department reads only its own submissions: another department's id is answered exactly like an
unknown one (404), so an id never reveals that it exists.

Uploads are checked before the body is read: the token, the ``Content-Length`` against
``DUIKOU_MAX_UPLOAD_BYTES``; then the body is streamed into ``landing/.incoming/`` (counted as
it arrives, refused with 413 the moment it passes the limit) and moved to
``landing/<department>/<period>/<id><suffix>`` only when complete and valid. The whole body is
counted too (file, fields, part headers, epilogue: ``DUIKOU_MAX_UPLOAD_BYTES`` +
:data:`MULTIPART_OVERHEAD_BYTES`, with or without ``Content-Length``) and the parts
(:data:`MAX_FORM_PARTS`) — 413 past either. A body the multipart parser cannot read is 400 (part
headers over :data:`MAX_PART_HEADER_BYTES` included), and so is one that ends before its closing
boundary: a file is committed only once the parser has reached the end of the body, so a cut-off
upload is never stored truncated. The period must lie in the plausible window
(``tasks/periods.parse_plausible_period``, 422 naming the window) and the department's file name
is cleaned (``tasks/landing.clean_original_name``) before it is stored anywhere. Then
``duikou.submission.received`` is emitted and the answer goes out at once; if the event cannot
be sent, the file still waits in the landing area and the nightly run loads it.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from prefect.settings import PREFECT_API_URL
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from sqlalchemy import Engine
from starlette.requests import ClientDisconnect

from duikou_settings import Settings, get_settings
from expectations.declaration import load_declarations
from flows import events
from flows.ops_files import ops_files_router
from tasks.forms.periods import parse_plausible_period
from tasks.landing.intake_tokens import TokenRegistry
from tasks.landing.landed import LandedFile, LandingWriter, UploadRefused, clean_original_name, find_landed, suffix_for

log = logging.getLogger("duikou.intake")

SUBMISSION_ID = re.compile(r"^[0-9a-f]{16}$")
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and the period field around the file
MAX_FIELD_BYTES = 1024
MAX_FORM_PARTS = 16  # file, period and department are all a submission has; the rest is room for a client's extras
MAX_PART_HEADER_BYTES = 8 * 1024  # a part's header lines together; a 255-character name percent-encoded fits 3×
NOT_FOUND = "没有这个提交 (no such submission)"  # an unknown id and another department's id: the same answer


@dataclass
class _Upload:
    """State of one streamed multipart body."""

    writer: LandingWriter
    fields: dict[str, str] = field(default_factory=dict)
    original_name: str | None = None
    finished: bool = False  # the parser reached the closing boundary: only then is the body whole
    parts: int = 0
    _header_bytes: int = 0
    _headers: dict[bytes, bytes] = field(default_factory=dict)
    _header_name: bytes = b""
    _header_value: bytes = b""
    _field_name: str | None = None
    _field_value: bytearray = field(default_factory=bytearray)
    _in_file: bool = False

    def callbacks(self) -> dict[str, Callable[..., None]]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda data, start, end: self._extend_name(data[start:end]),
            "on_header_value": lambda data, start, end: self._extend_value(data[start:end]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _count_header(self, data: bytes) -> None:
        self._header_bytes += len(data)
        if self._header_bytes > MAX_PART_HEADER_BYTES:
            raise UploadRefused(400, f"multipart 分段头超过 {MAX_PART_HEADER_BYTES} 字节 "
                                     f"(part headers longer than {MAX_PART_HEADER_BYTES} bytes)")

    def _extend_name(self, data: bytes) -> None:
        self._count_header(data)
        self._header_name += data

    def _extend_value(self, data: bytes) -> None:
        self._count_header(data)
        self._header_value += data

    def _part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_FORM_PARTS:
            raise UploadRefused(413, f"表单分段超过 {MAX_FORM_PARTS} 个 (more than {MAX_FORM_PARTS} form parts)")
        self._headers, self._field_name, self._field_value, self._in_file = {}, None, bytearray(), False
        self._header_bytes = 0

    def _header_end(self) -> None:
        self._headers[self._header_name.lower()] = self._header_value
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        name = options.get(b"name")
        if name is None:
            raise UploadRefused(400, "multipart part without a name")
        self._field_name = name.decode("utf-8", "replace")
        if b"filename" in options:
            if self._field_name != "file" or self.original_name is not None:
                raise UploadRefused(400, "exactly one file, in the field named 'file'")
            self.original_name = clean_original_name(options[b"filename"].decode("utf-8", "replace"))
            suffix_for(self.original_name)  # refuse an unreadable type before its bytes arrive
            self._in_file = True

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.writer.write(data[start:end])
            return
        self._field_value += data[start:end]
        if len(self._field_value) > MAX_FIELD_BYTES:
            raise UploadRefused(400, f"form field {self._field_name!r} longer than {MAX_FIELD_BYTES} bytes")

    def _part_end(self) -> None:
        if not self._in_file and self._field_name is not None:
            self.fields[self._field_name] = self._field_value.decode("utf-8", "replace").strip()

    def _end(self) -> None:
        self.finished = True


def _bearer(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _refuse(status: int, message: str) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=message, headers=headers)


def create_app(settings: Settings | None = None, prefect_api_url: str | None = None) -> FastAPI:
    """The intake application; ``settings`` default to the environment's, ``prefect_api_url`` to
    ``PREFECT_API_URL`` read now ("" = no Prefect server: files wait for the nightly run)."""
    settings = settings or get_settings()
    api_url = str(PREFECT_API_URL.value() or "") if prefect_api_url is None else prefect_api_url
    registry = TokenRegistry(settings.resolved_intake_tokens_file, settings.intake_token_hashes)
    declarations = load_declarations()
    warehouse: dict[str, Engine] = {}  # opened on the first status request that finds a warehouse
    app = FastAPI(title="duikou intake", description="Departments submit returns; the token names the department.")
    app.include_router(ops_files_router(settings))  # /ops/files/…: receipts and reports for the ops team

    def department_of(request: Request) -> str:
        token = _bearer(request)
        department = registry.department_for(token) if token else None
        if department is None:
            raise _refuse(401, "缺少或无效的令牌 (missing or unknown bearer token)")
        return department

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/submissions", status_code=202)
    async def submit(request: Request) -> dict[str, Any]:
        department = department_of(request)
        max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            raise _refuse(413, f"文件超过上限 {settings.max_upload_bytes} 字节 (request body too large)")
        content_type, options = parse_options_header(request.headers.get("content-type", ""))
        if content_type != b"multipart/form-data" or b"boundary" not in options:
            raise _refuse(415, "请以 multipart/form-data 提交 file 与 period (send multipart/form-data)")
        upload = _Upload(LandingWriter(settings.landing_dir, settings.max_upload_bytes))
        try:
            parser = MultipartParser(options[b"boundary"], upload.callbacks())  # type: ignore[arg-type]
            received = 0
            async for chunk in request.stream():  # counted here too: chunked bodies have no Content-Length
                received += len(chunk)
                if received > max_body:
                    raise UploadRefused(413, f"请求体超过上限 {max_body} 字节 (request body larger than {max_body} "
                                             "bytes: file, form fields and multipart overhead together)")
                parser.write(chunk)
            parser.finalize()
            if not upload.finished:  # python-multipart's finalize() does not check this itself
                raise UploadRefused(400, "请求体不完整: 缺少 multipart 结束边界，未保存 (incomplete body: "
                                         "the closing multipart boundary never arrived; nothing stored)")
            landed = _accept(upload, department, declarations, settings, via="intake")
        except UploadRefused as exc:
            upload.writer.discard()
            raise _refuse(exc.status, str(exc)) from None
        except FormParserError as exc:  # malformed multipart: the client's fault, never a 500
            upload.writer.discard()
            raise _refuse(400, f"multipart 格式错误，未保存 (malformed multipart body: {exc})") from None
        except ClientDisconnect:
            upload.writer.discard()
            raise _refuse(400, "客户端中途断开，未保存 (client disconnected before the body was complete)") from None
        except Exception:
            upload.writer.discard()
            raise
        event_note = await _announce(landed, api_url)
        return {"submission_id": landed.submission_id, "status": "received", "department": department,
                "period": landed.period, "original_name": landed.original_name,
                "received_at": landed.received_at.isoformat(), "receipt_url": f"/submissions/{landed.submission_id}",
                "event": event_note}

    @app.get("/submissions/{submission_id}")
    def status(submission_id: str, request: Request) -> JSONResponse:
        department = department_of(request)
        if not SUBMISSION_ID.match(submission_id):
            raise _refuse(404, NOT_FOUND)
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
        raise _refuse(404, NOT_FOUND)  # unknown, or another department's: the same answer either way

    return app


def _accept(upload: _Upload, department: str, declarations: dict[str, Any], settings: Settings,
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


async def _announce(landed: LandedFile, api_url: str) -> str:
    if not api_url:
        return "not sent (no PREFECT_API_URL); the nightly run will load the file"
    event = events.submission_received(submission_id=landed.submission_id, path=str(landed.path),
                                       department=landed.department, period=landed.period,
                                       original_name=landed.original_name, via="intake")
    try:
        await events.aemit(event, api_url=api_url)
    except Exception as exc:  # the file is safe in landing/: the nightly run will load it
        log.warning("could not emit %s for %s: %s", events.SUBMISSION_RECEIVED, landed.submission_id, exc)
        return f"not sent ({type(exc).__name__}); the nightly run will load the file"
    return "sent"


def _ledger_row(warehouse: dict[str, Engine], settings: Settings, submission_id: str) -> dict[str, Any] | None:
    """The ledger row, or None — also while no warehouse exists yet (the intake never creates one)."""
    from flows.warehouse_access import existing_warehouse
    from warehouse.ledger import ledger_row

    if "engine" not in warehouse:
        found = existing_warehouse(settings)
        if found is None:
            return None
        warehouse["engine"] = found
    return ledger_row(warehouse["engine"], submission_id)


def run_server(host: str, port: int) -> None:
    import uvicorn

    uvicorn.run(create_app(), host=host, port=port, log_level="info")
