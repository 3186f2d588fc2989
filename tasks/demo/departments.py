"""Each department's invented township values (poverty, tourism, labour, education, health).

One function per department returns its final values per period, in form units, one row per
township in code order; their county aggregates land on the article's figures
(``tasks.demo.figures``), and :func:`tasks.demo.values.final_values` gathers and checks them. The
planted oddities of the values themselves live here too: the restated labour figure
(:data:`RESTATED_PERIOD`) and the health outlier (:data:`PLANTED_OUTLIER`).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from expectations.declaration import load_declarations
from tasks.demo.figures import (
    CODES,
    JOB_FAIR_2017_05_HIRES,
    JOB_FAIR_2017_05_POSTS,
    MID_SENIOR_DEMO_TOTAL,
    MONTHS,
    NET_INCOME_2011_YUAN,
    NET_INCOME_2016_YUAN,
    POVERTY_INCIDENCE_PCT,
    POVERTY_YEARS,
    SKILLS_TRAINING_DEMO_TOTAL,
    STORY_CODE,
    TOURISM_REVENUE_2015_CENTS,
    TOURISM_REVENUE_2016_CENTS,
    N,
    allocate,
    cumsum_by_year,
    rng_for,
    township_frame,
    wan,
    wan4,
)
from warehouse.load import parse_period

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


def poverty_values(seed: int) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["poverty"]
    rng = rng_for(seed, "poverty")
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
        out[str(year)] = township_frame(
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
_SPEND_YUAN = {
    STORY_CODE["zhanggu"]: 720.0, STORY_CODE["niexia"]: 640.0, STORY_CODE["suopo"]: 560.0, STORY_CODE["zhonglu"]: 590.0
}
_OVERNIGHT = {
    STORY_CODE["zhanggu"]: 0.55, STORY_CODE["niexia"]: 0.5, STORY_CODE["zhonglu"]: 0.45, STORY_CODE["suopo"]: 0.3
}
_TICKETS = {
    STORY_CODE["niexia"]: 0.14,
    STORY_CODE["suopo"]: 0.09,
    STORY_CODE["zhonglu"]: 0.07,
    STORY_CODE["zhanggu"]: 0.02,
    STORY_CODE["bianer"]: 0.03,
}
_GUESTHOUSES = {  # (2015-01, 2017-11) [A]
    STORY_CODE["niexia"]: (72, 128),
    STORY_CODE["zhanggu"]: (35, 52),
    STORY_CODE["suopo"]: (26, 48),
    STORY_CODE["zhonglu"]: (24, 45),
    STORY_CODE["badi"]: (6, 12),
    STORY_CODE["bianer"]: (5, 14),
    STORY_CODE["geshiza"]: (4, 9),
    STORY_CODE["bawang"]: (5, 10),
}
_SCENIC = {STORY_CODE["niexia"], STORY_CODE["suopo"], STORY_CODE["zhonglu"]}


def _season_modifier(code: str, month: int) -> float:
    if code in _SCENIC:
        return {3: 1.2, 4: 1.2, 10: 1.15, 11: 1.15, 12: 0.8, 1: 0.8, 2: 0.85}.get(month, 1.0)
    if code == STORY_CODE["zhanggu"]:
        return {12: 1.3, 1: 1.3, 2: 1.25, 4: 0.9, 10: 0.9}.get(month, 1.0)
    if code == STORY_CODE["bianer"]:  # 党岭 hiking
        return {7: 1.5, 8: 1.5, 12: 0.5, 1: 0.5, 2: 0.6}.get(month, 1.0)
    return 1.0


def _tourism_revenue_cents(seed: int) -> dict[str, list[int]]:
    """Revenue per month per township in 0.01 万元; 2015 and 2016 sum to the article's totals."""
    rng = rng_for(seed, "tourism", "revenue")
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


def tourism_values(seed: int) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["tourism"]
    revenue = _tourism_revenue_cents(seed)
    rng = rng_for(seed, "tourism", "other")
    spend = [_SPEND_YUAN.get(c, rng.uniform(420, 520)) for c in CODES]
    overnight_share = [_OVERNIGHT.get(c, rng.uniform(0.2, 0.35)) for c in CODES]
    ticket_share = [_TICKETS.get(c, rng.choice([0.0, 0.0, 0.01, 0.02])) for c in CODES]
    houses = [_GUESTHOUSES.get(c, (rng.randint(2, 5), rng.randint(5, 9))) for c in CODES]
    beds_per_house = [rng.uniform(8.5, 12.5) for _ in CODES]
    staff_base = [260 if c == STORY_CODE["zhanggu"] else rng.randint(8, 40) for c in CODES]
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
            append_tourism_row(cols, visit_units=visit_units, overnight_units=overnight_units, cents=cents,
                               tickets=tickets, guesthouses=guesthouses, beds_per_house=beds_per_house[i],
                               staff_base=staff_base[i], poor_staff_share=poor_staff_share[i])
        out[period] = township_frame(decl, cols)
    return out


def append_tourism_row(cols: dict[str, list[Any]], *, visit_units: int, overnight_units: int, cents: int,
                       tickets: int, guesthouses: int, beds_per_house: float, staff_base: float,
                       poor_staff_share: float) -> None:
    """One township's tourism row (columns of ``tourism.yaml``) from its month's visits, revenue and
    guesthouses; beds, staff and the households lifted follow from them (the story and its sequel)."""
    beds = round(guesthouses * beds_per_house) + 2
    staff = round(guesthouses * 3.2) + round(staff_base)
    poor_staff = round(staff * poor_staff_share)
    households = round(poor_staff * 0.9 + guesthouses * 0.4)
    cols["visitors_person_times"].append(wan4(visit_units))
    cols["overnight_visitors_person_times"].append(wan4(overnight_units))
    cols["tourism_revenue_yuan"].append(wan(cents))
    cols["ticket_revenue_yuan"].append(wan(tickets))
    cols["guesthouses"].append(guesthouses)
    cols["beds"].append(beds)
    cols["tourism_employees_persons"].append(staff)
    cols["tourism_employees_poor_persons"].append(poor_staff)
    cols["poor_households_lifted"].append(households)
    cols["poor_persons_lifted"].append(round(households * 3.3))


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


def labour_values(seed: int, poverty: dict[str, pd.DataFrame]) -> tuple[dict[str, pd.DataFrame], str]:
    """Final labour values, and the township whose 2016-06 training figure is restated."""
    decl = load_declarations()["labour"]
    rng = rng_for(seed, "labour")
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
    ytd_total = [cumsum_by_year(MONTHS, [cells[p]["transferred_increment"][i] for p in MONTHS]) for i in range(N)]
    ytd_poor = [cumsum_by_year(MONTHS, [cells[p]["transferred_poor_increment"][i] for p in MONTHS]) for i in range(N)]
    for m, period in enumerate(MONTHS):
        c = cells[period]
        out[period] = township_frame(
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


def education_values(seed: int, poverty: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["education"]
    rng = rng_for(seed, "education")
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
        name: [cumsum_by_year(MONTHS, [rows[p][name][i] for p in MONTHS]) for i in range(N)]
        for name in ("returned_increment", "aid_increment", "aid_cents_increment")
    }
    out: dict[str, pd.DataFrame] = {}
    for m, period in enumerate(MONTHS):
        r = rows[period]
        out[period] = township_frame(
            decl,
            {
                **{k: v for k, v in r.items() if not k.endswith("_increment")},
                "returned_to_school_ytd_persons": [cumulative["returned_increment"][i][m] for i in range(N)],
                "student_aid_ytd_person_times": [cumulative["aid_increment"][i][m] for i in range(N)],
                "student_aid_ytd_yuan": [wan(cumulative["aid_cents_increment"][i][m]) for i in range(N)],
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


def health_values(seed: int, poverty: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    decl = load_declarations()["health"]
    rng = rng_for(seed, "health")
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
    checkups = [cumsum_by_year(MONTHS, [rows[p]["checkup_increment"][i] for p in MONTHS]) for i in range(N)]
    out: dict[str, pd.DataFrame] = {}
    for m, period in enumerate(MONTHS):
        r = rows[period]
        out[period] = township_frame(
            decl,
            {
                "poor_population_persons": r["poor_population_persons"],
                "insured_persons": r["insured_persons"],
                "family_doctor_signed_persons": r["family_doctor_signed_persons"],
                "health_checkups_ytd_persons": [checkups[i][m] for i in range(N)],
                "inpatient_person_times": r["inpatient_person_times"],
                "inpatient_cost_yuan": [wan(c) for c in r["cost"]],
                "reimbursed_yuan": [wan(c - o) for c, o in zip(r["cost"], r["oop"], strict=True)],
                "out_of_pocket_yuan": [wan(o) for o in r["oop"]],
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
