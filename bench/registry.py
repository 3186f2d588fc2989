"""Registry benchmark: a person-level 劳动力实名登记表 of ``--rows`` people, streamed end to end,
each stage beside its raw-library floor measured in the same run.

    .venv/bin/python bench/registry.py --rows 2000000      # PostgreSQL from DUIKOU_BENCH_POSTGRES_URL

What runs:

1. the generator (``tasks/demo/registry.py``) writes a CSV of ``--rows`` invented people with
   valid, distinct GB 11643 IDs (UTF-8, or ``--encoding gb18030``); not timed;
2. **ours**, in a fresh child process (so its peak RSS is its own): ``receive`` (SHA-256 of the
   file) and ``tasks.registry.submission.ingest_registry`` — open, stream in Arrow batches, every
   declared check vectorised, HMAC person keys, GX on the de-identified sample, ``COPY`` into
   ``fact_person`` inside the submission's one transaction, marts, commit — into a fresh
   PostgreSQL schema (SQLite when no URL is set: then there is no COPY floor). Stage seconds come
   from the stream's own clocks (``StageTimes``): read = time inside the batch iterator, checks =
   vectorised checks + person keys + issue building, gx = GX Core on the sample, load = COPY writes;
   end to end = the whole call including hashing, ledger, marts and commit;
3. **floors**, in another child process: plain ``pyarrow.csv.read_csv`` of the file (default
   options); the same checks written directly in ``pyarrow.compute`` over that table (ID shape,
   check digit, birth date, sex digit, age band, the four enumerations, booleans, township names,
   income number and range, duplicates by ``value_counts``); plain psycopg ``COPY FROM STDIN`` of
   ``fact_person``'s rows as our run wrote them (exported first, untimed) into a table created
   ``LIKE fact_person INCLUDING ALL``, 1 MiB writes, one transaction.

Ratios (rows/s ours ÷ rows/s floor, so higher is better, 1.0 = as fast as the floor):
``end_to_end_ratio`` = (read + checks + COPY floor seconds) ÷ our end-to-end seconds — target
≥ 0.4; ``gx_ratio`` = our checks + GX seconds ÷ the pyarrow.compute checks floor, as a cost
multiple — target ≤ 3. The last line is one JSON object. Run it once on a quiet machine: other
processes on the same cores move every figure by ±15–30 %.
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
    with path.open("wb") as out:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            part = path.with_suffix(f".part{start}")
            table = registry_table(declaration, n, SNAPSHOT, seed=start + 1)
            if start:  # distinct people across chunks: another region code per chunk
                ids = table.column("公民身份号码").to_pylist()
                table = _reregion(table, ids, start // chunk)
            write_registry_csv(table, part, encoding)
            data = part.read_bytes()
            if start:
                data = data.split(b"\n", 1)[1]  # one header only
            out.write(data)
            part.unlink()


def _reregion(table: Any, ids: list[str], index: int) -> Any:
    import pyarrow as pa

    from tasks.registry.idcard import check_character

    region = f"5133{23 + index:02d}"
    fresh = [region + i[6:17] + check_character(region + i[6:17]) for i in ids]
    return table.set_column(table.column_names.index("公民身份号码"), "公民身份号码", pa.array(fresh))


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
    settings = Settings(data_dir=data_dir, person_key=KEY)  # type: ignore[arg-type]
    reference = reference_frames()
    import great_expectations  # noqa: F401  (imported once per process, before the clock)

    start = time.perf_counter()
    received = receive(path, "labour_registry", PERIOD)
    stream, outcome = ingest_registry(received, engine, reference, settings, KEY.encode())
    total = time.perf_counter() - start
    assert outcome is not None
    times = stream.times
    return {
        "status": outcome.load.status, "rows": stream.result.rows_read, "loaded": outcome.load.facts_loaded,
        "end_to_end_s": total, "read_s": times.read, "checks_s": times.checks, "gx_s": times.gx,
        "load_s": times.load, "peak_rss_mb": _peak_rss_mb(),
    }


def _floor_checks(table: Any) -> float:
    import pyarrow as pa
    import pyarrow.compute as pc

    from expectations.registry_declaration import load_registry_declarations
    from warehouse.refdata import reference_frames

    decl = load_registry_declarations()["labour_registry"]
    start = time.perf_counter()
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
    for name in ("sex", "education_level", "employment_status", "certificate_level"):
        col = decl.column(name)
        masks.append(pc.is_in(table.column(col.header), value_set=pa.array(col.values)))
    masks.append(pc.is_in(table.column("是否建档立卡贫困户"), value_set=pa.array(["是", "否"])))
    names = pa.array([str(n) for n in reference_frames().aliases["alias"]])
    masks.append(pc.is_in(table.column("乡(镇)"), value_set=names))
    income = pc.cast(table.column("月收入(元)"), pa.float64())
    masks.append(pc.or_(pc.less(income, 0), pc.greater(income, 50_000)))
    counts = pc.value_counts(ids)
    masks.append(pc.greater(counts.field("counts"), 1))
    for mask in masks:
        pc.sum(pc.cast(mask, pa.int64()))  # materialise every result, as a check would
    return time.perf_counter() - start


def child_floors(path: Path, url: str | None, export: Path | None) -> dict[str, Any]:
    import pyarrow.csv as pa_csv

    start = time.perf_counter()
    table = pa_csv.read_csv(path)
    read_s = time.perf_counter() - start
    checks_s = _floor_checks(table)
    rows = table.num_rows
    del table
    copy_s = None
    if url and export is not None:
        copy_s = _floor_copy(url, export)
    return {"rows": rows, "read_s": read_s, "checks_s": checks_s, "copy_s": copy_s}


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
    parser.add_argument("--child", choices=["ours", "floors"], help=argparse.SUPPRESS)
    parser.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--export", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    url = os.environ.get(POSTGRES_URL_ENV) or None
    if args.child == "ours":
        print(json.dumps(child_ours(args.file, url, args.data_dir)))
        return 0
    if args.child == "floors":
        print(json.dumps(child_floors(args.file, url, args.export)))
        return 0

    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        work = Path(tmp)
        path = work / "劳动力实名登记.csv"
        start = time.perf_counter()
        generate(args.rows, path, args.encoding)
        print(f"generated {args.rows:,} people, {path.stat().st_size / 1e6:.0f} MB {args.encoding} CSV "
              f"in {time.perf_counter() - start:.1f} s (not timed)")
        env = dict(os.environ)
        schema_name = None
        admin = None
        if url:
            from sqlalchemy import text

            from warehouse.engine import make_engine

            schema_name = f"bench_registry_{uuid.uuid4().hex[:8]}"
            admin = make_engine(url)
            with admin.begin() as conn:
                conn.execute(text(f"CREATE SCHEMA {schema_name}"))
            env["BENCH_SCHEMA"] = schema_name
        else:
            print(f"{POSTGRES_URL_ENV} not set: loading into SQLite, no COPY floor")
        try:
            ours = _run_child(["--child", "ours", "--file", str(path), "--data-dir", str(work / "data")], env)
            export = work / "fact_person.csv"
            if url and schema_name:
                _export_rows(url, export, schema_name)
            floors = _run_child(["--child", "floors", "--file", str(path), "--export", str(export)], env)
        finally:
            if admin is not None:
                from sqlalchemy import text

                with admin.begin() as conn:
                    conn.execute(text(f"DROP SCHEMA IF EXISTS {schema_name} CASCADE"))
                admin.dispose()
    return report(args.rows, ours, floors, url is not None)


def report(rows: int, ours: dict[str, Any], floors: dict[str, Any], postgres: bool) -> int:
    def rate(seconds: float | None) -> str:
        return f"{rows / seconds:>12,.0f} rows/s ({seconds:6.2f} s)" if seconds else "—"

    print(f"{'stage':<12} {'ours':>32}   {'floor':>32}")
    print(f"{'read':<12} {rate(ours['read_s']):>32}   {rate(floors['read_s']):>32}  pyarrow.csv.read_csv")
    print(f"{'checks':<12} {rate(ours['checks_s']):>32}   {rate(floors['checks_s']):>32}  pyarrow.compute")
    print(f"{'gx sample':<12} {rate(ours['gx_s']):>32}")
    print(f"{'load':<12} {rate(ours['load_s']):>32}   {rate(floors['copy_s']):>32}  psycopg COPY")
    floor_sum = floors["read_s"] + floors["checks_s"] + (floors["copy_s"] or 0.0)
    print(f"{'end to end':<12} {rate(ours['end_to_end_s']):>32}   {rate(floor_sum):>32}  sum of floors")
    print(f"status {ours['status']}, {ours['loaded']:,} people loaded; peak RSS {ours['peak_rss_mb']:.0f} MB")
    result = {
        "rows": rows,
        "backend": "postgresql" if postgres else "sqlite",
        "end_to_end_s": round(ours["end_to_end_s"], 3),
        "floor_sum_s": round(floor_sum, 3),
        "end_to_end_ratio": round(floor_sum / ours["end_to_end_s"], 3),
        "gx_ratio": round((ours["checks_s"] + ours["gx_s"]) / floors["checks_s"], 3),
        "read_ratio": round(floors["read_s"] / ours["read_s"], 3) if ours["read_s"] else None,
        "load_ratio": round(floors["copy_s"] / ours["load_s"], 3) if floors["copy_s"] and ours["load_s"] else None,
        "stages_s": {k: round(ours[k], 3) for k in ("read_s", "checks_s", "gx_s", "load_s")},
        "floors_s": {k: (round(v, 3) if v is not None else None) for k, v in floors.items() if k != "rows"},
        "peak_rss_mb": round(ours["peak_rss_mb"], 1),
        "targets": {"end_to_end_ratio_min": 0.4, "gx_ratio_max": 3.0, "peak_rss_mb_max": 1536},
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
