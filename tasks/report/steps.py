"""Thin Prefect task wrappers of the marts refresh and the report site build."""

from __future__ import annotations

from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from tasks.report.build_site import build_report
from tasks.retry_policy import IO_RETRIES
from warehouse.marts import MartRefresh, refresh_marts, refresh_marts_checked


@task(name="refresh-marts", cache_policy=NO_CACHE, **IO_RETRIES)
def refresh_marts_task(engine: Engine) -> int:
    return refresh_marts(engine)


@task(name="refresh-marts", cache_policy=NO_CACHE, **IO_RETRIES)
def refresh_marts_checked_task(engine: Engine) -> MartRefresh:
    """:func:`refresh_marts_task` that also says what it left out (the nightly names it in its summary)."""
    refreshed = refresh_marts_checked(engine)
    for item in refreshed.skipped:
        get_run_logger().warning("marts: %s", item)
    return refreshed


@task(name="build-report", cache_policy=NO_CACHE, **IO_RETRIES)
def report_task(engine: Engine, data_dir: Path, year: int | None = None, out: Path | None = None) -> Path:
    """The report site (``tasks.report.build_site.build_report``); returns the dashboard's path."""
    return build_report(engine, data_dir, year=year, out=out)
