"""Issue 13 at the intake door, against the real intake app served by uvicorn on 127.0.0.1.

Requests are written byte by byte on a raw socket (``Connection: close``), so a malformed body, a
body without ``Content-Length`` (chunked) or one that the server refuses before it has been read
to its end is exactly what a real client sends and what it gets back. Every refused upload must
leave nothing in ``landing/``: no stored file, no sidecar, no leftover in ``landing/.incoming/``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from duikou_settings import Settings
from tasks.landing.intake_tokens import create_token
from tests.helpers.raw_http import exchange

BOUNDARY = "hostileboundary"
FORM = b"\xe4\xb9\xa1(\xe9\x95\x87),x\n" * 20  # never parsed here: only stored and hashed
DEPARTMENTS = ("health", "poverty", "tourism")


@dataclass
class Intake:
    port: int
    settings: Settings
    tokens: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def intake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Intake]:
    from flows.intake import create_app
    from flows.warehouse_access import clear_cache

    for name in ("DUIKOU_WAREHOUSE_URL", "DUIKOU_AS_OF", "DUIKOU_PROGRAMME_START"):
        monkeypatch.delenv(name, raising=False)
    clear_cache()
    settings = Settings(data_dir=tmp_path / "data", max_upload_bytes=4096)
    tokens = {d: create_token(settings.resolved_intake_tokens_file, d, replace=False)[0] for d in DEPARTMENTS}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, prefect_api_url=""), log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield Intake(sock.getsockname()[1], settings, tokens)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
        clear_cache()


@dataclass
class Reply:
    status: int
    raw_body: bytes

    def json(self) -> Any:
        return json.loads(self.raw_body)


def post_raw(intake: Intake, department: str, chunks: Iterable[bytes], chunked: bool = False,
             content_type: str = f"multipart/form-data; boundary={BOUNDARY}") -> Reply:
    """POST /submissions as a real client would, with the body sent by a second thread so that an
    answer given before the body is read to its end is received like any other."""
    body = list(chunks) if not chunked else chunks
    head = [b"POST /submissions HTTP/1.1", f"Host: 127.0.0.1:{intake.port}".encode(),
            f"Authorization: Bearer {intake.tokens[department]}".encode(),
            f"Content-Type: {content_type}".encode(), b"Connection: close"]
    head.append(b"Transfer-Encoding: chunked" if chunked
                else f"Content-Length: {sum(len(c) for c in body)}".encode())
    status, answer = exchange(intake.port, head, body, chunked=chunked)
    return Reply(status, answer)


def part(name: str, value: bytes, filename: bytes | None = None, extra_headers: Iterable[bytes] = ()) -> bytes:
    disposition = b'Content-Disposition: form-data; name="%s"' % name.encode()
    if filename is not None:
        disposition += b'; filename="%s"' % filename
    return b"\r\n".join([f"--{BOUNDARY}".encode(), disposition, *extra_headers, b"", value]) + b"\r\n"


def form(period: str = "2016-10", filename: bytes = b"form.xlsx", content: bytes = FORM) -> bytes:
    """A well-formed body: the period field, the file, the closing boundary."""
    return part("period", period.encode()) + part("file", content, filename) + f"--{BOUNDARY}--\r\n".encode()


def landed(settings: Settings) -> list[Path]:
    """Every file in the landing area, hidden ones and half-written ones in .incoming/ included."""
    root = settings.landing_dir
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def assert_refused(reply: Reply, status: int, intake: Intake, *words: str) -> None:
    """A clear JSON answer with ``status`` (never a 500 or a traceback) and nothing left in landing/."""
    assert reply.status == status, reply.raw_body[:500]
    detail = reply.json()["detail"]
    assert "Traceback" not in detail
    for word in words:
        assert word in detail, detail
    assert landed(intake.settings) == []
    assert {p.name for p in intake.settings.landing_dir.iterdir()} <= {".incoming"}


def test_a_well_formed_raw_upload_is_accepted(intake: Intake) -> None:
    """The raw client itself is right: the same framing that the hostile tests bend is accepted."""
    reply = post_raw(intake, "tourism", [form()])
    assert reply.status == 202, reply.raw_body
    assert [p.name for p in landed(intake.settings) if not p.name.startswith(".")] == \
        [f"{reply.json()['submission_id']}.xlsx"]
    chunked = post_raw(intake, "health", [form()[:100], form()[100:]], chunked=True)
    assert chunked.status == 202, chunked.raw_body


# --- fault 7: malformed multipart bodies are 400, never 500 ----------------------------------------------------

@pytest.mark.parametrize("body", [
    pytest.param(b"this is not a multipart body at all \x00\xff" * 50, id="garbage"),
    pytest.param(form().replace(BOUNDARY.encode(), b"someotherboundary"), id="boundary-never-appears"),
    pytest.param(form().replace(b"Content-Disposition: form-data", b"Content-Disposition form-data"),
                 id="header-line-without-colon"),
    pytest.param(part("period", b"2016-10") + part("file", FORM, b"form.xlsx", [b"X-Padding: " + b"p" * 20_000])
                 + f"--{BOUNDARY}--\r\n".encode(), id="one-huge-part-header"),
    pytest.param(part("period", b"2016-10")
                 + part("file", FORM, b"form.xlsx", [b"X-Padding-%d: " % i + b"p" * 3000 for i in range(6)])
                 + f"--{BOUNDARY}--\r\n".encode(), id="part-headers-over-the-cap-together"),
])
def test_a_malformed_multipart_body_is_a_clear_400(intake: Intake, body: bytes) -> None:
    reply = post_raw(intake, "tourism", [body])
    assert_refused(reply, 400, intake, "multipart")


@pytest.mark.parametrize("cut", [
    pytest.param(len(f"\r\n--{BOUNDARY}--\r\n"), id="closing-boundary-missing"),
    pytest.param(len(f"{BOUNDARY}--\r\n"), id="closing-boundary-cut-in-half"),
    pytest.param(len(f"\r\n--{BOUNDARY}--\r\n") + 50, id="file-cut-off"),
])
def test_a_body_that_ends_before_its_closing_boundary_is_refused_not_stored_truncated(intake: Intake,
                                                                                      cut: int) -> None:
    body = form()[:-cut]
    assert_refused(post_raw(intake, "tourism", [body]), 400, intake, "boundary")
    assert_refused(post_raw(intake, "tourism", [body[:200], body[200:]], chunked=True), 400, intake, "boundary")


def test_a_chunked_upload_of_100000_form_fields_is_refused(intake: Intake) -> None:
    def body() -> Iterator[bytes]:
        yield part("period", b"2016-10") + part("file", FORM, b"form.xlsx")
        field = part("x", b"1")
        for _ in range(100):
            yield field * 1000
        yield f"--{BOUNDARY}--\r\n".encode()

    reply = post_raw(intake, "tourism", body(), chunked=True)
    assert_refused(reply, 413, intake)  # the part count or the body's total, whichever the chunks reach first


def test_more_form_parts_than_a_submission_has_are_refused_within_a_small_body(intake: Intake) -> None:
    body = part("period", b"2016-10") + part("file", FORM, b"form.xlsx") + part("x", b"1") * 40 \
        + f"--{BOUNDARY}--\r\n".encode()
    assert len(body) < intake.settings.max_upload_bytes  # not the size: the number of parts
    assert_refused(post_raw(intake, "tourism", [body]), 413, intake, "form parts")


@pytest.mark.parametrize("padding", [
    pytest.param("preamble", id="newlines-before-the-first-boundary"),
    pytest.param("epilogue", id="bytes-after-the-closing-boundary"),
])
def test_a_chunked_body_has_a_total_cap_besides_the_file_cap(intake: Intake, padding: str) -> None:
    """No Content-Length: only counting can stop it. The file and fields are small; what is not
    part of them (which the parser skips) still counts against the whole body's cap."""
    def body() -> Iterator[bytes]:
        if padding == "preamble":
            for _ in range(64):
                yield b"\r\n" * 8192
        yield form()
        if padding == "epilogue":
            for _ in range(64):
                yield b"e" * 16384

    reply = post_raw(intake, "tourism", body(), chunked=True)
    assert_refused(reply, 413, intake, "request body larger than")


# --- fault 1: an impossible period is refused at the door ------------------------------------------------------

@pytest.mark.parametrize(("department", "period"), [("tourism", "9999-12"), ("tourism", "0000-01"),
                                                    ("poverty", "9999"), ("poverty", "0000")])
def test_an_impossible_period_is_refused_naming_the_window(intake: Intake, department: str, period: str) -> None:
    from expectations.declaration import load_declarations
    from tasks.forms.periods import plausible_window

    period_type = load_declarations()[department].period_type
    first, last = plausible_window(period_type, intake.settings.submission_window_today,
                                   intake.settings.programme_start)
    reply = post_raw(intake, department, [form(period=period)])
    assert_refused(reply, 422, intake, period, first.label, last.label)


# --- fault 2: control characters and NUL in the file name never get stored -----------------------------------

def test_nul_and_control_characters_in_the_file_name_are_cleaned_before_anything_is_stored(intake: Intake) -> None:
    from tasks.landing.landed import read_sidecar

    name = "月\x00报\x01\x1b[2J\x7f.xlsx".encode()
    reply = post_raw(intake, "tourism", [form(filename=name)])
    assert reply.status == 202, reply.raw_body
    assert reply.json()["original_name"] == "月报[2J.xlsx"
    stored = intake.settings.landing_dir / "tourism" / "2016-10" / f"{reply.json()['submission_id']}.xlsx"
    assert stored.read_bytes() == FORM
    sidecar = read_sidecar(stored)
    assert sidecar is not None and sidecar["original_name"] == "月报[2J.xlsx"
    assert all(b"\\u00" not in p.read_bytes() for p in landed(intake.settings) if p.name.endswith(".json"))


def test_land_file_cleans_the_name_too(tmp_path: Path) -> None:
    """``duikou submit`` lands a local file through land_file: a name with control characters (a
    Linux file name may hold any byte but NUL and /) is cleaned the same way."""
    from tasks.landing.landed import land_file, read_sidecar

    source = tmp_path / "月报\x07\x1b[31m\x9b.csv"
    source.write_bytes(FORM)
    result = land_file(source, tmp_path / "landing", 4096, "tourism", "2016-10", via="submit")
    assert result.original_name == "月报[31m.csv"
    sidecar = read_sidecar(result.path)
    assert sidecar is not None and sidecar["original_name"] == "月报[31m.csv"


# --- fault 8: another department's id is answered like an unknown one ------------------------------------------

def _get(intake: Intake, department: str, submission_id: str) -> httpx.Response:
    return httpx.get(f"{intake.url}/submissions/{submission_id}",
                     headers={"Authorization": f"Bearer {intake.tokens[department]}"}, timeout=30)


def test_another_department_s_landed_submission_is_404_like_an_unknown_id(intake: Intake) -> None:
    submission_id = post_raw(intake, "tourism", [form()]).json()["submission_id"]
    assert _get(intake, "tourism", submission_id).status_code == 200
    foreign, unknown = _get(intake, "health", submission_id), _get(intake, "health", "0123456789abcdef")
    assert (foreign.status_code, foreign.content) == (unknown.status_code, unknown.content)
    assert foreign.status_code == 404


def test_another_department_s_loaded_submission_is_404_like_an_unknown_id(intake: Intake) -> None:
    """The ledger path: a real warehouse with a tourism row in the submission ledger."""
    from flows.warehouse_access import open_warehouse
    from warehouse.schema import submission

    now = datetime.now(UTC)
    with open_warehouse(intake.settings).begin() as conn:
        conn.execute(submission.insert().values(
            submission_id="feedfacecafebeef", sha256="feedfacecafebeef" + "0" * 48, department="tourism",
            period="2016-10", original_name="form.xlsx", received_at=now, processed_at=now, status="rejected"))
    own = _get(intake, "tourism", "feedfacecafebeef")
    assert own.status_code == 200 and own.json()["period"] == "2016-10"
    foreign, unknown = _get(intake, "health", "feedfacecafebeef"), _get(intake, "health", "0123456789abcdef")
    assert (foreign.status_code, foreign.content) == (unknown.status_code, unknown.content)
    assert foreign.status_code == 404
