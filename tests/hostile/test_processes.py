"""Issue 13, faults 9 and 11: the ``duikou`` processes, killed or failing, as an operator meets them.

Real subprocesses of the installed console script (``.venv/bin/duikou``), no ``PREFECT_API_URL``
and a fresh ``PREFECT_HOME`` per test, so Prefect starts its temporary server as it does for an
operator:

* SIGKILL (or SIGTERM) of ``duikou ingest`` / ``duikou nightly`` after the temporary server has
  started, and mid-run, leaves no server behind (it used to be orphaned: 17 of 36 kills);
* exit codes: a failure of the system is 3 with one line (a crash; the warehouse on a closed port,
  after its retries, the URL without its password; a temporary server that does not start), never 1
  (rejected/quarantined).

Waits are bounded polls (the machine is shared and slow); nothing asserts wall time.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values

DUIKOU = Path(sys.executable).parent / "duikou"
SERVER_APP = "prefect.server.api.server:create_app"
#: the temporary server's start takes 20-60 s on a loaded 2-core machine
SERVER_START_TIMEOUT = 240.0
GONE_TIMEOUT = 30.0  # the server's lifeline: SIGTERM to itself, os._exit 5 s later


def _form(folder: Path, department: str, period: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return write_form(folder / f"{department}-{period}.xlsx", load_declarations()[department], period,
                      demo_values(2017)[(department, period)])  # type: ignore[arg-type]


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of an operator's shell: no Prefect server configured, a fresh PREFECT_HOME."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("PREFECT_", "DUIKOU_")) and k not in ("DO_NOT_TRACK",)}
    return {**base, "PREFECT_HOME": str(home), "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "true",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": str(int(SERVER_START_TIMEOUT) - 30),
            "DUIKOU_DATA_DIR": str(tmp_path / "data"), "DUIKOU_PERSON_KEY": "k" * 64,
            "DUIKOU_AS_OF": "2017-12-31"}


class Duikou:
    """One ``duikou`` subprocess in its own session (so the test can always clean up after it)."""

    def __init__(self, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.out, self.err = logs / "stdout.log", logs / "stderr.log"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen([str(DUIKOU), *args], env=env, stdout=out, stderr=err,
                                          stdin=subprocess.DEVNULL, start_new_session=True)
        self.home = env["PREFECT_HOME"]

    def logs(self) -> str:
        return (f"stdout:\n{self.out.read_text(errors='replace')[-3000:]}\n"
                f"stderr:\n{self.err.read_text(errors='replace')[-3000:]}")

    def servers(self) -> list[psutil.Process]:
        """Prefect temporary servers of this test: in the process tree of ``duikou``, or anywhere
        with this test's PREFECT_HOME (an orphan has been re-parented)."""
        found: dict[int, psutil.Process] = {}
        try:
            for child in psutil.Process(self.popen.pid).children(recursive=True):
                found[child.pid] = child
        except psutil.NoSuchProcess:
            pass
        for proc in psutil.process_iter(["cmdline"]):
            try:
                if SERVER_APP in " ".join(proc.info["cmdline"] or ()) and \
                        proc.environ().get("PREFECT_HOME") == self.home:
                    found[proc.pid] = proc
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return [p for p in found.values() if _alive(p) and SERVER_APP in " ".join(_cmdline(p))]

    def wait_for_server(self) -> psutil.Process:
        """The temporary server, once it answers /api/health."""
        def answering() -> psutil.Process | None:
            for server in self.servers():
                port = _port(server)
                if port is not None:
                    try:
                        if httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200:
                            return server
                    except httpx.HTTPError:
                        pass
            return None

        return _poll("the temporary Prefect server to answer", answering, SERVER_START_TIMEOUT, self)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.popen.poll() is None, f"duikou ended before it could be killed\n{self.logs()}"
        os.kill(self.popen.pid, sig)  # the duikou process only: its children must follow by themselves
        self.popen.wait(timeout=30)

    def cleanup(self) -> None:
        for proc in self.servers():
            proc.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return []


def _port(proc: psutil.Process) -> int | None:
    args = _cmdline(proc)
    return int(args[args.index("--port") + 1]) if "--port" in args else None


def _poll(what: str, check: Callable[[], Any], timeout: float, proc: Duikou) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}\n{proc.logs()}")
        time.sleep(0.2)


@pytest.fixture
def run_duikou(tmp_path: Path) -> Iterator[Callable[..., Duikou]]:
    started: list[Duikou] = []

    def run(args: list[str], env: dict[str, str]) -> Duikou:
        logs = tmp_path / f"run-{len(started)}"
        logs.mkdir()
        started.append(Duikou(args, env, logs))
        return started[-1]

    yield run
    for proc in started:
        proc.cleanup()


def _assert_server_gone(proc: Duikou, server: psutil.Process) -> None:
    deadline = time.monotonic() + GONE_TIMEOUT
    while (_alive(server) or proc.servers()) and time.monotonic() < deadline:
        time.sleep(0.2)
    suspects = {server.pid: server} | {p.pid: p for p in proc.servers()}
    left = [f"{p.pid} {' '.join(_cmdline(p))[:120]}" for p in suspects.values() if _alive(p)]
    assert not left, f"the temporary Prefect server outlived duikou: {left}"


# --- fault 9: the temporary Prefect server goes when duikou goes ------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_killed_ingest_leaves_no_prefect_server(
    tmp_path: Path, env: dict[str, str], run_duikou: Callable[..., Duikou], sig: int
) -> None:
    form = _form(tmp_path / "in", "poverty", "2016")
    proc = run_duikou(["ingest", str(form), "--department", "poverty", "--period", "2016"], env)
    server = proc.wait_for_server()
    proc.kill(sig)
    _assert_server_gone(proc, server)


def test_nightly_killed_mid_run_leaves_no_prefect_server(
    tmp_path: Path, env: dict[str, str], run_duikou: Callable[..., Duikou]
) -> None:
    landing = Path(env["DUIKOU_DATA_DIR"]) / "landing"
    for month in range(1, 7):  # one department: loaded one after another
        period = f"2016-{month:02d}"
        _form(landing / "tourism" / period, "tourism", period)
    proc = run_duikou(["nightly"], env)
    server = proc.wait_for_server()
    receipts = Path(env["DUIKOU_DATA_DIR"]) / "receipts"
    _poll("the nightly's first receipt", lambda: receipts.is_dir() and any(receipts.glob("*.json")),
          SERVER_START_TIMEOUT, proc)
    proc.kill()
    _assert_server_gone(proc, server)


# --- fault 11: exit codes and one-line messages --------------------------------------------------------------


def _stderr_lines(proc: Duikou) -> list[str]:
    return [line for line in proc.err.read_text(encoding="utf-8").splitlines() if line.strip()]


def test_a_crash_exits_3_with_one_line_and_the_traceback_in_a_log_file(
    tmp_path: Path, env: dict[str, str], run_duikou: Callable[..., Duikou]
) -> None:
    form = _form(tmp_path / "in", "poverty", "2016")
    not_a_folder = tmp_path / "data-is-a-file"
    not_a_folder.write_text("not a folder", encoding="utf-8")
    crashing = {**env, "DUIKOU_DATA_DIR": str(not_a_folder), "TMPDIR": str(tmp_path)}
    proc = run_duikou(["ingest", str(form), "--department", "poverty", "--period", "2016"], crashing)
    assert proc.popen.wait(timeout=120) == 3, proc.logs()  # was 1: the code of a rejected file
    lines = _stderr_lines(proc)
    assert len(lines) == 1, proc.logs()
    assert lines[0].startswith("duikou: 系统故障 (system failure): FileExistsError:"), lines
    log = Path(re.search(r"traceback in (\S+\.log)", lines[0]).group(1))  # type: ignore[union-attr]
    assert log.parent == tmp_path and "Traceback" in log.read_text(encoding="utf-8")

    debug = run_duikou(["--debug", "ingest", str(form), "--department", "poverty", "--period", "2016"], crashing)
    assert debug.popen.wait(timeout=120) == 3, debug.logs()
    text = debug.err.read_text(encoding="utf-8")
    assert "Traceback (most recent call last)" in text and text.rstrip().endswith("traceback above")


def test_a_warehouse_on_a_closed_port_is_retried_then_exits_3_with_one_line(
    tmp_path: Path, env: dict[str, str], run_duikou: Callable[..., Duikou]
) -> None:
    form = _form(tmp_path / "in", "poverty", "2016")
    closed = {**env, "DUIKOU_WAREHOUSE_URL": "postgresql://duikou:s3cret-pw@127.0.0.1:1/x"}
    args = ["ingest", str(form), "--department", "poverty", "--period", "2016"]
    quiet, debug = run_duikou(args, closed), run_duikou(["--debug", *args], closed)
    assert quiet.popen.wait(timeout=120) == 3, quiet.logs()
    lines = _stderr_lines(quiet)
    assert len(lines) == 1, quiet.logs()  # was a 277-line traceback
    assert lines[0].startswith(
        "duikou: 数仓无法连接 (warehouse unreachable): postgresql://duikou:***@127.0.0.1:1/x — "), lines
    assert "refused" in lines[0] and "(4 attempts)" in lines[0]
    assert debug.popen.wait(timeout=120) == 3, debug.logs()
    said = debug.err.read_text(encoding="utf-8")
    assert [f"attempt {n} of 4" in said for n in (2, 3, 4)] == [True] * 3, said  # retried, as the docs say
    for proc in (quiet, debug):
        assert "s3cret-pw" not in proc.err.read_text(encoding="utf-8") + proc.out.read_text(encoding="utf-8")
        assert not proc.servers()  # no Prefect server was started for a warehouse that is not there


def test_a_temporary_server_that_does_not_start_exits_3_saying_what_to_do(
    tmp_path: Path, env: dict[str, str], run_duikou: Callable[..., Duikou]
) -> None:
    form = _form(tmp_path / "in", "poverty", "2016")
    hurried = {**env, "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0"}  # as if the machine were slow
    proc = run_duikou(["ingest", str(form), "--department", "poverty", "--period", "2016"], hurried)
    assert proc.popen.wait(timeout=SERVER_START_TIMEOUT) == 3, proc.logs()  # was a bare RuntimeError, exit 1
    lines = _stderr_lines(proc)
    assert len(lines) == 1, proc.logs()
    assert lines[0].startswith("duikou: Prefect 临时服务器未能启动 (Prefect's temporary server did not start"), lines
    assert "PREFECT_API_URL" in lines[0] and "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS" in lines[0]
    deadline = time.monotonic() + GONE_TIMEOUT
    while proc.servers() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not proc.servers()
