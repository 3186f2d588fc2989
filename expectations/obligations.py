"""The obligations calendar: which returns are expected, for which period, due when.

Pure functions over the declarations (``period_type``, ``due_day``, ``grace_days``; a
person-level registry also ``snapshot_months``); no I/O. The settings are data, each in its
return's YAML declaration: a township form owes every period of its ``period_type``; the labour
registry (``declarations/labour_registry.yaml``) owes one snapshot per quarter (``snapshot_months:
[3, 6, 9, 12]``).

* A monthly return for ``YYYY-MM`` is due on ``due_day`` of the following month; an annual
  return for ``YYYY`` on ``due_day`` of January of the following year. A ``due_day`` past the
  month's end means its last day (31 → 28 February).
* The **deadline** is the due date plus ``grace_days``: a return first received on or before
  its deadline (county time, Asia/Shanghai) is on time, later ones are late.
* A monthly period is **owed** when its month is one of the declaration's ``snapshot_months``
  (every month for forms). A return for a period that is not owed (a registry snapshot of May)
  is accepted and shown, but not expected.
* A period is **expected** from a start period (the department's earliest period in the ledger,
  or the programme start when one is configured) up to the last period that has ended by
  ``today``. One not yet past its deadline is *pending*, not missing.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

from expectations.declaration import Declaration
from expectations.registry_declaration import RegistryDeclaration

#: what owes returns: a township form or a person-level registry
Reporting = Declaration | RegistryDeclaration
ALL_MONTHS = tuple(range(1, 13))

_PERIOD_RE = re.compile(r"^(\d{4})(?:-(\d{2}))?$")


@dataclass(frozen=True)
class Obligation:
    """One expected return: a department's report for one period."""

    department: str
    period: str  # YYYY-MM (monthly) or YYYY (annual)
    due_date: date
    deadline: date  # due_date + grace_days: the last day that counts as on time

    def is_overdue(self, today: date) -> bool:
        """Past its deadline: if nothing has been received, it is missing."""
        return today > self.deadline


def _split(period: str) -> tuple[int, int | None]:
    match = _PERIOD_RE.match(period)
    if not match:
        raise ValueError(f"period {period!r} is neither YYYY-MM nor YYYY")
    month = int(match.group(2)) if match.group(2) else None
    if month is not None and not 1 <= month <= 12:
        raise ValueError(f"period {period!r}: month out of range")
    return int(match.group(1)), month


def _day_in_month(year: int, month: int, day: int) -> date:
    return date(year, month, min(day, calendar.monthrange(year, month)[1]))


def owed_months(declaration: Reporting) -> tuple[int, ...]:
    """The months whose period the calendar expects (monthly returns); () for annual ones."""
    if declaration.period_type == "year":
        return ()
    return declaration.snapshot_months if isinstance(declaration, RegistryDeclaration) else ALL_MONTHS


def is_owed(declaration: Reporting, period: str) -> bool:
    """Whether the calendar expects ``declaration``'s return for ``period`` at all."""
    _, month = _split(period)
    return month is None or month in owed_months(declaration)


def due_date(declaration: Reporting, period: str) -> date:
    """The day ``declaration``'s return for ``period`` is due (see the module docstring)."""
    year, month = _split(period)
    if (month is None) != (declaration.period_type == "year"):
        raise ValueError(f"period {period!r} does not fit the {declaration.period_type}ly "
                         f"{declaration.department} return")
    if month is None:
        return _day_in_month(year + 1, 1, declaration.due_day)
    return _day_in_month(year + (month == 12), month % 12 + 1, declaration.due_day)


def obligation(declaration: Reporting, period: str) -> Obligation:
    due = due_date(declaration, period)
    return Obligation(declaration.department, period, due, due + timedelta(days=declaration.grace_days))


def period_problem(declaration: Reporting, period: str) -> str | None:
    """Why the calendar cannot place ``period`` of ``declaration``'s return — malformed, of the
    other period type, or a due date or deadline past what a date can hold (``9999-12`` is due in
    the year 10000) — or None. A ledger row written before every door checked periods can hold
    one; the marts skip it and name it instead of failing."""
    try:
        obligation(declaration, period)
    except (ValueError, OverflowError) as exc:
        return f"{declaration.department} {period!r}: {exc}"
    return None


def periods_between(period_type: str, first: str, last: str) -> list[str]:
    """Every period label from ``first`` to ``last`` inclusive (empty when first > last)."""
    (y0, m0), (y1, m1) = _split(first), _split(last)
    if period_type == "year":
        return [str(y) for y in range(y0, y1 + 1)]
    if m0 is None or m1 is None:
        raise ValueError(f"monthly periods are YYYY-MM, got {first!r} .. {last!r}")
    out: list[str] = []
    year, month = y0, m0
    while (year, month) <= (y1, m1):
        out.append(f"{year}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def last_ended_period(period_type: str, today: date) -> str:
    """The latest period that has ended before ``today``: last month, or last year."""
    if period_type == "year":
        return str(today.year - 1)
    first_of_month = today.replace(day=1)
    previous = first_of_month - timedelta(days=1)
    return f"{previous.year}-{previous.month:02d}"


def start_period(period_type: str, programme_start: date) -> str:
    """The first period a return is expected for when the programme starts on ``programme_start``."""
    if period_type == "year":
        return str(programme_start.year)
    return f"{programme_start.year}-{programme_start.month:02d}"


def expected_returns(
    declarations: Mapping[str, Reporting],
    first_periods: Mapping[str, str],
    today: date,
    programme_start: date | None = None,
) -> list[Obligation]:
    """Every return expected up to ``today``, one per department × period, sorted.

    ``first_periods``: each department's earliest period in the ledger. A configured
    ``programme_start`` replaces it; a department with neither has no expected returns yet
    (nothing says when its obligation began). Periods run up to the last one that has ended by
    ``today``, owed ones only (:func:`is_owed`); whether each is pending or overdue is
    :meth:`Obligation.is_overdue`.
    """
    out: list[Obligation] = []
    for department in sorted(declarations):
        decl = declarations[department]
        if programme_start is not None:
            first = start_period(decl.period_type, programme_start)
        elif department in first_periods:
            first = first_periods[department]
        else:
            continue
        last = last_ended_period(decl.period_type, today)
        out.extend(obligation(decl, p) for p in periods_between(decl.period_type, first, last) if is_owed(decl, p))
    return out
