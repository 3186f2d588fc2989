"""Prefect's temporary server, owned by the ``duikou`` process that needs it.

Without ``PREFECT_API_URL`` Prefect 3 starts a temporary ("ephemeral") API server the first time
a client is needed: ``prefect.server.api.server.SubprocessASGIServer`` — a process-wide singleton
kept in ``SubprocessASGIServer._instances[None]`` — runs ``python -m uvicorn … create_app`` as a
child process and stops it from an ``atexit`` hook. A ``duikou`` killed with SIGKILL (or ended by
SIGTERM, whose default action skips ``atexit``) never runs that hook, and the server lived on as
an orphan (seen: 17 of 36 kills, one still alive two minutes later at 225 MB).

``own_temporary_server()`` registers :class:`OwnedServer` as that singleton before Prefect makes
one — the same hook ``prefect.testing.utilities.prefect_test_harness`` uses — so Prefect still
starts the server lazily, when and if a command first talks to the API, and still treats it as
its ephemeral server (no ``PREFECT_API_URL`` is set: writer slots and work-pool checks behave as
before). The only difference is how the child is started: it gets the read end of a pipe (the
*lifeline*) whose write end only the ``duikou`` process holds. However that process ends —
exit, exception, SIGTERM, SIGKILL, OOM kill — the kernel closes the write end, the server reads
end-of-file, stops itself (SIGTERM to itself: uvicorn shuts down cleanly) and is gone 5 s later
at the latest (``os._exit``).

Why a lifeline and not ``PR_SET_PDEATHSIG``: the parent-death signal follows the *thread* that
forked the child, not the process, and Prefect may start the server from a worker thread of the
nightly's task runner that ends long before the process does (the server would be killed
mid-run); setting it needs ``preexec_fn``, which Python documents as unsafe when threads run
(Prefect's log and event workers do). A pipe is closed only when the last holder of its write end
— the process — is gone, is POSIX rather than Linux-only, and needs nothing between fork and exec.

The server's own output goes to ``<data>/logs/prefect-temporary-server.log`` (appended), not to the
terminal: stopped at exit while its task-run recorder is flushing, Prefect's server logs ~90 lines of
cancelled-flush tracebacks that say nothing to a clerk or an operator reading ``duikou demo``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import IO, Any


class TemporaryServerError(RuntimeError):
    """Prefect's temporary server did not start (Prefect raises a bare ``RuntimeError``)."""


#: run in the server's interpreter: watch the lifeline (fd argv[1]), then be ``python -m uvicorn``
_LIFELINE_MAIN = """\
import os, runpy, signal, sys, threading, time
_fd = int(sys.argv[1])
def _watch():
    try:
        while os.read(_fd, 4096):
            pass
    except OSError:
        pass
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
    os._exit(0)
threading.Thread(target=_watch, name="duikou-lifeline", daemon=True).start()
sys.argv = ["uvicorn", *sys.argv[2:]]
runpy.run_module("uvicorn", run_name="__main__", alter_sys=True)
"""


#: the temporary server's own output (its access errors, and the tracebacks its event recorder logs when
#: it is stopped mid-flush at exit): kept for ops under <data>/logs/, not printed into a clerk's terminal
SERVER_LOG_NAME = "prefect-temporary-server.log"


def _log_dir() -> Path | None:
    """``<data>/logs``, made if need be; None when the data directory cannot hold it."""
    try:
        from duikou_settings import get_settings

        folder = get_settings().resolved_data_dir / "logs"
        folder.mkdir(parents=True, exist_ok=True)
    except Exception:  # the settings or the data directory are what is wrong: the CLI says so elsewhere
        return None
    return folder


def _server_log() -> IO[bytes] | None:
    """The file the temporary server writes to (appended), or None to let it inherit the terminal."""
    folder = _log_dir()
    if folder is None:
        return None
    try:
        return (folder / SERVER_LOG_NAME).open("ab")
    except OSError:
        return None


@cache
def _owned_server_class() -> type[Any]:
    import prefect
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import get_current_settings

    class OwnedServer(SubprocessASGIServer):  # type: ignore[misc]
        """Prefect's temporary server, started with a lifeline to this process (see the module)."""

        _lifeline: int | None = None

        def start(self, timeout: int | None = None) -> None:
            try:
                super().start(timeout)
            except RuntimeError as exc:  # a timeout, or no free port in 8000-8999
                waited = timeout or get_current_settings().server.ephemeral.startup_timeout_seconds
                if self.server_process is not None and self.server_process.poll() is None:
                    self.server_process.kill()  # Prefect leaves a slow starter running
                    self.server_process.wait()
                self._close_lifeline()
                raise TemporaryServerError(
                    f"Prefect 临时服务器未能启动 (Prefect's temporary server did not start within {waited} s: "
                    f"{' '.join(str(exc).split())[:200]}) — set PREFECT_API_URL to a running Prefect server "
                    "(prefect server start), or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
                    + (f"; its log: {SERVER_LOG_NAME} in {_log_dir()}" if _log_dir() else "")
                ) from exc

        def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
            # Prefect 3's command and environment (SubprocessASGIServer._run_uvicorn_command),
            # run through _LIFELINE_MAIN
            self._close_lifeline()  # a restart after "port in use": the old child has exited
            read_end, write_end = os.pipe()  # both non-inheritable: only the child gets read_end
            server_env = {"PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
            log = _server_log()
            try:
                process = subprocess.Popen(
                    args=[sys.executable, "-c", _LIFELINE_MAIN, str(read_end),
                          "--app-dir", str(prefect.__module_path__.parent),
                          "--factory", "prefect.server.api.server:create_app",
                          "--host", "127.0.0.1", "--port", str(self.port),
                          "--log-level", "error", "--lifespan", "on"],
                    env={**os.environ, **server_env,
                         **get_current_settings().to_environment_variables(exclude_unset=True)},
                    pass_fds=(read_end,),
                    stdout=log, stderr=log,
                )
            except BaseException:
                os.close(write_end)
                raise
            finally:
                os.close(read_end)
                if log is not None:
                    log.close()  # the child has its own copy
            self._lifeline = write_end
            return process

        def _close_lifeline(self) -> None:
            if self._lifeline is not None:
                os.close(self._lifeline)
                self._lifeline = None

        def stop(self) -> None:
            super().stop()
            self._close_lifeline()

    return OwnedServer


def own_temporary_server() -> bool:
    """Make the temporary Prefect server this process may start follow it when it dies.

    Call before any Prefect client is made (``duikou``'s ``main`` does). Nothing happens when
    ``PREFECT_API_URL`` is set (a real server is used) or a temporary server already exists.
    Returns whether the owned server is the one Prefect will start.
    """
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return False
    owned = _owned_server_class()
    return isinstance(owned(), owned)  # owned() registers itself as SubprocessASGIServer._instances[None]
