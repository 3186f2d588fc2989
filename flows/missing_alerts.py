"""The nightly alert for returns still missing after their deadline.

Each missing return is logged as a warning; each department with any gets one
``duikou.returns.missing`` event listing its periods, which the ``duikou: returns missing``
automation (``duikou automations``) turns into a notification. Which returns are missing is
decided by ``warehouse.completeness.missing_returns`` (the obligations calendar from the
declarations, against the ledger) — this module only raises the alarm. A person-level registry's
snapshot that is owed and missing (the labour registry: quarterly) is alerted like a form.
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sqlalchemy import Engine

from flows import events


@task(name="alert-missing-returns", cache_policy=NO_CACHE)
def alert_missing_returns_task(engine: Engine) -> list[dict[str, Any]]:
    """Log every overdue return and emit one ``duikou.returns.missing`` per department; returns them."""
    from warehouse.completeness import missing_returns, reporting_declarations

    logger = get_run_logger()
    declarations = reporting_declarations()
    with engine.connect() as conn:
        missing = missing_returns(conn)
    by_department: dict[str, list[Any]] = {}
    for item in missing:
        logger.warning("return missing: %s %s was due %s (deadline %s), %d day(s) overdue",
                       item.department, item.period, item.due_date, item.deadline, item.days_overdue)
        by_department.setdefault(item.department, []).append(item)
    for department, items in by_department.items():
        items.sort(key=lambda m: m.period)
        title = declarations[department].title_zh if department in declarations else department
        try:  # one department's alert that cannot be sent must not keep the others' back
            events.emit_from_run(events.returns_missing(department=department, title_zh=title,
                                                        periods=[m.period for m in items],
                                                        oldest_due=min(m.due_date for m in items)))
        except Exception as exc:
            logger.error("missing-returns event of %s not sent: %s: %s", department, type(exc).__name__, exc)
    return [{"department": m.department, "period": m.period, "due_date": m.due_date.isoformat(),
             "days_overdue": m.days_overdue} for m in missing]
