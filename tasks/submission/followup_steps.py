"""Thin Prefect tasks for what follows a load: cross-return checks, the follow-up list, and the
returns missing after their deadline. The logic lives in ``warehouse.cross_returns``,
``warehouse.followups`` and ``warehouse.completeness``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from prefect import task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from tasks.retry_policy import IO_RETRIES
from warehouse.completeness import MissingReturn, missing_returns
from warehouse.cross_returns import CrossCheckRun, run_cross_checks
from warehouse.followups import SyncSummary, sync_followups


@dataclass(frozen=True)
class FollowUp:
    """What one follow-up pass did."""

    cross_checks: CrossCheckRun
    followups: SyncSummary


def follow_up(engine: Engine, departments: list[str] | None = None) -> FollowUp:
    """Cross-return checks touching ``departments`` (all when None), then sync the follow-ups."""
    return FollowUp(run_cross_checks(engine, departments), sync_followups(engine))


@task(name="cross-checks-and-follow-ups", cache_policy=NO_CACHE, **IO_RETRIES)
def follow_up_task(engine: Engine, departments: list[str] | None = None) -> FollowUp:
    return follow_up(engine, departments)


def missing_returns_now(engine: Engine, today: date | None = None) -> list[MissingReturn]:
    with engine.connect() as conn:
        return missing_returns(conn, today)


@task(name="missing-returns", cache_policy=NO_CACHE, **IO_RETRIES)
def missing_returns_task(engine: Engine, today: date | None = None) -> list[MissingReturn]:
    return missing_returns_now(engine, today)
