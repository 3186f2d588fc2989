"""A cold ``duikou ingest`` of one 15-row county form: wall time of a fresh process, beside the work's own time.

Starts what it needs in a temporary directory: ``prefect server start`` (free port, fresh
PREFECT_HOME; its database SQLite, or with ``--prefect-db postgresql`` a fresh database on
``DUIKOU_BENCH_POSTGRES_URL``'s server, as deployed) and ``duikou serve`` on a data directory
(not timed: they are the long-lived services ops keep running). Then, each in a fresh ``duikou``
process, timed from ``exec`` to exit:

* handed over — ``duikou ingest FILE --department tourism --period P`` with ``DUIKOU_DATA_DIR``
  the service's: the command finds ``<data>/run/duikou-service.json`` and hands the file to
  ``duikou serve`` (``flows/handoff.py``), which runs the ``ingest-submission`` flow; ``--repeats``
  distinct months, each a new load;
* in its own process (today's path without a service, ``--in-process-runs``, default 1) — the same
  command with ``DUIKOU_HANDOFF=0``, no ``PREFECT_API_URL`` and its own data directory: imports
  Prefect, GX and pandas, starts Prefect's temporary server, runs the flow;
* work — the same submission through the plain functions, no Prefect, in a warm process
  (``bench/latency.py``'s ``work_times``: one warm-up, then timed).

Every run must load (status ``loaded`` in its receipt) or the bench stops without figures. The
last line is one JSON object: ``cold_wall_s`` (median, handed over), ``cold_wall_in_process_s``,
``work_s``, ``ratio_cold_to_work``, the runs and the target (``cold_wall_s`` ≤ 3).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.latency import _months, _write_returns, work_in_fresh_process  # noqa: E402
from bench.prefect_db import add_prefect_db_option, start_bench_server  # noqa: E402
from tests.helpers.ops_processes import VENV_BIN, Proc, base_env, start_serve  # noqa: E402

TARGET_S = 3.0


def _ingest(path: Path, env: dict[str, str], cpu: list[float] | None = None) -> tuple[float, dict[str, object]]:
    """``duikou ingest --json`` in a fresh process: (wall seconds, the receipt); its CPU seconds (user +
    system, the command's own process) appended to ``cpu`` — the part of the wall time the machine's
    load does not inflate."""
    period = path.stem.split()[-1]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([str(VENV_BIN / "duikou"), "ingest", str(path), "--department", "tourism",
                           "--period", period, "--json"], env=env, capture_output=True, text=True, timeout=600,
                          check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if cpu is not None:
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise SystemExit(f"duikou ingest {path.name} exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    receipt = json.loads(lines[-1])
    if receipt.get("status") != "loaded":
        raise SystemExit(f"duikou ingest {path.name}: status {receipt.get('status')}, not loaded — no figures")
    return wall, receipt


#: (label, key) of the handed-over command's phases, each from the previous milestone
PHASES = (("command start → flow run created in the service", "created"),
          ("→ flow run Running", "running"),
          ("→ receipt written (the receipt file's modification time)", "receipt"),
          ("→ command exited (the run's steps after the receipt, printing)", "exit"))


def _service_phases(api: str, marks: dict[str, tuple[float, float, float]]) -> dict[str, float]:
    """Median seconds of each phase of the handed-over commands (``marks``: period → the command's start
    and end and when its receipt file was written, epoch seconds), from the flow runs on the server;
    one clock, one machine."""
    import httpx

    from bench.latency import _epoch

    time.sleep(2.0)  # runs' states reach the server's database in batches
    spans: dict[str, list[float]] = {key: [] for _, key in PHASES}
    with httpx.Client(base_url=api, timeout=60) as client:
        runs = client.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["ingest-submission"]}},
                                                      "limit": 200}).json()
        for run in runs:
            start, end, written = marks.get(str(run["parameters"].get("period")), (None, None, None))  # one per period
            if start is None or end is None or written is None or not run.get("start_time"):
                continue
            milestones = {"created": _epoch(run["created"]), "running": _epoch(run["start_time"]),
                          "receipt": written, "exit": end}
            previous = start
            for _, key in PHASES:
                value = milestones[key]
                if value is not None:
                    spans[key].append(value - previous)
                    previous = value
    return {key: round(statistics.median(v), 3) for key, v in spans.items() if v}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="handed-over ingests (distinct months)")
    parser.add_argument("--in-process-runs", type=int, default=1, help="ingests in their own process (0: skip)")
    parser.add_argument("--work-runs", type=int, default=3)
    add_prefect_db_option(parser)
    args = parser.parse_args()
    if not 1 <= args.repeats <= 30 or not 0 <= args.in_process_runs <= 5 or not 1 <= args.work_runs <= 5:
        parser.error("--repeats 1..30, --in-process-runs 0..5, --work-runs 1..5")

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="duikou-cold-") as tmp:
        root = Path(tmp)
        months = _months(args.repeats + args.in_process_runs)
        handed_files = _write_returns(root / "forms", months[:args.repeats])
        own_files = _write_returns(root / "own-forms", months[args.repeats:])
        stack = ExitStack()
        try:
            started = time.perf_counter()
            server, api, env = start_bench_server(stack, root, args.prefect_db, "cold", parser)
            procs.append(server)
            data = root / "data"
            env.update({"DUIKOU_DATA_DIR": str(data), "DUIKOU_REPORT_DEBOUNCE_SECONDS": "5"})
            procs.append(start_serve(env, root / "logs"))
            print(f"services up in {time.perf_counter() - started:.1f} s ({api})", file=sys.stderr)

            # the command's environment: the data directory only (a clerk's shell, no Prefect settings)
            client_env = base_env(root / "client-prefect-home")
            client_env["DUIKOU_DATA_DIR"] = str(data)
            handed: list[float] = []
            handed_cpu: list[float] = []
            marks: dict[str, tuple[float, float, float]] = {}
            for path in handed_files:
                w0 = time.time()
                wall, receipt = _ingest(path, client_env, handed_cpu)
                handed.append(wall)
                written = (data / "receipts" / f"{receipt['submission_id']}.json").stat().st_mtime
                marks[str(receipt["period"])] = (w0, w0 + wall, written)
                print(f"  handed over {path.stem}: {wall:.2f} s, the command's CPU {handed_cpu[-1]:.2f} s "
                      f"({receipt['status']})", file=sys.stderr)
            phases = _service_phases(api, marks)
        finally:
            for proc in reversed(procs):
                proc.stop()
            stack.close()

        own = []
        for i, path in enumerate(own_files):  # no service, no PREFECT_API_URL: Prefect's temporary server
            own_env = base_env(root / f"own-prefect-home-{i}")
            own_env.update({"DUIKOU_DATA_DIR": str(root / f"own-data-{i}"), "DUIKOU_HANDOFF": "0",
                            # Prefect's default (20 s) is too short for a loaded two-core machine
                            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS":
                                os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")})
            wall, receipt = _ingest(path, own_env)
            own.append(wall)
            print(f"  in its own process {path.stem}: {wall:.2f} s ({receipt['status']})", file=sys.stderr)

        work = work_in_fresh_process(root / "work-data", _write_returns(root / "work-forms",
                                                                       _months(args.work_runs + 1)))

    cold, work_s = statistics.median(handed), statistics.median(work)
    own_s = statistics.median(own) if own else None
    print("\ncold `duikou ingest` of one 15-row form (wall, fresh process)")
    print(f"  {'path':<48} {'median':>8} {'min':>8} {'max':>8}")
    print(f"  {'handed to duikou serve (thin client)':<48} {cold:>8.2f} {min(handed):>8.2f} {max(handed):>8.2f}")
    if own:
        print(f"  {'in its own process (temporary Prefect server)':<48} {own_s:>8.2f} {min(own):>8.2f} "
              f"{max(own):>8.2f}")
    print(f"  {'the work itself (plain functions, warm)':<48} {work_s:>8.3f} {min(work):>8.3f} {max(work):>8.3f}")
    print(f"  {'the command’s own CPU (user + system), handed over':<48} {statistics.median(handed_cpu):>8.2f} "
          f"{min(handed_cpu):>8.2f} {max(handed_cpu):>8.2f}")
    if phases:
        print("  handed over, median seconds per phase:")
        for label, key in PHASES:
            if key in phases:
                print(f"    {label:<70} {phases[key]:>7.3f}")
    print(f"  target: handed over ≤ {TARGET_S:.0f} s — {'met' if cold <= TARGET_S else 'NOT met'}; "
          f"load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({
        "bench": "cold",
        "prefect_db": args.prefect_db,
        "cold_wall_s": round(cold, 3),
        "cold_wall_runs": [round(x, 3) for x in handed],
        "command_cpu_s": round(statistics.median(handed_cpu), 3),
        "phases_median_s": phases,
        "cold_wall_in_process_s": round(own_s, 3) if own_s is not None else None,
        "cold_wall_in_process_runs": [round(x, 3) for x in own],
        "work_s": round(work_s, 3),
        "ratio_cold_to_work": round(cold / work_s, 2),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "targets": {"cold_wall_s": TARGET_S},
    }))


if __name__ == "__main__":
    main()
