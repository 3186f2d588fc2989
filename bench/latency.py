"""Submission-to-loaded latency through the real stack, beside the bare flow's run time.

Starts everything itself in a temporary directory: ``prefect server start`` (free port, fresh
PREFECT_HOME; its database SQLite, or with ``--prefect-db postgresql`` a fresh database on
``DUIKOU_BENCH_POSTGRES_URL``'s server, as in production — see bench/prefect_db.py for why it
matters), ``duikou serve`` (in-process runs by default; ``--process-per-run`` measures Prefect's
stock runner instead) and ``duikou intake-server``. Then:

* latency — for each of ``--submissions`` distinct tourism returns (different months, all valid),
  one at a time: the clock starts before ``POST /submissions`` and stops when the receipt
  (written right after the load's commit) appears, polled every 20 ms. The path measured is the
  real one: HTTP upload → ``duikou.submission.received`` → the server's trigger creates the run →
  ``duikou serve`` claims and runs it → load → receipt. ``refresh-reports`` runs alongside, as in
  production (debounce 10 s);
* bare flow — ``ingest_submission(...)`` called directly in this process against the same
  server, on ``--bare-runs`` returns into another data directory (its own warehouse), after one
  warm-up call
  (so imports are not counted): the floor for the same work without events, triggers or runner.

The last line is one JSON object: ``p50_s``, ``p95_s``, ``min_s``, ``max_s``, ``bare_flow_s``
(median), ``ratio_p50_to_bare`` and how the stack was run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.prefect_db import prefect_database  # noqa: E402
from tests.helpers.ops_processes import Proc, start_intake, start_prefect_server, start_serve, wait_for  # noqa: E402


def _months(count: int) -> list[str]:
    return [f"{2015 + i // 12}-{i % 12 + 1:02d}" for i in range(count)]


def _write_returns(folder: Path, periods: list[str]) -> list[Path]:
    from expectations.declaration import load_declarations
    from tasks.demo.form_writer import write_form
    from tasks.demo.values import demo_values

    declaration, values = load_declarations()["tourism"], demo_values()
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for period in periods:
        path = folder / f"旅游月报 {period}.xlsx"
        write_form(path, declaration, period, values[("tourism", period)])
        paths.append(path)
    return paths


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--bare-runs", type=int, default=5)
    parser.add_argument("--process-per-run", action="store_true", help="measure Prefect's stock runner")
    parser.add_argument("--prefect-db", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the Prefect server's own database (postgresql: DUIKOU_BENCH_POSTGRES_URL)")
    args = parser.parse_args()
    admin_url = os.environ.get("DUIKOU_BENCH_POSTGRES_URL")
    if args.prefect_db == "postgresql" and not admin_url:
        parser.error("--prefect-db postgresql needs DUIKOU_BENCH_POSTGRES_URL")
    if not 1 <= args.submissions <= 35 or not 1 <= args.bare_runs < 35:
        parser.error("--submissions 1..35 and --bare-runs 1..34 (the demo has 35 tourism months, 2015-01..2017-11)")

    procs: list[Proc] = []
    with tempfile.TemporaryDirectory(prefix="duikou-latency-") as tmp:
        root = Path(tmp)
        served_files = _write_returns(root / "forms", _months(args.submissions))
        bare_files = _write_returns(root / "bare-forms", _months(args.bare_runs + 1))  # its own warehouse
        stack = ExitStack()
        try:
            started = time.perf_counter()
            database_url = stack.enter_context(prefect_database(admin_url, "latency")) \
                if args.prefect_db == "postgresql" and admin_url else None
            server, api, env = start_prefect_server(root, database_url=database_url)
            procs.append(server)
            data = root / "data"
            env.update({"DUIKOU_DATA_DIR": str(data), "DUIKOU_SERVE_POLL_SECONDS": "0.5",
                        "DUIKOU_REPORT_DEBOUNCE_SECONDS": "10", "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
            from tasks.landing.intake_tokens import create_token

            token, _ = create_token(data / "secrets" / "intake-tokens.json", "tourism", replace=False)
            procs.append(start_serve(env, root / "logs",
                                     extra=("--process-per-run",) if args.process_per_run else ()))
            intake, url = start_intake(env, root / "logs")
            procs.append(intake)
            stack_start_s = time.perf_counter() - started
            print(f"stack up in {stack_start_s:.1f} s ({api})", file=sys.stderr)

            latencies: list[float] = []
            for path in served_files:
                period = path.stem.split()[-1]
                t0 = time.perf_counter()
                answer = httpx.post(f"{url}/submissions", headers={"Authorization": f"Bearer {token}"},
                                    data={"period": period}, files={"file": (path.name, path.read_bytes())},
                                    timeout=60)
                answer.raise_for_status()
                receipt = data / "receipts" / f"{answer.json()['submission_id']}.json"
                wait_for(f"the receipt of {path.name}", receipt.exists, 300, tuple(procs), interval=0.02)
                latencies.append(time.perf_counter() - t0)
                status = json.loads(receipt.read_text(encoding="utf-8"))["status"]
                print(f"  {period}: {latencies[-1]:.2f} s ({status})", file=sys.stderr)

            bare = _bare_flow_times(api, root / "bare-data", bare_files)
        finally:
            for proc in reversed(procs):
                proc.stop()
            stack.close()

    p50, p95, bare_s = statistics.median(latencies), _percentile(latencies, 0.95), statistics.median(bare)
    print(json.dumps({
        "bench": "latency",
        "runner": "process-per-run" if args.process_per_run else "in-process",
        "prefect_db": args.prefect_db,
        "submissions": len(latencies),
        "p50_s": round(p50, 3),
        "p95_s": round(p95, 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "bare_flow_s": round(bare_s, 3),
        "bare_flow_runs": len(bare),
        "ratio_p50_to_bare": round(p50 / bare_s, 2),
        "target_p50_s": 5.0,
        "stack_start_s": round(stack_start_s, 1),
    }))


def _bare_flow_times(api: str, data_dir: Path, files: list[Path]) -> list[float]:
    """``ingest_submission`` called directly here against the same server: one warm-up, then timed."""
    os.environ.update({"PREFECT_API_URL": api, "DUIKOU_DATA_DIR": str(data_dir), "PREFECT_LOGGING_LEVEL": "WARNING",
                       "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                       "GX_ANALYTICS_ENABLED": "false"})
    from duikou_settings import reset_settings_cache

    reset_settings_cache()
    from flows.ingest import ingest_submission

    warm, *timed = files
    ingest_submission(str(warm), "tourism", warm.stem.split()[-1])
    times = []
    for path in timed:
        t0 = time.perf_counter()
        result = ingest_submission(str(path), "tourism", path.stem.split()[-1])
        times.append(time.perf_counter() - t0)
        print(f"  bare {path.stem.split()[-1]}: {times[-1]:.2f} s ({result.status})", file=sys.stderr)
    return times


if __name__ == "__main__":
    main()
