"""What the report site reads from the warehouse, in one place (``load_report_data``).

Frames, by grain:
- ``kpis``: one row per year × KPI (``mart_county_kpi_yearly``; ``publishable`` when the column
  exists, else NA);
- ``submissions``: one row per received file (``v_submission``);
- ``values``: one row per department × indicator × township × period, current versions
  (``v_indicator_value``, the columns ``warehouse.marts`` computes KPIs from);
- ``townships``: one row per township with its dates and its paired Chenghua unit
  (``ref_township`` + ``v_township_pairing``);
- ``completeness`` (department × period), ``completeness_township`` (department × period ×
  township), ``dq_scorecard`` (department × month), ``followups`` (open ones): ``None`` when the
  table does not exist in this warehouse yet (contracts.md: other modules add them), so the
  pages can say so instead of failing;
- ``registry_county`` (registry × snapshot), ``registry_township`` (× township),
  ``registry_category`` (× township × dimension × category), ``registry_reconciliation`` (×
  township × check): the person-level registry's marts — head counts only, never a person key.

Contract tables are read through lightweight ``table()`` handles with only the columns that
exist: a column added later is picked up, a missing one comes back as NA.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, MetaData, Select, Table, column, inspect, select, table
from sqlalchemy.engine import Connection

from expectations.signoff import load_signoff
from tasks.report.release_marks import PublishedLink, ReleaseMarks
from warehouse.current_facts import VALUE_COLUMNS, read_current_values
from warehouse.marts import KPI_COLUMNS
from warehouse.schema import ref_department, submission

SUBMISSION_COLUMNS = (
    "submission_id",
    "department",
    "department_name",
    "period",
    "status",
    "original_name",
    "received_at",
    "critical_issues",
    "warning_issues",
    "receipt_path",
)
TOWNSHIP_COLUMNS = (
    "township_code",
    "township_name",
    "township_type",
    "valid_from",
    "valid_to",
    "helper_unit_name",
    "pairing_source",
    "pairing_verified",
)
COMPLETENESS_COLUMNS = (
    "department", "period", "due_date", "status", "expected", "received", "on_time", "late", "missing",
    "loaded", "quarantined", "rejected", "first_received_at", "townships_expected", "townships_reported",
)  # fmt: skip
COMPLETENESS_TOWNSHIP_COLUMNS = ("department", "period", "township_code", "reported", "values_reported")
DQ_SCORECARD_COLUMNS = (
    "department", "month", "submissions", "checks_run", "checks_failed_critical", "checks_failed_warning",
    "values_flagged", "followups_open", "followups_closed", "median_resolution_hours",
)  # fmt: skip
FOLLOWUP_COLUMNS = (
    "followup_id", "kind", "department", "period", "township_code", "indicator", "check_id", "submission_id",
    "severity", "value", "reason_zh", "status", "opened_at", "last_seen_at",
)  # fmt: skip
REGISTRY_MEASURES = (
    "persons", "poor_persons", "persons_trained", "training_person_times", "certified_persons",
    "certified_mid_senior_persons", "employed_persons",
)  # fmt: skip
REGISTRY_COUNTY_COLUMNS = ("department", "period", "submission_id", "townships", *REGISTRY_MEASURES)
REGISTRY_TOWNSHIP_COLUMNS = ("department", "period", "township_code", *REGISTRY_MEASURES)
REGISTRY_CATEGORY_COLUMNS = ("department", "period", "township_code", "dimension", "category", "persons")
REGISTRY_RECONCILIATION_COLUMNS = (
    "department", "period", "township_code", "check_id", "registry_value", "form_department", "form_indicator",
    "form_value", "difference", "tolerance_relative", "within_tolerance",
)  # fmt: skip
KPI_READ_COLUMNS = tuple(dict.fromkeys((*KPI_COLUMNS, "publishable")))  # publishable: once it lands


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


@dataclass(frozen=True)
class ReportData:
    """Everything the site shows; built by ``load_report_data`` or by hand in tests."""

    kpis: pd.DataFrame
    submissions: pd.DataFrame
    generated_at: datetime
    values: pd.DataFrame = field(default_factory=lambda: _empty(VALUE_COLUMNS))
    townships: pd.DataFrame = field(default_factory=lambda: _empty(TOWNSHIP_COLUMNS))
    completeness: pd.DataFrame | None = None
    completeness_township: pd.DataFrame | None = None
    dq_scorecard: pd.DataFrame | None = None
    followups: pd.DataFrame | None = None
    departments: dict[str, str] = field(default_factory=dict)  # department id → 县旅游局 …
    registry_county: pd.DataFrame | None = None
    registry_township: pd.DataFrame | None = None
    registry_category: pd.DataFrame | None = None
    registry_reconciliation: pd.DataFrame | None = None
    release: ReleaseMarks | None = None  # a release's own site: its banner and provenance links
    published: tuple[PublishedLink, ...] = ()  # the latest approved release per kind (the 已发布 banner)


def _frame(conn: Connection, query: Select[Any], columns: Sequence[str], numeric: Sequence[str] = ()) -> pd.DataFrame:
    result = conn.execute(query)
    frame = pd.DataFrame([tuple(r) for r in result], columns=list(result.keys()))
    for name in columns:
        if name not in frame.columns:
            frame[name] = pd.NA
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame.loc[:, list(columns)]


def _optional(
    conn: Connection, name: str, columns: Sequence[str], numeric: Sequence[str] = (), where: Any = None
) -> pd.DataFrame | None:
    """Rows of table ``name`` with ``columns`` (NA for absent ones); None when there is no such table."""
    inspector = inspect(conn)
    if not inspector.has_table(name):
        return None
    present = {c["name"] for c in inspector.get_columns(name)}
    handle = table(name, *(column(c) for c in columns if c in present))
    query = select(*handle.c)
    if where is not None and all(c in present for c in where[0]):
        query = query.where(where[1](handle))
    return _frame(conn, query, columns, numeric)


def _kpis(conn: Connection) -> pd.DataFrame:
    numeric = ("year", "value", "coverage_used", "coverage_expected", "coverage")
    frame = _optional(conn, "mart_county_kpi_yearly", KPI_READ_COLUMNS, numeric)
    frame = _empty(KPI_READ_COLUMNS) if frame is None else frame
    frame["publishable"] = frame["publishable"].map(lambda v: pd.NA if v is None or pd.isna(v) else bool(v))
    return frame.sort_values(["year", "kpi"], kind="stable").reset_index(drop=True)


def _submissions(conn: Connection) -> pd.DataFrame:
    view = table(
        "v_submission",
        *(column(n, submission.c[n].type) if n in submission.c else column(n) for n in SUBMISSION_COLUMNS),
    )
    query = select(*view.c).order_by(view.c.department, view.c.period, view.c.received_at)
    return _frame(conn, query, SUBMISSION_COLUMNS, ("critical_issues", "warning_issues"))


def _townships(conn: Connection) -> pd.DataFrame:
    ref = table("ref_township", column("township_code"), column("valid_from"), column("valid_to"))
    pairing = table(
        "v_township_pairing",
        *(column(c) for c in ("township_code", "township_name", "township_type", "helper_unit_name", "source",
                              "verified")),
    )  # fmt: skip
    query = (
        select(
            pairing.c.township_code, pairing.c.township_name, pairing.c.township_type, ref.c.valid_from,
            ref.c.valid_to, pairing.c.helper_unit_name, pairing.c.source.label("pairing_source"),
            pairing.c.verified.label("pairing_verified"),
        )
        .join_from(pairing, ref, pairing.c.township_code == ref.c.township_code)
        .order_by(pairing.c.township_code)
    )  # fmt: skip
    frame = _frame(conn, query, TOWNSHIP_COLUMNS)
    frame["pairing_verified"] = frame["pairing_verified"].map(lambda v: None if v is None else bool(v))
    return frame


def _published(conn: Connection) -> tuple[PublishedLink, ...]:
    """The latest approved release of each kind (none when the release table is not there yet)."""
    frame = _optional(conn, "release", ("release_id", "kind", "period", "version", "state", "approved_at"),
                      where=(("state",), lambda t: t.c.state == "approved"))
    if frame is None or frame.empty:
        return ()
    kinds = load_signoff().kinds
    links = []
    latest = frame.sort_values(["kind", "period", "version"]).groupby("kind").tail(1)
    for r in latest.to_dict("records"):
        approved = pd.Timestamp(r["approved_at"])
        approved = approved.tz_localize("UTC") if approved.tzinfo is None else approved
        title = kinds[r["kind"]].title_zh if r["kind"] in kinds else str(r["kind"])
        period = str(r["period"])
        label = f"{period[:4]}年" + (f"{int(period[5:])}月" if len(period) > 4 else "")
        links.append(PublishedLink(str(r["kind"]), f"{title} {label}", str(r["release_id"]), int(r["version"]),
                                   f"{approved.tz_convert('Asia/Shanghai'):%Y-%m-%d %H:%M} 北京时间"))
    return tuple(links)


def load_report_data(engine: Engine) -> ReportData:
    """Read every frame the site shows, in one connection (one consistent state on PostgreSQL)."""
    with engine.connect() as conn:
        values = read_current_values(conn)
        names = conn.execute(select(ref_department.c.department, ref_department.c.name_zh)).all()
        kpis = _kpis(conn)
        subs = _submissions(conn)
        towns = _townships(conn)
        completeness = _optional(
            conn, "mart_completeness", COMPLETENESS_COLUMNS,
            ("expected", "received", "on_time", "late", "missing", "loaded", "quarantined", "rejected",
             "townships_expected", "townships_reported"),
        )  # fmt: skip
        by_township = _optional(
            conn, "mart_completeness_township", COMPLETENESS_TOWNSHIP_COLUMNS, ("values_reported",)
        )
        scorecard = _optional(conn, "mart_dq_scorecard", DQ_SCORECARD_COLUMNS, DQ_SCORECARD_COLUMNS[2:])
        followups = _optional(
            conn, "followup", FOLLOWUP_COLUMNS, ("value",),
            where=(("status",), lambda t: t.c.status == "open"),
        )  # fmt: skip
        registry_county = _optional(conn, "mart_registry_county", REGISTRY_COUNTY_COLUMNS, REGISTRY_COUNTY_COLUMNS[3:])
        registry_township = _optional(conn, "mart_registry_township", REGISTRY_TOWNSHIP_COLUMNS, REGISTRY_MEASURES)
        registry_category = _optional(conn, "mart_registry_category", REGISTRY_CATEGORY_COLUMNS, ("persons",))
        published = _published(conn)
        registry_reconciliation = _optional(
            conn, "mart_registry_reconciliation", REGISTRY_RECONCILIATION_COLUMNS,
            ("registry_value", "form_value", "difference", "tolerance_relative"),
        )  # fmt: skip
    if registry_reconciliation is not None:  # SQLite gives 0/1, PostgreSQL booleans; None = no form value
        registry_reconciliation["within_tolerance"] = registry_reconciliation["within_tolerance"].map(
            lambda v: None if v is None or v is pd.NA or v != v else bool(v)
        ).astype(object)
    return ReportData(
        kpis=kpis,
        submissions=subs,
        generated_at=datetime.now(UTC),
        values=values,
        townships=towns,
        completeness=completeness,
        completeness_township=by_township,
        dq_scorecard=scorecard,
        followups=followups,
        departments={str(d): str(n) for d, n in names},
        registry_county=registry_county,
        registry_township=registry_township,
        registry_category=registry_category,
        registry_reconciliation=registry_reconciliation,
        published=published,
    )


def load_marts(engine: Engine) -> dict[str, pd.DataFrame]:
    """Every ``mart_*`` table as it is in the warehouse (all columns), for the Parquet exports."""
    out: dict[str, pd.DataFrame] = {}
    with engine.connect() as conn:
        inspector = inspect(conn)
        for name in sorted(n for n in inspector.get_table_names() if n.startswith("mart_")):
            reflected = Table(name, MetaData(), autoload_with=conn)  # typed: datetimes parsed on SQLite
            out[name] = _frame(conn, select(reflected), [c.name for c in reflected.columns])
    return out
