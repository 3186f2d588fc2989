"""Real processes for the operations tests and bench/latency.py: a Prefect server on a free port
with its own PREFECT_HOME (SQLite), ``duikou serve``, ``duikou intake-server`` and a webhook
receiver that stands in for the ops team's chat.

Every process is started in its own session and stopped by its own process-group id (SIGTERM,
then SIGKILL after a timeout); output goes to log files in the test's directory, shown when a
wait times out.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 60) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 30.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=10)
        except ProcessLookupError:
            pass


def start(name: str, args: list[str], env: dict[str, str], logs: Path) -> Proc:
    logs.mkdir(parents=True, exist_ok=True)
    log = logs / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    return Proc(name, popen, log)


def wait_for(what: str, check: Callable[[], Any], timeout: float, procs: tuple[Proc, ...] = (),
             interval: float = 0.25) -> Any:
    """Poll ``check`` until it returns something truthy; fail with the processes' logs on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (httpx.HTTPError, OSError):
            value = None
        if value:
            return value
        for proc in procs:
            if proc.popen.poll() is not None:
                raise AssertionError(f"{proc.name} exited ({proc.popen.returncode}) while waiting for {what}:\n"
                                     f"{proc.tail()}")
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {p.name} ---\n{p.tail()}" for p in procs)
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{logs}")
        time.sleep(interval)


def base_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DUIKOU_"))}
    env.update({
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "GX_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PYTHONUNBUFFERED": "1",
    })
    return env


def start_prefect_server(root: Path, timeout: float = 180.0, database_url: str | None = None,
                         ui: bool = False) -> tuple[Proc, str, dict[str, str]]:
    """``prefect server start`` on 127.0.0.1:<free port>, waits until healthy. Its database: SQLite in a
    fresh PREFECT_HOME, or ``database_url`` (``postgresql+asyncpg://…``, an empty database: production's layout).
    ``ui``: serve the UI too (for screenshots), at ``PREFECT_UI_URL``."""
    port = free_port()
    env = base_env(root / "prefect-home")
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    env.update({
        "PREFECT_SERVER_UI_ENABLED": "true" if ui else "false",
        "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
        # events become readable (refresh-reports' "newer event wins") after this, not after 5 s
        "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "0.5",
        # as docs/operations.md sets it: the failed-run alert's {{ flow_run|ui_url }} is rendered by the server
        "PREFECT_UI_URL": f"http://127.0.0.1:{port}",
        "PREFECT_UI_API_URL": f"http://127.0.0.1:{port}/api",  # the UI's own calls (default: port 4200)
    })
    proc = start("prefect-server", [str(VENV_BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                    "--port", str(port), *(() if ui else ("--no-ui",))], env, root / "logs")
    api = f"http://127.0.0.1:{port}/api"
    wait_for("the Prefect server's /api/health", lambda: httpx.get(f"{api}/health", timeout=5).status_code == 200,
             timeout, (proc,))
    client_env = base_env(root / "prefect-home")
    client_env["PREFECT_API_URL"] = api
    client_env["PREFECT_UI_URL"] = f"http://127.0.0.1:{port}"
    return proc, api, client_env


def duikou(args: list[str], env: dict[str, str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "duikou"), *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def start_serve(env: dict[str, str], logs: Path, timeout: float = 180.0, extra: tuple[str, ...] = ()) -> Proc:
    proc = start("duikou-serve", [str(VENV_BIN / "duikou"), "serve", "--grace", "20", *extra], env, logs)
    wait_for("duikou serve: ready", lambda: "duikou serve: ready" in proc.tail(200), timeout, (proc,))
    return proc


def start_intake(env: dict[str, str], logs: Path, timeout: float = 120.0) -> tuple[Proc, str]:
    port = free_port()
    proc = start("duikou-intake", [str(VENV_BIN / "duikou"), "intake-server", "--port", str(port)], env, logs)
    url = f"http://127.0.0.1:{port}"
    wait_for("the intake server's /healthz", lambda: httpx.get(f"{url}/healthz", timeout=5).status_code == 200,
             timeout, (proc,))
    return proc, url


@dataclass
class WebhookReceiver:
    """A tiny HTTP server that records every JSON body POSTed to it."""

    received: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> str:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    received.append(json.loads(body or b"{}"))
                except ValueError:
                    received.append({"raw": body.decode("utf-8", "replace")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
