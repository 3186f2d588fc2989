"""The ledger and loading: one submission = one transaction.

``record_submission`` writes a submission's ledger row, its issues, data-quality results and flagged values and,
for a loaded submission, its facts and 合计 totals — all or nothing. Writers of the same
(department, period) partition are serialised (PostgreSQL advisory lock; SQLite ``BEGIN
IMMEDIATE``), so the duplicate check, the supersede step and the inserts see a stable ledger.

Ledger rules:

* a submission is keyed by who sent it and what it is: ``submission_id`` is
  ``warehouse.keys.submission_key(department, sha256)`` and the ledger holds one row per
  (department, sha256) — the same bytes from two departments are two submissions;
* an identical file (same department, same sha256) already ``loaded`` or ``superseded`` is a
  duplicate: nothing is written and the outcome names the earlier submission
  (``LoadOutcome.duplicate_of``) — also when the two arrived at once and this run lost the race;
* an identical file recorded as ``rejected`` / ``quarantined`` is re-evaluated: its ledger row
  is rewritten in place and its detail rows are replaced (its ``submission_decision`` rows, the
  audit trail, stay);
* an operator's release of a quarantined submission (``decision=``, see ``warehouse.decisions``)
  is such a re-evaluation that loads, plus the decision row, in the same transaction;
* never older over newer: a release, or a re-evaluation of a row the ledger holds that would now
  load, is refused (``NewerVersionLoaded``, nothing written) when the partition's loaded version
  was received later — checked under the partition lock by ``warehouse.decisions.newer_version_guard``;
  a forced release (``OperatorDecision.force``) goes ahead and its decision row names that version;
* a new ``loaded`` submission supersedes the partition's current one (status ``superseded``,
  ``superseded_by`` set; the new row's ``supersedes`` points back). Old facts stay in
  ``fact_indicator_value``; ``v_indicator_value`` shows only the current version, and since the
  switch happens in one transaction a reader sees either the old or the new version.

Facts go in through ``warehouse.bulk`` (PostgreSQL ``COPY``, SQLite driver ``executemany``) on
the same connection and in the same transaction as the ledger row; the frame is converted before
the write lock is taken.

Times are stored in UTC (SQLite keeps them as naive UTC text).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

import pandas as pd
from sqlalchemy import Connection, Engine, Table, delete, func, insert, select, update

from expectations.declaration import load_declarations
from expectations.issues import Issue
from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.bulk import FACT_COLUMNS as FACT_COLUMNS  # re-exported: the facts frame's columns
from warehouse.bulk import FactBatch, insert_facts, pause_point, prepare_facts
from warehouse.decisions import OperatorDecision, newer_version_guard, require_quarantined, write_decision
from warehouse.engine import advisory_lock
from warehouse.keys import legacy_key, submission_key

RecordStatus = Literal["loaded", "rejected", "quarantined"]
OutcomeStatus = Literal["loaded", "rejected", "quarantined", "duplicate"]

TOTAL_COLUMNS = ("indicator", "value", "label_zh")
CHUNK_ROWS = 2_000
_PERIOD_RE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


@dataclass(frozen=True)
class SubmissionRecord:
    """What the pipeline knows about one received file when it is recorded."""

    submission_id: str  # warehouse.keys.submission_key(department, sha256)
    sha256: str
    department: str
    period: str  # "YYYY-MM" (monthly returns) or "YYYY" (annual returns)
    original_name: str
    received_at: datetime
    status: RecordStatus
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    archive_path: str | None
    receipt_path: str | None
    source_url: str | None = None  # the remote landing area's object (tasks/landing/store.py)


@dataclass(frozen=True)
class DqResult:
    """One evaluated data-quality check (one ``dq_result`` row)."""

    check_id: str
    expectation_type: str
    severity: str
    success: bool
    element_count: int | None
    unexpected_count: int | None
    observed: str | None  # compact JSON
    issue_code: str | None = None
    action: str | None = None  # reject / quarantine / flag / report
    unexpected_rows: tuple[int, ...] = ()  # form row numbers of the failing rows
    label_zh: str | None = None  # what the check asks, in Chinese (for people; not stored)


@dataclass(frozen=True)
class DqFlag:
    """One value flagged by a history-aware check (one ``dq_flag`` row, without the submission id)."""

    indicator: str
    township_code: str
    check_id: str
    severity: str
    value: float | None
    reference_value: float | None
    score: float | None
    source_row: int | None
    reason_zh: str
    accepted: bool = False


@dataclass(frozen=True)
class LoadOutcome:
    submission_id: str
    status: OutcomeStatus
    supersedes: str | None
    duplicate_of: str | None
    facts_loaded: int


def parse_period(period: str) -> tuple[int, int | None]:
    """``"2017-05"`` → ``(2017, 5)``; ``"2016"`` → ``(2016, None)``. ValueError otherwise."""
    match = _PERIOD_RE.match(period)
    if not match:
        raise ValueError(f"period {period!r} is neither YYYY-MM nor YYYY")
    year = int(match.group(1))
    month = int(match.group(2)) if match.group(2) else None
    if month is not None and not 1 <= month <= 12:
        raise ValueError(f"period {period!r}: month out of range")
    return year, month


#: C0 control characters but tab, line feed and carriage return, and DEL: never meant in a name, sheet,
#: township or message a file brought, and PostgreSQL refuses NUL in text ("text fields cannot contain NUL")
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def text_safe(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with the control characters (NUL first) removed from every string value: what a file
    brings (its name, sheet names, township text in messages, 合计 labels) is stored alike on SQLite
    and PostgreSQL."""
    return [{k: CONTROL_CHARACTERS.sub("", v) if isinstance(v, str) else v for k, v in row.items()} for row in rows]


def _check_record(record: SubmissionRecord) -> tuple[int, int | None]:
    if record.status not in ("loaded", "rejected", "quarantined"):
        raise ValueError(f"{record.submission_id}: cannot record status {record.status!r}")
    keys = (submission_key(record.department, record.sha256), legacy_key(record.sha256))
    if len(record.sha256) != 64 or record.submission_id not in keys:
        raise ValueError(f"{record.submission_id}: submission_id must be submission_key(department, sha256)")
    year, month = parse_period(record.period)
    decl = load_declarations().get(record.department)
    if decl is not None and (month is None) != (decl.period_type == "year"):
        raise ValueError(
            f"{record.submission_id}: period {record.period!r} does not fit the "
            f"{decl.period_type}ly {record.department} return"
        )
    return year, month


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns {missing}")


def _nullable_float(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    out = float(value)
    return None if math.isnan(out) else out


def _total_rows(record: SubmissionRecord, totals: pd.DataFrame) -> list[dict[str, Any]]:
    _require_columns(totals, TOTAL_COLUMNS, "totals")
    return [
        {
            "submission_id": record.submission_id,
            "indicator": str(indicator),
            "value": _nullable_float(value),
            "label_zh": str(label),
        }
        for indicator, value, label in totals.loc[:, list(TOTAL_COLUMNS)].itertuples(index=False, name=None)
    ]


def _issue_rows(submission_id: str, issues: Sequence[Issue]) -> list[dict[str, Any]]:
    return [
        {
            "submission_id": submission_id,
            "seq": seq,
            "code": item.code,
            "severity": item.severity,
            "action": item.action,
            "rule_id": item.rule_id,
            "sheet": item.sheet,
            "row_number": item.row,
            "column_label": item.column,
            "message_zh": item.message,
        }
        for seq, item in enumerate(issues, start=1)
    ]


def _dq_rows(submission_id: str, results: Sequence[DqResult]) -> list[dict[str, Any]]:
    return [
        {
            "submission_id": submission_id,
            "check_id": r.check_id,
            "expectation_type": r.expectation_type,
            "severity": r.severity,
            "success": bool(r.success),
            "element_count": r.element_count,
            "unexpected_count": r.unexpected_count,
            "observed": r.observed,
            "issue_code": r.issue_code,
            "action": r.action,
            "unexpected_rows": json.dumps(list(r.unexpected_rows)),
        }
        for r in results
    ]


def write_issues_and_results(
    conn: Connection, submission_id: str, issues: Sequence[Issue], dq_results: Sequence[DqResult]
) -> None:
    """The one writer of ``submission_issue`` and ``dq_result`` rows, for forms and registries alike

    (issue code, action and failing rows included), on the caller's connection and transaction.
    """
    _insert_many(conn, schema.submission_issue, text_safe(_issue_rows(submission_id, issues)))
    _insert_many(conn, schema.dq_result, text_safe(_dq_rows(submission_id, dq_results)))


def _flag_rows(submission_id: str, flags: Sequence[DqFlag]) -> list[dict[str, Any]]:
    return [{"submission_id": submission_id, **asdict(f)} for f in flags]


def _chunks(rows: Sequence[dict[str, Any]], size: int = CHUNK_ROWS) -> Iterator[Sequence[dict[str, Any]]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """executemany of one Core INSERT per chunk, for the small detail tables (facts: ``warehouse.bulk``)."""
    for chunk in _chunks(rows):
        conn.execute(insert(table), list(chunk))


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("received_at must be timezone-aware")
    return moment.astimezone(UTC)


_DETAIL_TABLES: tuple[Table, ...] = (
    schema.submission_issue,
    schema.dq_result,
    schema.dq_flag,
    schema.fact_form_total,
    schema.fact_indicator_value,
)


def _forget_details(conn: Connection, submission_id: str) -> None:
    """Delete a rejected/quarantined submission's detail rows (its ledger row is rewritten)."""
    for table in _DETAIL_TABLES:
        conn.execute(delete(table).where(table.c.submission_id == submission_id))


def find_submission(engine: Engine, department: str, sha256: str) -> dict[str, Any] | None:
    """The ledger row of the file with this sha256 sent by ``department``, as a dict, or None."""
    sub = schema.submission
    with engine.connect() as conn:
        row = (
            conn.execute(select(sub).where(sub.c.department == department, sub.c.sha256 == sha256))
            .mappings()
            .first()
        )
    return dict(row) if row is not None else None


def ledger_id(engine: Engine, department: str, sha256: str) -> str | None:
    """The id the ledger gave (department, sha256), if it has the row: a row from before migration
    0012 keeps its old id (``warehouse.keys.legacy_key``)."""
    sub = schema.submission
    query = select(sub.c.submission_id).where(sub.c.department == department, sub.c.sha256 == sha256)
    with engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()


def keyed_as_ledger(engine: Engine, record: SubmissionRecord) -> SubmissionRecord:
    """``record`` under the id its ledger row already has (a row from before migration 0012), else as is."""
    known = ledger_id(engine, record.department, record.sha256)
    if known is None:
        key = submission_key(record.department, record.sha256)
        if record.submission_id != key:  # the legacy key names only rows that already exist
            raise ValueError(f"{record.submission_id}: a new submission's id is submission_key(department, "
                             f"sha256) = {key}")
        return record
    return record if known == record.submission_id else replace(record, submission_id=known)


def ledger_issues(engine: Engine, submission_id: str) -> list[Issue]:
    """The issues recorded with a submission, in their order (``submission_issue``)."""
    issue = schema.submission_issue
    with engine.connect() as conn:
        rows = conn.execute(select(issue).where(issue.c.submission_id == submission_id).order_by(issue.c.seq))
        return [
            Issue(code=r.code, severity=r.severity, message=r.message_zh, sheet=r.sheet, row=r.row_number,
                  column=r.column_label, rule_id=r.rule_id, action=r.action)
            for r in rows
        ]


def record_submission(
    engine: Engine,
    record: SubmissionRecord,
    facts: pd.DataFrame,
    totals: pd.DataFrame,
    issues: Sequence[Issue],
    dq_results: Sequence[DqResult],
    *,
    decision: OperatorDecision | None = None,
    dq_flags: Sequence[DqFlag] = (),
) -> LoadOutcome:
    """Record one submission in one transaction; see the module docstring for the rules.

    ``facts``: one row per indicator × township (columns ``FACT_COLUMNS``; ``value`` in the
    indicator's base unit, NaN stored as NULL). ``totals``: the form's 合计 row per indicator
    (``TOTAL_COLUMNS``). Facts and totals are written only when ``record.status == "loaded"``
    and ignored otherwise. Any error (an unknown township or indicator violates a foreign key,
    a repeated indicator × township violates the key) rolls the whole submission back.

    ``decision``: an operator's release of this (quarantined) submission; ``record.status`` must
    be ``loaded``. The decision row is written in the same transaction, and ``DecisionError``
    is raised (nothing written) unless the ledger row is still ``quarantined``.
    """
    if decision is not None and (decision.decision != "release" or record.status != "loaded"):
        raise ValueError(f"{record.submission_id}: a decision recorded with a load must release it")
    year, month = _check_record(record)
    record = keyed_as_ledger(engine, record)  # an id, once given, never changes (rows older than 0012)
    loaded = record.status == "loaded"
    fact_batch: FactBatch | None = None
    if loaded:  # converted before the write lock is taken
        fact_batch = prepare_facts(record.submission_id, record.department, record.period, year, month, facts)
    facts_loaded = len(fact_batch) if fact_batch is not None else 0
    # every text value written goes through text_safe: one choke point for what a file can bring
    total_rows = text_safe(_total_rows(record, totals)) if loaded else []
    flag_rows = text_safe(_flag_rows(record.submission_id, dq_flags))
    sub = schema.submission

    with begin_write(engine) as conn:
        advisory_lock(conn, "submission", record.department, record.period)
        existing = conn.execute(
            select(sub.c.submission_id, sub.c.status).where(
                sub.c.department == record.department, sub.c.sha256 == record.sha256
            )
        ).first()
        if decision is not None:
            require_quarantined(existing.status if existing is not None else None, record.submission_id)
        if existing is not None and existing.status in ("loaded", "superseded"):
            return LoadOutcome(record.submission_id, "duplicate", None, existing.submission_id, 0)
        overrode = None
        if existing is not None and loaded:  # older data never goes over newer unknowingly
            overrode = newer_version_guard(conn, existing.submission_id,
                                           force=decision is not None and decision.force)
        if existing is not None:
            _forget_details(conn, existing.submission_id)

        previous: str | None = None
        if loaded:
            previous = conn.execute(
                select(sub.c.submission_id).where(
                    sub.c.department == record.department,
                    sub.c.period == record.period,
                    sub.c.status == "loaded",
                )
            ).scalar_one_or_none()
            if previous is not None:
                conn.execute(update(sub).where(sub.c.submission_id == previous).values(status="superseded"))

        now = datetime.now(UTC)
        ledger_row = {
            "department": record.department,
            "period": record.period,
            "original_name": record.original_name,
            "received_at": _utc(record.received_at),
            "processed_at": now,
            "loaded_at": now if loaded else None,
            "status": record.status,
            "rows_read": record.rows_read,
            "rows_loaded": record.rows_loaded,
            "rows_rejected": record.rows_rejected,
            "facts_loaded": facts_loaded,
            "supersedes": previous,
            "superseded_by": None,
            "archive_path": record.archive_path,
            "receipt_path": record.receipt_path,
        }
        if record.source_url:  # a release re-reads the kept copy: the row keeps where the original was
            ledger_row["source_url"] = record.source_url
        ledger_row = text_safe([ledger_row])[0]
        if existing is None:
            conn.execute(insert(sub).values(submission_id=record.submission_id, sha256=record.sha256, **ledger_row))
        else:  # in place: the row may carry decisions (same department and sha256, hence the same id)
            conn.execute(update(sub).where(sub.c.submission_id == existing.submission_id).values(**ledger_row))
        if previous is not None:
            conn.execute(
                update(sub).where(sub.c.submission_id == previous).values(superseded_by=record.submission_id)
            )
        if fact_batch is not None:
            insert_facts(conn, fact_batch)  # COPY / driver executemany, same transaction
        _insert_many(conn, schema.fact_form_total, total_rows)
        write_issues_and_results(conn, record.submission_id, issues, dq_results)
        _insert_many(conn, schema.dq_flag, flag_rows)
        if decision is not None:
            write_decision(conn, record.submission_id, decision, overrode.submission_id if overrode else None)
        pause_point("before_commit", conn)  # test-only hook, a no-op unless DUIKOU_TEST_PAUSE_AT is set

    return LoadOutcome(record.submission_id, record.status, previous, None, facts_loaded)


def _frame(rows: Iterable[Any], columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in rows], columns=list(columns))


def submission_status_counts(engine: Engine) -> pd.DataFrame:
    """One row per department × status: ``department, status, submissions``."""
    sub = schema.submission
    stmt = (
        select(sub.c.department, sub.c.status, func.count().label("submissions"))
        .group_by(sub.c.department, sub.c.status)
        .order_by(sub.c.department, sub.c.status)
    )
    with engine.connect() as conn:
        return _frame(conn.execute(stmt), ["department", "status", "submissions"])


def current_submissions(engine: Engine) -> pd.DataFrame:
    """One row per (department, period) with a loaded submission: the current version."""
    sub = schema.submission
    columns = (
        "department",
        "period",
        "submission_id",
        "original_name",
        "loaded_at",
        "facts_loaded",
        "supersedes",
    )
    stmt = (
        select(*(sub.c[c] for c in columns))
        .where(sub.c.status == "loaded")
        .order_by(sub.c.department, sub.c.period)
    )
    with engine.connect() as conn:
        return _frame(conn.execute(stmt), columns)


def current_version(engine: Engine, department: str, period: str) -> str | None:
    """The submission id currently loaded for (department, period), if any (read-only)."""
    sub = schema.submission
    query = select(sub.c.submission_id).where(
        sub.c.department == department, sub.c.period == period, sub.c.status == "loaded"
    )
    with engine.connect() as conn:
        return conn.execute(query).scalar_one_or_none()
