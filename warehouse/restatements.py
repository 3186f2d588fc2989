"""Versions of a partition, what a restatement changed, and which yearly KPIs moved.

A *partition* is one (department, period). Every version of it stays in the warehouse: its
ledger row in ``submission`` and its facts in ``fact_indicator_value``. A *restatement* is a
version that superseded another (``submission.supersedes`` set), whatever its status now.

* ``partition_versions``: the ledger rows of a partition, newest first, with issue counts.
* ``restatement_values``: the rows of ``v_restatement`` for one superseding version — one per
  (indicator, township) whose value changed; a missing row and a NULL value both count as
  "no value", so a value that appeared or disappeared shows NULL on that side.
* ``kpi_changes``: the county KPIs (``warehouse.marts.compute_county_kpis``) computed twice,
  once with the superseded version's facts for the partition and once with the superseding
  version's, every other partition at its current version; the KPIs whose value differs.
* ``partition_history``: all of the above for ``duikou history``; ``history_lines`` renders it.

Everything here only reads. ``kpi_changes`` and ``partition_versions`` read the ledger and fact
tables, so they need the owner or loader role on PostgreSQL (analysts have ``v_restatement``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy import Connection, DateTime, Engine, Float, String, Text, column, func, select, table

from expectations.declaration import load_declarations, load_kpis
from warehouse import schema
from warehouse.current_facts import VALUE_COLUMNS, read_current_values
from warehouse.marts import compute_county_kpis

RESTATEMENT_COLUMNS = (
    "department",
    "period",
    "indicator",
    "label_zh",
    "township_code",
    "township_name",
    "old_submission_id",
    "new_submission_id",
    "old_value",
    "new_value",
    "difference",
    "unit",
    "superseded_at",
)
T = TypeVar("T")

KPI_CHANGE_COLUMNS = ("year", "kpi", "label_zh", "old_value", "new_value", "difference", "unit")

#: the view, typed (SQLite returns its timestamps as text otherwise)
V_RESTATEMENT = table(
    "v_restatement",
    column("department", String),
    column("period", String),
    column("indicator", String),
    column("label_zh", Text),
    column("township_code", String),
    column("township_name", Text),
    column("old_submission_id", String),
    column("new_submission_id", String),
    column("old_value", Float),
    column("new_value", Float),
    column("difference", Float),
    column("unit", String),
    column("superseded_at", DateTime(timezone=True)),
)


class UnknownSubmission(LookupError):
    """No ledger row has this submission id."""


class NotARestatement(ValueError):
    """The submission superseded nothing, so there is nothing to compare it with."""


@dataclass(frozen=True)
class Version:
    """One ledger row of a partition (one distinct file received for it)."""

    submission_id: str
    status: str
    received_at: datetime
    processed_at: datetime
    loaded_at: datetime | None
    original_name: str
    supersedes: str | None
    superseded_by: str | None
    rows_read: int
    rows_loaded: int
    rows_rejected: int
    facts_loaded: int
    critical_issues: int
    warning_issues: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("received_at", "processed_at", "loaded_at"):
            out[key] = _iso(out[key])
        return out


@dataclass(frozen=True)
class Restatement:
    """One superseding version: the values it changed and the KPIs that moved with them."""

    new_submission_id: str
    old_submission_id: str
    superseded_at: datetime | None
    values: pd.DataFrame  # RESTATEMENT_COLUMNS
    kpis: pd.DataFrame  # KPI_CHANGE_COLUMNS

    def to_dict(self) -> dict[str, Any]:
        return {
            "new_submission_id": self.new_submission_id,
            "old_submission_id": self.old_submission_id,
            "superseded_at": _iso(self.superseded_at),
            "changed_values": _records(self.values),
            "kpi_changes": _records(self.kpis),
        }


@dataclass(frozen=True)
class PartitionHistory:
    department: str
    period: str
    versions: list[Version] = field(default_factory=list)  # newest first
    restatements: list[Restatement] = field(default_factory=list)  # newest first

    def to_dict(self) -> dict[str, Any]:
        return {
            "department": self.department,
            "period": self.period,
            "versions": [v.to_dict() for v in self.versions],
            "restatements": [r.to_dict() for r in self.restatements],
        }


# ------------------------------------------------------------------ helpers
def _utc(moment: datetime | None) -> datetime | None:
    """SQLite keeps naive UTC; PostgreSQL returns aware times. Aware UTC either way."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar: NaN/NaT → None, numpy numbers → Python numbers, times → ISO text."""
    if value is None or isinstance(value, str | bool):
        return value
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if isinstance(value, datetime):
        return _iso(_utc(value))
    if hasattr(value, "item"):  # numpy scalar
        return value.item()
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _float_or_none(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    return float(value)


def _read(engine: Engine | Connection, work: Callable[[Connection], T]) -> T:
    """``work`` on the caller's connection, or on a fresh one from ``engine``."""
    if isinstance(engine, Connection):
        return work(engine)
    with engine.connect() as conn:
        return work(conn)


# ------------------------------------------------------------------ versions
def _issue_count(severity: str) -> Any:
    issue = schema.submission_issue
    return (
        select(func.count())
        .where(issue.c.submission_id == schema.submission.c.submission_id, issue.c.severity == severity)
        .scalar_subquery()
    )


def partition_versions(engine: Engine | Connection, department: str, period: str) -> list[Version]:
    """Every ledger row of (department, period), newest first (by processing time)."""
    sub = schema.submission
    stmt = (
        select(
            sub.c.submission_id,
            sub.c.status,
            sub.c.received_at,
            sub.c.processed_at,
            sub.c.loaded_at,
            sub.c.original_name,
            sub.c.supersedes,
            sub.c.superseded_by,
            sub.c.rows_read,
            sub.c.rows_loaded,
            sub.c.rows_rejected,
            sub.c.facts_loaded,
            _issue_count("critical").label("critical_issues"),
            _issue_count("warning").label("warning_issues"),
        )
        .where(sub.c.department == department, sub.c.period == period)
        .order_by(sub.c.processed_at.desc(), sub.c.received_at.desc(), sub.c.submission_id.desc())
    )
    rows = _read(engine, lambda conn: conn.execute(stmt).mappings().all())
    versions: list[Version] = []
    for row in rows:
        data = dict(row)
        for key in ("received_at", "processed_at", "loaded_at"):
            data[key] = _utc(data[key])
        for key in ("rows_read", "rows_loaded", "rows_rejected", "facts_loaded", "critical_issues", "warning_issues"):
            data[key] = int(data[key] or 0)
        versions.append(Version(**data))
    return versions


# ------------------------------------------------------------------ changed values
def restatement_values(engine: Engine | Connection, new_submission_id: str) -> pd.DataFrame:
    """``v_restatement`` rows of one superseding version (``RESTATEMENT_COLUMNS``).

    Sorted by indicator, then township. Empty when the version changed no value (or is not a
    restatement at all).
    """
    view = V_RESTATEMENT
    stmt = (
        select(*(view.c[name] for name in RESTATEMENT_COLUMNS))
        .where(view.c.new_submission_id == new_submission_id)
        .order_by(view.c.indicator, view.c.township_code)
    )
    rows = _read(engine, lambda conn: conn.execute(stmt).all())
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(RESTATEMENT_COLUMNS))
    for name in ("old_value", "new_value", "difference"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    frame["superseded_at"] = [_utc(moment) for moment in frame["superseded_at"]]
    return frame


# ------------------------------------------------------------------ KPIs that moved
def _version_values(conn: Connection, submission_id: str) -> pd.DataFrame:
    """``VALUE_COLUMNS`` of one version's facts (any status), value as float64."""
    fact = schema.fact_indicator_value
    rows = conn.execute(
        select(*(fact.c[name] for name in VALUE_COLUMNS)).where(fact.c.submission_id == submission_id)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(VALUE_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def _townships(conn: Connection) -> pd.DataFrame:
    township = schema.ref_township
    rows = conn.execute(select(township.c.township_code, township.c.valid_from, township.c.valid_to)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["township_code", "valid_from", "valid_to"])


def _with_partition(others: pd.DataFrame, version: pd.DataFrame) -> pd.DataFrame:
    """All current facts with one version standing for its partition, in a stable order."""
    frames = [frame for frame in (others, version) if not frame.empty]
    if not frames:
        return others.iloc[0:0].copy()
    values = pd.concat(frames, ignore_index=True)
    return values.sort_values(["department", "indicator", "township_code", "period"], ignore_index=True)


def _differs(old: float | None, new: float | None) -> bool:
    if old is None or new is None:
        return (old is None) != (new is None)
    return old != new


def compare_kpis(old: pd.DataFrame, new: pd.DataFrame, kpi_order: Sequence[str]) -> pd.DataFrame:
    """The KPIs (year × kpi) whose value differs between two ``compute_county_kpis`` frames.

    NULL-safe: a KPI that exists on one side only, or is NULL on one side only, differs;
    ``difference`` (new − old) is then NULL. Sorted by ``kpi_order``, then year.
    """
    keyed_old = {(int(r["year"]), str(r["kpi"])): r for r in old.to_dict(orient="records")}
    keyed_new = {(int(r["year"]), str(r["kpi"])): r for r in new.to_dict(orient="records")}
    rank = {name: n for n, name in enumerate(kpi_order)}
    records: list[dict[str, Any]] = []
    for key in sorted(keyed_old.keys() | keyed_new.keys(), key=lambda k: (rank.get(k[1], len(rank)), k[1], k[0])):
        before: Mapping[str, Any] | None = keyed_old.get(key)
        after: Mapping[str, Any] | None = keyed_new.get(key)
        old_value = _float_or_none(before["value"]) if before is not None else None
        new_value = _float_or_none(after["value"]) if after is not None else None
        if not _differs(old_value, new_value):
            continue
        either = after if after is not None else before
        assert either is not None
        records.append(
            {
                "year": key[0],
                "kpi": key[1],
                "label_zh": either["label_zh"],
                "old_value": old_value,
                "new_value": new_value,
                "difference": None if old_value is None or new_value is None else new_value - old_value,
                "unit": either["unit"],
            }
        )
    frame = pd.DataFrame(records, columns=list(KPI_CHANGE_COLUMNS))
    frame = frame.astype({"year": "int64"})
    for name in ("old_value", "new_value", "difference"):
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


def kpi_changes(engine: Engine | Connection, new_submission_id: str) -> pd.DataFrame:
    """The yearly county KPIs that moved when ``new_submission_id`` superseded its predecessor.

    Computed twice with ``compute_county_kpis``: every partition at its current version except
    this one's, which is the superseded version's facts for "old" and ``new_submission_id``'s
    facts for "new" (also when a later version has superseded it since). Columns
    ``KPI_CHANGE_COLUMNS``; a KPI that appeared, disappeared or became (un)computable has NULL
    on one side and a NULL difference.

    Raises ``UnknownSubmission`` for an id not in the ledger and ``NotARestatement`` for a
    submission that superseded nothing.
    """

    def work(conn: Connection) -> pd.DataFrame:
        sub = schema.submission
        row = conn.execute(
            select(sub.c.department, sub.c.period, sub.c.supersedes).where(sub.c.submission_id == new_submission_id)
        ).first()
        if row is None:
            raise UnknownSubmission(f"no submission {new_submission_id!r} in the ledger")
        if row.supersedes is None:
            raise NotARestatement(f"submission {new_submission_id} superseded nothing")
        current = read_current_values(conn)
        in_partition = (current["department"] == row.department) & (current["period"] == row.period)
        others = current.loc[~in_partition]
        old_values = _with_partition(others, _version_values(conn, row.supersedes))
        new_values = _with_partition(others, _version_values(conn, new_submission_id))
        townships = _townships(conn)
        kpis = load_kpis()
        declarations = load_declarations()
        old = compute_county_kpis(old_values, townships, kpis, declarations)
        new = compute_county_kpis(new_values, townships, kpis, declarations)
        return compare_kpis(old, new, [k.kpi for k in kpis])

    if isinstance(engine, Connection):
        return work(engine)
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":  # one snapshot for all the reads
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            return work(conn)


# ------------------------------------------------------------------ the whole story
def partition_history(engine: Engine, department: str, period: str) -> PartitionHistory:
    """The versions of (department, period), and for each restatement its changes, newest first."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            versions = partition_versions(conn, department, period)
            restatements: list[Restatement] = []
            for v in versions:
                if v.supersedes is None:
                    continue
                restatements.append(
                    Restatement(
                        new_submission_id=v.submission_id,
                        old_submission_id=v.supersedes,
                        superseded_at=v.loaded_at,
                        values=restatement_values(conn, v.submission_id),
                        kpis=kpi_changes(conn, v.submission_id),
                    )
                )
    return PartitionHistory(department, period, versions, restatements)


#: a rate (unit %) is shown with this many decimals, as the forms and the report show it
RATE_DECIMALS = 2
BEIJING = ZoneInfo("Asia/Shanghai")


def _number(value: Any, *, signed: bool = False, decimals: int | None = None) -> str:
    number = _float_or_none(value)
    if number is None:
        return "—"
    if decimals is not None:
        return f"{number:+,.{decimals}f}" if signed else f"{number:,.{decimals}f}"
    return f"{number:+,.10g}" if signed else f"{number:,.10g}"


def _change(old: Any, new: Any, difference: Any, decimals: int | None = None) -> str:
    """``old → new (±difference)``; a value that appeared or disappeared says so."""
    if _float_or_none(old) is None and _float_or_none(new) is not None:
        note = "appeared"
    elif _float_or_none(new) is None and _float_or_none(old) is not None:
        note = "disappeared"
    else:
        note = _number(difference, signed=True, decimals=decimals)
    return f"{_number(old, decimals=decimals)} → {_number(new, decimals=decimals)} ({note})"


def _moment(value: datetime | None) -> str:
    """Beijing time, as the county reads a clock."""
    return "—" if value is None else f"{_utc(value).astimezone(BEIJING):%Y-%m-%d %H:%M} 北京时间"  # type: ignore[union-attr]


def history_lines(history: PartitionHistory) -> list[str]:
    """``history`` as text for the terminal (``duikou history``)."""
    title = f"{history.department} {history.period}"
    if not history.versions:
        return [f"{title}: 没有版本 (no versions received)"]
    lines = [f"{title}: {len(history.versions)} 个版本 versions, newest first"]
    kpi_decimals = {k.kpi: k.decimals for k in load_kpis()}
    for v in history.versions:
        lines.append(
            f"  {v.submission_id}  {v.status:<11} received {_moment(v.received_at)}  "
            f"loaded {_moment(v.loaded_at)}  {v.original_name}"
        )
        links = []
        if v.supersedes:
            links.append(f"supersedes {v.supersedes}")
        if v.superseded_by:
            links.append(f"superseded_by {v.superseded_by}")
        lines.append(
            f"      rows read {v.rows_read} loaded {v.rows_loaded} rejected {v.rows_rejected}, "
            f"facts {v.facts_loaded}; issues {v.critical_issues} critical, {v.warning_issues} warning"
            + (f"; {', '.join(links)}" if links else "")
        )
    for r in history.restatements:
        lines.append("")
        lines.append(
            f"更正 restatement {r.old_submission_id} → {r.new_submission_id} ({_moment(r.superseded_at)}): "
            f"{len(r.values)} values changed, {len(r.kpis)} KPIs moved"
        )
        for row in r.values.itertuples(index=False):
            lines.append(
                f"    {row.indicator} {row.label_zh}  {row.township_code} {row.township_name}: "
                f"{_change(row.old_value, row.new_value, row.difference, RATE_DECIMALS if row.unit == '%' else None)}"
                f" {row.unit}"
            )
        if not r.kpis.empty:
            lines.append("  指标变动 KPIs moved:")
        for row in r.kpis.itertuples(index=False):
            lines.append(
                f"    {row.year} {row.kpi} {row.label_zh}: "
                f"{_change(row.old_value, row.new_value, row.difference, kpi_decimals.get(str(row.kpi)))} {row.unit}"
            )
    return lines
