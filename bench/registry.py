"""Registry benchmark: a person-level 劳动力实名登记表 of ``--rows`` people, streamed end to end,
each stage beside its raw-library floor measured in the same run.

    DUIKOU_BENCH_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
        .venv/bin/python bench/registry.py --rows 2000000 [--dask]

What runs:

1. the generator (``tasks/demo/registry.py``) writes a CSV of ``--rows`` invented people with
   valid, distinct GB 11643 IDs (UTF-8, or ``--encoding gb18030``); not timed; with
   ``--reuse-dir DIR`` the file is kept there and the next run of the same size reuses it
   (``--generate-only`` writes it and stops, so a timed run later finds it);
2. **ours**, in a fresh child process (so its peak RSS is its own, plus that of its person-key
   helper process, ``tasks/registry/keyworker.py``): ``receive`` (SHA-256 of the
   file) and ``tasks.registry.submission.ingest_registry`` — open, stream in Arrow batches, the
   declared checks as a GX suite over every row (one ``validate()`` per chunk, then the uniqueness
   suite), typed rows and HMAC person keys, GX on the Data Docs sample, ``COPY`` into
   ``fact_person`` inside the submission's one transaction, marts, commit — into a fresh
   PostgreSQL schema (SQLite when no URL is set: then there is no COPY floor). Stage seconds come
   from the stream's own clocks (``StageTimes``): read = time inside the batch iterator, gx = the
   GX validate() calls over every row, rows = township codes + typed rows + person keys + issue
   building, sample = GX on the de-identified sample, load = COPY writes; end to end = the whole
   call including hashing, ledger, marts and commit;
3. **floors**, in another child process: plain ``pyarrow.csv.read_csv`` of the file (default
   options); the same checks written directly in ``pyarrow.compute`` over that table (ID shape,
   check digit, birth date, sex digit, age band, required fields, the four enumerations,
   booleans, township names, income number and range, duplicates by ``value_counts``), per
   1 000 000-row slice (the duplicates over the whole column); plain psycopg ``COPY FROM STDIN``
   of ``fact_person``'s rows as our run wrote them (exported first, untimed) into a table created
   ``LIKE fact_person INCLUDING ALL``, 1 MiB writes, one transaction;
4. with ``--dask``: the direct run's table and JSON are printed first (a Dask run stopped
   half-way leaves them), then the same ingest runs as a task on a ``distributed.LocalCluster``
   of two worker processes (one thread each) into a schema of its own — a registry file is one
   stream, so one worker ingests it while the other idles; this measures what going through Dask
   costs.

Figures: ``gx_ratio`` = GX seconds over every row ÷ the pyarrow.compute checks floor, a cost
multiple — target ≤ 2; ``end_to_end_ratio`` = (read + checks + COPY floor seconds) ÷ our end-to-end
seconds, rows/s ours ÷ rows/s floor (1.0 = as fast as the floors) — target ≥ 0.5; peak RSS of our
child ≤ 1.5 GB; the warehouse's disk use per million people (``pg_total_relation_size`` of every
table of the schema after the load). **No ratio is printed unless every row loaded**: the JSON
carries ``status``, ``rows_read`` and ``rows_loaded``, and a run that did not load all ``--rows``
people prints ``refused`` instead of ratios and exits 1. The last line is one JSON object. Other
processes on the same cores move every figure by ±15–30 % (more on a busy machine): the JSON
carries each child's 1-minute load average as it started and ended (``load_avg_1min``), so a
ratio whose two sides ran on differently loaded machines can be told apart.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POSTGRES_URL_ENV = "DUIKOU_BENCH_POSTGRES_URL"
SNAPSHOT = date(2017, 5, 31)
PERIOD = "2017-05"
KEY = "bench-registry-person-key-" + "0" * 16


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def generate(rows: int, path: Path, encoding: str) -> None:
    from expectations.registry_declaration import load_registry_declarations
    from tasks.demo.registry import registry_table, write_registry_csv

    declaration = load_registry_declarations()["labour_registry"]
    chunk = 500_000
    base = registry_table(declaration, min(chunk, rows), SNAPSHOT, seed=1)
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            part = path.with_suffix(f".part{start}")
            table = base.slice(0, n)
            if start:  # the same invented people under another region code per chunk: distinct IDs
                table = _reregion(table, None, start // chunk)
            write_registry_csv(table, part, encoding)
            data = part.read_bytes()
            if start:
                data = data.split(b"\n", 1)[1]  # one header only
            out.write(data)
            part.unlink()


def _reregion(table: Any, ids: list[str] | None, index: int) -> Any:
    """The same people under another region code (distinct IDs across chunks), check characters
    recomputed as one n × 18 byte matrix (a Python loop per ID took minutes per million here)."""
    import numpy as np
    import pyarrow as pa

    from tasks.registry.idcard import CHECK_CHARACTERS, WEIGHTS

    del ids
    column = table.column("公民身份号码").combine_chunks()
    column = pa.concat_arrays([column.cast(pa.string())])  # own buffers, offsets from 0
    n = len(column)
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int32, count=n + 1)
    if not (np.diff(offsets) == 18).all():
        raise ValueError("the generator's IDs are 18 characters each")
    matrix = np.frombuffer(column.buffers()[2], dtype=np.uint8, count=18 * n).reshape(n, 18).copy()
    matrix[:, :6] = np.frombuffer(f"5133{23 + index:02d}".encode("ascii"), dtype=np.uint8)
    digits = matrix[:, :17].astype(np.int64) - 48
    matrix[:, 17] = np.frombuffer(CHECK_CHARACTERS.encode("ascii"), dtype=np.uint8)[(digits @ WEIGHTS) % 11]
    fresh = pa.array(matrix.view("S18").ravel(), type=pa.binary()).cast(pa.string())
    return table.set_column(table.column_names.index("公民身份号码"), "公民身份号码", fresh)


# ------------------------------------------------------------------ children
def child_ours(path: Path, url: str | None, data_dir: Path) -> dict[str, Any]:
    from duikou_settings import Settings
    from tasks.registry.submission import ingest_registry
    from tasks.submission.journey import receive
    from warehouse.bootstrap import ensure_warehouse
    from warehouse.engine import make_engine
    from warehouse.refdata import reference_frames

    engine_url = url or f"sqlite:///{data_dir / 'warehouse.sqlite'}"
    schema_name = os.environ.get("BENCH_SCHEMA")
    kwargs = {"connect_args": {"options": f"-csearch_path={schema_name}"}} if schema_name else {}
    engine = make_engine(engine_url, **kwargs)
    ensure_warehouse(engine)
    # the default upload limit (DUIKOU_REGISTRY_MAX_UPLOAD_BYTES, 2 GiB) is ~17 M people of this
    # generator's 122 bytes each: a larger file needs the limit raised, as an operator would
    limit = max(Settings.model_fields["registry_max_upload_bytes"].default, path.stat().st_size)
    settings = Settings(data_dir=data_dir, person_key=KEY, registry_max_upload_bytes=limit)  # type: ignore[arg-type]
    reference = reference_frames()
    import great_expectations  # noqa: F401  (imported once per process, before the clock)

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    received = receive(path, "labour_registry", PERIOD)
    stream, outcome = ingest_registry(received, engine, reference, settings, KEY.encode())
    total = time.perf_counter() - start
    times = stream.times
    own, helper = _peak_rss_mb(), times.extra.get("key_helper_peak_rss_mb", 0.0)
    return {
        "status": outcome.load.status if outcome is not None else stream.result.status,
        "rows_read": stream.result.rows_read, "rows_loaded": outcome.load.facts_loaded if outcome else 0,
        "end_to_end_s": total, "read_s": times.read, "gx_s": times.gx, "rows_s": times.rows,
        "sample_s": times.sample, "load_s": times.load, "gx_unique_s": times.extra.get("gx_unique", 0.0),
        "key_helper_share": times.extra.get("key_helper_share", 0.0),
        "key_helper_wait_s": times.extra.get("key_helper_wait", 0.0),
        # the person-key helper process (tasks/registry/keyworker.py) is ours too: both peaks, added
        "peak_rss_mb": own + helper, "peak_rss_stream_mb": own, "peak_rss_key_helper_mb": helper,
        "load_avg_1min": [load_before, os.getloadavg()[0]],
    }


def child_dask(path: Path, url: str | None, data_dir: Path) -> dict[str, Any]:
    """``child_ours`` as a task on a LocalCluster of two worker processes; the worker's peak RSS."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.run(lambda: sys.path.insert(0, str(ROOT)) if str(ROOT) not in sys.path else None)
        start = time.perf_counter()
        result = client.submit(child_ours, path, url, data_dir, pure=False).result()
        result["wall_with_dask_s"] = time.perf_counter() - start
        peaks = client.run(_peak_rss_mb)
    # the worker that ran the ingest, with its person-key helper's peak
    result["worker_peak_rss_mb"] = max(peaks.values()) + result.get("peak_rss_key_helper_mb", 0.0)
    result["workers"] = len(peaks)
    return result


def _warehouse_bytes(url: str, schema_name: str) -> int:
    from sqlalchemy import text

    from warehouse.engine import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT COALESCE(SUM(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relkind IN ('r', 'm')"),
                {"s": schema_name}).scalar_one())
    finally:
        engine.dispose()


FLOOR_SLICE_ROWS = 1_000_000


def _floor_checks(table: Any) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc

    from expectations.registry_declaration import load_registry_declarations
    from warehouse.refdata import reference_frames

    decl = load_registry_declarations()["labour_registry"]
    names = pa.array([str(n) for n in reference_frames().aliases["alias"]])
    start = time.perf_counter()
    for offset in range(0, table.num_rows, FLOOR_SLICE_ROWS):
        _floor_slice_checks(table.slice(offset, FLOOR_SLICE_ROWS), decl, names)
    counts = pc.value_counts(pc.cast(table.column("公民身份号码"), pa.string()))
    pc.sum(pc.cast(pc.greater(counts.field("counts"), 1), pa.int64()))
    return time.perf_counter() - start


def _floor_slice_checks(table: Any, decl: Any, names: Any) -> None:
    import pyarrow as pa
    import pyarrow.compute as pc

    ids = pc.cast(table.column("公民身份号码"), pa.string())
    shaped = pc.match_substring_regex(ids, r"^[0-9]{17}[0-9X]$")
    total = None
    for i, weight in enumerate((7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)):
        digit = pc.cast(pc.utf8_slice_codeunits(ids, i, i + 1), pa.int64())
        term = pc.multiply(digit, weight)
        total = term if total is None else pc.add(total, term)
    expected = pc.take(pa.array(list("10X98765432")), pc.cast(pc.divide(pc.subtract(total, pc.multiply(
        pc.divide(total, 11), 11)), 1), pa.int64()))
    bad_check = pc.and_(shaped, pc.not_equal(pc.utf8_slice_codeunits(ids, 17, 18), expected))
    birth_text = pc.utf8_slice_codeunits(ids, 6, 14)
    birth = pc.strptime(birth_text, format="%Y%m%d", unit="s", error_is_null=True)
    bad_birth = pc.not_equal(pc.strftime(birth, format="%Y%m%d"), birth_text)
    male = pc.equal(pc.bit_wise_and(pc.cast(pc.utf8_slice_codeunits(ids, 16, 17), pa.int64()), 1), 1)
    bad_sex = pc.not_equal(male, pc.equal(table.column("性别"), "男"))
    age = pc.years_between(birth, pa.scalar(datetime(SNAPSHOT.year, SNAPSHOT.month, SNAPSHOT.day), pa.timestamp("s")))
    bad_age = pc.or_(pc.less(age, 16), pc.greater(age, pc.if_else(male, 60, 55)))
    masks = [shaped, bad_check, bad_birth, bad_sex, bad_age]
    for header in ("姓名", "公民身份号码", "性别", "乡(镇)", "村", "就业状态"):
        masks.append(pc.is_null(table.column(header)))
    for name in ("sex", "education_level", "employment_status", "certificate_level"):
        col = decl.column(name)
        masks.append(pc.is_in(table.column(col.header), value_set=pa.array(col.values)))
    masks.append(pc.is_in(table.column("是否建档立卡贫困户"), value_set=pa.array(["是", "否"])))
    masks.append(pc.is_in(table.column("乡(镇)"), value_set=names))
    income = pc.cast(table.column("月收入(元)"), pa.float64())
    masks.append(pc.or_(pc.less(income, 0), pc.greater(income, 50_000)))
    for mask in masks:
        pc.sum(pc.cast(mask, pa.int64()))  # materialise every result, as a check would


def child_floors(path: Path, url: str | None, export: Path | None) -> dict[str, Any]:
    import pyarrow.csv as pa_csv

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    table = pa_csv.read_csv(path)
    read_s = time.perf_counter() - start
    checks_s = _floor_checks(table)
    rows = table.num_rows
    del table
    copy_s = None
    if url and export is not None:
        copy_s = _floor_copy(url, export)
    return {"rows": rows, "read_s": read_s, "checks_s": checks_s, "copy_s": copy_s,
            "load_avg_1min": [load_before, os.getloadavg()[0]]}


def _floor_copy(url: str, export: Path) -> float:
    import psycopg

    schema_name = os.environ["BENCH_SCHEMA"]
    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, options=f"-csearch_path={schema_name}") as conn:
        conn.execute("CREATE TABLE fact_person_floor (LIKE fact_person INCLUDING ALL)")
        conn.commit()
        start = time.perf_counter()
        with conn.cursor() as cur, cur.copy("COPY fact_person_floor FROM STDIN (FORMAT csv)") as copy, \
                export.open("rb") as fh:
            while block := fh.read(1 << 20):
                copy.write(block)
        conn.commit()
        return time.perf_counter() - start


def _export_rows(url: str, export: Path, schema_name: str) -> None:
    import psycopg

    dsn = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, options=f"-csearch_path={schema_name}") as conn, \
            conn.cursor() as cur, cur.copy("COPY fact_person TO STDOUT (FORMAT csv)") as copy, export.open("wb") as out:
        for block in copy:
            out.write(block)


def _run_child(args: list[str], env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {args[:2]} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--encoding", default="utf-8", choices=["utf-8", "gb18030"])
    parser.add_argument("--dask", action="store_true", help="also ingest through Dask with two worker processes")
    parser.add_argument("--reuse-dir", type=Path, metavar="DIR",
                        help="keep the generated CSV in DIR (labour-registry-<rows>-<encoding>.csv) and reuse it "
                             "on the next run of the same size: generating 20 M people takes minutes")
    parser.add_argument("--generate-only", action="store_true",
                        help="with --reuse-dir: write the file (if absent) and stop, so a later timed run reuses it")
    parser.add_argument("--child", choices=["ours", "floors", "dask"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.generate_only and args.reuse_dir is None:
        parser.error("--generate-only keeps the file only with --reuse-dir")
    url = os.environ.get(POSTGRES_URL_ENV) or None
    if args.child == "ours":
        print(json.dumps(child_ours(args.file, url, args.data_dir)))
        return 0
    if args.child == "dask":
        print(json.dumps(child_dask(args.file, url, args.data_dir)))
        return 0
    if args.child == "floors":
        print(json.dumps(child_floors(args.file, url, args.export)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        path = work / "劳动力实名登记.csv"
        if args.reuse_dir is not None:
            args.reuse_dir.mkdir(parents=True, exist_ok=True)
            path = args.reuse_dir / f"labour-registry-{args.rows}-{args.encoding}.csv"
        if path.exists():
            print(f"reusing {path} ({path.stat().st_size / 1e6:.0f} MB)", flush=True)
        else:
            start = time.perf_counter()
            partial = path.with_name(path.name + ".partial")
            generate(args.rows, partial, args.encoding)
            partial.replace(path)  # a run stopped half-way never leaves a file that looks whole
            print(f"generated {args.rows:,} people, {path.stat().st_size / 1e6:.0f} MB {args.encoding} CSV "
                  f"in {time.perf_counter() - start:.1f} s (not timed)", flush=True)
        if args.generate_only:
            return 0
        env = dict(os.environ)
        schemas: list[str] = []
        admin = None
        if url:
            from sqlalchemy import text

            from warehouse.engine import make_engine

            admin = make_engine(url)
        else:
            print(f"{POSTGRES_URL_ENV} not set: loading into SQLite, no COPY floor, no disk figure")

        def fresh_schema() -> dict[str, str]:
            if admin is None:
                return env
            name = f"bench_registry_{uuid.uuid4().hex[:8]}"
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {name}"))
            schemas.append(name)
            return {**env, "BENCH_SCHEMA": name}

        dask = None
        warehouse_bytes = None
        try:
            ours_env = fresh_schema()
            ours = _run_child(["--child", "ours", "--file", str(path), "--data-dir", str(work / "data")], ours_env)
            print(f"ours: {ours['status']}, {ours['rows_loaded']:,} of {ours['rows_read']:,} rows loaded in "
                  f"{ours['end_to_end_s']:.1f} s: {json.dumps(ours)}", flush=True)
            export = work / "fact_person.csv"
            if url and admin is not None:
                warehouse_bytes = _warehouse_bytes(url, ours_env["BENCH_SCHEMA"])
                _export_rows(url, export, ours_env["BENCH_SCHEMA"])
            floors = _run_child(["--child", "floors", "--file", str(path), "--export", str(export)], ours_env)
            export.unlink(missing_ok=True)
            print(f"floors: {json.dumps(floors)}", flush=True)
            if admin is not None and schemas:
                with admin.begin() as conn:  # its disk back before the Dask run loads its own copy
                    conn.execute(text(f"DROP SCHEMA IF EXISTS {schemas[0]} CASCADE"))
            if args.dask:
                # the direct run's figures first: a Dask run stopped half-way leaves them printed
                print("direct run (the Dask run follows):", flush=True)
                report(args.rows, ours, floors, url is not None, warehouse_bytes=warehouse_bytes)
                sys.stdout.flush()
                dask = _run_child(["--child", "dask", "--file", str(path), "--data-dir", str(work / "data-dask")],
                                  fresh_schema())
        finally:
            if admin is not None:
                with admin.begin() as conn:
                    for name in schemas:
                        conn.execute(text(f"DROP SCHEMA IF EXISTS {name} CASCADE"))
                admin.dispose()
    return report(args.rows, ours, floors, url is not None, dask=dask, warehouse_bytes=warehouse_bytes)


TARGETS = {"gx_ratio_max": 2.0, "end_to_end_ratio_min": 0.5, "peak_rss_mb_max": 1536}


def refusal(rows: int, run: dict[str, Any]) -> str | None:
    """Why no ratio may be printed for this run (None: every row loaded)."""
    if run.get("status") != "loaded":
        return f"status {run.get('status')!r}, not loaded"
    if run.get("rows_read") != rows or run.get("rows_loaded") != rows:
        return f"{run.get('rows_loaded')} of {rows} rows loaded ({run.get('rows_read')} read)"
    return None


def report(rows: int, ours: dict[str, Any], floors: dict[str, Any], postgres: bool, *,
           dask: dict[str, Any] | None = None, warehouse_bytes: int | None = None) -> int:
    """The human table and the last-line JSON; exit 1 (and no ratio) unless every row loaded."""
    def rate(seconds: float | None) -> str:
        return f"{rows / seconds:>12,.0f} rows/s ({seconds:7.2f} s)" if seconds else "—"

    refused = refusal(rows, ours)
    dask_refused = refusal(rows, dask) if dask is not None else None
    floor_sum = floors["read_s"] + floors["checks_s"] + (floors["copy_s"] or 0.0)
    print(f"{'stage':<22} {'ours':>33}   {'floor':>33}")
    print(f"{'read':<22} {rate(ours['read_s']):>33}   {rate(floors['read_s']):>33}  pyarrow.csv.read_csv")
    print(f"{'GX over every row':<22} {rate(ours['gx_s']):>33}   {rate(floors['checks_s']):>33}  "
          "same checks, pyarrow.compute")
    print(f"{'rows + person keys':<22} {rate(ours['rows_s']):>33}")
    print(f"{'GX Data Docs sample':<22} {ours['sample_s']:>32.2f}s")
    print(f"{'load':<22} {rate(ours['load_s']):>33}   {rate(floors['copy_s']):>33}  psycopg COPY")
    print(f"{'end to end':<22} {rate(ours['end_to_end_s']):>33}   {rate(floor_sum):>33}  sum of floors")
    if dask is not None:
        print(f"{'end to end, Dask ×2':<22} {rate(dask['end_to_end_s']):>33}   (wall with Dask "
              f"{dask['wall_with_dask_s']:.2f} s; worker peak RSS {dask['worker_peak_rss_mb']:.0f} MB)")
    print(f"status {ours['status']}: {ours['rows_loaded']:,} of {ours['rows_read']:,} rows read loaded "
          f"(of {rows:,} generated); peak RSS {ours['peak_rss_mb']:.0f} MB")
    per_million = (warehouse_bytes / 1e6) / (rows / 1e6) if warehouse_bytes and rows else None
    if per_million is not None:
        print(f"warehouse on disk: {warehouse_bytes / 1e6:,.0f} MB, {per_million:,.1f} MB per million people")
    result: dict[str, Any] = {
        "rows": rows,
        "backend": "postgresql" if postgres else "sqlite",
        "status": ours["status"], "rows_read": ours["rows_read"], "rows_loaded": ours["rows_loaded"],
        "end_to_end_s": round(ours["end_to_end_s"], 3),
        "floor_sum_s": round(floor_sum, 3),
        "stages_s": {k: round(ours[k], 3) for k in ("read_s", "gx_s", "rows_s", "sample_s", "load_s")
                     if k in ours},
        "gx_unique_s": round(ours.get("gx_unique_s", 0.0), 3),
        # the person-key helper: the fraction of the IDs it hashed, the seconds the stream waited
        "key_helper": {"share": round(ours.get("key_helper_share", 0.0), 3),
                       "wait_s": round(ours.get("key_helper_wait_s", 0.0), 3)},
        "floors_s": {k: (round(v, 3) if v is not None else None) for k, v in floors.items()
                     if k in ("read_s", "checks_s", "copy_s")},
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "peak_rss_parts_mb": {"stream": round(ours.get("peak_rss_stream_mb", ours["peak_rss_mb"]), 1),
                              "key_helper": round(ours.get("peak_rss_key_helper_mb", 0.0), 1)},
        # the 1-minute load average as each child started and ended: ratios compare like with like
        # only when the two are alike (other processes on the same cores move every figure)
        "load_avg_1min": {"ours": [round(x, 2) for x in ours.get("load_avg_1min", [])],
                          "floors": [round(x, 2) for x in floors.get("load_avg_1min", [])]},
        "warehouse_mb_per_million_people": round(per_million, 1) if per_million is not None else None,
        "targets": TARGETS,
    }
    if refused is None:
        result.update({
            "gx_ratio": round(ours["gx_s"] / floors["checks_s"], 3),
            "end_to_end_ratio": round(floor_sum / ours["end_to_end_s"], 3),
            "read_ratio": round(floors["read_s"] / ours["read_s"], 3) if ours["read_s"] else None,
            "load_ratio": round(floors["copy_s"] / ours["load_s"], 3) if floors["copy_s"] and ours["load_s"] else None,
        })
    else:
        result["refused"] = refused
        print(f"REFUSED: no ratio — {refused}")
    if dask is not None:
        result["dask_2_workers"] = {
            "status": dask["status"], "rows_read": dask["rows_read"], "rows_loaded": dask["rows_loaded"],
            "end_to_end_s": round(dask["end_to_end_s"], 3), "wall_with_dask_s": round(dask["wall_with_dask_s"], 3),
            "stages_s": {k: round(dask[k], 3) for k in ("read_s", "gx_s", "rows_s", "sample_s", "load_s") if k in dask},
            "worker_peak_rss_mb": round(dask["worker_peak_rss_mb"], 1), "workers": dask["workers"],
            **({"end_to_end_ratio": round(floor_sum / dask["wall_with_dask_s"], 3)} if dask_refused is None
               else {"refused": dask_refused}),
        }
    print(json.dumps(result))
    return 0 if refused is None and dask_refused is None else 1


if __name__ == "__main__":
    raise SystemExit(main())
