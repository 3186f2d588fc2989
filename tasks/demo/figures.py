"""The demo county's fixed numbers, and the tools that make invented values land on them exactly.

The article's figures (domain.md §4) the demo must end in, the demo's calendar, the story's
townships by pinyin, and what every department's values are built with: string-seeded
:class:`random.Random` streams (independent of PYTHONHASHSEED), largest-remainder
:func:`allocate` (exact sums, so county figures come out to the cent), 本年累计 running totals,
township frames in declaration order and the forms' rounding. Values: ``tasks.demo.departments``
and ``tasks.demo.values``; files: ``tasks.demo.data``.
"""

from __future__ import annotations

import math
import numbers
import random
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import pandas as pd

from expectations.declaration import Declaration
from tasks.demo.form_writer import township_codes
from warehouse.load import parse_period

# --------------------------------------------------------------------------------------------
# The article's figures — domain.md §4 [ART]. Everything else in the demo is invented [A].
# --------------------------------------------------------------------------------------------

#: 农牧民人均纯收入 2016, county, 元 [ART]
NET_INCOME_2016_YUAN = 10827
#: 2011 value [A]: the article gives "2.61× 2011" (10827/2.61 ≈ 4148) and "21.1 % a year".
#: 4150 keeps both: 10827/4150 = 2.609 → 2.61×, 2.609^(1/5) − 1 = 21.14 % → 21.1 % (4148 gives 21.2 %).
NET_INCOME_2011_YUAN = 4150
#: 贫困发生率 2011 → 2016, % [ART]
POVERTY_INCIDENCE_PCT: dict[int, float] = {
    2011: 26.20,
    2012: 24.35,  # [A] years in between: a smooth decline
    2013: 22.10,  # [A]
    2014: 19.46,  # [A]
    2015: 16.21,  # [A]
    2016: 12.78,
}
#: 旅游总收入 2016 = 8.69 亿元 [ART], in 0.01 万元 units (the form's precision)
TOURISM_REVENUE_2016_CENTS = 8_690_000
#: 2015 [A]: "+17 % y/y" [ART] → 8.69/1.17 ≈ 7.43 亿; 74270.00 万元 gives +17.0 %
TOURISM_REVENUE_2015_CENTS = 7_427_000
#: May 2017 job fair [ART]: "10000+ posts" (10236 is our [A] exact figure) and 775 人次 hired
JOB_FAIR_2017_05_POSTS = 10236
JOB_FAIR_2017_05_HIRES = 775
#: skills training 3540 人次 and 564 mid/senior-grade workers, cumulative to 2017-12 [ART].
#: The demo's returns stop at 2017-11; December 2017 is assumed [A] to add the rest.
SKILLS_TRAINING_TO_2017_12 = 3540
SKILLS_TRAINING_DEC_2017_ASSUMED = 150
MID_SENIOR_TO_2017_12 = 564
MID_SENIOR_DEC_2017_ASSUMED = 24
SKILLS_TRAINING_DEMO_TOTAL = SKILLS_TRAINING_TO_2017_12 - SKILLS_TRAINING_DEC_2017_ASSUMED  # 3390
MID_SENIOR_DEMO_TOTAL = MID_SENIOR_TO_2017_12 - MID_SENIOR_DEC_2017_ASSUMED  # 540

# --------------------------------------------------------------------------------------------
# Calendar of the demo
# --------------------------------------------------------------------------------------------

DEPARTMENTS: tuple[str, ...] = ("poverty", "education", "health", "labour", "tourism")
MONTHLY_DEPARTMENTS: tuple[str, ...] = ("education", "health", "labour", "tourism")
POVERTY_YEARS: tuple[int, ...] = (2011, 2012, 2013, 2014, 2015, 2016)
MONTHS: tuple[str, ...] = tuple(
    f"{y}-{m:02d}" for y in (2015, 2016, 2017) for m in range(1, 13) if (y, m) <= (2017, 11)
)
STORY_CODE = dict(  # township codes of the story's townships, by pinyin
    zhanggu="513323100",
    badi="513323101",
    geshiza="513323102",
    bawang="513323201",
    niexia="513323202",
    bianer="513323204",
    suopo="513323209",
    zhonglu="513323210",
)

# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def rng_for(seed: int, *parts: object) -> random.Random:
    """An independent stream per purpose: changing one department never shifts another."""
    return random.Random("|".join([str(seed), *map(str, parts)]))


def allocate(total: int, weights: Sequence[float], caps: Sequence[int] | None = None) -> list[int]:
    """Largest-remainder apportionment: non-negative integers proportional to ``weights`` that
    sum to ``total`` exactly (optionally none above ``caps``). Exact sums are why the county
    figures come out to the cent; ties go to the earlier index, so the result is deterministic.
    """
    if total < 0:
        raise ValueError("total must be non-negative")
    n = len(weights)
    w = [Fraction(max(0.0, float(x))) for x in weights]
    cap = [int(c) for c in caps] if caps is not None else [total] * n
    out = [0] * n
    remaining = total
    while remaining > 0:
        open_ = [i for i in range(n) if w[i] > 0 and out[i] < cap[i]]
        if not open_:
            raise ValueError(f"cannot allocate {total}: weights/caps leave no room")
        s = sum(w[i] for i in open_)
        quota = {i: remaining * w[i] / s for i in open_}
        given = 0
        for i in open_:
            f = min(math.floor(quota[i]), cap[i] - out[i])
            out[i] += f
            given += f
        remaining -= given
        order = sorted((i for i in open_ if out[i] < cap[i]), key=lambda i: (-(quota[i] - math.floor(quota[i])), i))
        for i in order[:remaining]:
            out[i] += 1
        remaining -= min(remaining, len(order))
    return out


def cumsum_by_year(months: Sequence[str], increments: Sequence[int]) -> list[int]:
    """本年累计: running total that restarts every January."""
    out: list[int] = []
    running, year = 0, None
    for period, inc in zip(months, increments, strict=True):
        y = parse_period(period)[0]
        if y != year:
            running, year = 0, y
        running += inc
        out.append(running)
    return out


def township_frame(declaration: Declaration, columns: dict[str, list[Any]]) -> pd.DataFrame:
    """Township frame in declaration order: township_code, then every indicator."""
    data: dict[str, Any] = {"township_code": list(township_codes())}
    for ind in declaration.indicators:
        values = columns[ind.name]
        whole = ind.value_type == "integer" or all(isinstance(v, numbers.Integral) for v in values)
        data[ind.name] = pd.Series(values, dtype="int64" if whole else "float64")
    return pd.DataFrame(data)


def wan(cents: int) -> float:
    """0.01-万元 units → 万元 with two decimals."""
    return round(cents / 100, 2)


def wan4(units: int) -> float:
    """0.0001-万人次 units → 万人次 with four decimals."""
    return round(units / 10000, 4)


CODES = township_codes()
N = len(CODES)
