"""Prefect writer slots (``tasks/submission/writer_slots.py``): polite, never in the way.

Without a configured server no slot is taken (a per-process temporary server's slot service
outlived it and blocked a plain ``duikou ingest`` for minutes); with one, loads share one limit
(none is created per partition), and a slot that cannot be had in time is given up with a
warning — the warehouse lock is the real guard.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks.submission import writer_slots


def test_without_a_server_no_slot_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the Prefect API was called")

    monkeypatch.setattr(writer_slots, "_api", refuse)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert not writer_slots.server_configured()
        with writer_slots.writer_slot("tourism", "2016-08"):
            ran = True
    assert ran


@pytest.mark.flow
def test_slots_leave_no_limit_per_partition_and_a_timeout_gives_way(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """One limit for all writers; nothing left per partition (issue 15: ~150 after one nightly); a
    full limit is waited for, then given way to; serve removes what earlier versions left."""
    from prefect.client.orchestration import get_client

    assert writer_slots.server_configured()
    with get_client(sync_client=True) as client:  # what an earlier version left behind
        client.create_global_concurrency_limit(_limit("duikou-writer-tourism-2016-01"))
        client.upsert_global_concurrency_limit_by_name(writer_slots.GLOBAL_WRITERS, 1)
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writer_slots.writer_slot("tourism", "2016-09"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    monkeypatch.setattr(writer_slots, "SLOT_WAIT_S", 2.0)
    holder.start()
    try:
        assert holding.wait(60)
        with (
            caplog.at_level(logging.WARNING, logger=writer_slots.__name__),
            writer_slots.writer_slot("health", "2016-09"),  # the one slot is held: waits, then gives way
        ):
            gave_way = True
        assert gave_way
        assert "no writer slot for health 2016-09" in caplog.text
    finally:
        release.set()
        holder.join(30)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=writer_slots.__name__), writer_slots.writer_slot("tourism", "2016-09"):
        pass  # released: free again
    assert "no writer slot" not in caplog.text
    assert writer_slots.remove_partition_limits() == ["duikou-writer-tourism-2016-01"]
    with get_client(sync_client=True) as client:
        names = [lim.name for lim in client.read_global_concurrency_limits(limit=200)]
    assert [n for n in names if n.startswith("duikou-")] == [writer_slots.GLOBAL_WRITERS]


def _limit(name: str) -> object:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    return GlobalConcurrencyLimitCreate(name=name, limit=1)


# ------------------------------------------------------------------------------------------------
# The retry policy against a scripted HTTP peer: answers a live server gives only under load or
# when broken (503 from SQLite busy, 423 while another writer holds the slot, 500, no answer).
# ------------------------------------------------------------------------------------------------


class _ScriptedApi:
    """A real HTTP server on a free port answering each path from a script of (status, headers)."""

    def __init__(self, script: dict[str, list[tuple[int, dict[str, str]]]]) -> None:
        self.script = script
        self.seen: list[str] = []
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = self.path.removeprefix("/api/").rstrip("/")
                api.seen.append(path)
                answers = api.script.get(path) or [(200, {})]
                status, headers = answers.pop(0) if len(answers) > 1 else answers[0]
                body = json.dumps({"lease_id": "6f1c2b9e-0000-4000-8000-000000000001", "limits": []}).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., _ScriptedApi]]:
    monkeypatch.setattr(writer_slots, "_known", set())
    servers: list[_ScriptedApi] = []

    def start(script: dict[str, list[tuple[int, dict[str, str]]]]) -> _ScriptedApi:
        servers.append(_ScriptedApi(script))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


INC = "v2/concurrency_limits/increment-with-lease"
DEC = "v2/concurrency_limits/decrement-with-lease"


def _run_slot(api_url: str, caplog: pytest.LogCaptureFixture) -> bool:
    with (
        temporary_settings(updates={PREFECT_API_URL: api_url}),
        caplog.at_level(logging.WARNING, logger=writer_slots.__name__),
        writer_slots.writer_slot("tourism", "2016-10"),
    ):
        return True


def test_busy_answers_are_retried_until_the_slot_is_had(scripted: Callable[..., _ScriptedApi],
                                                        caplog: pytest.LogCaptureFixture) -> None:
    api = scripted({INC: [(503, {}), (503, {}), (423, {"Retry-After": "0.1"}), (200, {})]})
    assert _run_slot(api.url, caplog)
    assert api.seen.count(INC) == 4 and api.seen.count(DEC) == 1  # had, then given back
    assert "no writer slot" not in caplog.text


def test_an_error_answer_never_fails_the_load(scripted: Callable[..., _ScriptedApi],
                                              caplog: pytest.LogCaptureFixture) -> None:
    api = scripted({INC: [(500, {})]})
    assert _run_slot(api.url, caplog)  # the block ran under the warehouse lock alone
    assert "no writer slot for tourism 2016-10 (the Prefect API answered" in caplog.text
    assert DEC not in api.seen

    caplog.clear()
    api = scripted({DEC: [(500, {})]})
    assert _run_slot(api.url, caplog)  # a committed load is not turned into a failure by the release
    assert "could not release writer lease" in caplog.text


def test_an_api_that_does_not_answer_is_given_up_soon(monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(writer_slots, "UNREACHABLE_S", 0.3)
    monkeypatch.setattr(writer_slots, "_known", set())
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/api"
    assert _run_slot(url, caplog)
    assert "no writer slot for tourism 2016-10 within" in caplog.text
