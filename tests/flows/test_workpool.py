"""The nightly's work-pool mode end to end, all real processes: ``prefect server start`` (SQLite, a
free port), ``duikou workpool setup``, TWO ``prefect worker start --type process`` workers, and
``duikou nightly`` with ``DUIKOU_TASK_RUNNER=workpool`` beside the same landing files through the
thread path — the two warehouses must hold the same rows.

Every process is started in its own session and stopped by its process-group id, and the flow-run
processes a worker started (each in a session of its own) are found under the worker and killed too,
also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tests.helpers.ops_processes import VENV_BIN, Proc, duikou, start, start_prefect_server, wait_for

pytestmark = pytest.mark.server

POOL = "duikou-test-process"
WORKERS = ("duikou-worker-a", "duikou-worker-b")
TIMEOUT = 300.0  # a loaded 2-core machine; every wait polls, so a fast run finishes fast
#: (department, period, file name) in arrival order; a broken workbook and a malformed period folder too
LANDED = [("tourism", "2016-10", "tourism-2016-10.xlsx"), ("health", "2016-10", "health-2016-10.xlsx"),
          ("tourism", "2016-11", "tourism-2016-11.xlsx"), ("health", "2016-11", "health-2016-11.xlsx")]
BROKEN = ("health", "2016-12", "health-2016-12.xlsx")
MALFORMED = ("tourism", "2016-13", "tourism-2016-13.xlsx")
#: columns that differ between two correct runs: clocks and the follow-up list's own counter
VOLATILE = ("received_at", "processed_at", "loaded_at", "opened_at", "last_seen_at", "closed_at", "refreshed_at",
            "first_received_at", "followup_id")
COMPARED = ("submission", "submission_issue", "dq_result", "dq_flag", "fact_indicator_value", "fact_form_total",
            "followup", "mart_county_kpi_yearly", "mart_completeness")


def _land(landing: Path) -> None:
    values, declarations = demo_values(2017), load_declarations()
    stamp = time.time() - 100_000
    for department, period, name in LANDED:
        folder = landing / department / period
        folder.mkdir(parents=True, exist_ok=True)
        path = write_form(folder / name, declarations[department], period, values[(department, period)])
        stamp += 60
        os.utime(path, (stamp, stamp))  # arrival order as listed
    broken = landing / BROKEN[0] / BROKEN[1] / BROKEN[2]
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"PK\x03\x04 this was a workbook until the upload broke off")
    malformed = landing / MALFORMED[0] / MALFORMED[1] / MALFORMED[2]
    malformed.parent.mkdir(parents=True)
    shutil.copy2(landing / "tourism" / "2016-10" / "tourism-2016-10.xlsx", malformed)
    os.utime(malformed, (stamp + 60, stamp + 60))  # arrived last


def _descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc), children first."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_with_flow_runs(proc: Proc) -> None:
    """Stop a process and whatever it started: a worker's flow-run processes have sessions of their own."""
    below = _descendants(proc.popen.pid)
    proc.stop()
    for pid in below:
        for kill in (os.killpg, os.kill):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                kill(pid, signal.SIGKILL)


def _run(name: str, args: list[str], env: dict[str, str], logs: Path, procs: list[Proc]) -> tuple[int, str]:
    """Run a command in its own session to the end; (exit code, stdout). stderr goes to <logs>/<name>.err."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        popen = subprocess.Popen(args, env=env, stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    proc = Proc(name, popen, err)
    procs.append(proc)
    try:
        code = popen.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        _stop_with_flow_runs(proc)
        raise AssertionError(f"{name} did not finish within {TIMEOUT:.0f} s:\n{proc.tail()}") from None
    return code, out.read_text(encoding="utf-8")


def _nightly(stack: dict[str, Any], data: Path, runner: str, label: str) -> dict[str, Any]:
    env = {**stack["env"], "DUIKOU_DATA_DIR": str(data), "DUIKOU_TASK_RUNNER": runner}
    code, out = _run(f"nightly-{label}", [str(VENV_BIN / "duikou"), "nightly", "--json", "--no-report",
                                          "--label", label], env, stack["logs"], stack["procs"])
    assert code == 0, (Path(stack["logs"]) / f"nightly-{label}.err").read_text(encoding="utf-8")[-4000:]
    summary: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return summary


def _online_workers(api: str) -> set[str]:
    response = httpx.post(f"{api}/work_pools/{POOL}/workers/filter", json={}, timeout=30)
    response.raise_for_status()
    return {w["name"] for w in response.json() if w["status"] == "ONLINE"}


def _department_runs(api: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{api}/flow_runs/filter", json={"flows": {"name": {"any_": ["ingest-department"]}}},
                          timeout=30)
    response.raise_for_status()
    runs: list[dict[str, Any]] = response.json()
    return runs


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("workpool")
    procs: list[Proc] = []
    try:
        server, api, env = start_prefect_server(root)
        procs.append(server)
        env.update({"DUIKOU_WORK_POOL": POOL, "PREFECT_WORKER_QUERY_SECONDS": "1",
                    "DUIKOU_WORK_POOL_TIMEOUT_SECONDS": str(TIMEOUT)})
        template = root / "template" / "landing"
        _land(template)
        for name in ("threads", "workpool"):
            shutil.copytree(template, root / name / "landing")  # copy2: the same bytes and arrival times
        setup = duikou(["workpool", "setup"], env, timeout=TIMEOUT)
        assert setup.returncode == 0, setup.stderr
        worker_env = {**env, "DUIKOU_DATA_DIR": str(root / "workpool")}
        for name in WORKERS:
            procs.append(start(name, [str(VENV_BIN / "prefect"), "worker", "start", "--pool", POOL, "--type",
                                      "process", "--limit", "1", "--name", name], worker_env, root / "logs"))
        wait_for("both workers online", lambda: _online_workers(api) == set(WORKERS), TIMEOUT, tuple(procs))
        yield {"api": api, "env": env, "root": root, "logs": root / "logs", "procs": procs, "setup": setup.stdout}
    finally:
        for proc in reversed(procs):
            _stop_with_flow_runs(proc)


def test_without_a_server_the_workpool_nightly_refuses(stack: dict[str, Any]) -> None:
    env = {k: v for k, v in stack["env"].items() if k != "PREFECT_API_URL"}
    env.update({"DUIKOU_DATA_DIR": str(stack["root"] / "no-server"), "DUIKOU_TASK_RUNNER": "workpool"})
    done = duikou(["nightly"], env)
    assert done.returncode == 2, done.stderr
    assert "PREFECT_API_URL" in done.stderr and POOL in done.stderr
    assert not (stack["root"] / "no-server" / "warehouse.sqlite").exists()  # refused before anything ran


def test_departments_run_as_flow_runs_on_two_process_workers(stack: dict[str, Any]) -> None:
    api, env, root = stack["api"], stack["env"], stack["root"]
    again = duikou(["workpool", "setup"], env, timeout=TIMEOUT)  # idempotent: the fixture ran it first
    assert again.returncode == 0, again.stderr
    assert "created" in stack["setup"] and "exists" in again.stdout
    deployment = httpx.get(f"{api}/deployments/name/ingest-department/ingest-department", timeout=30).json()
    assert deployment["id"] in stack["setup"] and deployment["id"] in again.stdout
    assert deployment["work_pool_name"] == POOL
    assert deployment["pull_steps"][0]["prefect.deployments.steps.set_working_directory"]["directory"] == str(
        Path(__file__).resolve().parents[2])  # the code in this checkout
    assert httpx.get(f"{api}/work_pools/{POOL}", timeout=30).json()["type"] == "process"

    before = {r["id"] for r in _department_runs(api)}  # other tests' runs
    threads = _nightly(stack, root / "threads", "threads", "threads")
    pooled = _nightly(stack, root / "workpool", "workpool", "workpool")

    # the same summary: counts, receipts (clocks aside), skipped files
    assert pooled["counts"] == threads["counts"] == {"unchanged": 0, "skipped": 1, "failed": 0, "loaded": 4,
                                                     "rejected": 1}
    assert _receipts(pooled) == _receipts(threads)
    broken = _receipts(pooled)[BROKEN[2]]
    assert broken["status"] == "rejected" and broken["counts"]["facts_loaded"] == 0
    skipped = [_relative(s, root / "workpool") for s in pooled["skipped"]]
    assert skipped == [_relative(s, root / "threads") for s in threads["skipped"]]
    assert [path for path, _ in skipped] == ["landing/" + "/".join(MALFORMED)]

    # the same warehouse, row for row
    pooled_rows, thread_rows = _warehouse(root / "workpool"), _warehouse(root / "threads")
    assert len(pooled_rows["fact_indicator_value"]) > 0
    for table in COMPARED:
        assert pooled_rows[table] == thread_rows[table], f"{table} differs between workpool and threads"

    # one flow run per department, each in a process of its own; both workers ran one
    runs = [r for r in _department_runs(api) if r["id"] not in before]
    assert sorted(r["parameters"]["department"] for r in runs) == ["health", "tourism"]
    assert all(r["state"]["type"] == "COMPLETED" for r in runs)
    assert {r["labels"]["prefect.worker.name"] for r in runs} == set(WORKERS)
    assert len({r["infrastructure_pid"] for r in runs}) == 2  # a process per run
    files = {r["parameters"]["department"]: r["parameters"]["files"] for r in runs}
    # arrival order; the malformed 2016-13 folder is skipped by the landing scan and never sent to a worker
    assert files["tourism"] == [{"path": f"landing/tourism/{p}/tourism-{p}.xlsx", "period": p}
                                for p in ("2016-10", "2016-11")]
    _print_costs(runs)
    assert not list((root / "workpool" / "workpool").glob("*.json"))  # outcome files read and removed

    # a second nightly loads nothing and starts no run: every file is in the ledger by its SHA-256, and
    # the malformed period folder is skipped again, named, before its file is hashed
    again = _nightly(stack, root / "workpool", "workpool", "workpool-again")
    assert again["counts"] == {"unchanged": 5, "skipped": 1, "failed": 0} and again["processed"] == []
    assert _warehouse(root / "workpool")["fact_indicator_value"] == pooled_rows["fact_indicator_value"]
    assert len(_department_runs(api)) == len(before) + 2


def _receipts(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["original_name"]: {k: v for k, v in r.items() if k not in VOLATILE} for r in summary["processed"]}


def _relative(item: dict[str, str], data: Path) -> tuple[str, str]:
    return Path(item["path"]).relative_to(data).as_posix(), item["reason"]


def _warehouse(data: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Each compared table's rows, clocks dropped, sorted: content, not insertion order."""
    engine = create_engine(f"sqlite:///{data / 'warehouse.sqlite'}")
    out: dict[str, list[tuple[Any, ...]]] = {}
    try:
        with engine.connect() as conn:
            for table in COMPARED:
                result = conn.execute(text(f"SELECT * FROM {table}"))  # our own table names
                keep = [i for i, name in enumerate(result.keys()) if name not in VOLATILE]
                out[table] = sorted((tuple(row[i] for i in keep) for row in result), key=repr)
    finally:
        engine.dispose()
    return out


def _print_costs(runs: list[dict[str, Any]]) -> None:
    """What a department run costs (shown with ``pytest -s``; no assertion on time)."""
    from datetime import datetime

    for run in sorted(runs, key=lambda r: r["start_time"]):
        created, started, ended = (datetime.fromisoformat(run[k]) for k in ("created", "start_time", "end_time"))
        print(f"{run['name']}: created→running {(started - created).total_seconds():.1f} s, running "
              f"{(ended - started).total_seconds():.1f} s on {run['labels']['prefect.worker.name']} "
              f"(pid {run['infrastructure_pid']})")


def test_a_run_that_fails_is_named(stack: dict[str, Any]) -> None:
    """A nightly whose data directory the workers do not see: the run fails and the nightly says which —
    after finishing the rest (checks, marts, report) for whatever did load."""
    root = stack["root"]
    elsewhere = root / "elsewhere"
    folder = elsewhere / "landing" / "tourism" / "2016-12"
    folder.mkdir(parents=True)
    write_form(folder / "tourism-2016-12.xlsx", load_declarations()["tourism"], "2016-12",
               demo_values(2017)[("tourism", "2016-12")])
    env = {**stack["env"], "DUIKOU_DATA_DIR": str(elsewhere), "DUIKOU_TASK_RUNNER": "workpool"}
    code, _ = _run("nightly-elsewhere", [str(VENV_BIN / "duikou"), "nightly", "--label", "elsewhere"],
                   env, stack["logs"], stack["procs"])
    error = (stack["logs"] / "nightly-elsewhere.err").read_text(encoding="utf-8")
    assert code == 1, error
    assert "1 of 1 ingest-department run(s) did not complete: tourism" in error and "FAILED" in error
    assert "landing/tourism/2016-12/tourism-2016-12.xlsx not found under the data directory" in error
    assert "DUIKOU_DATA_DIR" in error
    assert (elsewhere / "reports" / "latest" / "index.html").is_file()  # the failed run did not stop the nightly
    engine = create_engine(f"sqlite:///{elsewhere / 'warehouse.sqlite'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM submission")).scalar_one() == 0  # nothing half-loaded
    finally:
        engine.dispose()


def test_runs_not_finished_in_time_are_named_and_cancelled(stack: dict[str, Any]) -> None:
    late = stack["root"] / "late"
    folder = late / "landing" / "health" / "2016-12"
    folder.mkdir(parents=True)
    write_form(folder / "health-2016-12.xlsx", load_declarations()["health"], "2016-12",
               demo_values(2017)[("health", "2016-12")])
    env = {**stack["env"], "DUIKOU_DATA_DIR": str(late), "DUIKOU_TASK_RUNNER": "workpool",
           "DUIKOU_WORK_POOL_TIMEOUT_SECONDS": "0.5"}  # shorter than any run's start
    code, _ = _run("nightly-late", [str(VENV_BIN / "duikou"), "nightly", "--no-report", "--label", "late"], env,
                   stack["logs"], stack["procs"])
    error = (stack["logs"] / "nightly-late.err").read_text(encoding="utf-8")
    assert code == 1, error
    assert "1 of 1 ingest-department run(s) did not complete: health" in error
    assert "after 0.5 s, cancelled" in error
    single = [{"path": "landing/health/2016-12/health-2016-12.xlsx", "period": "2016-12"}]
    [run] = [r for r in _department_runs(stack["api"]) if r["parameters"]["files"] == single]
    assert run["state"]["type"] in ("CANCELLING", "CANCELLED")  # a worker that started it stops it
