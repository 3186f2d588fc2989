"""Nightly benchmark: a county's backlog — 4 monthly returns × ``--months`` months (15 townships
each, the demo's values) plus ``--registries`` person-level registry snapshots of
``--registry-rows`` people — ingested by the nightly flow with 1 and 2 workers, and by the same
ingest functions in a plain loop, measured fairly.

    DUIKOU_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/nightly.py --months 36 --registries 3 --registry-rows 20000 --repeats 3 --prefect-db both

Every run ingests the same landing area into its own fresh SQLite warehouse, against a fresh
``prefect server`` (a real one, started here) whose own database is PostgreSQL — production's
layout (docs/scaling.md) — when ``DUIKOU_BENCH_POSTGRES_URL`` is set, else SQLite
(``--prefect-db sqlite|postgresql|both``; ``both`` runs each in a process of its own):

* ``plain`` — no flow and no task runs: the landing scan, then per department, oldest first, the very functions
  the flow calls (``flows.pipeline.process_submission`` with every Prefect task replaced by its
  ``.fn``), then follow-ups, marts and the registry reconciliation; this is the floor (the loads'
  writer slots are Prefect global concurrency limits, so the same server is up);
* ``prefect_1`` / ``prefect_2`` — the ``nightly`` flow with ``ThreadPoolTaskRunner(max_workers=1|2)``,
  report off.

Fairness (issue 19): both paths are **warmed** first — one untimed run of ``plain`` and one of
``prefect_1`` over the whole landing area, which pay the process's one-time costs (the writer
concurrency limits created on the server, the GX context, alembic's scripts, declarations,
Prefect's engine) whichever runs first — then ``--repeats`` (≥ 3) timed rounds **alternate** the
order: even rounds plain → Prefect 1 → Prefect 2, odd rounds Prefect 2 → Prefect 1 → plain.
Reported: each path's median, min, max and spread ((max − min) ÷ median) over the rounds;
``overhead_ratio`` = median Prefect 1 ÷ median plain (target ≤ 1.25), and the ratio per round
(its median beside it); ``speedup_2_workers`` = median Prefect 1 ÷ median Prefect 2 (target > 1
with ``--warehouse postgresql``: a SQLite warehouse takes one writer at a time). The per-form cost
over the backlog (issue 19, part 3): ``plain_work_s`` = the plain loop's seconds inside
``process_submission`` alone (each file's receive, read, validate, load, receipt — no scan, no
marts), ``per_form_ms`` = each path's median ÷ files, and ``per_form_ratio`` = median Prefect 1
wall ÷ median plain work (target ≤ 2: the whole nightly per file, marts and follow-ups included,
against the bare per-file work). Each run's warehouse is created and migrated before its clock.
The machine's two cores are shared: read the spread before the medians. The last line is one JSON
object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import types
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MONTHLY = ("education", "health", "labour", "tourism")


def build_landing(landing: Path, months: int, registries: int, registry_rows: int) -> int:
    from expectations.declaration import load_declarations
    from expectations.registry_declaration import load_registry_declarations
    from tasks.demo.form_writer import write_form
    from tasks.demo.registry import registry_table, write_registry_csv
    from tasks.demo.values import demo_values

    values = demo_values(2017)
    periods = sorted({p for d, p in values if d == "labour"})[:months]
    files = 0
    stamp = time.time() - 10_000_000
    for period in periods:
        for department in MONTHLY:
            folder = landing / department / period
            folder.mkdir(parents=True, exist_ok=True)
            path = write_form(folder / f"{department}-{period}.xlsx", load_declarations()[department], period,
                              values[(department, period)])
            stamp += 60
            os.utime(path, (stamp, stamp))  # arrival order = period order
            files += 1
    declaration = load_registry_declarations()["labour_registry"]
    for index, period in enumerate(periods[-registries:] if registries else []):
        folder = landing / "labour_registry" / period
        folder.mkdir(parents=True, exist_ok=True)
        year, month = map(int, period.split("-"))
        write_registry_csv(registry_table(declaration, registry_rows, date(year, month, 28), seed=index + 1),
                           folder / "实名登记.csv")
        files += 1
    return files


def _use_data_dir(data: Path) -> None:
    from duikou_settings import reset_settings_cache
    from flows.warehouse_access import clear_cache

    os.environ["DUIKOU_DATA_DIR"] = str(data)
    reset_settings_cache()
    clear_cache()


#: with ``--warehouse postgresql``: the admin URL and the schemas made (dropped at the end)
_PG: dict[str, Any] = {"url": None, "schemas": []}


def _fresh(work: Path, name: str, landing: Path) -> Path:
    """A run's own data directory (landing area hard-linked: same mtimes) and own warehouse — a
    SQLite file there, or a fresh PostgreSQL schema — migrated before any clock starts."""
    data = work / name
    data.mkdir()
    shutil.copytree(landing, data / "landing", copy_function=os.link)  # hard links: same mtimes
    if _PG["url"]:
        os.environ["DUIKOU_WAREHOUSE_URL"] = _pg_schema_url(_PG["url"])
    _use_data_dir(data)
    from duikou_settings import get_settings
    from flows.warehouse_access import open_warehouse

    open_warehouse(get_settings())  # schema, views, reference data: not part of either path's work
    return data


def _pg_schema_url(admin_url: str) -> str:
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from warehouse.engine import make_engine

    name = f"bench_nightly_{uuid.uuid4().hex[:8]}"
    admin = make_engine(admin_url)
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    finally:
        admin.dispose()
    _PG["schemas"].append(name)
    return make_url(admin_url).update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
        hide_password=False)


def _drop_pg_schemas() -> None:
    from sqlalchemy import text

    from flows.warehouse_access import clear_cache
    from warehouse.engine import make_engine

    if not _PG["url"] or not _PG["schemas"]:
        return
    clear_cache()
    admin = make_engine(_PG["url"])
    try:
        with admin.begin() as conn:
            for name in _PG["schemas"]:
                conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
    finally:
        admin.dispose()
    _PG["schemas"].clear()


def run_plain(work: Path, landing: Path, tag: str = "") -> tuple[float, dict[str, int]]:
    """The nightly's work without Prefect: the same functions, every task called through ``.fn``.
    ``counts["work_ms"]``: the milliseconds inside ``process_submission`` alone — each file's
    receive, read, validate, load and receipt, the plain per-form work."""
    import flows.pipeline as pipeline
    import flows.registry_pipeline as registry_pipeline
    from duikou_settings import get_settings
    from flows.nightly import by_department, scan_landing_area
    from flows.pipeline import recover_receipts
    from flows.warehouse_access import open_warehouse
    from tasks.registry.steps import reconcile_registries_task
    from tasks.registry.submission import ingest_registry
    from tasks.report.steps import refresh_marts_task
    from tasks.submission import steps
    from tasks.submission.followup_steps import follow_up_task
    from warehouse.load import find_submission
    from warehouse.refdata import reference_frames

    plain_steps = types.SimpleNamespace(**{
        name: getattr(getattr(steps, name), "fn", getattr(steps, name)) for name in dir(steps)
        if not name.startswith("__")
    })
    _fresh(work, f"plain-{tag}", landing)
    saved = (pipeline.steps, registry_pipeline.steps, registry_pipeline.ingest_registry_task)
    pipeline.steps = plain_steps  # type: ignore[assignment]
    registry_pipeline.steps = plain_steps  # type: ignore[assignment]
    registry_pipeline.ingest_registry_task = ingest_registry  # type: ignore[assignment]
    counts: dict[str, int] = {}
    try:
        start = time.perf_counter()
        settings = get_settings()
        engine = open_warehouse(settings)
        reference = reference_frames()
        files, _ = scan_landing_area(settings.landing_dir)
        pending = [f for f in files if find_submission(engine, f.department, f.sha256) is None]
        work_s = 0.0
        for group in by_department(pending):
            for item in group:
                began = time.perf_counter()
                result = pipeline.process_submission(item.path, item.department, item.period, engine=engine,
                                                     reference=reference, settings=settings, follow_up=False)
                work_s += time.perf_counter() - began
                counts[result.status] = counts.get(result.status, 0) + 1
        recover_receipts(engine, reference, settings)
        follow_up_task.fn(engine, None)
        refresh_marts_task.fn(engine)
        reconcile_registries_task.fn(engine)
        wall = time.perf_counter() - start
    finally:
        pipeline.steps, registry_pipeline.steps, registry_pipeline.ingest_registry_task = saved  # type: ignore[assignment]
    counts["work_ms"] = round(work_s * 1000)
    return wall, counts


def run_prefect(work: Path, landing: Path, workers: int, tag: str = "") -> tuple[float, dict[str, int]]:
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.nightly import nightly

    _fresh(work, f"prefect_{workers}-{tag}", landing)
    flow = nightly.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    start = time.perf_counter()
    summary = flow(run_label=f"bench {workers} worker(s)", build_report=False)
    return time.perf_counter() - start, summary.counts()


PATHS = ("plain", "prefect_1", "prefect_2")
LABELS = {"plain": "plain loop", "prefect_1": "prefect 1 worker", "prefect_2": "prefect 2 workers"}


def _run(path: str, runs: Path, landing: Path, tag: str) -> tuple[float, dict[str, int]]:
    if path == "plain":
        return run_plain(runs, landing, tag)
    return run_prefect(runs, landing, int(path[-1]), tag)


def _stats(values: list[float]) -> dict[str, Any]:
    median = statistics.median(values)
    return {"median": round(median, 3), "min": round(min(values), 3), "max": round(max(values), 3),
            "spread": round((max(values) - min(values)) / median, 3) if median else None,
            "runs": [round(v, 3) for v in values]}


def measure(work: Path, landing: Path, prefect_db: str, admin_url: str | None, repeats: int) -> dict[str, Any]:
    """Warm both paths, then ``repeats`` alternating rounds of plain / 1 worker / 2 workers against a
    fresh ``prefect server`` whose database is ``prefect_db``."""
    from contextlib import ExitStack, nullcontext

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from bench.prefect_db import prefect_database
    from tests.helpers.ops_processes import start_prefect_server

    if prefect_db == "postgresql" and not admin_url:
        raise SystemExit("DUIKOU_BENCH_POSTGRES_URL is needed for --prefect-db postgresql")
    runs = work / f"runs-{prefect_db}"
    runs.mkdir()
    times: dict[str, list[float]] = {p: [] for p in PATHS}
    counts: dict[str, dict[str, int]] = {}
    warm: dict[str, float] = {}
    with ExitStack() as stack:
        database_url = stack.enter_context(
            prefect_database(admin_url, "nightly") if prefect_db == "postgresql" and admin_url else nullcontext(None))
        server, api, _ = start_prefect_server(runs, database_url=database_url)
        stack.callback(server.stop)
        print(f"prefect server on {prefect_db} at {api}", flush=True)
        with temporary_settings({PREFECT_API_URL: api}):
            # the plain loop too: the loads' writer slots are the server's concurrency limits (API calls)
            for path in ("plain", "prefect_1"):
                warm[path], warm_counts = _run(path, runs, landing, "warm")
                print(f"  warm-up {LABELS[path]:<18} {warm[path]:8.1f} s (not counted)  {warm_counts}", flush=True)
            for round_ in range(repeats):
                order = PATHS if round_ % 2 == 0 else tuple(reversed(PATHS))
                for path in order:
                    seconds, got = _run(path, runs, landing, f"r{round_}")
                    times[path].append(seconds)
                    counts[f"{path} r{round_}"] = got
                    print(f"  round {round_ + 1} {LABELS[path]:<18} {seconds:8.1f} s  {got}", flush=True)
    loaded = {name: c.get("loaded") for name, c in counts.items()}
    if len(set(loaded.values())) != 1:
        raise SystemExit(f"the runs loaded different counts: {counts}")
    stats = {p: _stats(times[p]) for p in PATHS}
    plain_work = _stats([c["work_ms"] / 1000 for name, c in counts.items() if name.startswith("plain ")])
    files = sum(v for k, v in counts["plain r0"].items() if k != "work_ms")  # each file's status, counted
    paired = [one / plain for one, plain in zip(times["prefect_1"], times["plain"], strict=True)]
    print(f"\n  {'path':<18} {'median':>8} {'min':>8} {'max':>8} {'spread':>7}   ({repeats} rounds, "
          f"Prefect server on {prefect_db})")
    for p in PATHS:
        st = stats[p]
        print(f"  {LABELS[p]:<18} {st['median']:8.2f} {st['min']:8.2f} {st['max']:8.2f} {st['spread']:7.1%}")
    overhead = stats["prefect_1"]["median"] / stats["plain"]["median"]
    print(f"  overhead_ratio {overhead:.3f} (target ≤ 1.25; per round {', '.join(f'{r:.2f}' for r in paired)})",
          flush=True)
    per_form_ratio = stats["prefect_1"]["median"] / plain_work["median"]
    speedup = stats["prefect_1"]["median"] / stats["prefect_2"]["median"]
    print(f"  per file: plain work (read + validate + load + receipt) {plain_work['median'] / files * 1000:.0f} ms, "
          f"nightly 1 worker {stats['prefect_1']['median'] / files * 1000:.0f} ms, 2 workers "
          f"{stats['prefect_2']['median'] / files * 1000:.0f} ms over {files} files; per_form_ratio "
          f"{per_form_ratio:.3f} (target ≤ 2); speedup_2_workers {speedup:.3f} (target > 1 on a PostgreSQL "
          f"warehouse; warehouse here: {'postgresql' if _PG['url'] else 'sqlite'})", flush=True)
    return {"plain_s": stats["plain"], "prefect_1_worker_s": stats["prefect_1"],
            "plain_work_s": plain_work, "per_form_ms": {
                "plain_work": round(plain_work["median"] / files * 1000, 1),
                "prefect_1_worker": round(stats["prefect_1"]["median"] / files * 1000, 1),
                "prefect_2_workers": round(stats["prefect_2"]["median"] / files * 1000, 1)},
            "per_form_ratio": round(per_form_ratio, 3),
            "prefect_2_workers_s": stats["prefect_2"],
            "overhead_ratio": round(overhead, 3),
            "overhead_ratio_per_round": [round(r, 3) for r in paired],
            "overhead_ratio_per_round_median": round(statistics.median(paired), 3),
            "speedup_2_workers": round(speedup, 3),
            "warm_up_s": {k: round(v, 3) for k, v in warm.items()}, "loaded_per_run": next(iter(loaded.values()))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--registries", type=int, default=3)
    parser.add_argument("--registry-rows", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds after the warm-up (at least 3)")
    admin_url = os.environ.get("DUIKOU_BENCH_POSTGRES_URL")
    parser.add_argument("--prefect-db", choices=("postgresql", "sqlite", "both"),
                        default="postgresql" if admin_url else "sqlite",
                        help="the Prefect server's own database (default: postgresql when "
                             "DUIKOU_BENCH_POSTGRES_URL is set, as in production)")
    parser.add_argument("--warehouse", choices=("sqlite", "postgresql"), default="sqlite",
                        help="each run's warehouse: a fresh SQLite file (default) or a fresh schema on "
                             "DUIKOU_BENCH_POSTGRES_URL (where two workers can load side by side)")
    args = parser.parse_args(argv)
    if args.warehouse == "postgresql" and not admin_url:
        parser.error("--warehouse postgresql needs DUIKOU_BENCH_POSTGRES_URL")
    if args.repeats < 3:
        parser.error("--repeats must be at least 3: a median of fewer runs on a shared machine says little")
    if args.prefect_db in ("postgresql", "both") and not admin_url:
        parser.error("--prefect-db postgresql needs DUIKOU_BENCH_POSTGRES_URL (e.g. "
                     "postgresql+psycopg://postgres@127.0.0.1:5432/test)")
    os.environ.setdefault("DUIKOU_PERSON_KEY", "bench-nightly-person-key-" + "0" * 16)
    os.environ.pop("DUIKOU_WAREHOUSE_URL", None)
    for name in ("PREFECT_SERVER_ANALYTICS_ENABLED", "GX_ANALYTICS_ENABLED"):
        os.environ.setdefault(name, "false")
    if args.prefect_db == "both":
        # one process per server: Prefect's slot service is a per-process singleton bound to the first API URL
        runs = {db: _run_in_subprocess([*(argv if argv is not None else sys.argv[1:]), "--prefect-db", db])
                for db in ("postgresql", "sqlite")}
        result = {**runs["postgresql"], "sqlite_prefect_server": {k: runs["sqlite"][k] for k in _FIGURES}}
        print(json.dumps(result))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-nightly-") as tmp:
        work = Path(tmp)
        landing = work / "landing"
        files = build_landing(landing, args.months, args.registries, args.registry_rows)
        print(f"landing area: {files} files ({args.months} months × 4 returns, {args.registries} registries × "
              f"{args.registry_rows:,} people)")
        import great_expectations  # noqa: F401  (once per process, before any clock)

        _PG["url"] = admin_url if args.warehouse == "postgresql" else None
        try:
            figures = measure(work, landing, args.prefect_db, admin_url, args.repeats)
        finally:
            _drop_pg_schemas()
    print(json.dumps({
        "files": files, "months": args.months, "registries": args.registries, "registry_rows": args.registry_rows,
        "prefect_db": args.prefect_db, "warehouse": args.warehouse, "repeats": args.repeats, **figures,
        "targets": TARGETS,
    }))
    return 0


TARGETS = {"overhead_ratio_max": 1.25, "per_form_ratio_max": 2.0, "speedup_2_workers_min_on_postgresql": 1.0}
_FIGURES = ("plain_s", "prefect_1_worker_s", "prefect_2_workers_s", "overhead_ratio", "overhead_ratio_per_round",
            "overhead_ratio_per_round_median", "plain_work_s", "per_form_ms", "per_form_ratio", "speedup_2_workers",
            "warm_up_s")


def _run_in_subprocess(args: list[str]) -> dict[str, Any]:
    import subprocess

    done = subprocess.run([sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, check=True)
    lines = done.stdout.strip().splitlines()
    for line in lines[:-1]:
        if not line.startswith("{"):
            print(line, flush=True)
    return dict(json.loads(lines[-1]))


if __name__ == "__main__":
    raise SystemExit(main())
