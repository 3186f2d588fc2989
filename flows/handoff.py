"""``duikou ingest`` handed to the running ``duikou serve`` of the same data directory.

A fresh ``duikou ingest`` process pays ~6 s of imports (Prefect, GX, pandas) and, without
``PREFECT_API_URL``, a temporary Prefect server (~5 s) for a quarter of a second of work. When a
``duikou serve`` for the same data directory is running, all of that is already paid there: the
command then acts as a thin client — it imports neither Prefect nor GX nor pandas, hands the
file's path, department and period to the service, which runs the ``ingest-submission`` flow in
its own process (a flow run like any other on the Prefect server: same states, receipt, ledger),
and prints the receipt the service sends back, with the same exit code. The service answers as
soon as the receipt is written; the run's later steps (check-summary artifact, follow-ups, tags,
events) go on in the service, and how they end is the run's state in the Prefect UI.

Discovery: ``duikou serve`` listens on 127.0.0.1 (a free port) and writes
``<data>/run/duikou-service.json`` (mode 0600: the port, a random token, its pid, when it started,
and fingerprints of its code and settings); it removes the file when it stops. The command reads
that file (stdlib only) and:

* no file → runs in its own process, as ever;
* a file whose service does not answer (killed, host rebooted) → removes the file, says so in one
  line on stderr and runs in its own process;
* a service that answers but is **stale** — its code differs from this checkout's (files changed
  since it started: an upgrade without a restart), or its warehouse URL differs from this
  command's — is refused: exit 2 with one line naming the difference and the fix (restart
  ``duikou serve``, or ``DUIKOU_HANDOFF=0`` to run in this process). Handing the file to it would
  load it with other code, or into another warehouse.

Never handed over: ``DUIKOU_HANDOFF=0`` (tests and scripts that want the in-process path),
person-level registries (streamed with the ``DUIKOU_PERSON_KEY`` of the command's own
environment; a file of millions of rows is no case for a thin client).

**Uploads** (the intake server and the portal, ``flows/upload_stream.py``) use the same service
with another request, ``start``: the service creates the ``ingest-submission`` run of the landed
file from its deployment and starts it at once — created ``Pending`` when the ingest lane has a free
slot; otherwise ``Scheduled``, claimed by the service (or by whichever ``duikou serve`` runs next)
as a slot frees, like a triggered run — and answers with the run's id before the work begins: the
upload's answer does not wait for the run. The upload is then announced as
``duikou.submission.started``, naming that run, for which no trigger starts anything. No service, a
stale one, one stopping: ``duikou.submission.received`` goes out for the trigger, as before.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import os
import secrets
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SERVICE_FILE = Path("run") / "duikou-service.json"
#: the service's work: (request, reply) → the final answer; ``reply`` may answer earlier (at the receipt)
Runner = Callable[[dict[str, Any], Callable[[dict[str, Any]], None]], dict[str, Any]]
#: the service's ``start`` (an upload's run started now): request → ``{"ok": True, "flow_run_id": …}`` or a refusal
Starter = Callable[[dict[str, Any]], dict[str, Any]]
PROTOCOL = 1
#: what the code fingerprint covers: every source and declaration file of these, under the checkout
_CODE_ROOTS = ("flows", "tasks", "warehouse", "expectations")
_CODE_FILES = ("duikou_settings.py",)
_CODE_SUFFIXES = (".py", ".yaml", ".yml", ".csv", ".sql", ".html", ".j2", ".css")


class ServiceStale(RuntimeError):
    """The running service would run this request with other code or settings: refused."""


class HandoffFailed(RuntimeError):
    """The service took the request but could not answer it (it stopped mid-request, a crash)."""


def _checkout() -> Path:
    return Path(__file__).resolve().parents[1]


def code_fingerprint(root: Path | None = None) -> str:
    """A digest of the path, size and modification time of every source file of the checkout
    (stat only, a few milliseconds): equal while nobody changed the code."""
    root = root or _checkout()
    digest = hashlib.sha256()
    paths = [root / name for name in _CODE_FILES]
    for top in _CODE_ROOTS:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
            paths.extend(Path(folder) / f for f in sorted(files) if f.endswith(_CODE_SUFFIXES))
    for path in paths:
        try:
            info = path.stat()
        except OSError:
            continue
        digest.update(f"{path.relative_to(root)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def settings_fingerprint(warehouse_url: str) -> str:
    """What must agree between the command and the service besides the data directory: the
    warehouse. A digest, so the file never holds the URL's password."""
    return hashlib.sha256(f"warehouse={warehouse_url}".encode()).hexdigest()


def service_path(data_dir: Path) -> Path:
    return data_dir / SERVICE_FILE


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _exchange(service: dict[str, Any], request: dict[str, Any], timeout: float | None) -> dict[str, Any]:
    """One request, one answer: a JSON line each way over a fresh connection."""
    with socket.create_connection(("127.0.0.1", int(service["port"])), timeout=5) as conn:
        conn.settimeout(timeout)
        conn.sendall(json.dumps({**request, "token": service["token"]}).encode() + b"\n")
        with conn.makefile("rb") as answer:
            line = answer.readline()
    if not line:
        raise HandoffFailed("the duikou service closed the connection without an answer (stopped during the run?)")
    return dict(json.loads(line))


def find_service(data_dir: Path, warehouse_url: str, *, warn: Callable[[str], None] | None = None,
                 code: str | None = None) -> dict[str, Any] | None:
    """The running service of ``data_dir`` that may take this command's request; None when there is
    none (a dead one's file is removed, with a line to ``warn``). Raises :class:`ServiceStale` for
    one that answers but runs other code or another warehouse."""
    path = service_path(data_dir)
    try:
        service = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return None  # half-written by a service starting this instant, or unreadable: not ours to use
    try:
        hello = _exchange(service, {"op": "hello"}, timeout=5)
    except (OSError, ValueError, HandoffFailed):
        hello = None
    if hello is None or not hello.get("ok"):
        if hello is None and not _pid_alive(int(service.get("pid", 0) or 0)):
            path.unlink(missing_ok=True)
            if warn is not None:
                warn(f"duikou: 服务记录已过期 (the duikou service recorded in {path} — pid {service.get('pid')} — "
                     "is gone; its file was removed): running in this process")
        elif warn is not None:
            warn(f"duikou: 服务未应答 (the duikou service in {path} did not answer): running in this process")
        return None
    started = service.get("started_at", "?")
    if hello.get("code") != (code or code_fingerprint()):
        raise ServiceStale(
            f"duikou serve (pid {service.get('pid')}, started {started}) for this data directory runs other "
            "code than this checkout (files changed since it started) — 服务代码已过期: restart it "
            "(stop it, then `duikou serve`), or set DUIKOU_HANDOFF=0 to run this command in its own process")
    if hello.get("settings") != settings_fingerprint(warehouse_url):
        raise ServiceStale(
            f"duikou serve (pid {service.get('pid')}, started {started}) for this data directory loads into "
            "another warehouse than this command's DUIKOU_WAREHOUSE_URL — 仓库不一致: run the command with the "
            "service's settings, restart the service with these, or set DUIKOU_HANDOFF=0")
    return dict(service)


def hand_over(service: dict[str, Any], request: dict[str, Any]) -> dict[str, Any]:
    """Send an ``ingest`` request; the service's answer (``exit``, and ``receipt`` or ``error``)."""
    return _exchange(service, {"op": "ingest", **request}, timeout=None)


def start_run(service: dict[str, Any], request: dict[str, Any], timeout: float = 30.0) -> str | None:
    """Ask the service to start the ``ingest-submission`` run of a landed file (``path``,
    ``department``, ``period``) now; the run's id, or None when it would not (stopping,
    an error: the caller sends the event for the trigger instead)."""
    try:
        answer = _exchange(service, {"op": "start", **request}, timeout=timeout)
    except (OSError, ValueError, HandoffFailed):
        return None
    run_id = answer.get("flow_run_id") if answer.get("ok") else None
    return str(run_id) if run_id else None


# --- the service's side -------------------------------------------------------------------------


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            request = json.loads(self.rfile.readline() or b"{}")
        except ValueError:
            return
        replied: list[bool] = []

        def reply(answer: dict[str, Any]) -> None:
            """The one answer line: the first one given wins (an early receipt, then the run's end)."""
            if replied:
                return
            replied.append(True)
            try:
                self.wfile.write(json.dumps(answer, ensure_ascii=False, default=str).encode() + b"\n")
                self.wfile.flush()
            except OSError:  # the command went away (Ctrl-C): the run goes on, its state says how it ended
                pass

        if not secrets.compare_digest(str(request.get("token", "")), self.server.token):
            reply({"ok": False, "error": "wrong token"})
        elif request.get("op") == "hello":
            reply({"ok": True, "protocol": PROTOCOL, "code": self.server.code, "settings": self.server.settings})
        elif request.get("op") == "ingest":
            with self.server.slots:  # in the context the service started in (Prefect's settings live there)
                reply(self.server.context.copy().run(self.server.run, request, reply))
        elif request.get("op") == "start" and self.server.start is not None:
            reply(self.server.context.copy().run(self.server.start, request))
        else:
            reply({"ok": False, "error": f"unknown op {request.get('op')!r}"})


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, run: Runner, slots: int, code: str, settings: str, start: Starter | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.run, self.slots, self.start = run, threading.BoundedSemaphore(slots), start
        self.context = contextvars.copy_context()
        self.token, self.code, self.settings = secrets.token_hex(16), code, settings


class HandoffService:
    """The service's listener: ``start`` binds and writes the service file, ``stop`` removes it."""

    def __init__(self, data_dir: Path, warehouse_url: str, run: Runner,
                 slots: int, code: str | None = None, start: Starter | None = None) -> None:
        """``code``: the fingerprint of the code this process runs — computed now by default (a test
        gives another to stand for a service started before the checkout changed). ``start``: what
        a ``start`` request does (``duikou serve``: the upload's run started now); None refuses them."""
        self.path = service_path(data_dir)
        self._server = _Server(run, slots, code or code_fingerprint(), settings_fingerprint(warehouse_url), start)
        self._thread = threading.Thread(target=self._server.serve_forever, name="duikou-handoff", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "port": self.port, "token": self._server.token, "protocol": PROTOCOL,
                  "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "python": sys.executable}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(record, fh)
        os.replace(tmp, self.path)

    def stop(self) -> None:
        try:  # only our own record: a newer service may have replaced it
            if json.loads(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError):
            pass
        self._server.shutdown()
        self._server.server_close()
