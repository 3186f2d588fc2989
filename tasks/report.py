"""The KPI report: one self-contained HTML page (inline CSS and SVG, no scripts), Chinese first.

Inputs (``ReportData``), by grain: ``kpis`` one row per year × KPI (mart_county_kpi_yearly);
``submissions`` one row per received file (v_submission); ``township_values`` one row per
department × indicator × township × year (v_indicator_value, months summed).

Only ``load_report_data`` and ``write_report`` touch the database or the disk. Rendering is pure:
``tasks.report_view`` formats (per kpis.yaml), ``tasks.report_charts`` draws the SVG,
``tasks.report_page`` holds the template. The page lives at ``data/reports/<date>/index.html``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, and_, column, func, or_, select, table
from sqlalchemy.engine import Connection

from tasks.report_page import PAGE_TEMPLATE
from tasks.report_view import HEADLINE_KPI, TOWNSHIP_INDICATORS, headline_cards, page_context
from warehouse.marts import KPI_COLUMNS
from warehouse.schema import mart_county_kpi_yearly, submission

TITLE = "丹巴县对口帮扶数据报告"
SUBTITLE = "成华区—丹巴县"
BEIJING = timezone(timedelta(hours=8), "北京时间")
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
    "department",
    "indicator",
    "label_zh",
    "township_code",
    "township_name",
    "year",
    "value",
    "unit",
)


@dataclass(frozen=True)
class ReportData:
    """Everything the report shows; built by ``load_report_data`` or by hand in tests."""

    kpis: pd.DataFrame
    submissions: pd.DataFrame
    township_values: pd.DataFrame
    generated_at: datetime


# ---------------------------------------------------------------- loading
# the views are declared as SQL in warehouse.schema.VIEWS; these lightweight handles let us select
# from them with Core (typed received_at, portable between SQLite and PostgreSQL)
_V_SUBMISSION = table(
    "v_submission",
    *(column(name, submission.c[name].type) if name in submission.c else column(name)
      for name in SUBMISSION_COLUMNS),
)  # fmt: skip
_V_INDICATOR_VALUE = table("v_indicator_value", *(column(name) for name in TOWNSHIP_COLUMNS))


def _kpi_query() -> Select[Any]:
    mart = mart_county_kpi_yearly
    return select(*(mart.c[name] for name in KPI_COLUMNS)).order_by(mart.c.year, mart.c.kpi)


def _submission_query() -> Select[Any]:
    view = _V_SUBMISSION
    columns = (view.c[name] for name in SUBMISSION_COLUMNS)
    return select(*columns).order_by(view.c.department, view.c.period, view.c.received_at)


def _township_query() -> Select[Any]:
    """Per township and year: monthly tourism revenue summed over the months; annual poverty
    values as they are (one loaded poverty return per year, so the sum is over a single row)."""
    view = _V_INDICATOR_VALUE
    keys = [view.c[name] for name in TOWNSHIP_COLUMNS if name != "value"]
    wanted = or_(
        *(
            and_(view.c.department == department, view.c.indicator.in_(indicators))
            for department, indicators in TOWNSHIP_INDICATORS.items()
        )
    )
    return (
        select(*keys, func.sum(view.c.value).label("value"))
        .where(wanted)
        .group_by(*keys)
        .order_by(view.c.department, view.c.indicator, view.c.year, view.c.township_code)
    )


def _read(
    conn: Connection, query: Select[Any], columns: tuple[str, ...], numeric: tuple[str, ...]
) -> pd.DataFrame:
    """The query's rows as a frame with exactly ``columns`` (also when empty), numbers as floats."""
    result = conn.execute(query)
    frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
    for name in numeric:
        frame[name] = pd.to_numeric(frame[name], errors="coerce")
    return frame[list(columns)]


def load_report_data(engine: Engine) -> ReportData:
    """Read the KPI mart, the submission ledger and the township values the report shows."""
    kpi_numbers = ("year", "value", "coverage_used", "coverage_expected", "coverage")
    with engine.connect() as conn:
        kpis = _read(conn, _kpi_query(), KPI_COLUMNS, kpi_numbers)
        subs = _read(conn, _submission_query(), SUBMISSION_COLUMNS, ("critical_issues", "warning_issues"))
        towns = _read(conn, _township_query(), TOWNSHIP_COLUMNS, ("year", "value"))
    return ReportData(kpis=kpis, submissions=subs, township_values=towns, generated_at=datetime.now(UTC))


# ---------------------------------------------------------------- rendering
def default_year(kpis: pd.DataFrame) -> int | None:
    """The latest year with a per-capita net income, else the latest year of any KPI."""
    if kpis.empty:
        return None
    with_income = kpis[(kpis["kpi"] == HEADLINE_KPI) & kpis["value"].notna()]
    years = with_income["year"] if not with_income.empty else kpis["year"]
    return int(years.max())


def render_report_html(data: ReportData, *, year: int | None = None) -> str:
    """The whole report page for ``year`` (default: ``default_year``) as one HTML string."""
    chosen = year if year is not None else default_year(data.kpis)
    stamp = data.generated_at.astimezone(BEIJING)
    context = page_context(data.kpis, data.submissions, data.township_values, chosen)
    return PAGE_TEMPLATE.render(
        title=TITLE, subtitle=SUBTITLE, generated=f"{stamp:%Y-%m-%d %H:%M} 北京时间", **context
    )


def headline_rows(data: ReportData, year: int | None = None) -> list[tuple[str, str, str]]:
    """(label_zh, value with unit, coverage text) per headline card, for the CLI's short table."""
    chosen = year if year is not None else default_year(data.kpis)
    return [
        (c.label, c.value + (f"（{'，'.join(c.details)}）" if c.details else ""), c.coverage)
        for c in headline_cards(data.kpis, chosen)
    ]


# ---------------------------------------------------------------- writing
def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _point_latest(reports_dir: Path, day_dir: Path) -> None:
    """``latest`` → the day's directory: a relative symlink swapped in atomically; a copy where
    symlinks are not allowed (e.g. Windows without developer mode)."""
    latest, tmp = reports_dir / "latest", reports_dir / f".latest-{os.getpid()}"
    _remove(tmp)
    try:
        tmp.symlink_to(day_dir.name, target_is_directory=True)
    except OSError:
        shutil.copytree(day_dir, tmp)
    if latest.is_dir() and not latest.is_symlink():
        _remove(latest)  # a copy left by an earlier run; rename cannot replace a directory
    os.replace(tmp, latest)


def write_report(
    engine: Engine, reports_dir: Path, *, year: int | None = None, today: date | None = None
) -> Path:
    """Write ``reports_dir/<YYYY-MM-DD>/index.html``, point ``reports_dir/latest`` at it, return it."""
    page = render_report_html(load_report_data(engine), year=year)
    day_dir = Path(reports_dir) / (today or date.today()).isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    target = day_dir / "index.html"
    _write_atomic(target, page)
    _point_latest(Path(reports_dir), day_dir)
    return target
