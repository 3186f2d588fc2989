"""``mart_dq_scorecard``: data quality per department × reporting month, from the DQ results as data.

Grain: one row per department × reporting month (``YYYY-MM``: a monthly return's period; an
annual return's ``YYYY`` counts in ``YYYY-12``) that has a recorded file or a follow-up.

- ``submissions``: ledger rows of the month (every status: a corrected file counts twice);
- ``checks_run`` / ``checks_failed_critical`` / ``checks_failed_warning``: ``dq_result`` rows of
  those files, and the failed ones by severity (a check is failed as GX judged it, also when an
  operator later accepted the value);
- ``values_flagged``: ``dq_flag`` rows of those files that no acceptance covers;
- ``followups_open`` / ``followups_closed`` (accepted, dismissed or resolved) and
  ``median_resolution_hours`` (opened → closed of the closed ones) from ``followup``.

:func:`compute_dq_scorecard` is pure; :func:`refresh_dq_scorecard` reads the tables and replaces
the mart on the caller's connection (``warehouse.marts.refresh_marts``'s write transaction).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, delete, insert, select

from warehouse import schema
from warehouse.skipped import note_skipped

_PERIOD = r"\d{4}(?:-(?:0[1-9]|1[0-2]))?"

SCORECARD_COLUMNS = (
    "department",
    "month",
    "submissions",
    "checks_run",
    "checks_failed_critical",
    "checks_failed_warning",
    "values_flagged",
    "followups_open",
    "followups_closed",
    "median_resolution_hours",
)
CLOSED_STATUSES = ("accepted", "dismissed", "resolved")
_COUNTS = SCORECARD_COLUMNS[2:-1]


def reporting_month(period: str) -> str:
    """``"2017-05"`` → ``"2017-05"``; an annual ``"2016"`` → ``"2016-12"`` (the month it ends)."""
    return period if len(period) == 7 else f"{period}-12"


def compute_dq_scorecard(
    submissions: pd.DataFrame, results: pd.DataFrame, flags: pd.DataFrame, followups: pd.DataFrame
) -> pd.DataFrame:
    """Scorecard rows (``SCORECARD_COLUMNS``), sorted by department and month; inputs are not modified.

    ``submissions``: submission_id, department, period. ``results``: submission_id, severity,
    success. ``flags``: submission_id, accepted. ``followups``: department, period, status,
    opened_at, closed_at.
    """
    keyed = submissions.assign(month=submissions["period"].map(reporting_month))[
        ["submission_id", "department", "month"]
    ]
    keys = ["department", "month"]
    parts: list[pd.Series] = [keyed.groupby(keys).size().rename("submissions")]
    checks = results.merge(keyed, on="submission_id")
    parts.append(checks.groupby(keys).size().rename("checks_run"))
    failed = checks[~checks["success"].astype(bool)]
    for severity in ("critical", "warning"):
        subset = failed[failed["severity"] == severity]
        parts.append(subset.groupby(keys).size().rename(f"checks_failed_{severity}"))
    open_flags = flags[~flags["accepted"].astype(bool)].merge(keyed, on="submission_id")
    parts.append(open_flags.groupby(keys).size().rename("values_flagged"))
    follow = followups.assign(month=followups["period"].map(reporting_month))
    parts.append(follow[follow["status"] == "open"].groupby(keys).size().rename("followups_open"))
    closed = follow[follow["status"].isin(CLOSED_STATUSES)]
    parts.append(closed.groupby(keys).size().rename("followups_closed"))
    hours = (
        pd.to_datetime(closed["closed_at"], utc=True) - pd.to_datetime(closed["opened_at"], utc=True)
    ).dt.total_seconds() / 3600
    median = hours.groupby([closed["department"], closed["month"]]).median().rename("median_resolution_hours")
    table = pd.concat([*parts, median], axis=1)
    if table.empty:
        return pd.DataFrame(columns=list(SCORECARD_COLUMNS))
    table[list(_COUNTS)] = table[list(_COUNTS)].fillna(0).astype("int64")
    table.index = table.index.set_names(keys)
    return table.reset_index().loc[:, list(SCORECARD_COLUMNS)].sort_values(keys, ignore_index=True)


def _frame(conn: Connection, columns: list[Any], names: list[str]) -> pd.DataFrame:
    return pd.DataFrame([tuple(r) for r in conn.execute(select(*columns))], columns=names)


def _well_formed(frame: pd.DataFrame, what: str, skipped: list[str] | None) -> pd.DataFrame:
    """The rows whose period is ``YYYY-MM`` or ``YYYY``; the others (written before every door checked
    periods) are left out and named: their month would not fit the mart's key."""
    good = frame["period"].astype(str).str.fullmatch(_PERIOD)
    for row in frame[~good].itertuples(index=False):
        text = f"dq scorecard: {what} {row[0]} skipped (period {row.period!r} is neither YYYY-MM nor YYYY)"
        note_skipped(skipped, text)
    return frame[good]


def refresh_dq_scorecard(conn: Connection, refreshed_at: datetime | None = None,
                         skipped: list[str] | None = None) -> int:
    """Recompute ``mart_dq_scorecard`` on ``conn`` (inside the caller's transaction); rows written.
    A ledger row or follow-up with a malformed period is left out and named in ``skipped``."""
    sub, res, flag, fu = schema.submission, schema.dq_result, schema.dq_flag, schema.followup
    card = compute_dq_scorecard(
        _well_formed(_frame(conn, [sub.c.submission_id, sub.c.department, sub.c.period],
                            ["submission_id", "department", "period"]), "ledger row", skipped),
        _frame(conn, [res.c.submission_id, res.c.severity, res.c.success], ["submission_id", "severity", "success"]),
        _frame(conn, [flag.c.submission_id, flag.c.accepted], ["submission_id", "accepted"]),
        _well_formed(_frame(
            conn,
            [fu.c.department, fu.c.period, fu.c.status, fu.c.opened_at, fu.c.closed_at],
            ["department", "period", "status", "opened_at", "closed_at"],
        ), "follow-up of", skipped),
    )
    stamp = refreshed_at or datetime.now(UTC)
    rows = [
        {
            **{k: int(r[k]) for k in _COUNTS},
            "department": str(r["department"]),
            "month": str(r["month"]),
            "median_resolution_hours": None
            if pd.isna(r["median_resolution_hours"])
            else float(r["median_resolution_hours"]),
            "refreshed_at": stamp,
        }
        for r in card.to_dict(orient="records")
    ]
    conn.execute(delete(schema.mart_dq_scorecard))
    if rows:
        conn.execute(insert(schema.mart_dq_scorecard), rows)
    return len(rows)
