"""A department's upload, streamed: the multipart body read as it arrives, the file written to the landing
area's ``.incoming/`` and counted, then announced — shared by the JSON intake (``flows/intake.py``) and
the portal's 报送 page (``flows/portal.py``).

The whole body is counted (file, fields, part headers, epilogue: ``DUIKOU_MAX_UPLOAD_BYTES`` +
:data:`MULTIPART_OVERHEAD_BYTES`, with or without ``Content-Length``) and the parts
(:data:`MAX_FORM_PARTS`) — 413 past either. A body the multipart parser cannot read is 400 (part
headers over :data:`MAX_PART_HEADER_BYTES` included), and so is one that ends before its closing
boundary. The file name is cleaned (``tasks/landing.clean_original_name``) before it is kept
anywhere; the caller commits the file (or discards it) once it has checked the fields.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import HTTPException, Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect

from duikou_settings import Settings
from flows import events
from tasks.landing.landed import LandedFile, LandingWriter, UploadRefused, clean_original_name, suffix_for

log = logging.getLogger("duikou.intake")

MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries, part headers and the period field around the file
MAX_FIELD_BYTES = 1024
MAX_FORM_PARTS = 16  # file, period and department are all a submission has; the rest is room for a client's extras
MAX_PART_HEADER_BYTES = 8 * 1024  # a part's header lines together; a 255-character name percent-encoded fits 3×


@dataclass
class Upload:
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


def refuse(status: int, message: str) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=message, headers=headers)


async def stream_upload(request: Request, settings: Settings) -> Upload:
    """The multipart body streamed into the landing area's ``.incoming/`` (not yet committed: the caller
    commits or discards ``upload.writer``). Raises HTTPException (400/413/415) with nothing kept."""
    max_body = settings.max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        raise refuse(413, f"文件超过上限 {settings.max_upload_bytes} 字节 (request body too large)")
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or b"boundary" not in options:
        raise refuse(415, "请以 multipart/form-data 提交 file 与 period (send multipart/form-data)")
    upload = Upload(LandingWriter(settings.landing_dir, settings.max_upload_bytes))
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
    except UploadRefused as exc:
        upload.writer.discard()
        raise refuse(exc.status, str(exc)) from None
    except FormParserError as exc:  # malformed multipart: the client's fault, never a 500
        upload.writer.discard()
        raise refuse(400, f"multipart 格式错误，未保存 (malformed multipart body: {exc})") from None
    except ClientDisconnect:
        upload.writer.discard()
        raise refuse(400, "客户端中途断开，未保存 (client disconnected before the body was complete)") from None
    except BaseException:
        upload.writer.discard()
        raise
    return upload


async def announce(landed: LandedFile, api_url: str, settings: Settings | None = None) -> str:
    """Say the file landed: ``duikou.submission.received`` — after asking the running ``duikou serve``
    of this data directory to start the file's run at once (:func:`start_by_service`), when there is
    one; otherwise the event is what starts it (the deployment's trigger). What happened, in words."""
    run_id = await asyncio.to_thread(start_by_service, landed, settings) if settings is not None else None
    if not api_url:
        return ("run started by duikou serve" if run_id else
                "not sent (no PREFECT_API_URL); the nightly run will load the file")
    event = events.submission_received(submission_id=landed.submission_id, path=str(landed.path),
                                       department=landed.department, period=landed.period,
                                       original_name=landed.original_name, via="intake", run_id=run_id)
    try:
        await events.aemit(event, api_url=api_url)
    except Exception as exc:  # the file is safe in landing/: the nightly run will load it
        log.warning("could not emit %s for %s: %s", events.SUBMISSION_RECEIVED, landed.submission_id, exc)
        if run_id:
            return f"run started by duikou serve; the event was not sent ({type(exc).__name__})"
        return f"not sent ({type(exc).__name__}); the nightly run will load the file"
    return "sent; run started by duikou serve" if run_id else "sent"


def start_by_service(landed: LandedFile, settings: Settings) -> str | None:
    """The id of the ``ingest-submission`` run the ``duikou serve`` of ``settings``' data directory
    started for ``landed`` (``flows/handoff.py``, request ``start``), or None: no service, one that
    is gone, stale (other code or another warehouse), busy or failing, or ``DUIKOU_HANDOFF=0`` — the
    event's trigger starts the run then. Never raises: the upload is landed whatever happens here."""
    import os

    from flows.handoff import ServiceStale, find_service, start_run

    if os.environ.get("DUIKOU_HANDOFF", "1").strip() == "0":
        return None
    try:
        service = find_service(settings.resolved_data_dir, settings.resolved_warehouse_url, warn=log.warning)
        if service is None:
            return None
        return start_run(service, {"path": str(landed.path), "department": landed.department,
                                   "period": landed.period})
    except ServiceStale as exc:
        log.warning("upload %s goes to the trigger: %s", landed.submission_id, exc)
    except Exception as exc:
        log.warning("upload %s goes to the trigger: duikou serve could not start its run (%s: %s)",
                    landed.submission_id, type(exc).__name__, exc)
    return None
