"""The periods a department may send a return for through the portal: open or late, by the obligations calendar.

* **open** (未到期): owed and not yet past its deadline (due day + grace days) — the return may be
  sent, and sent again to correct it, until then;
* **late** (已逾期): owed, past its deadline, and no return of it loaded yet.

Periods run from the programme start (``DUIKOU_PROGRAMME_START``), else the department's earliest
period in the ledger, else a year back; to the last period that has ended by ``today`` — at most
:data:`MAX_CHOICES` of them, newest first. The JSON API keeps its own, wider rule (the plausible
window) for systems that resend history.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from expectations.declaration import Declaration
from expectations.obligations import is_owed, last_ended_period, obligation, periods_between, start_period
from tasks.forms.periods import Period, PeriodError, parse_declared_period

MAX_CHOICES = 24


@dataclass(frozen=True)
class PeriodChoice:
    label: str  # 2017-05
    label_zh: str  # 2017年5月
    state: str  # open / late
    due_date: date
    deadline: date

    @property
    def note_zh(self) -> str:
        if self.state == "late":
            return f"已逾期（应于{self.due_date.month}月{self.due_date.day}日前报送）"
        return f"{self.due_date.month}月{self.due_date.day}日到期"


def _zh(label: str) -> str:
    year, _, month = label.partition("-")
    return f"{year}年{int(month)}月" if month else f"{year}年"


def _back_a_year(period_type: str, last: str) -> str:
    if period_type == "year":
        return str(int(last) - 1)
    year, month = int(last[:4]), int(last[5:7])
    return f"{year - 1}-{month:02d}"


def period_choices(declaration: Declaration, today: date, loaded: Iterable[str],
                   first_in_ledger: str | None = None, programme_start: date | None = None) -> list[PeriodChoice]:
    """Open and late periods of ``declaration`` on ``today``, newest first. ``loaded``: periods with a
    loaded return (a late one of those is no longer offered)."""
    last = last_ended_period(declaration.period_type, today)
    if programme_start is not None:
        first = start_period(declaration.period_type, programme_start)
    else:
        first = first_in_ledger or _back_a_year(declaration.period_type, last)
    done = set(loaded)
    out = []
    for label in reversed(periods_between(declaration.period_type, first, last)):
        if not is_owed(declaration, label):
            continue
        owed = obligation(declaration, label)
        if today <= owed.deadline:
            out.append(PeriodChoice(label, _zh(label), "open", owed.due_date, owed.deadline))
        elif label not in done:
            out.append(PeriodChoice(label, _zh(label), "late", owed.due_date, owed.deadline))
        if len(out) >= MAX_CHOICES:
            break
    return out


def chosen_period(text: str, declaration: Declaration, choices: list[PeriodChoice]) -> Period:
    """The period the clerk chose or typed (``2017-10`` or ``2017年10月``), if it is one of ``choices``;
    PeriodError in Chinese otherwise."""
    period = parse_declared_period(text, declaration.period_type)
    if period.label not in {c.label for c in choices}:
        offered = "、".join(c.label_zh for c in choices) or "无"
        raise PeriodError(f"报告期“{period.label_zh}”现在不能报送：只能报送未到期或已逾期未报的报告期（{offered}）")
    return period
