"""Submission-to-loaded latency through the real stack, beside the bare flow's run time.

Starts everything itself in a temporary directory: ``prefect server start`` (free port, fresh
PREFECT_HOME; its database SQLite, or with ``--prefect-db postgresql`` a fresh database on
``DUIKOU_BENCH_POSTGRES_URL``'s server, as in production — see bench/prefect_db.py for why it
matters), ``duikou serve`` (in-process runs by default; ``--process-per-run`` measures Prefect's
stock runner instead) and ``duikou intake-server``. Then:

* latency — for each of ``--submissions`` distinct tourism returns (different months, all valid),
  one at a time: the clock starts before ``POST /submissions`` and stops when the receipt
  (written right after the load's commit) appears, polled every 20 ms. The path measured is the
  real one. ``--route serve`` (the default, production's path when ``duikou serve`` runs on the
  intake's data directory): HTTP upload → the intake asks ``duikou serve`` to start the run
  (``flows/handoff.py``), which creates it on the server from the deployment and runs it →
  load → receipt, the ``duikou.submission.received`` event naming the run. ``--route trigger``
  (no service for the intake: ``DUIKOU_HANDOFF=0``): HTTP upload → the event → the server's
  trigger creates the run → ``duikou serve`` claims it (event stream) and runs it → load →
  receipt. ``refresh-reports`` runs alongside, as in production (debounce 10 s; ``duikou serve``
  announces one warehouse update per window: flows/warehouse_updates.py); a per-phase timeline is
  printed from the Prefect API and the runs' ``steps:`` log lines;
* bare flow — ``ingest_submission(...)`` called directly in this process against the same
  server, on ``--bare-runs`` returns into another data directory (its own warehouse), after one
  warm-up call
  (so imports are not counted): the floor for the same work without events, triggers or runner.

The last line is one JSON object: ``p50_s``, ``p95_s``, ``min_s``, ``max_s``, ``bare_flow_s``
(median), ``ratio_p50_to_bare``, ``work_s`` (the plain functions, no Prefect) and
``ratio_p50_to_work``, ``phases_median_s``, the targets and how the stack was run (``route``,
``runner``, ``prefect_db``). The bench stops without figures when a run was started by another
route than the one asked for.
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

from bench.prefect_db import add_prefect_db_option, start_bench_server  # noqa: E402
from tests.helpers.ops_processes import Proc, start_intake, start_serve, wait_for  # noqa: E402


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
    if sys.argv[1:2] == ["--work-only"]:  # the child of work_in_fresh_process
        print(json.dumps(work_times(Path(sys.argv[2]), [Path(f) for f in sys.argv[3:]])))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--bare-runs", type=int, default=5)
    parser.add_argument("--process-per-run", action="store_true", help="measure Prefect's stock runner")
    parser.add_argument("--route", choices=("serve", "trigger"), default="serve",
                        help="serve: the intake asks the running duikou serve to start the run (the default "
                             "when one runs); trigger: the intake only emits the event and the deployment's "
                             "trigger creates the run (DUIKOU_HANDOFF=0 for the intake)")
    add_prefect_db_option(parser)
    args = parser.parse_args()
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
            server, api, env = start_bench_server(stack, root, args.prefect_db, "latency", parser)
            procs.append(server)
            data = root / "data"
            env.update({"DUIKOU_DATA_DIR": str(data), "DUIKOU_SERVE_POLL_SECONDS": "0.5",
                        "PREFECT_LOGGING_LEVEL": "INFO",  # the runs' ``steps:`` line (read_timeline)
                        "DUIKOU_REPORT_DEBOUNCE_SECONDS": "10", "PREFECT_RUNNER_POLL_FREQUENCY": "1"})
            from tasks.landing.intake_tokens import create_token

            token, _ = create_token(data / "secrets" / "intake-tokens.json", "tourism", replace=False)
            procs.append(start_serve(env, root / "logs",
                                     extra=("--process-per-run",) if args.process_per_run else ()))
            intake_env = {**env, "DUIKOU_HANDOFF": "0"} if args.route == "trigger" or args.process_per_run else env
            intake, url = start_intake(intake_env, root / "logs")
            procs.append(intake)
            stack_start_s = time.perf_counter() - started
            print(f"stack up in {stack_start_s:.1f} s ({api})", file=sys.stderr)

            latencies: list[float] = []
            marks: dict[str, dict[str, float]] = {}  # submission id → client-side clock marks (epoch s)
            for path in served_files:
                period = path.stem.split()[-1]
                t0, w0 = time.perf_counter(), time.time()
                answer = httpx.post(f"{url}/submissions", headers={"Authorization": f"Bearer {token}"},
                                    data={"period": period}, files={"file": (path.name, path.read_bytes())},
                                    timeout=60)
                answer.raise_for_status()
                http_done = time.time()
                submission_id = answer.json()["submission_id"]
                receipt = data / "receipts" / f"{submission_id}.json"
                wait_for(f"the receipt of {path.name}", receipt.exists, 300, tuple(procs), interval=0.02)
                latencies.append(time.perf_counter() - t0)
                marks[submission_id] = {"post": w0, "http": http_done, "seen": w0 + latencies[-1],
                                        "written": receipt.stat().st_mtime}
                status = json.loads(receipt.read_text(encoding="utf-8"))["status"]
                print(f"  {period}: {latencies[-1]:.2f} s ({status})", file=sys.stderr)
            timeline = read_timeline(api, marks)
            route = "trigger" if args.route == "trigger" or args.process_per_run else "serve"
            started_by = ["trigger" if row["by_trigger"] else "serve" for row in timeline.values()]
            if len(timeline) != len(latencies) or any(by != route for by in started_by):
                raise SystemExit(f"route {route!r} asked for, but of {len(latencies)} submissions "
                                 f"{len(timeline)} runs were found, started by {started_by}")  # measure what we say
            phases = PHASES if route == "trigger" else SERVE_PHASES
            print_timeline(timeline, phases)

            work = work_in_fresh_process(root / "work-data", _write_returns(root / "work-forms",
                                                                           _months(args.bare_runs + 1)))
            bare = _bare_flow_times(api, root / "bare-data", bare_files)
        finally:
            for proc in reversed(procs):
                proc.stop()
            stack.close()

    p50, p95, bare_s = statistics.median(latencies), _percentile(latencies, 0.95), statistics.median(bare)
    work_s = statistics.median(work)
    print(json.dumps({
        "bench": "latency",
        "runner": "process-per-run" if args.process_per_run else "in-process",
        "route": route,
        "prefect_db": args.prefect_db,
        "submissions": len(latencies),
        "p50_s": round(p50, 3),
        "p95_s": round(p95, 3),
        "min_s": round(min(latencies), 3),
        "max_s": round(max(latencies), 3),
        "bare_flow_s": round(bare_s, 3),
        "bare_flow_runs": len(bare),
        "ratio_p50_to_bare": round(p50 / bare_s, 2),
        "work_s": round(work_s, 3),
        "ratio_p50_to_work": round(p50 / work_s, 2),
        "phases_median_s": phase_medians(timeline, phases),
        "targets": {"p50_s": 1.0, "p95_s": 2.0, "ratio_p50_to_work": 4.0},
        "stack_start_s": round(stack_start_s, 1),
    }))


#: the phases of upload → receipt, each from the previous milestone: (label, milestone key)
PHASES = (
    ("HTTP upload (intake: stream, land, emit the event, answer)", "http"),
    ("event received by the Prefect server", "event"),
    ("trigger → flow run created (Scheduled)", "created"),
    ("run claimed by duikou serve (Pending)", "claimed"),
    ("flow start (Running)", "running"),
    ("receive, ledger check, read & normalise", "read"),
    ("history, validate (GX)", "validate"),
    ("load (writer slot, ledger + facts, commit)", "load"),
    ("receipt (correction workbook, write-receipt)", "receipt"),
    ("receipt file seen by the bench (20 ms poll)", "seen"),
)
#: the same when the intake asks ``duikou serve`` to start the run (``--route serve``): no trigger, no claim
SERVE_PHASES = (
    ("upload landed, run created by duikou serve (Pending; Scheduled if every slot is taken)", "created"),
    ("flow start (Running; a slot's wait included)", "running"),
    *PHASES[5:],
)


def _epoch(value: str | None) -> float | None:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def read_timeline(api: str, marks: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each submission's milestones (epoch seconds): the bench's clock marks, and from the Prefect API
    the event's ``received``, the flow run's ``created``, its Pending and Running states and its task
    runs' ends. One clock: everything runs on this machine."""
    time.sleep(2.0)  # the server persists events and task runs in batches (flush interval 0.5 s)
    with httpx.Client(base_url=api, timeout=60) as client:
        runs = client.post("/flow_runs/filter", json={"flows": {"name": {"any_": ["ingest-submission"]}},
                                                      "limit": 200}).json()
        events = client.post("/events/filter", json={"filter": {
            "event": {"name": ["duikou.submission.received", "duikou.submission.started"]},
            "occurred": {"since": "2000-01-01T00:00:00Z"}}, "limit": 50}).json()["events"]
        received = {e["resource"]["prefect.resource.id"].rsplit(".", 1)[-1]: _epoch(e.get("received"))
                    for e in events}
        # the route: an upload whose run duikou serve started is announced as .started, else .received
        started_by_serve = {e["resource"]["prefect.resource.id"].rsplit(".", 1)[-1] for e in events
                            if e["event"] == "duikou.submission.started"}
        timeline: dict[str, dict[str, float]] = {}
        for run in runs:
            submission_id = Path(str(run["parameters"].get("path", ""))).stem
            if submission_id not in marks:
                continue
            states = client.get("/flow_run_states/", params={"flow_run_id": run["id"]}).json()
            first: dict[str, float | None] = {}
            for state in sorted(states, key=lambda s: s["timestamp"]):
                first.setdefault(state["type"], _epoch(state["timestamp"]))
            ends = step_ends(client, run["id"], marks[submission_id].get("written"))
            row = dict(marks[submission_id])
            row.update({k: v for k, v in {
                "event": received.get(submission_id), "created": _epoch(run["created"]),
                "claimed": first.get("PENDING"), "running": first.get("RUNNING"),
                "read": ends.get("read-and-normalise"), "validate": ends.get("validate"), "load": ends.get("load"),
                "receipt": ends.get("write-receipt"), "completed": first.get("COMPLETED"),
            }.items() if v is not None})
            row["by_trigger"] = 0.0 if submission_id in started_by_serve else 1.0
            timeline[submission_id] = row
    return timeline


def step_ends(client: httpx.Client, flow_run_id: str, written: float | None) -> dict[str, float]:
    """When each step of the run ended (epoch s): the run's ``steps: receive 0.004 s · …`` log line
    (flows/ingest.py — the steps are plain calls, no task runs) counted back from the receipt file's
    modification time, which is the end of ``write-receipt``."""
    if written is None:
        return {}
    logs = client.post("/logs/filter", json={"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200}).json()
    line = next((log["message"] for log in logs if log["message"].startswith("steps: ")), None)
    if line is None:
        return {}
    steps = [part.rsplit(" ", 2) for part in line.removeprefix("steps: ").split(" · ")]
    while steps and steps[-1][0] != "write-receipt":  # what follows the receipt (the dq-summary artifact)
        steps.pop()
    ends: dict[str, float] = {}
    at = written
    for name, seconds, _unit in reversed(steps):
        ends.setdefault(name, at)  # a step called twice (a retry is one call): its last end
        at -= float(seconds)
    return ends


def phase_medians(timeline: dict[str, dict[str, float]],
                  phases: tuple[tuple[str, str], ...] = PHASES) -> dict[str, float]:
    """Median seconds of each phase (milestone minus the previous one present)."""
    spans: dict[str, list[float]] = {key: [] for _, key in phases}
    for row in timeline.values():
        previous = row["post"]
        for _, key in phases:
            if key in row:
                spans[key].append(row[key] - previous)
                previous = row[key]
    return {key: round(statistics.median(v), 3) for key, v in spans.items() if v}


def print_timeline(timeline: dict[str, dict[str, float]], phases: tuple[tuple[str, str], ...] = PHASES) -> None:
    medians = phase_medians(timeline, phases)
    keys = [key for _, key in phases]
    print("per submission, seconds per phase: " + " ".join(f"{k:>8}" for k in keys), file=sys.stderr)
    for submission_id, row in sorted(timeline.items(), key=lambda item: item[1]["post"]):
        previous, cells = row["post"], []
        for key in keys:
            cells.append(f"{row[key] - previous:>8.3f}" if key in row else f"{'-':>8}")
            previous = row.get(key, previous)
        print(f"  {submission_id}                  " + " ".join(cells), file=sys.stderr)
    print(f"timeline of {len(timeline)} submissions, median seconds per phase (from the previous milestone):",
          file=sys.stderr)
    for label, key in phases:
        if key in medians:
            print(f"  {label:<62} {medians[key]:>7.3f}", file=sys.stderr)
    after = [row["completed"] - row["seen"] for row in timeline.values() if "completed" in row]
    if after:
        print(f"  {'(after the receipt: flow run Completed)':<62} {statistics.median(after):>+7.3f}", file=sys.stderr)


def work_times(data_dir: Path, files: list[Path]) -> list[float]:
    """The same submission through the plain functions, no Prefect: ``process_submission`` with every
    task called through ``.fn`` (the check-summary artifact, Prefect's own, left out), up to and
    including the receipt; follow-ups excluded (they come after the receipt). One warm-up, then timed."""
    import types

    import flows.pipeline as pipeline
    from duikou_settings import get_settings, reset_settings_cache
    from flows.warehouse_access import open_warehouse
    from tasks.submission import steps
    from warehouse.refdata import reference_frames

    os.environ["DUIKOU_DATA_DIR"] = str(data_dir)
    reset_settings_cache()
    plain = types.SimpleNamespace(**{name: getattr(getattr(steps, name), "fn", getattr(steps, name))
                                     for name in dir(steps) if not name.startswith("__")})
    plain.dq_summary_task = lambda received, validation: None
    saved, pipeline.steps = pipeline.steps, plain  # type: ignore[assignment]
    times = []
    try:
        settings = get_settings()
        engine, reference = open_warehouse(settings), reference_frames()
        for i, path in enumerate(files):
            t0 = time.perf_counter()
            result = pipeline.process_submission(path, "tourism", path.stem.split()[-1], engine=engine,
                                                 reference=reference, settings=settings, follow_up=False)
            if i:  # the first is the warm-up
                times.append(time.perf_counter() - t0)
                print(f"  work {path.stem.split()[-1]}: {times[-1]:.3f} s ({result.status})", file=sys.stderr)
    finally:
        pipeline.steps = saved  # type: ignore[assignment]
    return times


def work_in_fresh_process(data_dir: Path, files: list[Path]) -> list[float]:
    """:func:`work_times` in a process of its own without ``PREFECT_API_URL`` (Prefect fixes its
    settings at import: this process's later bare-flow runs must talk to the bench's server)."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "DUIKOU_"))}
    env.update({"DO_NOT_TRACK": "1", "GX_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"})
    done = subprocess.run([sys.executable, __file__, "--work-only", str(data_dir), *map(str, files)], env=env,
                          stdout=subprocess.PIPE, text=True, check=True)
    return [float(x) for x in json.loads(done.stdout.strip().splitlines()[-1])]


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
