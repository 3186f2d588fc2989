"""Reporting periods: ``YYYY-MM`` for monthly returns, ``YYYY`` for annual ones."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
_TITLE_MONTH = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月")
_TITLE_YEAR = re.compile(r"(\d{4})\s*年")


@dataclass(frozen=True, order=True)
class Period:
    year: int
    month: int | None = None

    @property
    def label(self) -> str:
        return f"{self.year}" if self.month is None else f"{self.year}-{self.month:02d}"

    @property
    def label_zh(self) -> str:
        return f"{self.year}年" if self.month is None else f"{self.year}年{self.month}月"

    @property
    def start(self) -> date:
        return date(self.year, self.month or 1, 1)

    @property
    def end(self) -> date:
        month = self.month or 12
        return date(self.year, month, calendar.monthrange(self.year, month)[1])


class PeriodError(ValueError):
    pass


def parse_period(text: str, period_type: str) -> Period:
    """Parse a declared period; the form must match the return's period type."""
    match = _PERIOD.match(text.strip())
    if not match:
        raise PeriodError(f"报告期“{text}”格式不对: 月报用 YYYY-MM，年报用 YYYY")
    year, month = int(match.group(1)), match.group(2)
    if period_type == "month":
        if month is None:
            raise PeriodError(f"报告期“{text}”: 月报需要 YYYY-MM")
        m = int(month)
        if not 1 <= m <= 12:
            raise PeriodError(f"报告期“{text}”: 月份必须在1–12之间")
        return Period(year, m)
    if month is not None:
        raise PeriodError(f"报告期“{text}”: 年报只写年份 YYYY")
    return Period(year)


def period_in_title(title: str, period_type: str) -> Period | None:
    """The period a form's title states (丹巴县2017年5月… / 丹巴县2016年…), if any."""
    if period_type == "month":
        match = _TITLE_MONTH.search(title)
        return Period(int(match.group(1)), int(match.group(2))) if match else None
    match = _TITLE_YEAR.search(title)
    return Period(int(match.group(1))) if match else None
