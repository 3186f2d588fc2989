"""Completeness and timeliness of returns: ``mart_completeness`` and ``mart_completeness_township``.

Derived, never clicked: the obligations calendar (``expectations.obligations``) says which returns
are expected; the ledger (``submission``: every file received, its ``received_at`` and status)
and the current facts say what arrived. ``compute_completeness`` is pure; ``refresh_completeness``
reads, computes and replaces both marts on the caller's connection (``refresh_marts`` calls it in
its transaction).

One row per department × period, exactly one status:

* ``on_time`` / ``late`` — a version is loaded; timeliness is that of the **first** file received
  for the partition (any status: a rejected first attempt on time still shows the department
  reported on time), compared with the deadline (due date + grace days) in county time;
* ``quarantined`` — files received, none loaded, at least one waiting in quarantine;
* ``rejected`` — files received, none loaded or quarantined;
* ``missing`` — nothing received and the deadline has passed;
* ``pending`` — nothing received yet, the deadline has not passed.

The 0/1 columns add up over any grouping: received = loaded + quarantined + rejected =
on_time + late; expected = received + missing + pending (for rows the calendar expects).
Completeness rate = received / (expected − pending); timeliness rate = on_time / (expected − pending).

Person-level registries (``kind: person_registry``) owe returns like forms: one snapshot file per
owed period (the labour registry: quarterly, ``snapshot_months`` in its declaration), judged from
the ledger the same way. A snapshot covers the whole county, so every township valid in the period
is expected in ``mart_completeness_township``; a township counts as reported when the loaded
snapshot lists at least one person there (``values_reported`` = people listed, from
``mart_registry_township``), and ``townships_reported`` counts those.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, func, insert, select

from duikou_settings import get_settings
from expectations.declaration import load_declarations
from expectations.obligations import (
    Obligation,
    Reporting,
    expected_returns,
    is_owed,
    obligation,
    period_problem,
    start_period,
)
from expectations.registry_declaration import RegistryDeclaration, load_registry_declarations
from warehouse import schema
from warehouse.current_facts import read_current_values
from warehouse.load import parse_period
from warehouse.skipped import note_skipped

#: county time (Asia/Shanghai has had no daylight saving since 1991)
COUNTY_TZ = timezone(timedelta(hours=8))
COMPLETENESS_COLUMNS = (
    "department", "period", "due_date", "deadline", "status", "status_zh", "expected", "received", "on_time", "late",
    "missing", "loaded", "quarantined", "rejected", "files_received", "first_received_at",
    "current_submission_id", "townships_expected", "townships_reported",
)
TOWNSHIP_COLUMNS = ("department", "period", "township_code", "reported", "values_reported")


@dataclass(frozen=True)
class LedgerEntry:
    """One ``submission`` row as completeness needs it."""

    department: str
    period: str
    submission_id: str
    status: str
    received_at: datetime  # timezone-aware


@dataclass(frozen=True)
class MissingReturn:
    """An expected return past its deadline with nothing received."""

    department: str
    period: str
    due_date: date
    deadline: date
    days_overdue: int

    def describe(self) -> str:
        return (f"{self.department} {self.period}: due {self.due_date.isoformat()}, nothing received "
                f"{self.days_overdue} day(s) after the deadline {self.deadline.isoformat()}")


def reporting_declarations() -> dict[str, Reporting]:
    """Everything that owes returns: the township forms and the person-level registries."""
    return {**load_declarations(), **load_registry_declarations()}


def county_today() -> date:
    return datetime.now(COUNTY_TZ).date()


def judgement_date(today: date | None = None) -> date:
    """``today`` if given, else the settings' ``as_of``, else today in county time."""
    return today or get_settings().as_of or county_today()


def county_date(moment: datetime) -> date:
    """The county-time calendar day of a stored time (naive = UTC, as SQLite returns it)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return aware.astimezone(COUNTY_TZ).date()


def _period_bounds(period: str) -> tuple[date, date]:
    year, month = parse_period(period)
    if month is None:
        return date(year, 1, 1), date(year, 12, 31)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return date(year, month, 1), nxt - timedelta(days=1)


def _valid_townships(townships: pd.DataFrame, period: str) -> list[str]:
    """Codes of the townships whose validity overlaps the period, sorted."""
    start, end = _period_bounds(period)
    out: list[str] = []
    for code, valid_from, valid_to in townships.loc[:, ["township_code", "valid_from", "valid_to"]].itertuples(
        index=False, name=None
    ):
        begins = pd.Timestamp(valid_from).date()
        ends = None if valid_to is None or pd.isna(valid_to) else pd.Timestamp(valid_to).date()
        if begins <= end and (ends is None or ends >= start):
            out.append(str(code))
    return sorted(out)


def first_periods(ledger: Iterable[LedgerEntry]) -> dict[str, str]:
    """Each department's earliest period in the ledger."""
    out: dict[str, str] = {}
    for entry in ledger:
        if entry.department not in out or entry.period < out[entry.department]:
            out[entry.department] = entry.period
    return out


def _status(entries: Sequence[LedgerEntry], duty: Obligation, today: date) -> dict[str, Any]:
    loaded = [e for e in entries if e.status == "loaded"]
    quarantined = any(e.status == "quarantined" for e in entries)
    received = bool(entries)
    first = min((e.received_at for e in entries), default=None)
    on_time = first is not None and county_date(first) <= duty.deadline
    if loaded:
        status = "on_time" if on_time else "late"
    elif quarantined:
        status = "quarantined"
    elif received:
        status = "rejected"
    else:
        status = "missing" if duty.is_overdue(today) else "pending"
    return {
        "status": status,
        "status_zh": schema.COMPLETENESS_STATUS_ZH[status],
        "received": int(received),
        "on_time": int(received and on_time),
        "late": int(received and not on_time),
        "missing": int(status == "missing"),
        "loaded": int(bool(loaded)),
        "quarantined": int(status == "quarantined"),
        "rejected": int(status == "rejected"),
        "files_received": len(entries),
        "first_received_at": first,
        "current_submission_id": loaded[0].submission_id if loaded else None,
    }


def _covers_every_township(declaration: Reporting) -> bool:
    """A registry snapshot is county-wide; a form says so in ``all_townships``."""
    return isinstance(declaration, RegistryDeclaration) or declaration.all_townships


def compute_completeness(
    declarations: Mapping[str, Reporting],
    ledger: Sequence[LedgerEntry],
    values: pd.DataFrame,
    townships: pd.DataFrame,
    today: date,
    programme_start: date | None = None,
    persons: pd.DataFrame | None = None,
    skipped: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(``COMPLETENESS_COLUMNS`` rows, ``TOWNSHIP_COLUMNS`` rows), sorted by department, period.

    ``ledger``: every submission row. ``values``: current facts (``department``, ``period``,
    ``township_code``, ``value``; NaN = blank). ``persons``: the registries' current head counts
    (``department``, ``period``, ``township_code``, ``persons``: ``mart_registry_township``).
    ``townships``: ``ref_township`` (code and validity). Rows: every return the calendar expects
    up to ``today`` plus every partition the ledger has seen (a return sent early, for a period
    that is not owed, or before a configured programme start, which is then not ``expected``).
    Departments without a declaration are left out. Pure.

    Nothing in one row or one department stops the others: a ledger row whose period the calendar
    cannot place (``expectations.obligations.period_problem``: malformed, ``9999-12``) is left out,
    and a department whose rows cannot be computed is left out whole; each is named in
    ``skipped`` (when given) and logged as a warning.
    """
    known: list[LedgerEntry] = []
    unplaceable: set[tuple[str, str]] = set()
    for entry in ledger:
        if entry.department not in declarations:
            continue
        if (entry.department, entry.period) in unplaceable:
            continue
        problem = period_problem(declarations[entry.department], entry.period)
        if problem is not None:
            unplaceable.add((entry.department, entry.period))
            note_skipped(skipped, f"completeness: ledger row {entry.submission_id} skipped ({problem})")
            continue
        known.append(entry)
    by_partition: dict[tuple[str, str], list[LedgerEntry]] = {}
    for entry in known:
        by_partition.setdefault((entry.department, entry.period), []).append(entry)
    firsts = first_periods(known)
    duties: dict[tuple[str, str], Obligation] = {}
    for department in sorted(declarations):  # one department's calendar cannot stop another's
        try:
            for duty in expected_returns({department: declarations[department]}, firsts, today, programme_start):
                duties[(duty.department, duty.period)] = duty
        except (ValueError, OverflowError) as exc:
            note_skipped(skipped, f"completeness: {department}'s expected returns skipped ({exc})")
    for key in by_partition:  # a period received but not expected (a registry snapshot of May)
        if key not in duties:
            duties[key] = obligation(declarations[key[0]], key[1])

    reported = values[values["value"].notna()].groupby(["department", "period", "township_code"]).size()
    reported_by_partition: dict[tuple[str, str], dict[str, int]] = {}
    for (dept, period, code), count in reported.items():
        reported_by_partition.setdefault((str(dept), str(period)), {})[str(code)] = int(count)
    if persons is not None:
        for dept, period, code, listed in persons.loc[:, ["department", "period", "township_code", "persons"]] \
                .itertuples(index=False, name=None):
            if str(dept) in declarations and isinstance(declarations[str(dept)], RegistryDeclaration):
                reported_by_partition.setdefault((str(dept), str(period)), {})[str(code)] = int(listed)

    rows: list[dict[str, Any]] = []
    town_rows: list[dict[str, Any]] = []
    for department in sorted({key[0] for key in duties}):
        dept_rows: list[dict[str, Any]] = []
        dept_towns: list[dict[str, Any]] = []
        try:
            for key in sorted(k for k in duties if k[0] == department):
                _partition_rows(duties[key], declarations[department], by_partition.get(key, []),
                                reported_by_partition.get(key, {}), townships, today, programme_start,
                                dept_rows, dept_towns)
        except Exception as exc:  # one department's bad row must not stop the others' completeness
            note_skipped(skipped, f"completeness: {department} skipped ({type(exc).__name__}: {exc})")
            continue
        rows.extend(dept_rows)
        town_rows.extend(dept_towns)
    return (pd.DataFrame(rows, columns=list(COMPLETENESS_COLUMNS)),
            pd.DataFrame(town_rows, columns=list(TOWNSHIP_COLUMNS)))


def _partition_rows(
    duty: Obligation, decl: Reporting, entries: Sequence[LedgerEntry], counts_if_loaded: dict[str, int],
    townships: pd.DataFrame, today: date, programme_start: date | None,
    rows: list[dict[str, Any]], town_rows: list[dict[str, Any]],
) -> None:
    """One department × period's mart row and its township rows, appended to ``rows`` / ``town_rows``."""
    facts = _status(entries, duty, today)
    counts = counts_if_loaded if facts["loaded"] else {}
    expected_towns = (_valid_townships(townships, duty.period) if _covers_every_township(decl)
                      else sorted(counts))
    before_start = programme_start is not None and duty.period < start_period(decl.period_type, programme_start)
    rows.append({
        "department": duty.department, "period": duty.period, "due_date": duty.due_date,
        "deadline": duty.deadline, "expected": int(not before_start and is_owed(decl, duty.period)), **facts,
        "townships_expected": len(expected_towns),
        "townships_reported": sum(1 for c in expected_towns if counts.get(c, 0) > 0),
    })
    town_rows.extend(
        {"department": duty.department, "period": duty.period, "township_code": code,
         "reported": counts.get(code, 0) > 0, "values_reported": counts.get(code, 0)}
        for code in expected_towns
    )




# ---------------------------------------------------------------- warehouse side


def read_ledger(conn: Connection) -> list[LedgerEntry]:
    sub = schema.submission
    rows = conn.execute(select(sub.c.department, sub.c.period, sub.c.submission_id, sub.c.status,
                               sub.c.received_at))
    return [
        LedgerEntry(r.department, r.period, r.submission_id, r.status,
                    r.received_at if r.received_at.tzinfo else r.received_at.replace(tzinfo=UTC))
        for r in rows
    ]


def _townships(conn: Connection) -> pd.DataFrame:
    t = schema.ref_township
    rows = conn.execute(select(t.c.township_code, t.c.valid_from, t.c.valid_to)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["township_code", "valid_from", "valid_to"])


def _registry_persons(conn: Connection) -> pd.DataFrame:
    """People per township in each registry's current snapshot (``mart_registry_township``)."""
    m = schema.mart_registry_township
    rows = conn.execute(select(m.c.department, m.c.period, m.c.township_code, m.c.persons)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["department", "period", "township_code", "persons"])


def completeness_frames(
    conn: Connection, today: date | None = None, values: pd.DataFrame | None = None,
    skipped: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the ledger, the current facts and the townships, and compute both marts' rows
    (what was left out named in ``skipped``: :func:`compute_completeness`)."""
    values = read_current_values(conn) if values is None else values
    return compute_completeness(reporting_declarations(), read_ledger(conn), values, _townships(conn),
                                judgement_date(today), get_settings().programme_start, _registry_persons(conn),
                                skipped)


def _plain(record: Mapping[str, Any], refreshed_at: datetime) -> dict[str, Any]:
    """Python scalars for the driver (psycopg does not adapt numpy types)."""
    out: dict[str, Any] = {}
    for key, value in record.items():
        if value is None or value is pd.NaT:
            out[key] = None
        elif isinstance(value, pd.Timestamp):
            out[key] = value.to_pydatetime()
        elif isinstance(value, str | date | datetime):
            out[key] = value
        elif pd.isna(value):
            out[key] = None
        else:
            out[key] = value.item() if hasattr(value, "item") else value
    out["refreshed_at"] = refreshed_at
    return out


def refresh_completeness(
    conn: Connection, today: date | None = None, values: pd.DataFrame | None = None,
    skipped: list[str] | None = None,
) -> int:
    """Replace ``mart_completeness`` and ``mart_completeness_township`` on ``conn`` (the caller's
    transaction); returns the department × period rows written (rows left out named in ``skipped``)."""
    rows, town_rows = completeness_frames(conn, today, values, skipped)
    refreshed_at = datetime.now(UTC)
    conn.execute(delete(schema.mart_completeness_township))
    conn.execute(delete(schema.mart_completeness))
    records = [_plain(r, refreshed_at) for r in rows.astype(object).to_dict(orient="records")]
    town_records = [_plain(r, refreshed_at) for r in town_rows.astype(object).to_dict(orient="records")]
    if records:
        conn.execute(insert(schema.mart_completeness), records)
    if town_records:
        conn.execute(insert(schema.mart_completeness_township), town_records)
    return len(records)


def missing_returns(conn: Connection, today: date | None = None,
                    skipped: list[str] | None = None) -> list[MissingReturn]:
    """Expected returns past their deadline with nothing received, judged now from the ledger
    (not from the mart, which may be older), oldest first; ledger rows the calendar cannot place
    are left out and named in ``skipped``."""
    when = judgement_date(today)
    rows, _ = compute_completeness(reporting_declarations(), read_ledger(conn), _no_values(), pd.DataFrame(
        columns=["township_code", "valid_from", "valid_to"]), when, get_settings().programme_start,
        skipped=skipped)
    missing = rows[(rows["status"] == "missing") & (rows["expected"] == 1)]
    return sorted(
        (MissingReturn(str(r.department), str(r.period), r.due_date, r.deadline, (when - r.deadline).days)
         for r in missing.itertuples(index=False)),
        key=lambda m: (m.deadline, m.department),
    )


def _no_values() -> pd.DataFrame:
    return pd.DataFrame({"department": [], "period": [], "township_code": [], "value": []})


def latest_completeness(conn: Connection, periods: int = 3) -> pd.DataFrame:
    """The mart's rows for each department's latest ``periods`` periods that are due or received
    (pending rows left out), sorted by department and period."""
    mart = schema.mart_completeness
    rows = conn.execute(select(*(mart.c[c] for c in COMPLETENESS_COLUMNS)).where(mart.c.status != "pending")
                        .order_by(mart.c.department, mart.c.period)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(COMPLETENESS_COLUMNS))
    if frame.empty:
        return frame
    return frame.groupby("department", group_keys=False).tail(periods).reset_index(drop=True)


def completeness_totals(conn: Connection) -> dict[str, int]:
    """Counts of the mart's rows by status (for summaries)."""
    mart = schema.mart_completeness
    rows = conn.execute(select(mart.c.status, func.count()).group_by(mart.c.status)).all()
    return {str(status): int(count) for status, count in rows}
