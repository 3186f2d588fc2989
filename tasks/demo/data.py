"""Demo data: the county's returns 2011–2017 as the departments would have sent them.

Why this module exists: the pipeline has no real submissions to run on, yet the demo must end
in the article's figures (domain.md §4) computed *from files* — read, normalised, validated and
aggregated — not typed in. So this module invents plausible township-level values whose county
aggregates land exactly on the article's numbers, and writes them as real forms (xlsx mostly,
some GBK / UTF-8-BOM CSV and BIFF .xls) into ``landing/<department>/<period>/``, each file dated
(mtime) on the day it "arrived". A few submissions are deliberately flawed (domain.md §7) and
followed by a correction, and one good return is restated, so the demo exercises rejection,
quarantine and supersession too. The labour bureau's person-level 劳动力实名登记表 arrives
quarterly (2017-06, 2017-09): its head counts follow the demo's own labour returns per township
(one township planted outside the reconciliation tolerance), its trainings tell the article's
people-vs-人次 story (:func:`registry_targets`; the people themselves: ``tasks.demo.registry``).

Only this module knows the article's story; the marts compute KPIs from whatever arrives.

- :func:`demo_values` — the FINAL values (what the good/correction files carry) per
  (department, period), in form units, one row per township. Tests recompute KPIs from it.
- :func:`generate_demo` — writes the files (built on :func:`demo_values` and
  :func:`registry_targets`) and returns them as :class:`GeneratedFile` in arrival order.

Everything is derived from ``seed`` through string-seeded :class:`random.Random` instances
(independent of PYTHONHASHSEED), so the same seed gives the same values and the same bytes.
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from expectations.declaration import Declaration, load_declarations
from expectations.registry_declaration import load_registry_declarations
from tasks.demo.form_writer import (
    FORMAT_SUFFIX,
    FormFormat,
    HeaderStyle,
    TotalPosition,
    form_title,
    period_start,
    township_codes,
    township_name_at,
    write_form,
)
from tasks.demo.registry import TownshipTargets, county_snapshots, write_registry_csv, write_registry_xlsx
from warehouse.load import parse_period

# --------------------------------------------------------------------------------------------
# The article's figures — domain.md §4 [ART]. Everything else in this module is invented [A].
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
#: county time: arrival datetimes are Beijing time, so mtimes do not depend on the host's zone
CST = timezone(timedelta(hours=8))

_CODE = dict(  # township codes of the story's townships, by pinyin
    zhanggu="513323100",
    badi="513323101",
    geshiza="513323102",
    bawang="513323201",
    niexia="513323202",
    bianer="513323204",
    suopo="513323209",
    zhonglu="513323210",
)

Kind = Literal["good", "flawed", "correction"]


@dataclass(frozen=True)
class GeneratedFile:
    """One file written by :func:`generate_demo`.

    ``kind``: good (loads), flawed (must be rejected or quarantined; ``note`` says why, and
    :data:`FLAWED_EXPECTED` what the pipeline should make of it) or correction (supersedes an
    earlier file of the same department and period — a fixed flawed file, or a restatement of a
    good one when ``note == "restatement"``). For good files ``note`` lists the benign quirks
    the reader must cope with (alias headers, 章谷, numbers as text, 合计 at the top …).
    ``arrived_at`` is Beijing time and equals the file's mtime.
    """

    path: Path
    department: str
    period: str
    kind: Kind
    note: str
    fmt: FormFormat
    arrived_at: datetime


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def _rng(seed: int, *parts: object) -> random.Random:
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


def _cumsum_by_year(months: Sequence[str], increments: Sequence[int]) -> list[int]:
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


def _frame(declaration: Declaration, columns: dict[str, list[Any]]) -> pd.DataFrame:
    """Township frame in declaration order: township_code, then every indicator."""
    data: dict[str, Any] = {"township_code": list(township_codes())}
    for ind in declaration.indicators:
        values = columns[ind.name]
        whole = ind.value_type == "integer" or all(isinstance(v, numbers.Integral) for v in values)
        data[ind.name] = pd.Series(values, dtype="int64" if whole else "float64")
    return pd.DataFrame(data)


def _wan(cents: int) -> float:
    """0.01-万元 units → 万元 with two decimals."""
    return round(cents / 100, 2)


def _wan4(units: int) -> float:
    """0.0001-万人次 units → 万人次 with four decimals."""
    return round(units / 10000, 4)


CODES = township_codes()
N = len(CODES)


# --------------------------------------------------------------------------------------------
# Poverty office: annual 2011–2016
# --------------------------------------------------------------------------------------------

#: agricultural-hukou population of the county [A]: ~50 000, slowly growing
AGRI_POPULATION: dict[int, int] = {
    2011: 49620,
    2012: 49870,
    2013: 50110,
    2014: 50330,
    2015: 50480,
    2016: 50640,
}
#: relative size of each township's farming population [A] (code order)
_POP_WEIGHTS = (6.5, 4.8, 4.2, 3.6, 4.0, 4.3, 2.8, 3.9, 3.0, 2.9, 4.1, 2.6, 3.1, 3.3, 3.4)
#: relative poverty incidence [A]: remote high valleys are poorer than the county seat and 甲居
_POOR_FACTORS = (0.55, 0.85, 1.05, 1.0, 0.7, 1.35, 1.25, 1.1, 1.0, 1.3, 0.8, 0.85, 1.4, 1.2, 1.3)
#: relative income [A]: the county seat and the tourist villages earn more
_INCOME_FACTORS = (1.22, 1.0, 0.95, 1.02, 1.16, 0.88, 0.9, 0.93, 0.97, 0.92, 1.08, 1.06, 0.85, 0.9, 0.87)


def _income_targets() -> dict[int, int]:
    """County means: 4150 in 2011, 10827 in 2016, geometric growth in between."""
    growth = (NET_INCOME_2016_YUAN / NET_INCOME_2011_YUAN) ** (1 / 5)
    return {y: round(NET_INCOME_2011_YUAN * growth ** (y - 2011)) for y in POVERTY_YEARS}


def _incomes(target: int, pops: list[int], factors: list[float]) -> list[int]:
    """Integer per-township incomes whose population-weighted mean is ``target`` within ±0.05."""
    total_pop = sum(pops)
    scale = target * total_pop / sum(f * p for f, p in zip(factors, pops, strict=True))
    incomes = [round(scale * f) for f in factors]
    biggest = max(range(N), key=lambda i: (pops[i], -i))
    gap = target * total_pop - sum(i * p for i, p in zip(incomes, pops, strict=True))
    incomes[biggest] += round(gap / pops[biggest])
    return incomes


def _poverty_values(seed: int) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["poverty"]
    rng = _rng(seed, "poverty")
    growth = [rng.uniform(-0.002, 0.008) for _ in range(N)]
    poor_factor = [f * rng.uniform(0.92, 1.08) for f in _POOR_FACTORS]
    income_factor = [f * rng.uniform(0.97, 1.03) for f in _INCOME_FACTORS]
    targets = _income_targets()
    out: dict[str, pd.DataFrame] = {}
    previous_poor: list[int] | None = None
    for year in POVERTY_YEARS:
        k = year - 2011
        pops = allocate(AGRI_POPULATION[year], [w * (1 + g) ** k for w, g in zip(_POP_WEIGHTS, growth, strict=True)])
        poor_total = round(POVERTY_INCIDENCE_PCT[year] * AGRI_POPULATION[year] / 100)
        converge = 1 - 0.06 * k  # remote townships catch up over the years
        poor = allocate(
            poor_total,
            [p * (1 + (f - 1) * converge) for p, f in zip(pops, poor_factor, strict=True)],
            caps=pops,
        )
        if previous_poor is None:  # 2010 year-end [A]: incidence ~28.6 %
            previous_poor = [round(p * 1.09) for p in poor]
        reentries = round(0.03 * sum(previous_poor))
        exited_total = max(0, sum(previous_poor) - poor_total + reentries)
        exited = allocate(exited_total, [float(p) for p in previous_poor], caps=previous_poor)
        yearly_factor = [f * rng.uniform(0.99, 1.01) for f in income_factor]
        incomes = _incomes(targets[year], pops, yearly_factor)
        out[str(year)] = _frame(
            decl,
            {
                "agricultural_population_persons": pops,
                "registered_poor_year_end_persons": poor,
                "exited_poverty_persons": exited,
                "net_income_per_capita_yuan": incomes,
            },
        )
        previous_poor = poor
    return out


# --------------------------------------------------------------------------------------------
# Tourism: monthly revenue with strong seasonality
# --------------------------------------------------------------------------------------------

#: month weights [K/A]: 梨花 in spring, summer, October Golden Week and 红叶; quiet winters
_SEASON = {
    1: 3.2,
    2: 4.6,
    3: 8.4,
    4: 11.0,
    5: 9.6,
    6: 6.8,
    7: 9.0,
    8: 10.2,
    9: 7.6,
    10: 14.2,
    11: 8.8,
    12: 3.4,
}
#: township share of revenue [A]: 聂呷乡 (甲居藏寨), 章谷镇, 梭坡乡 (古碉), 中路乡 lead
_TOURISM_SHARE = (17.0, 3.2, 2.6, 3.0, 29.0, 3.4, 1.6, 2.0, 2.2, 2.0, 12.0, 10.5, 1.4, 2.4, 2.2)
_SPEND_YUAN = {_CODE["zhanggu"]: 720.0, _CODE["niexia"]: 640.0, _CODE["suopo"]: 560.0, _CODE["zhonglu"]: 590.0}
_OVERNIGHT = {_CODE["zhanggu"]: 0.55, _CODE["niexia"]: 0.5, _CODE["zhonglu"]: 0.45, _CODE["suopo"]: 0.3}
_TICKETS = {
    _CODE["niexia"]: 0.14,
    _CODE["suopo"]: 0.09,
    _CODE["zhonglu"]: 0.07,
    _CODE["zhanggu"]: 0.02,
    _CODE["bianer"]: 0.03,
}
_GUESTHOUSES = {  # (2015-01, 2017-11) [A]
    _CODE["niexia"]: (72, 128),
    _CODE["zhanggu"]: (35, 52),
    _CODE["suopo"]: (26, 48),
    _CODE["zhonglu"]: (24, 45),
    _CODE["badi"]: (6, 12),
    _CODE["bianer"]: (5, 14),
    _CODE["geshiza"]: (4, 9),
    _CODE["bawang"]: (5, 10),
}
_SCENIC = {_CODE["niexia"], _CODE["suopo"], _CODE["zhonglu"]}


def _season_modifier(code: str, month: int) -> float:
    if code in _SCENIC:
        return {3: 1.2, 4: 1.2, 10: 1.15, 11: 1.15, 12: 0.8, 1: 0.8, 2: 0.85}.get(month, 1.0)
    if code == _CODE["zhanggu"]:
        return {12: 1.3, 1: 1.3, 2: 1.25, 4: 0.9, 10: 0.9}.get(month, 1.0)
    if code == _CODE["bianer"]:  # 党岭 hiking
        return {7: 1.5, 8: 1.5, 12: 0.5, 1: 0.5, 2: 0.6}.get(month, 1.0)
    return 1.0


def _tourism_revenue_cents(seed: int) -> dict[str, list[int]]:
    """Revenue per month per township in 0.01 万元; 2015 and 2016 sum to the article's totals."""
    rng = _rng(seed, "tourism", "revenue")
    year_totals = {2015: TOURISM_REVENUE_2015_CENTS, 2016: TOURISM_REVENUE_2016_CENTS}
    # 2017 [A]: growth goes on (~16 %); the demo's returns stop in November
    season_share = sum(_SEASON[m] for m in range(1, 12)) / sum(_SEASON.values())
    year_totals[2017] = round(TOURISM_REVENUE_2016_CENTS * 1.16 * season_share)
    out: dict[str, list[int]] = {}
    for year, total in year_totals.items():
        months = [p for p in MONTHS if p.startswith(str(year))]
        month_cents = allocate(total, [_SEASON[parse_period(p)[1] or 1] * rng.uniform(0.92, 1.08) for p in months])
        for period, cents in zip(months, month_cents, strict=True):
            month = parse_period(period)[1] or 1
            weights = [
                s * _season_modifier(code, month) * rng.uniform(0.9, 1.1)
                for s, code in zip(_TOURISM_SHARE, CODES, strict=True)
            ]
            out[period] = allocate(cents, weights)
    return out


def _tourism_values(seed: int) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["tourism"]
    revenue = _tourism_revenue_cents(seed)
    rng = _rng(seed, "tourism", "other")
    spend = [_SPEND_YUAN.get(c, rng.uniform(420, 520)) for c in CODES]
    overnight_share = [_OVERNIGHT.get(c, rng.uniform(0.2, 0.35)) for c in CODES]
    ticket_share = [_TICKETS.get(c, rng.choice([0.0, 0.0, 0.01, 0.02])) for c in CODES]
    houses = [_GUESTHOUSES.get(c, (rng.randint(2, 5), rng.randint(5, 9))) for c in CODES]
    beds_per_house = [rng.uniform(8.5, 12.5) for _ in CODES]
    staff_base = [260 if c == _CODE["zhanggu"] else rng.randint(8, 40) for c in CODES]
    poor_staff_share = [rng.uniform(0.18, 0.35) for _ in CODES]
    out: dict[str, pd.DataFrame] = {}
    for step, period in enumerate(MONTHS):
        cols: dict[str, list[Any]] = {ind.name: [] for ind in decl.indicators}
        for i in range(N):
            cents = revenue[period][i]
            per_visit = min(860.0, max(330.0, spend[i] * rng.uniform(0.85, 1.15)))
            visit_units = max(1, round(cents * 100 / per_visit))  # 万元/(元/人次) → 万人次 × 10^4
            overnight_units = math.floor(visit_units * min(0.9, overnight_share[i] * rng.uniform(0.85, 1.1)))
            tickets = math.floor(cents * ticket_share[i] * rng.uniform(0.9, 1.1))
            start, end = houses[i]
            guesthouses = start + math.floor((end - start) * step / (len(MONTHS) - 1))
            beds = round(guesthouses * beds_per_house[i]) + 2
            staff = round(guesthouses * 3.2) + staff_base[i]
            poor_staff = round(staff * poor_staff_share[i])
            households = round(poor_staff * 0.9 + guesthouses * 0.4)
            cols["visitors_person_times"].append(_wan4(visit_units))
            cols["overnight_visitors_person_times"].append(_wan4(overnight_units))
            cols["tourism_revenue_yuan"].append(_wan(cents))
            cols["ticket_revenue_yuan"].append(_wan(tickets))
            cols["guesthouses"].append(guesthouses)
            cols["beds"].append(beds)
            cols["tourism_employees_persons"].append(staff)
            cols["tourism_employees_poor_persons"].append(poor_staff)
            cols["poor_households_lifted"].append(households)
            cols["poor_persons_lifted"].append(round(households * 3.3))
        out[period] = _frame(decl, cols)
    return out


# --------------------------------------------------------------------------------------------
# Labour: training, transfers, job fairs
# --------------------------------------------------------------------------------------------

_TRAINING_SEASON = {
    1: 1.6,
    2: 1.6,
    3: 1.6,
    4: 1.0,
    5: 1.0,
    6: 0.55,
    7: 0.55,
    8: 0.55,
    9: 0.55,
    10: 1.0,
    11: 1.6,
    12: 1.6,
}
_TRAINING_YEAR = {2015: 0.8, 2016: 1.0, 2017: 1.25}
_TRANSFER_SEASON = {
    1: 0.6,
    2: 2.2,
    3: 2.6,
    4: 1.1,
    5: 0.8,
    6: 0.6,
    7: 0.5,
    8: 0.5,
    9: 0.7,
    10: 0.6,
    11: 0.5,
    12: 0.3,
}
#: 转移就业 (year-to-date at the last return of the year) [A]
_TRANSFER_TOTAL = {2015: 10860, 2016: 11420, 2017: 11780}
#: small job fairs besides May 2017 [A]: (posts, hires); 2017 has only the May fair so the
#: year's job-fair KPIs equal the article's event
_SMALL_JOB_FAIRS = {"2015-03": (620, 48), "2016-02": (880, 67), "2016-09": (350, 26)}
#: the restated return: labour 2016-06, one township's 技能培训人次 +5 a week later
RESTATED_PERIOD = "2016-06"
RESTATEMENT_DELTA = 5


def _labour_values(seed: int, poverty: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], str]:
    """Final labour values, and the township whose 2016-06 training figure is restated."""
    decl = load_declarations()["labour"]
    rng = _rng(seed, "labour")
    labour_jitter = [rng.uniform(0.55, 0.63) for _ in CODES]
    poor_jitter = [rng.uniform(0.5, 0.6) for _ in CODES]
    poor_transfer_boost = [rng.uniform(1.0, 1.4) for _ in CODES]
    # training: 3390 person-times over 35 months, by season and a growing programme
    month_weights = [
        _TRAINING_SEASON[parse_period(p)[1] or 1] * _TRAINING_YEAR[parse_period(p)[0]] * rng.uniform(0.85, 1.15)
        for p in MONTHS
    ]
    training_by_month = allocate(SKILLS_TRAINING_DEMO_TOTAL, month_weights)
    transfer_month: dict[str, int] = {}
    for year, total in _TRANSFER_TOTAL.items():
        months = [p for p in MONTHS if p.startswith(str(year))]
        for p, v in zip(
            months,
            allocate(total, [_TRANSFER_SEASON[parse_period(p)[1] or 1] * rng.uniform(0.9, 1.1) for p in months]),
            strict=True,
        ):
            transfer_month[p] = v

    cells: dict[str, dict[str, list[int]]] = {}
    for period, training_total in zip(MONTHS, training_by_month, strict=True):
        year = parse_period(period)[0]
        pov = poverty[str(min(year, 2016))]
        prev = poverty[str(min(year - 1, 2016))]
        labour_total = [
            round(p * j) for p, j in zip(pov["agricultural_population_persons"], labour_jitter, strict=True)
        ]
        labour_poor = [
            min(t, round(p * j))
            for t, p, j in zip(labour_total, prev["registered_poor_year_end_persons"], poor_jitter, strict=True)
        ]
        training = allocate(training_total, [t * rng.uniform(0.4, 1.6) for t in labour_total])
        if period == RESTATED_PERIOD:  # the restated township must have trained at least 5 first
            top = max(range(N), key=lambda i: (training[i], -i))
            while training[top] < RESTATEMENT_DELTA:
                donor = max((i for i in range(N) if i != top), key=lambda i: (training[i], -i))
                training[donor] -= 1
                training[top] += 1
        certified = [math.floor(t * rng.uniform(0.5, 0.85)) for t in training]
        transfers = allocate(transfer_month[period], [t * rng.uniform(0.8, 1.2) for t in labour_total])
        # poor labour migrates somewhat more than its share of the labour force [A]
        poor_transfers = [
            math.floor(t * min(0.9, lp / lt * s))
            for t, lp, lt, s in zip(transfers, labour_poor, labour_total, poor_transfer_boost, strict=True)
        ]
        local = allocate(rng.randint(35, 75), [t * rng.uniform(0.5, 1.5) for t in labour_total])
        if period == "2017-05":
            posts = allocate(JOB_FAIR_2017_05_POSTS, [t * rng.uniform(0.8, 1.2) for t in labour_total])
            hires = allocate(JOB_FAIR_2017_05_HIRES, [p * rng.uniform(0.8, 1.2) for p in posts], caps=posts)
        elif period in _SMALL_JOB_FAIRS:
            n_posts, n_hires = _SMALL_JOB_FAIRS[period]
            posts = allocate(n_posts, [t * rng.uniform(0.5, 1.5) for t in labour_total])
            hires = allocate(n_hires, [float(p) for p in posts], caps=posts)
        else:
            posts, hires = [0] * N, [0] * N
        cells[period] = {
            "rural_labour_total_persons": labour_total,
            "rural_labour_poor_persons": labour_poor,
            "transferred_increment": transfers,
            "transferred_poor_increment": poor_transfers,
            "local_employment_person_times": local,
            "skills_training_person_times": training,
            "certified_persons": certified,
            "job_fair_posts": posts,
            "job_fair_hires_person_times": hires,
        }
    # the restated township: the most-trained one in 2016-06; the first return said 5 fewer,
    # and its certificates must fit under that smaller figure too
    restated = cells[RESTATED_PERIOD]
    idx = max(range(N), key=lambda i: (restated["skills_training_person_times"][i], -i))
    restated["certified_persons"][idx] = min(
        restated["certified_persons"][idx], restated["skills_training_person_times"][idx] - RESTATEMENT_DELTA
    )
    # mid/senior-grade certificates: 540 over the period, never above the month's certificates
    flat_cert = [c for p in MONTHS for c in cells[p]["certified_persons"]]
    flat_mid = allocate(MID_SENIOR_DEMO_TOTAL, [float(c) for c in flat_cert], caps=flat_cert)
    out: dict[str, pd.DataFrame] = {}
    ytd_total = [_cumsum_by_year(MONTHS, [cells[p]["transferred_increment"][i] for p in MONTHS]) for i in range(N)]
    ytd_poor = [_cumsum_by_year(MONTHS, [cells[p]["transferred_poor_increment"][i] for p in MONTHS]) for i in range(N)]
    for m, period in enumerate(MONTHS):
        c = cells[period]
        out[period] = _frame(
            decl,
            {
                "rural_labour_total_persons": c["rural_labour_total_persons"],
                "rural_labour_poor_persons": c["rural_labour_poor_persons"],
                "transferred_ytd_total_persons": [ytd_total[i][m] for i in range(N)],
                "transferred_month_total_persons": c["transferred_increment"],
                "transferred_ytd_poor_persons": [ytd_poor[i][m] for i in range(N)],
                "local_employment_person_times": c["local_employment_person_times"],
                "skills_training_person_times": c["skills_training_person_times"],
                "certified_persons": c["certified_persons"],
                "certified_mid_senior_persons": flat_mid[m * N : (m + 1) * N],
                "job_fair_posts": c["job_fair_posts"],
                "job_fair_hires_person_times": c["job_fair_hires_person_times"],
            },
        )
    return out, CODES[idx]


# --------------------------------------------------------------------------------------------
# Education
# --------------------------------------------------------------------------------------------

#: a handful of township-months with one dropout [A]: they raise the 控辍保学 warning
_DROPOUTS = (
    ("2015-04", 12),
    ("2015-11", 5),
    ("2016-05", 9),
    ("2016-10", 13),
    ("2017-03", 6),
    ("2017-06", 14),
)


def _education_values(seed: int, poverty: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["education"]
    rng = _rng(seed, "education")
    school_year: dict[int, dict[str, list[int]]] = {}
    for start in (2014, 2015, 2016, 2017):  # school years start in September
        pov = poverty[str(min(start, 2016))]
        incidence = [
            p / a
            for p, a in zip(
                pov["registered_poor_year_end_persons"], pov["agricultural_population_persons"], strict=True
            )
        ]
        age = [round(a * rng.uniform(0.135, 0.15)) for a in pov["agricultural_population_persons"]]
        primary = [round(a * rng.uniform(0.6, 0.65)) for a in age]
        junior = [round(a * rng.uniform(0.33, 0.355)) for a in age]
        poor = [
            min(p + j, round((p + j) * r * rng.uniform(1.05, 1.25)))
            for p, j, r in zip(primary, junior, incidence, strict=True)
        ]
        school_year[start] = {"age": age, "primary": primary, "junior": junior, "poor": poor}
    dropouts = {(p, i) for p, i in _DROPOUTS}
    per_head = [rng.uniform(800, 1250) for _ in CODES]
    rows: dict[str, dict[str, list[int]]] = {}
    for period in MONTHS:
        year, month = parse_period(period)
        month = month or 1
        sy = school_year[year if month >= 9 else year - 1]
        primary = [max(0, p + rng.choice((0, 0, 0, 0, 0, 1, -1))) for p in sy["primary"]]
        junior = [max(0, j + rng.choice((0, 0, 0, 0, 0, 0, 1, -1))) for j in sy["junior"]]
        enrolled = [p + j for p, j in zip(primary, junior, strict=True)]
        drop = [1 if (period, i) in dropouts else 0 for i in range(N)]
        returned = [1 if month > 1 and (f"{year}-{month - 1:02d}", i) in dropouts else 0 for i in range(N)]
        semester = month in (3, 9)
        aid = [
            (sy["poor"][i] + round(enrolled[i] * rng.uniform(0.05, 0.12))) if semester else rng.choice((0, 0, 0, 1, 2))
            for i in range(N)
        ]
        aid_cents = [round(a * per_head[i] * rng.uniform(0.95, 1.05) / 100) for i, a in enumerate(aid)]
        summer = month in (7, 8)
        teachers = [
            rng.randint(20, 40)
            if summer and i == 0
            else rng.randint(0, 8)
            if summer
            else rng.choice((0, 0, 0, 1, 2, 3))
            for i in range(N)
        ]
        rows[period] = {
            "school_age_children_persons": sy["age"],
            "enrolled_primary_persons": primary,
            "enrolled_junior_persons": junior,
            "enrolled_total_persons": enrolled,
            "enrolled_poor_persons": [min(p, e) for p, e in zip(sy["poor"], enrolled, strict=True)],
            "dropouts_persons": drop,
            "returned_increment": returned,
            "nutrition_beneficiaries_persons": [max(0, e - rng.randint(0, 4)) for e in enrolled],
            "aid_increment": aid,
            "aid_cents_increment": aid_cents,
            "teacher_training_person_times": teachers,
        }
    cumulative = {
        name: [_cumsum_by_year(MONTHS, [rows[p][name][i] for p in MONTHS]) for i in range(N)]
        for name in ("returned_increment", "aid_increment", "aid_cents_increment")
    }
    out: dict[str, pd.DataFrame] = {}
    for m, period in enumerate(MONTHS):
        r = rows[period]
        out[period] = _frame(
            decl,
            {
                **{k: v for k, v in r.items() if not k.endswith("_increment")},
                "returned_to_school_ytd_persons": [cumulative["returned_increment"][i][m] for i in range(N)],
                "student_aid_ytd_person_times": [cumulative["aid_increment"][i][m] for i in range(N)],
                "student_aid_ytd_yuan": [_wan(cumulative["aid_cents_increment"][i][m]) for i in range(N)],
            },
        )
    return out


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------

#: township-months [A] where insurance lags the register (warning: coverage below 100 %)
_INSURANCE_GAPS = {
    ("2015-02", 6): 3,
    ("2015-07", 13): 1,
    ("2016-01", 9): 2,
    ("2016-11", 3): 1,
    ("2017-04", 14): 2,
}
#: township-months [A] with an out-of-pocket share above 10 % (warning)
_HIGH_OUT_OF_POCKET = {("2015-05", 10), ("2016-07", 2), ("2017-09", 11)}
#: the planted outlier month [A]: 丹东乡's 住院人次 in August 2017 is four times its usual (an
#: outbreak, or a typing slip); the history-aware check flags it (warning) and it loads flagged
PLANTED_OUTLIER = ("health", "2017-08", "513323205", "inpatient_person_times")
PLANTED_OUTLIER_FACTOR = 4
_SIGNING = {2015: (0.62, 0.8), 2016: (0.85, 0.97), 2017: (0.96, 1.0)}


def _health_values(seed: int, poverty: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["health"]
    rng = _rng(seed, "health")
    rows: dict[str, dict[str, list[int]]] = {}
    yearly: dict[int, dict[str, list[Any]]] = {}
    for year in (2015, 2016, 2017):
        # the register at the start of the year: the poverty office's previous year-end figure
        poor = [int(p) for p in poverty[str(year - 1)]["registered_poor_year_end_persons"]]
        months = [p for p in MONTHS if p.startswith(str(year))]
        lo, hi = _SIGNING[year]
        check_target = [round(p * rng.uniform(0.85, 0.95)) for p in poor]
        check_weights = [rng.uniform(0.6, 1.0) * (2.5 if p[-2:] in ("04", "05", "06") else 1.0) for p in months]
        checks = [allocate(t, check_weights) for t in check_target]
        yearly[year] = {
            "poor": poor,
            "sign_start": [rng.uniform(lo, hi - 0.05) for _ in CODES],
            "checks": checks,
            "illness_households": [round(p / 3.4 * rng.uniform(0.14, 0.24)) for p in poor],
        }
    for period in MONTHS:
        year, month = parse_period(period)
        month = month or 1
        y = yearly[year]
        poor = y["poor"]
        insured = [p - _INSURANCE_GAPS.get((period, i), 0) for i, p in enumerate(poor)]
        hi = _SIGNING[year][1]
        signed = [
            min(p, math.floor(p * (s + (hi - s) * (month - 1) / 11)))
            for p, s in zip(poor, y["sign_start"], strict=True)
        ]
        inpatients = [max(1, round(p * 0.011 * rng.uniform(0.6, 1.4))) for p in poor]
        if period == PLANTED_OUTLIER[1]:
            spike = CODES.index(PLANTED_OUTLIER[2])
            inpatients[spike] *= PLANTED_OUTLIER_FACTOR  # after the draws: no other value moves
        cost = [max(30, round(n * rng.uniform(3200, 7800) / 100)) for n in inpatients]
        out_of_pocket = [
            round(c * rng.uniform(0.105, 0.125))
            if (period, i) in _HIGH_OUT_OF_POCKET
            else math.floor(c * rng.uniform(0.045, 0.092))
            for i, c in enumerate(cost)
        ]
        rows[period] = {
            "poor_population_persons": poor,
            "insured_persons": insured,
            "family_doctor_signed_persons": signed,
            "checkup_increment": [y["checks"][i][month - 1] for i in range(N)],
            "inpatient_person_times": inpatients,
            "cost": cost,
            "oop": out_of_pocket,
            "serious_illness_treated_persons": [rng.choice((0, 0, 0, 1, 1, 2, 3)) for _ in CODES],
            "households_poor_due_to_illness": y["illness_households"],
            "chenghua_medical_experts_person_times": [
                rng.randint(4, 8) if i == 0 else rng.choice((0, 0, 0, 0, 1, 2)) for i in range(N)
            ],
        }
    checkups = [_cumsum_by_year(MONTHS, [rows[p]["checkup_increment"][i] for p in MONTHS]) for i in range(N)]
    out: dict[str, pd.DataFrame] = {}
    for m, period in enumerate(MONTHS):
        r = rows[period]
        out[period] = _frame(
            decl,
            {
                "poor_population_persons": r["poor_population_persons"],
                "insured_persons": r["insured_persons"],
                "family_doctor_signed_persons": r["family_doctor_signed_persons"],
                "health_checkups_ytd_persons": [checkups[i][m] for i in range(N)],
                "inpatient_person_times": r["inpatient_person_times"],
                "inpatient_cost_yuan": [_wan(c) for c in r["cost"]],
                "reimbursed_yuan": [_wan(c - o) for c, o in zip(r["cost"], r["oop"], strict=True)],
                "out_of_pocket_yuan": [_wan(o) for o in r["oop"]],
                "serious_illness_treated_persons": r["serious_illness_treated_persons"],
                "households_poor_due_to_illness": r["households_poor_due_to_illness"],
                "insurance_rate_pct": [
                    round(ins / poor * 100, 1) if poor else 100.0
                    for ins, poor in zip(r["insured_persons"], r["poor_population_persons"], strict=True)
                ],
                "chenghua_medical_experts_person_times": r["chenghua_medical_experts_person_times"],
            },
        )
    return out


# --------------------------------------------------------------------------------------------
# All final values
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def _final_values(seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], str]:
    poverty = _poverty_values(seed)
    labour, restated_code = _labour_values(seed, poverty)
    values: dict[tuple[str, str], pd.DataFrame] = {}
    values.update({("poverty", p): f for p, f in poverty.items()})
    values.update({("education", p): f for p, f in _education_values(seed, poverty).items()})
    values.update({("health", p): f for p, f in _health_values(seed, poverty).items()})
    values.update({("labour", p): f for p, f in labour.items()})
    values.update({("tourism", p): f for p, f in _tourism_values(seed).items()})
    _verify_story(values)
    return values, restated_code


def story_figures(values: dict[tuple[str, str], pd.DataFrame]) -> dict[str, float]:
    """The article's county figures as the demo's final values give them (unrounded)."""

    def poverty(year: int) -> tuple[float, float]:
        f = values[("poverty", str(year))]
        pop = f["agricultural_population_persons"]
        income = float((f["net_income_per_capita_yuan"] * pop).sum() / pop.sum())
        return income, float(f["registered_poor_year_end_persons"].sum() / pop.sum() * 100)

    def total(dept: str, name: str, months: Sequence[str]) -> float:
        return float(sum(values[(dept, p)][name].sum() for p in months))

    def year(y: int) -> list[str]:
        return [p for p in MONTHS if p.startswith(str(y))]

    (income_2011, incidence_2011), (income_2016, incidence_2016) = poverty(2011), poverty(2016)
    return {
        "net_income_2011_yuan": income_2011,
        "net_income_2016_yuan": income_2016,
        "net_income_multiple": income_2016 / income_2011,
        "net_income_cagr_pct": ((income_2016 / income_2011) ** (1 / 5) - 1) * 100,
        "poverty_incidence_2011_pct": incidence_2011,
        "poverty_incidence_2016_pct": incidence_2016,
        "tourism_revenue_2015_wan": total("tourism", "tourism_revenue_yuan", year(2015)),
        "tourism_revenue_2016_wan": total("tourism", "tourism_revenue_yuan", year(2016)),
        "job_fair_2017_05_posts": total("labour", "job_fair_posts", ["2017-05"]),
        "job_fair_2017_05_hires": total("labour", "job_fair_hires_person_times", ["2017-05"]),
        "skills_training_person_times": total("labour", "skills_training_person_times", MONTHS),
    }


def _verify_story(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    """Fail loudly, whatever the seed, if the figures drift from the article (domain.md §4)."""
    f = story_figures(values)
    checks = {
        "income 2016 rounds to 10827": round(f["net_income_2016_yuan"]) == NET_INCOME_2016_YUAN,
        "income 2011 is 4150 ± 1": abs(f["net_income_2011_yuan"] - NET_INCOME_2011_YUAN) <= 1,
        "multiple rounds to 2.61": round(f["net_income_multiple"], 2) == 2.61,
        "CAGR rounds to 21.1 %": round(f["net_income_cagr_pct"], 1) == 21.1,
        "incidence 2011 is 26.20 %": round(f["poverty_incidence_2011_pct"], 2) == POVERTY_INCIDENCE_PCT[2011],
        "incidence 2016 is 12.78 %": round(f["poverty_incidence_2016_pct"], 2) == POVERTY_INCIDENCE_PCT[2016],
        "tourism 2015": round(f["tourism_revenue_2015_wan"] * 100) == TOURISM_REVENUE_2015_CENTS,
        "tourism 2016": round(f["tourism_revenue_2016_wan"] * 100) == TOURISM_REVENUE_2016_CENTS,
        "job fair posts": f["job_fair_2017_05_posts"] == JOB_FAIR_2017_05_POSTS,
        "job fair hires": f["job_fair_2017_05_hires"] == JOB_FAIR_2017_05_HIRES,
        "skills training": f["skills_training_person_times"] == SKILLS_TRAINING_DEMO_TOTAL,
    }
    broken = [name for name, ok in checks.items() if not ok]
    if broken:
        raise AssertionError(f"demo values miss the article's figures: {broken}")


def demo_values(seed: int = 2017) -> dict[tuple[str, str], pd.DataFrame]:
    """The FINAL values per (department, period): what the good and correction files carry.

    One row per township in code order; columns ``township_code`` then every declared indicator,
    in FORM units exactly as written (万元 with 2 decimals, 万人次 with 4, counts as ints).
    Superseded files (flawed ones, the first labour 2016-06 return) are not here.
    """
    values, _ = _final_values(seed)
    return {key: frame.copy() for key, frame in values.items()}


def restated_township(seed: int = 2017) -> str:
    """Code of the township whose labour 2016-06 技能培训人次 is restated (+5)."""
    return _final_values(seed)[1]


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

_SIGNATORIES: dict[str, tuple[str, str, str]] = {  # invented names [A]
    "education": ("泽仁拉姆", "李晓燕", "杨建华"),
    "health": ("王丽", "格绒降措", "陈志刚"),
    "labour": ("刘洋", "扎西", "周国强"),
    "tourism": ("阿依", "张海", "罗布"),
    "poverty": ("何静", "巴桑", "赵德明"),
}
_FULLWIDTH_DIGITS = str.maketrans("0123456789", "０１２３４５６７８９")
#: header-writing habits of the plain returns and how common they are [A]
HEADER_HABITS: tuple[HeaderStyle, ...] = ("declared", "fullwidth", "wrapped", "messy")
HEADER_HABIT_WEIGHTS = (55, 15, 15, 15)


@dataclass
class _Slot:
    """One file to write: which values, how they are dressed, when it arrives."""

    department: str
    period: str
    kind: Kind
    arrived_at: datetime
    values: pd.DataFrame
    fmt: FormFormat = "xlsx"
    note: str = ""
    suffix: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    quirks: list[str] = field(default_factory=list)

    def file_name(self) -> str:
        decl = load_declarations()[self.department]
        return f"{form_title(decl, self.period)}{self.suffix}{FORMAT_SUFFIX[self.fmt]}"


def _arrival(seed: int, department: str, period: str) -> datetime:
    """5th–12th of the following month (annual returns: in January), office hours."""
    rng = _rng(seed, "arrival", department, period)
    year, month = parse_period(period)
    if month is None:
        day = date(year + 1, 1, rng.randint(8, 25))
    else:
        day = date(year + (month == 12), month % 12 + 1, rng.randint(5, 12))
    return datetime(
        day.year, day.month, day.day, rng.randint(8, 17), rng.randint(0, 59), rng.randint(0, 59), tzinfo=CST
    )


def _text_numbers(frame: pd.DataFrame, decl: Declaration, rng: random.Random) -> pd.DataFrame:
    """Three integer cells typed as text: '1,234' when large, full-width digits otherwise."""
    out = frame.astype(object)
    names = [i.name for i in decl.indicators if i.value_type == "integer"]
    for _ in range(3):
        name = rng.choice(names)
        row = rng.randrange(len(out))
        value = int(out.at[row, name])
        out.at[row, name] = f"{value:,}" if value >= 1000 else str(value).translate(_FULLWIDTH_DIGITS)
    return out


#: deliberately flawed returns (domain.md §7), each fixed by a correction N days later
FLAWED: dict[tuple[str, str], str] = {
    ("education", "2016-03"): "合计 row 在校学生数/小学 is 40 more than the sum of the township rows",
    ("health", "2017-02"): "township typed as 聂嘎乡 (typo of 聂呷乡)",
    ("tourism", "2016-08"): "梭坡乡 其中:过夜游客 exceeds 接待游客 (rule tourism_overnight_le_visitors)",
    ("labour", "2017-03"): "title says 2017年2月 but the return is delivered as 2017-03",
}
#: what the pipeline should make of each flawed return: (outcome, issue code of the catalogue)
FLAWED_EXPECTED: dict[tuple[str, str], tuple[str, str]] = {
    ("education", "2016-03"): ("quarantined", "TOTAL_MISMATCH"),
    ("health", "2017-02"): ("rejected", "TOWNSHIP_UNKNOWN"),
    ("tourism", "2016-08"): ("quarantined", "RULE_FAILED"),
    ("labour", "2017-03"): ("rejected", "PERIOD_MISMATCH"),
}
_CORRECTION_DELAY_DAYS = {"education": 3, "health": 2, "tourism": 4, "labour": 3}
#: the demo's clock: completeness (mart_completeness) is judged as of this day [A] — after the
#: 2017-11 returns' deadline (10 December + 3 grace days), before the 2017-12 ones are due
DEMO_AS_OF = date(2017, 12, 20)
#: a return that arrives after its deadline (10 December + 3 grace days): late, not missing [A]
LATE_RETURNS: dict[tuple[str, str], datetime] = {
    ("education", "2017-11"): datetime(2017, 12, 18, 10, 24, 9, tzinfo=CST),
}
#: a return that never arrives: its values exist in demo_values, no file is written [A]
MISSING_RETURNS: frozenset[tuple[str, str]] = frozenset({("health", "2017-11")})
RESTATEMENT_DELAY_DAYS = 7
#: how many plain returns get each format / quirk (of 141; the special ones are xlsx)
_N_CSV_GBK, _N_CSV_BOM, _N_XLS = 25, 2, 5
_N_TEXT_NUMBERS, _N_ALIAS, _N_SHORT_NAME, _N_FULLWIDTH_SPACE = 3, 4, 3, 3


def _flawed_slots(seed: int, values: dict[tuple[str, str], pd.DataFrame]) -> list[_Slot]:
    """The four flawed returns and their corrections (the corrections carry the final values)."""
    slots: list[_Slot] = []
    for (dept, period), note in FLAWED.items():
        good = values[(dept, period)]
        bad = good
        options: dict[str, Any] = {}
        if dept == "education":
            options["totals"] = {"enrolled_primary_persons": int(good["enrolled_primary_persons"].sum()) + 40}
        elif dept == "health":
            options["township_names"] = {_CODE["niexia"]: "聂嘎乡"}
        elif dept == "tourism":
            bad = good.copy()
            row = CODES.index(_CODE["suopo"])
            visitors = float(good.at[row, "visitors_person_times"])
            bad.loc[row, "overnight_visitors_person_times"] = round(visitors * 1.3, 4)
        elif dept == "labour":
            options["title_period"] = "2017-02"
        arrived = _arrival(seed, dept, period)
        fixed_at = arrived + timedelta(days=_CORRECTION_DELAY_DAYS[dept])
        slots.append(_Slot(dept, period, "flawed", arrived, bad, note=note, options=options))
        slots.append(_Slot(dept, period, "correction", fixed_at, good, suffix="（更正）", note=f"corrects: {note}"))
    return slots


def _restatement_slots(seed: int, values: dict[tuple[str, str], pd.DataFrame], code: str) -> list[_Slot]:
    """labour 2016-06: loaded as sent, then restated a week later (+5 技能培训人次 in one township)."""
    final = values[("labour", RESTATED_PERIOD)]
    first = final.copy()
    first.loc[CODES.index(code), "skills_training_person_times"] -= RESTATEMENT_DELTA
    arrived = _arrival(seed, "labour", RESTATED_PERIOD)
    restated_at = arrived + timedelta(days=RESTATEMENT_DELAY_DAYS)
    return [
        _Slot("labour", RESTATED_PERIOD, "good", arrived, first, quirks=["restated a week later"]),
        _Slot("labour", RESTATED_PERIOD, "correction", restated_at, final, suffix="（修订）", note="restatement"),
    ]


def _plan(seed: int) -> list[_Slot]:
    """Every file of the demo, dressed, in no particular order."""
    values, restated_code = _final_values(seed)
    decls = load_declarations()
    periods = {"poverty": [str(y) for y in POVERTY_YEARS], **{d: list(MONTHS) for d in MONTHLY_DEPARTMENTS}}
    special = {*FLAWED, ("labour", RESTATED_PERIOD), *MISSING_RETURNS}
    plain = [(d, p) for d in DEPARTMENTS for p in periods[d] if (d, p) not in special]

    # formats and quirks are dealt out over the whole set, so the proportions hold exactly
    rng = _rng(seed, "dressing")
    order = plain[:]
    rng.shuffle(order)
    fmt_of: dict[tuple[str, str], FormFormat] = dict.fromkeys(order, "xlsx")
    cut = (_N_CSV_GBK, _N_CSV_GBK + _N_CSV_BOM, _N_CSV_GBK + _N_CSV_BOM + _N_XLS)
    fmt_of.update(dict.fromkeys(order[: cut[0]], "csv-gbk"))
    fmt_of.update(dict.fromkeys(order[cut[0] : cut[1]], "csv-utf8-bom"))
    fmt_of.update(dict.fromkeys(order[cut[1] : cut[2]], "xls"))
    text_number_keys = set(order[cut[2] : cut[2] + _N_TEXT_NUMBERS])  # xlsx: CSV is all text anyway
    rng.shuffle(order)
    alias_keys = set(order[:_N_ALIAS])
    short_name_keys = set(order[_N_ALIAS : _N_ALIAS + _N_SHORT_NAME])
    space_keys = set(order[_N_ALIAS + _N_SHORT_NAME : _N_ALIAS + _N_SHORT_NAME + _N_FULLWIDTH_SPACE])

    slots: list[_Slot] = []
    for key in plain:
        dept, period = key
        slot = _Slot(dept, period, "good", LATE_RETURNS.get(key) or _arrival(seed, dept, period), values[key],
                     fmt_of[key])
        if key in LATE_RETURNS:
            slot.quirks.append("arrives after its deadline")
        names: dict[str, str] = {}
        if key in alias_keys:
            slot.options["header_style"] = "alias"
            slot.quirks.append("alias headers")
        if key in short_name_keys:
            names[_CODE["zhanggu"]] = "章谷"
            slot.quirks.append("short township name 章谷")
        if key in space_keys:
            code = CODES[_rng(seed, "space", dept, period).randrange(N)]
            names[code] = township_name_at(code, period_start(period)) + "\u3000"
            slot.quirks.append("trailing full-width space after a township name")
        if names:
            slot.options["township_names"] = names
        if key in text_number_keys:
            slot.values = _text_numbers(slot.values, decls[dept], _rng(seed, "text", dept, period))
            slot.quirks.append("numbers as text")
        slots.append(slot)
    slots += _flawed_slots(seed, values) + _restatement_slots(seed, values, restated_code)
    for slot in slots:
        _dress(slot, seed)
    return slots


def _dress(slot: _Slot, seed: int) -> None:
    """Per-file habits: header style, 合计 position, 栏次 row, sheet name, 革什扎乡 vs 革什扎镇."""
    rng = _rng(seed, "dress", slot.department, slot.period, slot.kind, slot.suffix)
    options = slot.options
    style: HeaderStyle = rng.choices(HEADER_HABITS, weights=HEADER_HABIT_WEIGHTS)[0]
    total: TotalPosition = "top" if rng.random() < 0.2 else "bottom"
    options.setdefault("header_style", style)
    options.setdefault("total_position", total)
    options.setdefault("column_numbers_row", rng.random() < 0.25)
    year, month = parse_period(slot.period)
    sheet = "Sheet1" if rng.random() < 0.7 else (f"{month}月" if month else f"{year}年")
    options.setdefault("sheet_name", sheet)
    # 革什扎乡 became 革什扎镇 between 2015-09 and 2016-07 (the alias table dates 革什扎镇 from
    # 2015-09-01, so earlier returns say 革什扎乡 by default); in that window about half the
    # returns still use the old name
    old_name = rng.random() < 0.5
    if month and (2015, 9) <= (year, month) <= (2016, 6) and old_name:
        names = dict(options.get("township_names", {}))
        if _CODE["geshiza"] not in names:
            names[_CODE["geshiza"]] = "革什扎乡"
            slot.quirks.append("former name 革什扎乡")
        options["township_names"] = names
    if options["total_position"] == "top":
        slot.quirks.append("合计 at the top")
    if options["column_numbers_row"]:
        slot.quirks.append("栏次 row")


def _write(slot: _Slot, landing_dir: Path) -> GeneratedFile:
    decl = load_declarations()[slot.department]
    path = landing_dir / slot.department / slot.period / slot.file_name()
    write_form(
        path,
        decl,
        slot.period,
        slot.values,
        fmt=slot.fmt,
        filled_on=slot.arrived_at.date(),
        signatories=_SIGNATORIES[slot.department],
        saved_at=(slot.arrived_at - timedelta(minutes=7)).replace(tzinfo=None),
        **slot.options,
    )
    stamp = slot.arrived_at.timestamp()
    os.utime(path, (stamp, stamp))
    note = slot.note if slot.kind != "good" else "; ".join(slot.quirks)
    return GeneratedFile(path, slot.department, slot.period, slot.kind, note, slot.fmt, slot.arrived_at)


# --------------------------------------------------------------------------------------------
# Labour registry (劳动力实名登记表): quarterly person-level snapshots
# --------------------------------------------------------------------------------------------

#: the snapshots the demo lands [A]: the quarters owed (the declaration's snapshot_months 3/6/9/12,
#: due on the 10th + 5 days' grace) between the registry's start and the demo's clock; 2017-12 is
#: not due until 2018-01-10
REGISTRY_SNAPSHOTS: tuple[str, ...] = ("2017-06", "2017-09")
#: how each snapshot arrives: the 2017-06 one as xlsx (title row, IDs as text cells), the 2017-09
#: one as the CSV Chinese Windows exports (GB18030, no BOM)
REGISTRY_FORMATS: dict[str, FormFormat] = {"2017-06": "xlsx", "2017-09": "csv-gbk"}
#: the planted reconciliation gap [A]: the 2017-09 snapshot misses villages of 岳扎乡 (their sheets
#: not merged in), so it counts 12 % fewer people and poor people than the labour return of the
#: same month — outside the declared 5 % tolerance. Every other township-snapshot is within
#: ±REGISTRY_DRIFT of the return (people registered or gone since the return).
REGISTRY_SHORT: tuple[str, str] = ("2017-09", "513323211")
REGISTRY_SHORT_FACTOR = 0.88
REGISTRY_DRIFT = 0.025
#: distinct people per training person-time: the article's 2630 people trained vs 3540 人次 [ART]
PEOPLE_PER_TRAINING = Fraction(2630, 3540)


def registry_targets(seed: int = 2017) -> dict[str, dict[str, TownshipTargets]]:
    """What each snapshot counts per township, from the demo's own labour returns.

    People and poor people: the labour return's 农村劳动力 (合计 / 其中贫困劳动力) of the snapshot
    month within ±REGISTRY_DRIFT (the planted township: REGISTRY_SHORT_FACTOR). 参训工种 lists every
    training since the programme began, so a township's training 人次 are the returns' cumulative
    技能培训人次 to the snapshot month, its people trained are fewer (the article's ratio, county-wide
    exactly), and its certified and 中级工+ people are the returns' cumulative 取得证书人数 and
    其中:中高级工 (capped by the people trained).
    """
    values, _ = _final_values(seed)
    jitter = [_rng(seed, "registry", "training", code).uniform(0.92, 1.08) for code in CODES]
    out: dict[str, dict[str, TownshipTargets]] = {}
    for period in REGISTRY_SNAPSHOTS:
        form = values[("labour", period)]
        to_date = [p for p in MONTHS if p <= period]

        def cumulative(name: str, months: list[str] = to_date) -> list[int]:
            return [int(sum(values[("labour", p)][name].iloc[i] for p in months)) for i in range(N)]

        times = cumulative("skills_training_person_times")
        trained = allocate(round(sum(times) * PEOPLE_PER_TRAINING), [t * j for t, j in zip(times, jitter, strict=True)],
                           caps=times)
        certified = [min(c, p) for c, p in zip(cumulative("certified_persons"), trained, strict=True)]
        mid = [min(m, c) for m, c in zip(cumulative("certified_mid_senior_persons"), certified, strict=True)]
        rng = _rng(seed, "registry", period)
        towns: dict[str, TownshipTargets] = {}
        for i, code in enumerate(CODES):
            short = (period, code) == REGISTRY_SHORT
            factor = REGISTRY_SHORT_FACTOR if short else rng.uniform(1 - REGISTRY_DRIFT, 1 + REGISTRY_DRIFT)
            poor_factor = REGISTRY_SHORT_FACTOR if short else rng.uniform(1 - REGISTRY_DRIFT, 1 + REGISTRY_DRIFT)
            towns[code] = TownshipTargets(
                persons=round(int(form.at[i, "rural_labour_total_persons"]) * factor),
                poor_persons=round(int(form.at[i, "rural_labour_poor_persons"]) * poor_factor),
                persons_trained=trained[i], training_person_times=times[i],
                certified_persons=certified[i], certified_mid_senior_persons=mid[i],
            )
        out[period] = towns
    return out


def registry_title(period: str) -> str:
    year, month = parse_period(period)
    return f"丹巴县{year}年{month}月劳动力实名登记表"


def _registry_files(landing_dir: Path, seed: int) -> list[GeneratedFile]:
    """The registry snapshots, dated like the forms (5th–12th of the next month: on time)."""
    declaration = load_registry_declarations()["labour_registry"]
    targets = registry_targets(seed)
    ends = {p: (pd.Period(p, freq="M").end_time.date()) for p in REGISTRY_SNAPSHOTS}
    tables = county_snapshots(declaration, [(ends[p], targets[p]) for p in REGISTRY_SNAPSHOTS], seed=seed)
    files: list[GeneratedFile] = []
    for period, table in zip(REGISTRY_SNAPSHOTS, tables, strict=True):
        fmt = REGISTRY_FORMATS[period]
        arrived = _arrival(seed, "labour_registry", period)
        path = landing_dir / "labour_registry" / period / f"{registry_title(period)}{FORMAT_SUFFIX[fmt]}"
        path.parent.mkdir(parents=True, exist_ok=True)
        end = ends[period]
        if fmt == "xlsx":
            title = f"{registry_title(period)}(截至{end.year}年{end.month}月{end.day}日)"
            saved = (arrived - timedelta(minutes=7)).replace(tzinfo=None)
            write_registry_xlsx(table, path, title=title, saved_at=saved)
            note = f"{table.num_rows} people; title row above the header, IDs as text cells"
        else:
            write_registry_csv(table, path, encoding="gb18030")
            note = f"{table.num_rows} people; GB18030 CSV without BOM"
        if period == REGISTRY_SHORT[0]:
            short = township_name_at(REGISTRY_SHORT[1], end)
            note += f"; planted: {short} {1 - REGISTRY_SHORT_FACTOR:.0%} short of the labour return"
        stamp = arrived.timestamp()
        os.utime(path, (stamp, stamp))
        files.append(GeneratedFile(path, "labour_registry", period, "good", note, fmt, arrived))
    return files


def generate_demo(landing_dir: Path, *, seed: int = 2017) -> list[GeneratedFile]:
    """Write every demo return under ``landing_dir/<department>/<period>/`` and date it.

    Returns the files in arrival order (mtime, then path) — the order the pipeline should
    process them in: flawed files before their corrections, the labour 2016-06 return before
    its restatement.
    """
    landing_dir = Path(landing_dir)
    files = [_write(slot, landing_dir) for slot in _plan(seed)] + _registry_files(landing_dir, seed)
    return sorted(files, key=lambda f: (f.arrived_at, str(f.path)))


def main(argv: Sequence[str] | None = None, echo: Callable[[str], None] = print) -> int:
    """``python -m tasks.demo.data LANDING_DIR [--seed N]``"""
    parser = argparse.ArgumentParser(description="write the demo county returns into a landing directory")
    parser.add_argument("landing_dir", type=Path)
    parser.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args(argv)
    files = generate_demo(args.landing_dir, seed=args.seed)
    kinds = {k: sum(f.kind == k for f in files) for k in ("good", "flawed", "correction")}
    echo(f"wrote {len(files)} files to {args.landing_dir} ({kinds})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
