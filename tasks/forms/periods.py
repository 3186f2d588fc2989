"""Reporting periods: ``YYYY-MM`` for monthly returns, ``YYYY`` for annual ones."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

_PERIOD = re.compile(r"^(\d{4})(?:-(\d{2}))?$")
_PERIOD_WORDS = re.compile(r"^(\d{4})\s*年(?:\s*(\d{1,2})\s*月)?$")  # 2017年10月 / 2017年5月 / 2016年
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


def parse_declared_period(text: str, period_type: str) -> Period:
    """Parse a declared period (``"2017-05"``, ``"2016"``, or as a clerk writes it: ``"2017年5月"``,
    ``"2016年"``) into a :class:`Period`; its form must match the return's period type
    (:class:`PeriodError` in Chinese otherwise). Not :func:`warehouse.load.parse_period`, which
    splits any stored period into (year, month or None)."""
    words = _PERIOD_WORDS.match(text.strip())
    if words:
        text = words.group(1) + (f"-{int(words.group(2)):02d}" if words.group(2) else "")
    match = _PERIOD.match(text.strip())
    if not match:
        raise PeriodError(f"报告期“{text}”格式不对: 月报用 YYYY-MM 或“2017年5月”，年报用 YYYY 或“2016年”")
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


_CN_DIGITS = {"〇": 0, "零": 0, "○": 0, "Ｏ": 0, "一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6,
              "七": 7, "八": 8, "九": 9}
_CN_YEAR_MONTH = re.compile(r"([〇零○Ｏ一二三四五六七八九]{4})\s*年(?:\s*([一二三四五六七八九十]{1,3})\s*月)?")
_RANGE_MONTH = re.compile(r"(\d{4})\s*年\s*\d{1,2}\s*[-—–~～至到]\s*(\d{1,2})\s*月")
_DOTTED = re.compile(r"(?<!\d)(\d{4})\s*[.．/](\d{1,2})(?![\d.])")
_ISO_DATE = re.compile(r"(?<!\d)(\d{4})-(\d{2})-(\d{2})(?:[ T]00:00(?::00)?)?(?!\d)")


def _cn_month(text: str) -> int | None:
    if text == "十":
        return 10
    if text.startswith("十"):
        return 10 + _CN_DIGITS.get(text[1:], 99)
    return _CN_DIGITS.get(text)


def periods_in_title(title: str, period_type: str) -> tuple[Period, ...]:
    """Every period a form's title can be read as; empty when it states none.

    ``丹巴县2017年5月…`` → 2017-05; ``2017年1-5月`` → 2017-05 (the period ends in May);
    ``二〇一七年五月`` → 2017-05; ``2017.5`` → 2017-05, and ``2017.1`` → 2017-01 *or* 2017-10,
    because Excel shows the number 2017.10 as 2017.1. A title agrees with the declared period
    when the declared period is among these.
    """
    found: list[Period] = []
    for match in _RANGE_MONTH.finditer(title):
        found.append(Period(int(match.group(1)), int(match.group(2))))
    for match in _TITLE_MONTH.finditer(title):
        found.append(Period(int(match.group(1)), int(match.group(2))))
    for match in _CN_YEAR_MONTH.finditer(title):
        year = int("".join(str(_CN_DIGITS[c]) for c in match.group(1)))
        month = _cn_month(match.group(2)) if match.group(2) else None
        found.append(Period(year, month if month and 1 <= month <= 12 else None))
    if not found:  # a date cell (an Excel serial shown as a date) stands for its month
        found.extend(Period(int(m.group(1)), int(m.group(2))) for m in _ISO_DATE.finditer(title))
    if not found:
        for match in _DOTTED.finditer(title):
            year, digits = int(match.group(1)), match.group(2)
            found.append(Period(year, int(digits)))
            if digits == "1":
                found.append(Period(year, 10))
    if not found:
        found.extend(Period(int(m.group(1))) for m in _TITLE_YEAR.finditer(title))
    if period_type == "year":
        found = [Period(p.year) for p in found]
    else:
        found = [p for p in found if p.month is not None and 1 <= p.month <= 12]
    return tuple(dict.fromkeys(found))


def period_in_title(title: str, period_type: str) -> Period | None:
    """The period a title states when it is unambiguous, else None."""
    candidates = periods_in_title(title, period_type)
    return candidates[0] if len(candidates) == 1 else None


#: No return is plausible before this day unless DUIKOU_PROGRAMME_START says so: the east–west paired
#: assistance began in 1996, and no county keeps returns of this programme from before then. A
#: period outside the window is a typing slip (``9999-12``, ``0000-01``) and is refused at every door.
EARLIEST_PLAUSIBLE = date(1996, 1, 1)


def plausible_window(period_type: str, today: date, programme_start: date | None = None) -> tuple[Period, Period]:
    """(first, last) period a return may be submitted for: from the programme start (or
    :data:`EARLIEST_PLAUSIBLE`) to one period after the one ``today`` falls in."""
    start = programme_start or EARLIEST_PLAUSIBLE
    if period_type == "year":
        return Period(start.year), Period(today.year + 1)
    ahead = Period(today.year + 1, 1) if today.month == 12 else Period(today.year, today.month + 1)
    return Period(start.year, start.month), ahead


def check_plausible(period: Period, period_type: str, today: date, programme_start: date | None = None) -> Period:
    """``period`` itself, or :class:`PeriodError` naming the window it falls outside."""
    first, last = plausible_window(period_type, today, programme_start)
    if not first <= period <= last:
        raise PeriodError(f"报告期“{period.label}”不在可受理范围 {first.label} 至 {last.label} 内 "
                          f"(period {period.label} is outside {first.label}..{last.label})")
    return period


def parse_plausible_period(
    text: str, period_type: str, today: date, programme_start: date | None = None
) -> Period:
    """:func:`parse_declared_period`, then :func:`check_plausible`: what every door (intake, CLI, landing scan) uses."""
    return check_plausible(parse_declared_period(text, period_type), period_type, today, programme_start)
