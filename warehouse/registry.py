"""Person-level registries in the warehouse: one streamed submission = one transaction.

``record_registry_submission`` follows the ledger rules of ``warehouse.load.record_submission``
(duplicate by sha256, re-evaluation in place, supersede the partition's current version) for a
file too large to hold in memory: it opens the write transaction and the partition lock, writes
the ledger row, and hands a :class:`PersonWriter` to the caller's ``stream`` callback, which
reads, checks and writes the file batch by batch inside a savepoint. When the stream's outcome
is not ``loaded`` the savepoint is rolled back (no person row survives) and the ledger row records
the rejection; otherwise the previous version is superseded and the registry marts of the
partition are rebuilt — all before the one commit.

Rows go in by ``COPY fact_person (...) FROM STDIN (FORMAT csv)`` on PostgreSQL (each Arrow batch
written as CSV by pyarrow, sent by psycopg's queued writer thread while the next batch is
checked) and by the sqlite3 driver's ``executemany`` on SQLite. ``fact_person`` holds the HMAC
person key, never the ID number or the name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from sqlalchemy import Connection, Engine, case, delete, func, insert, select, update

from expectations.issues import Issue, issue
from expectations.registry_declaration import RegistryDeclaration
from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.engine import advisory_lock
from warehouse.load import (
    CONTROL_CHARACTERS,
    DqResult,
    LoadOutcome,
    SubmissionRecord,
    keyed_as_ledger,
    parse_period,
    text_safe,
    write_issues_and_results,
)
from warehouse.skipped import note_skipped

PERSON_TABLE = schema.fact_person
PERSON_INSERT_COLUMNS = tuple(c.name for c in PERSON_TABLE.columns)
AGE_BANDS = ((0, 15, "<16"), (16, 24, "16-24"), (25, 34, "25-34"), (35, 44, "35-44"), (45, 54, "45-54"),
             (55, 60, "55-60"), (61, 200, ">60"))


def _driver(conn: Connection) -> Any:
    raw = conn.connection.driver_connection
    if raw is None:
        raise RuntimeError("the connection has no DBAPI connection")
    return raw


class PersonWriter:
    """Writes fact_person batches on the submission's own connection and transaction."""

    def __init__(self, conn: Connection, submission_id: str) -> None:
        self.conn = conn
        self.submission_id = submission_id
        self.rows_written = 0
        self._copy_cm: Any = None
        self._copy: Any = None
        self._cursor: Any = None

    def write(self, rows: pa.Table) -> None:
        """Append one batch (columns: fact_person's except submission_id)."""
        if rows.num_rows == 0:
            return
        full = rows.add_column(0, "submission_id", pa.array([self.submission_id] * rows.num_rows, pa.string()))
        full = _without_control_characters(full.select(list(PERSON_INSERT_COLUMNS)))
        if self.conn.dialect.name == "postgresql":
            self._write_copy(full)
        else:
            self._write_sqlite(full)
        self.rows_written += rows.num_rows

    def _write_copy(self, table: pa.Table) -> None:
        if self._copy is None:
            from psycopg import sql

            statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT csv)").format(
                sql.Identifier(PERSON_TABLE.name), sql.SQL(", ").join(sql.Identifier(c) for c in PERSON_INSERT_COLUMNS)
            )
            from psycopg.copy import QueuedLibpqWriter

            self._cursor = _driver(self.conn).cursor()
            # a writer thread sends the CSV while the stream checks and builds the next chunk: the
            # server's COPY work overlaps ours instead of following it (the queue holds views of at
            # most a chunk or two of CSV; ``close`` waits for it to drain and raises the server's error)
            self._copy_cm = self._cursor.copy(statement, writer=QueuedLibpqWriter(self._cursor))
            self._copy = self._copy_cm.__enter__()
        sink = pa.BufferOutputStream()
        pa_csv.write_csv(table, sink, pa_csv.WriteOptions(include_header=False))
        self._copy.write(memoryview(sink.getvalue()))

    def _write_sqlite(self, table: pa.Table) -> None:
        names = ", ".join(f'"{c}"' for c in PERSON_INSERT_COLUMNS)
        marks = ", ".join("?" * len(PERSON_INSERT_COLUMNS))
        statement = f'INSERT INTO "{PERSON_TABLE.name}" ({names}) VALUES ({marks})'
        columns = [table.column(c).to_pylist() for c in PERSON_INSERT_COLUMNS]
        cursor = _driver(self.conn).cursor()
        try:
            cursor.executemany(statement, zip(*columns, strict=True))
        finally:
            cursor.close()

    def close(self, *, failed: bool = False) -> None:
        """End the COPY (PostgreSQL; waits for the queued rows to reach the server); the rows become
        part of the transaction. Idempotent: the stream ends it once written, the ledger again."""
        if self._copy_cm is not None:
            error = RuntimeError("registry stream failed") if failed else None
            self._copy_cm.__exit__(type(error) if error else None, error, None)
            self._cursor.close()
            self._copy_cm = self._copy = self._cursor = None


def _without_control_characters(table: pa.Table) -> pa.Table:
    """Every text column (village, 参训工种, …) without control characters: PostgreSQL's COPY refuses
    NUL, and a file's stray control character is stored alike on both backends (``warehouse.load.text_safe``)."""
    import pyarrow.compute as pc

    for index, name in enumerate(table.column_names):
        kind = table.schema.field(name).type
        if (pa.types.is_string(kind) or pa.types.is_large_string(kind)) and _may_hold_control(table.column(index)):
            cleaned = pc.replace_substring_regex(table.column(index), CONTROL_CHARACTERS.pattern, "")
            table = table.set_column(index, name, cleaned)
    return table


_CONTROL_BYTE = np.zeros(256, dtype=bool)
_CONTROL_BYTE[[*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F]] = True


def _may_hold_control(column: pa.ChunkedArray) -> bool:
    """Whether a text column's character data holds a byte of ``CONTROL_CHARACTERS`` (a lookup over
    the raw UTF-8 bytes — such a byte is never part of another character — instead of a regex
    replace over every value: the regex cost ~3 s per million people for nothing). A slice's
    buffer may reach beyond it: a hit there only costs the regex."""
    for chunk in column.chunks:
        data = chunk.buffers()[2]
        if data is not None and _CONTROL_BYTE[np.frombuffer(data, dtype=np.uint8)].any():
            return True
    return False


@dataclass(frozen=True)
class StreamResult:
    """What the caller's stream found: the outcome decides whether the person rows stay."""

    status: str  # loaded / rejected / quarantined
    rows_read: int
    rows_rejected: int
    issues: tuple[Issue, ...]
    dq_results: tuple[DqResult, ...]
    archive_path: str | None = None  # where the file is kept for this outcome (relative to the data dir)


@dataclass(frozen=True)
class RegistryOutcome:
    load: LoadOutcome
    stream: StreamResult | None  # None for a duplicate (nothing was read)
    reconciliation_issues: tuple[Issue, ...]


def record_registry_submission(
    engine: Engine,
    record: SubmissionRecord,
    declaration: RegistryDeclaration,
    stream: Callable[[PersonWriter], StreamResult],
) -> RegistryOutcome:
    """Ledger row, streamed person rows, issues, checks and marts of one registry file, atomically.

    ``record``'s status and row counts are placeholders: the stream's result decides them.
    """
    parse_period(record.period)
    record = keyed_as_ledger(engine, record)  # an id, once given, never changes (rows older than 0012)
    sub = schema.submission
    with begin_write(engine) as conn:
        advisory_lock(conn, "submission", record.department, record.period)
        existing = conn.execute(select(sub.c.submission_id, sub.c.status).where(
            sub.c.department == record.department, sub.c.sha256 == record.sha256)).first()
        if existing is not None and existing.status in ("loaded", "superseded"):
            return RegistryOutcome(LoadOutcome(record.submission_id, "duplicate", None, existing.submission_id, 0),
                                   None, ())
        now = datetime.now(UTC)
        ledger = {
            "department": record.department, "period": record.period, "original_name": record.original_name,
            "received_at": record.received_at.astimezone(UTC), "processed_at": now, "loaded_at": None,
            "status": "rejected", "rows_read": 0, "rows_loaded": 0, "rows_rejected": 0, "facts_loaded": 0,
            "supersedes": None, "superseded_by": None, "archive_path": record.archive_path,
            "receipt_path": record.receipt_path,
        }
        if record.source_url:
            ledger["source_url"] = record.source_url
        ledger = text_safe([ledger])[0]
        if existing is None:
            conn.execute(insert(sub).values(submission_id=record.submission_id, sha256=record.sha256, **ledger))
        else:
            for table in (schema.submission_issue, schema.dq_result, PERSON_TABLE):
                conn.execute(delete(table).where(table.c.submission_id == record.submission_id))
            conn.execute(update(sub).where(sub.c.submission_id == record.submission_id).values(**ledger))

        savepoint = conn.begin_nested()
        writer = PersonWriter(conn, record.submission_id)
        try:
            result = stream(writer)
            writer.close()
        except BaseException:
            writer.close(failed=True)
            savepoint.rollback()
            raise
        loaded = result.status == "loaded"
        previous: str | None = None
        reconciliation: tuple[Issue, ...] = ()
        if loaded:
            savepoint.commit()
            previous = conn.execute(select(sub.c.submission_id).where(
                sub.c.department == record.department, sub.c.period == record.period, sub.c.status == "loaded",
            )).scalar_one_or_none()
            if previous is not None:
                conn.execute(update(sub).where(sub.c.submission_id == previous).values(
                    status="superseded", superseded_by=None))
        else:
            savepoint.rollback()
        conn.execute(update(sub).where(sub.c.submission_id == record.submission_id).values(
            status=result.status, loaded_at=now if loaded else None, rows_read=result.rows_read,
            rows_loaded=writer.rows_written if loaded else 0, rows_rejected=result.rows_rejected,
            facts_loaded=writer.rows_written if loaded else 0, supersedes=previous,
            archive_path=result.archive_path or record.archive_path,
        ))
        if previous is not None:
            conn.execute(update(sub).where(sub.c.submission_id == previous).values(superseded_by=record.submission_id))
        if loaded:
            refresh_registry_partition(conn, declaration, record.period, record.submission_id)
            reconciliation = reconciliation_issues(conn, declaration, record.period)
        write_issues_and_results(conn, record.submission_id, (*result.issues, *reconciliation), result.dq_results)
    status = "loaded" if loaded else result.status
    outcome = LoadOutcome(record.submission_id, status, previous, None,  # type: ignore[arg-type]
                          writer.rows_written if loaded else 0)
    return RegistryOutcome(outcome, result, reconciliation)


# ------------------------------------------------------------------------------ marts
def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _age_band(age: Any, sex: Any) -> Any:
    band = case(*((age.between(low, high), label) for low, high, label in AGE_BANDS), else_="?")
    return sex + band


def refresh_registry_partition(conn: Connection, declaration: RegistryDeclaration, period: str,
                               submission_id: str) -> None:
    """Rebuild the registry marts of (department, period) from the snapshot ``submission_id``."""
    dept = declaration.department
    now = datetime.now(UTC)
    fp = PERSON_TABLE
    for table in (schema.mart_registry_township, schema.mart_registry_county, schema.mart_registry_category):
        conn.execute(delete(table).where(table.c.department == dept, table.c.period == period))
    # the measures read the fact_person columns of the declared mart roles (MART_ROLES); a
    # registry without a role counts 0 there (its column is null on every row)
    cert = declaration.with_role("certificate")
    employment = declaration.with_role("employment")
    not_held = cert.not_held if cert is not None else ()
    measures = {
        "persons": func.count(),
        "poor_persons": _count_if(fp.c.poor_household.is_(True)),
        "persons_trained": _count_if(fp.c.training_person_times > 0),
        "training_person_times": func.coalesce(func.sum(fp.c.training_person_times), 0),
        "certified_persons": _count_if(fp.c.certificate_level.is_not(None) & fp.c.certificate_level.not_in(not_held)),
        "certified_mid_senior_persons": _count_if(fp.c.certificate_level.in_(cert.mid_senior if cert is not None
                                                                             else ())),
        "employed_persons": _count_if(fp.c.employment_status.is_not(None) & fp.c.employment_status.not_in(
            employment.not_employed if employment is not None else ())),
    }
    dimensions: dict[str, Any] = {}  # one per declared mart role
    if employment is not None:
        dimensions["employment_status"] = fp.c.employment_status
    if cert is not None:
        dimensions["certificate_level"] = func.coalesce(fp.c.certificate_level, not_held[0] if not_held else "无")
    if declaration.with_role("education") is not None:
        dimensions["education_level"] = func.coalesce(fp.c.education_level, "未填")
    if declaration.with_role("sex") is not None:
        dimensions["sex_age_band"] = _age_band(fp.c.age_years, fp.c.sex)
    # ONE scan of the snapshot's rows, grouped by township and every dimension at once (a few
    # thousand groups): the township measures and each dimension's counts are sums over these
    # groups — one pass over 20 M people instead of one per mart and dimension
    labelled = [expression.label(f"d_{i}") for i, expression in enumerate(dimensions.values())]
    groups = conn.execute(
        select(fp.c.township_code, *labelled, *(m.label(name) for name, m in measures.items()))
        .where(fp.c.submission_id == submission_id).group_by(fp.c.township_code, *labelled)
    ).mappings().all()
    by_township: dict[str, dict[str, int]] = {}
    by_category: dict[tuple[str, str, str], int] = {}
    for group in groups:
        code = group["township_code"]
        sums = by_township.setdefault(code, dict.fromkeys(measures, 0))
        for name in measures:
            sums[name] += int(group[name])
        for i, dimension in enumerate(dimensions):
            where = (code, dimension, str(group[f"d_{i}"]))
            by_category[where] = by_category.get(where, 0) + int(group["persons"])
    if by_township:
        conn.execute(insert(schema.mart_registry_township), [
            {"township_code": code, **sums, "department": dept, "period": period, "submission_id": submission_id,
             "refreshed_at": now}
            for code, sums in by_township.items()
        ])
        # one row per ID in a snapshot: people add across townships here (never across snapshots)
        conn.execute(insert(schema.mart_registry_county).values(
            department=dept, period=period, submission_id=submission_id, townships=len(by_township),
            refreshed_at=now, **{m: sum(sums[m] for sums in by_township.values()) for m in measures},
        ))
    if by_category:
        conn.execute(insert(schema.mart_registry_category), [
            {"department": dept, "period": period, "township_code": code, "dimension": dimension,
             "category": category, "persons": persons, "refreshed_at": now}
            for (code, dimension, category), persons in by_category.items()
        ])


def _form_values(conn: Connection, department: str, indicator: str, period: str) -> dict[str, float | None]:
    f, sub = schema.fact_indicator_value, schema.submission
    query = (
        select(f.c.township_code, f.c.value)
        .join(sub, (sub.c.submission_id == f.c.submission_id) & (sub.c.status == "loaded"))
        .where(f.c.department == department, f.c.period == period, f.c.indicator == indicator)
    )
    return {str(code): value for code, value in conn.execute(query)}


def reconciliation_issues(conn: Connection, declaration: RegistryDeclaration, period: str) -> tuple[Issue, ...]:
    """Rebuild mart_registry_reconciliation for (registry, period); one warning per township outside tolerance."""
    return _rebuild_reconciliation(conn, declaration, period)[1]


def _rebuild_reconciliation(
    conn: Connection, declaration: RegistryDeclaration, period: str
) -> tuple[int, tuple[Issue, ...]]:
    dept = declaration.department
    table = schema.mart_registry_reconciliation
    conn.execute(delete(table).where(table.c.department == dept, table.c.period == period))
    town = schema.mart_registry_township
    registry = {
        str(r.township_code): {"persons": int(r.persons), "poor_persons": int(r.poor_persons)}
        for r in conn.execute(select(town.c.township_code, town.c.persons, town.c.poor_persons)
                              .where(town.c.department == dept, town.c.period == period))
    }
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    found: list[Issue] = []
    for rec in declaration.reconciliations:
        form = _form_values(conn, rec.department, rec.indicator, period)
        for code in sorted(set(registry) | {c for c, v in form.items() if v is not None}):
            counted = registry.get(code, {}).get(rec.count, 0)
            value = form.get(code)
            difference = None if value is None else counted - value
            within = None if value is None else abs(counted - value) <= rec.tolerance_relative * abs(value)
            rows.append({"department": dept, "period": period, "township_code": code, "check_id": rec.check_id,
                         "registry_value": counted, "form_department": rec.department,
                         "form_indicator": rec.indicator, "form_value": value, "difference": difference,
                         "tolerance_relative": rec.tolerance_relative, "within_tolerance": within,
                         "refreshed_at": now})
            if within is False:
                found.append(issue(
                    "REGISTRY_RECONCILIATION",
                    f"{code}: {rec.message_zh}(实名登记{counted}人，月报表{value:g}人，差{difference:+g})",
                    severity=rec.severity, action="flag" if rec.severity == "warning" else "report",
                    rule_id=rec.check_id,
                ))
    if rows:
        conn.execute(insert(table), rows)
    return len(rows), tuple(found)


def refresh_registry_reconciliation(engine: Engine, declarations: Sequence[RegistryDeclaration],
                                    skipped: list[str] | None = None) -> int:
    """Re-run every current snapshot's reconciliation (an aggregate return may have arrived since); rows written.

    Each snapshot in its own savepoint: one that cannot be reconciled (a malformed period written
    before every door checked periods) is left as it was, named in ``skipped`` and the log, and the
    others are rebuilt."""
    sub = schema.submission
    written = 0
    with begin_write(engine) as conn:
        for declaration in declarations:
            periods = conn.execute(select(sub.c.period).where(
                sub.c.department == declaration.department, sub.c.status == "loaded")).scalars().all()
            for period in periods:
                savepoint = conn.begin_nested()
                try:
                    written += _rebuild_reconciliation(conn, declaration, period)[0]
                except Exception as exc:  # one snapshot must not stop the others
                    savepoint.rollback()
                    what = (f"registry reconciliation: {declaration.department} {period} skipped "
                            f"({type(exc).__name__}: {exc})")
                    note_skipped(skipped, what)
                    continue
                savepoint.commit()
    return written
