"""The demo after the article: December 2017 to December 2020, across the 2019 township reform.

The story (``tasks.demo.departments``: 2015-01 … 2017-11, poverty 2011–2016) ends where the article
does; this module continues it, so the demo shows what a county's series look like when its map
changes. Every department goes on from the story's last values — each township's level, mix and
character (its tourism share, its spend per visit, its labour force per head) — with independent
random streams, so the story's values are the same whether or not the sequel is generated.

From 2020 the returns list the 12 units of ``townships.csv`` (six townships unchanged, six units
the reform made). A new unit's values continue its predecessors' trend through
``township_crosswalk.csv``: its levels are the crosswalk-weighted sums of theirs (counts: the
predecessor's count split by the weights; mixes and per-head values: weighted means), so on
current boundaries (``warehouse/boundaries.py``) its series runs on without a jump [A].

What the sequel assumes [A], beyond the story's own assumptions: poverty falls to 0 by the end of
2020 (the county's exit), incomes grow ~11 % a year, tourism grows to 2019 and falls back in 2020,
skills training counts fewer 人次 from 2019 (the indicator's 口径 v2 counts trainings of five days
or more only: ``expectations/declarations/labour.yaml``), and from 2020 the poverty return's
population column counts 乡村户籍人口 (口径 v2 of ``agricultural_population_persons``, a few per
cent more people than the agricultural-hukou count it replaces).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from datetime import date
from functools import lru_cache
from typing import Any

import pandas as pd

from expectations.declaration import load_declarations
from tasks.demo.departments import (
    _SEASON,
    _TRAINING_SEASON,
    _TRANSFER_SEASON,
    _season_modifier,
    append_tourism_row,
)
from tasks.demo.figures import (
    CODES,
    MID_SENIOR_DEC_2017_ASSUMED,
    MONTHS,
    SKILLS_TRAINING_DEC_2017_ASSUMED,
    TOURISM_REVENUE_2016_CENTS,
    N,
    allocate,
    rng_for,
    wan,
)
from tasks.demo.form_writer import REFERENCE_DIR, township_codes
from warehouse.load import parse_period

Frames = dict[tuple[str, str], pd.DataFrame]

#: the last month of the article's story, and of the whole demo
STORY_THROUGH = "2017-11"
DEMO_THROUGH = "2020-12"
#: the day the 12 units begin (townships.csv, township_crosswalk.csv)
REFORM_DAY = date(2020, 1, 1)
SEQUEL_MONTHS: tuple[str, ...] = tuple(
    f"{y}-{m:02d}" for y in range(2017, 2021) for m in range(1, 13) if (y, m) >= (2017, 12)
)
SEQUEL_YEARS: tuple[int, ...] = (2017, 2018, 2019, 2020)
UNITS_2020 = township_codes(REFORM_DAY)

#: poverty incidence at year end [A]: the county exits in 2019 (below 3 %), the last poor in 2020
INCIDENCE_PCT = {2017: 8.46, 2018: 4.12, 2019: 0.86, 2020: 0.0}
#: farming population [A] (v1, 农业户籍人口); 2020 counts 乡村户籍人口 (v2): RURAL_HUKOU_FACTOR more
AGRI_POPULATION = {2017: 50760, 2018: 50850, 2019: 50910, 2020: 50940}
RURAL_HUKOU_FACTOR = 1.035
#: county mean net income per capita, 元 [A]: ~11 % a year after 10827 in 2016
NET_INCOME_YUAN = {2017: 12080, 2018: 13420, 2019: 14870, 2020: 16050}
#: tourism revenue of each year relative to 2016 [A] (2017 as the story: +16 %; 2020: the epidemic)
TOURISM_OF_2016 = {2017: 1.16, 2018: 1.31, 2019: 1.45, 2020: 1.19}
#: skills training 人次 a year [A]; 2019 on counts trainings of ≥ 5 days only (口径 v2)
TRAINING_PER_YEAR = {2018: 1380, 2019: 960, 2020: 820}
#: 转移就业 at year end [A]; December 2017 continues the story's year
TRANSFERS_PER_YEAR = {2018: 12040, 2019: 12260, 2020: 11630}
#: one spring job fair a year [A]: (posts, hires)
JOB_FAIRS = {"2018-03": (2400, 180), "2019-03": (2800, 215), "2020-06": (1500, 96)}


def months_through(months: Sequence[str], through: str) -> tuple[str, ...]:
    return tuple(p for p in months if p <= through)


# --------------------------------------------------------------------------------------------
# The crosswalk: carrying 15 townships' levels onto the 12 units
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _parts() -> dict[str, tuple[tuple[str, float], ...]]:
    """Each 2020 unit: its (predecessor, weight) pieces; an unchanged township is its own piece."""
    pieces: dict[str, list[tuple[str, float]]] = {}
    with (REFERENCE_DIR / "township_crosswalk.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if date.fromisoformat(row["effective_date"]) == REFORM_DAY:
                pieces.setdefault(row["successor_code"], []).append((row["predecessor_code"], float(row["weight"])))
    return {code: tuple(pieces.get(code, [(code, 1.0)])) for code in UNITS_2020}


def carry_counts(values: Sequence[int]) -> list[int]:
    """Whole counts of the 15 townships onto the 12 units: a split township's count is divided by
    the crosswalk weights (largest remainder, so nothing is lost), the pieces added up."""
    by_code = dict(zip(CODES, values, strict=True))
    onward: dict[str, list[tuple[str, float]]] = {}
    for unit, pieces in _parts().items():
        for predecessor, weight in pieces:
            onward.setdefault(predecessor, []).append((unit, weight))
    out = dict.fromkeys(UNITS_2020, 0)
    for predecessor, targets in onward.items():
        shares = allocate(int(by_code[predecessor]), [w for _, w in targets])
        for (unit, _), share in zip(targets, shares, strict=True):
            out[unit] += share
    return [out[unit] for unit in UNITS_2020]


def carry_levels(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """Levels onto the 12 units: crosswalk-weighted sums, or (``weights``: a per-head value, a mix)
    the mean of the pieces weighted by ``weights`` × the crosswalk weight."""
    by_code = dict(zip(CODES, values, strict=True))
    weight_of = dict(zip(CODES, weights, strict=True)) if weights is not None else None
    out = []
    for unit in UNITS_2020:
        pieces = _parts()[unit]
        if weight_of is None:
            out.append(sum(w * by_code[p] for p, w in pieces))
        else:
            total = sum(w * weight_of[p] for p, w in pieces)
            out.append(sum(w * weight_of[p] * by_code[p] for p, w in pieces) / total if total else
                       sum(by_code[p] for p, _ in pieces) / len(pieces))
    return out


def units_of(period: str) -> tuple[str, ...]:
    year, month = parse_period(period)
    return township_codes(date(year, month or 1, 1)) if year < REFORM_DAY.year else UNITS_2020


def _frame(department: str, codes: Sequence[str], columns: dict[str, list[Any]]) -> pd.DataFrame:
    decl = load_declarations()[department]
    data: dict[str, Any] = {"township_code": list(codes)}
    for ind in decl.indicators:
        values = columns[ind.name]
        whole = ind.value_type == "integer" or all(isinstance(v, int) for v in values)
        data[ind.name] = pd.Series(values, dtype="int64" if whole else "float64")
    return pd.DataFrame(data)


def _col(frame: pd.DataFrame, name: str) -> list[float]:
    return [float(v) for v in frame[name]]


# --------------------------------------------------------------------------------------------
# Poverty office: 2017–2020
# --------------------------------------------------------------------------------------------


def _income_mean(target: int, pops: Sequence[int], factors: Sequence[float]) -> list[int]:
    scale = target * sum(pops) / sum(f * p for f, p in zip(factors, pops, strict=True))
    incomes = [round(scale * f) for f in factors]
    biggest = max(range(len(pops)), key=lambda i: (pops[i], -i))
    gap = target * sum(pops) - sum(i * p for i, p in zip(incomes, pops, strict=True))
    incomes[biggest] += round(gap / pops[biggest])
    return incomes


def poverty_sequel(seed: int, story: Frames) -> Frames:
    rng = rng_for(seed, "sequel", "poverty")
    last, before = story[("poverty", "2016")], story[("poverty", "2015")]
    growth = [a / b for a, b in zip(_col(last, "agricultural_population_persons"),
                                    _col(before, "agricultural_population_persons"), strict=True)]
    pop16 = _col(last, "agricultural_population_persons")
    mean16 = sum(i * p for i, p in zip(_col(last, "net_income_per_capita_yuan"), pop16, strict=True)) / sum(pop16)
    income_factor = [i / mean16 for i in _col(last, "net_income_per_capita_yuan")]
    previous = [int(v) for v in last["registered_poor_year_end_persons"]]
    out: Frames = {}
    for year in SEQUEL_YEARS:
        k = year - 2016
        pops = allocate(AGRI_POPULATION[year], [p * g**k for p, g in zip(pop16, growth, strict=True)])
        factors = [f * rng.uniform(0.99, 1.01) for f in income_factor]
        poor_total = round(INCIDENCE_PCT[year] * AGRI_POPULATION[year] / 100)
        poor = allocate(poor_total, [p * rng.uniform(0.85, 1.15) for p in previous], caps=pops)
        reentries = min(poor_total, round(0.01 * sum(previous)))
        exited = allocate(sum(previous) - poor_total + reentries, [float(p) for p in previous], caps=previous)
        codes: Sequence[str] = CODES
        if year >= REFORM_DAY.year:  # the 12 units; the population column now counts 乡村户籍人口 (v2)
            codes = UNITS_2020
            factors = carry_levels(factors, pops)
            pops = allocate(round(AGRI_POPULATION[year] * RURAL_HUKOU_FACTOR), carry_levels(pops))
            poor, exited = carry_counts(poor), carry_counts(exited)
        out[("poverty", str(year))] = _frame("poverty", codes, {
            "agricultural_population_persons": pops,
            "registered_poor_year_end_persons": poor,
            "exited_poverty_persons": exited,
            "net_income_per_capita_yuan": _income_mean(NET_INCOME_YUAN[year], pops, factors),
        })
        previous = poor
    return out


def _register(values: Frames, year: int, name: str = "registered_poor_year_end_persons") -> list[int]:
    """The poverty office's year-end figure of ``year`` on the units of the year after."""
    counts = [int(v) for v in values[("poverty", str(year))][name]]
    return carry_counts(counts) if year + 1 >= REFORM_DAY.year and len(counts) == N else counts


# --------------------------------------------------------------------------------------------
# Tourism
# --------------------------------------------------------------------------------------------


def tourism_sequel(seed: int, story: Frames) -> Frames:
    rng = rng_for(seed, "sequel", "tourism")
    year17 = [p for p in MONTHS if p.startswith("2017")]
    revenue17 = [sum(float(story[("tourism", p)].at[i, "tourism_revenue_yuan"]) for p in year17) for i in range(N)]
    visitors17 = [sum(float(story[("tourism", p)].at[i, "visitors_person_times"]) for p in year17) for i in range(N)]
    overnight17 = [sum(float(story[("tourism", p)].at[i, "overnight_visitors_person_times"]) for p in year17)
                   for i in range(N)]
    tickets17 = [sum(float(story[("tourism", p)].at[i, "ticket_revenue_yuan"]) for p in year17) for i in range(N)]
    nov = story[("tourism", STORY_THROUGH)]
    houses = _col(nov, "guesthouses")
    staff_base = [s - round(h * 3.2) for s, h in zip(_col(nov, "tourism_employees_persons"), houses, strict=True)]
    character = {  # per township: (share, spend per visit, overnight share, ticket share, beds per house, poor staff)
        "share": revenue17,
        "spend": [r / v for r, v in zip(revenue17, visitors17, strict=True)],  # 万元 / 万人次 = 元 per visit
        "overnight": [o / v for o, v in zip(overnight17, visitors17, strict=True)],
        "tickets": [t / r for t, r in zip(tickets17, revenue17, strict=True)],
        "beds": [(b - 2) / h for b, h in zip(_col(nov, "beds"), houses, strict=True)],
        "poor_staff": [p / s for p, s in zip(_col(nov, "tourism_employees_poor_persons"),
                                             _col(nov, "tourism_employees_persons"), strict=True)],
    }
    weights = {"share": None, "spend": visitors17, "overnight": visitors17, "tickets": revenue17,
               "beds": houses, "poor_staff": _col(nov, "tourism_employees_persons")}
    carried = {k: carry_levels(v, weights[k]) for k, v in character.items()}
    modifier_of = {u: max(_parts()[u], key=lambda piece: piece[1] * revenue17[CODES.index(piece[0])])[0]
                   for u in UNITS_2020}
    story_cents = round(sum(sum(story[("tourism", p)]["tourism_revenue_yuan"]) * 100 for p in year17))
    totals = {y: round(TOURISM_REVENUE_2016_CENTS * f) for y, f in TOURISM_OF_2016.items()}
    totals[2017] -= story_cents  # December 2017 completes the story's year
    out: Frames = {}
    for year, total in totals.items():
        months = [p for p in SEQUEL_MONTHS if p.startswith(str(year))]
        season = [(parse_period(p)[1] or 1) for p in months]
        month_cents = allocate(total, [_SEASON[m] * rng.uniform(0.92, 1.08) for m in season])
        for period, month, cents_total in zip(months, season, month_cents, strict=True):
            new = year >= REFORM_DAY.year
            codes = UNITS_2020 if new else CODES
            c = carried if new else character
            step = SEQUEL_MONTHS.index(period) + 1
            base_houses = carry_levels(houses) if new else houses
            base_staff = carry_levels(staff_base) if new else staff_base
            mods = [_season_modifier(modifier_of[u] if new else u, month) for u in codes]
            cents = allocate(cents_total,
                             [s * m * rng.uniform(0.9, 1.1) for s, m in zip(c["share"], mods, strict=True)])
            cols: dict[str, list[Any]] = {ind.name: [] for ind in load_declarations()["tourism"].indicators}
            for i in range(len(codes)):
                per_visit = min(860.0, max(330.0, c["spend"][i] * rng.uniform(0.9, 1.1)))
                visits = max(1, round(cents[i] * 100 / per_visit))
                overnight = math.floor(visits * min(0.9, c["overnight"][i] * rng.uniform(0.9, 1.1)))
                tickets = math.floor(cents[i] * c["tickets"][i] * rng.uniform(0.9, 1.1))
                append_tourism_row(cols, visit_units=visits, overnight_units=overnight, cents=cents[i],
                                   tickets=tickets, guesthouses=round(base_houses[i] * (1 + 0.08 * step / 12)),
                                   beds_per_house=c["beds"][i], staff_base=base_staff[i],
                                   poor_staff_share=c["poor_staff"][i])
            out[("tourism", period)] = _frame("tourism", codes, cols)
    return out


# --------------------------------------------------------------------------------------------
# Labour
# --------------------------------------------------------------------------------------------


def labour_sequel(seed: int, story: Frames, values: Frames) -> Frames:
    rng = rng_for(seed, "sequel", "labour")
    nov = story[("labour", STORY_THROUGH)]
    pop16 = _col(story[("poverty", "2016")], "agricultural_population_persons")
    poor16 = _col(story[("poverty", "2016")], "registered_poor_year_end_persons")
    labour_ratio = [t / p for t, p in zip(_col(nov, "rural_labour_total_persons"), pop16, strict=True)]
    poor_ratio = [lp / p if p else 0.5 for lp, p in zip(_col(nov, "rural_labour_poor_persons"), poor16, strict=True)]
    boost = [min(1.4, max(1.0, (yp / yt) / (lp / lt))) if yt and lp else 1.0 for yp, yt, lp, lt in zip(
        _col(nov, "transferred_ytd_poor_persons"), _col(nov, "transferred_ytd_total_persons"),
        _col(nov, "rural_labour_poor_persons"), _col(nov, "rural_labour_total_persons"), strict=True)]
    ytd = [int(v) for v in nov["transferred_ytd_total_persons"]]
    ytd_poor = [int(v) for v in nov["transferred_ytd_poor_persons"]]
    story_year_transfers = int(nov["transferred_ytd_total_persons"].sum())
    training_total = {2017: SKILLS_TRAINING_DEC_2017_ASSUMED, **TRAINING_PER_YEAR}
    out: Frames = {}
    for year in SEQUEL_YEARS:
        months = [p for p in SEQUEL_MONTHS if p.startswith(str(year))]
        new = year >= REFORM_DAY.year
        codes = UNITS_2020 if new else CODES
        pop = _col(values[("poverty", str(year - 1))], "agricultural_population_persons")
        poor = [float(p) for p in _register(values, year - 1)]
        if new:
            pop = carry_levels(pop)
        ratio = carry_levels(labour_ratio, pop16) if new else labour_ratio
        p_ratio = carry_levels(poor_ratio, poor16) if new else poor_ratio
        b = carry_levels(boost, pop16) if new else boost
        labour_total = [round(p * r) for p, r in zip(pop, ratio, strict=True)]
        labour_poor = [min(t, round(p * r)) for t, p, r in zip(labour_total, poor, p_ratio, strict=True)]
        training = allocate(training_total[year],
                            [_TRAINING_SEASON[int(p[5:])] * rng.uniform(0.85, 1.15) for p in months])
        if year == 2017:
            transfers = [round(story_year_transfers * 0.3 / 10)]  # December: the quietest month
        else:
            transfers = allocate(TRANSFERS_PER_YEAR[year],
                                 [_TRANSFER_SEASON[int(p[5:])] * rng.uniform(0.9, 1.1) for p in months])
        for period, trained_total, moved_total in zip(months, training, transfers, strict=True):
            if period.endswith("-01"):  # 本年累计 starts again (in 2020 on the 12 units)
                ytd, ytd_poor = [0] * len(codes), [0] * len(codes)
            trained = allocate(trained_total, [t * rng.uniform(0.4, 1.6) for t in labour_total])
            certified = [math.floor(t * rng.uniform(0.5, 0.85)) for t in trained]
            mid_total = MID_SENIOR_DEC_2017_ASSUMED if period == "2017-12" else round(0.16 * sum(certified))
            mid = allocate(mid_total, [float(c) for c in certified], caps=certified)
            moved = allocate(moved_total, [t * rng.uniform(0.8, 1.2) for t in labour_total])
            moved_poor = [math.floor(m * min(0.9, lp / lt * s)) if lt else 0
                          for m, lp, lt, s in zip(moved, labour_poor, labour_total, b, strict=True)]
            ytd = [y + m for y, m in zip(ytd, moved, strict=True)]
            ytd_poor = [y + m for y, m in zip(ytd_poor, moved_poor, strict=True)]
            posts, hires = [0] * len(codes), [0] * len(codes)
            if period in JOB_FAIRS:
                n_posts, n_hires = JOB_FAIRS[period]
                posts = allocate(n_posts, [t * rng.uniform(0.5, 1.5) for t in labour_total])
                hires = allocate(n_hires, [float(p) for p in posts], caps=posts)
            out[("labour", period)] = _frame("labour", codes, {
                "rural_labour_total_persons": labour_total,
                "rural_labour_poor_persons": labour_poor,
                "transferred_ytd_total_persons": ytd,
                "transferred_month_total_persons": moved,
                "transferred_ytd_poor_persons": [min(y, lp) for y, lp in zip(ytd_poor, labour_poor, strict=True)],
                "local_employment_person_times": allocate(rng.randint(35, 75),
                                                          [t * rng.uniform(0.5, 1.5) for t in labour_total]),
                "skills_training_person_times": trained,
                "certified_persons": certified,
                "certified_mid_senior_persons": mid,
                "job_fair_posts": posts,
                "job_fair_hires_person_times": hires,
            })
    return out


# --------------------------------------------------------------------------------------------
# Education
# --------------------------------------------------------------------------------------------


def education_sequel(seed: int, story: Frames, values: Frames) -> Frames:
    rng = rng_for(seed, "sequel", "education")
    nov = story[("education", STORY_THROUGH)]
    pov16 = story[("poverty", "2016")]
    incidence16 = [p / a for p, a in zip(_col(pov16, "registered_poor_year_end_persons"),
                                         _col(pov16, "agricultural_population_persons"), strict=True)]
    base = {name: _col(nov, name) for name in ("school_age_children_persons", "enrolled_primary_persons",
                                                 "enrolled_junior_persons", "enrolled_poor_persons")}
    enrolled17 = _col(nov, "enrolled_total_persons")
    poor_factor = [p / (e * r) if e * r else 1.1 for p, e, r in zip(base["enrolled_poor_persons"], enrolled17,
                                                                     incidence16, strict=True)]
    aid_head = [y * 1e4 / n if n else 1000.0 for y, n in zip(_col(nov, "student_aid_ytd_yuan"),
                                                              _col(nov, "student_aid_ytd_person_times"),
                                                              strict=True)]
    ytd = {name: [int(v) for v in nov[name]] for name in ("returned_to_school_ytd_persons",
                                                          "student_aid_ytd_person_times")}
    ytd_cents = [round(v * 100) for v in _col(nov, "student_aid_ytd_yuan")]
    school: dict[str, list[float]] = {k: v[:] for k, v in base.items()}
    out: Frames = {}
    for period in SEQUEL_MONTHS:
        year, month = parse_period(period)
        month = month or 1
        new = year >= REFORM_DAY.year
        codes = UNITS_2020 if new else CODES
        if period == "2020-01":  # the units of 2020: the school year's head counts carried over
            school = {k: carry_levels(v) for k, v in school.items()}
            poor_factor = carry_levels(poor_factor, enrolled17)
            aid_head = carry_levels(aid_head, enrolled17)
            ytd = {k: [0] * len(codes) for k in ytd}
            ytd_cents = [0] * len(codes)
        if month == 9:  # a new school year: a slowly growing cohort, poor pupils as poverty falls
            pov = values[("poverty", str(year - 1))]
            incidence = [p / a for p, a in zip(_col(pov, "registered_poor_year_end_persons"),
                                               _col(pov, "agricultural_population_persons"), strict=True)]
            if new and len(incidence) == N:
                incidence = carry_levels(incidence, _col(pov, "agricultural_population_persons"))
            age = [a * 1.004 * rng.uniform(0.99, 1.01) for a in school["school_age_children_persons"]]
            primary = [p / a0 * a for p, a0, a in zip(school["enrolled_primary_persons"],
                                                       school["school_age_children_persons"], age, strict=True)]
            junior = [j / a0 * a for j, a0, a in zip(school["enrolled_junior_persons"],
                                                      school["school_age_children_persons"], age, strict=True)]
            school = {"school_age_children_persons": age, "enrolled_primary_persons": primary,
                      "enrolled_junior_persons": junior,
                      "enrolled_poor_persons": [(p + j) * r * f for p, j, r, f in zip(primary, junior, incidence,
                                                                                       poor_factor, strict=True)]}
        if month == 1:
            ytd = {k: [0] * len(codes) for k in ytd}
            ytd_cents = [0] * len(codes)
        primary_now = [max(0, round(p) + rng.choice((0, 0, 0, 0, 0, 1, -1)))
                       for p in school["enrolled_primary_persons"]]
        junior_now = [max(0, round(j) + rng.choice((0, 0, 0, 0, 0, 0, 1, -1)))
                      for j in school["enrolled_junior_persons"]]
        enrolled = [p + j for p, j in zip(primary_now, junior_now, strict=True)]
        poor = [min(e, round(p)) for e, p in zip(enrolled, school["enrolled_poor_persons"], strict=True)]
        semester = month in (3, 9)
        aid = [(p + round(e * rng.uniform(0.05, 0.12))) if semester else rng.choice((0, 0, 0, 1, 2))
               for p, e in zip(poor, enrolled, strict=True)]
        ytd["student_aid_ytd_person_times"] = [y + a for y, a in zip(ytd["student_aid_ytd_person_times"], aid,
                                                                     strict=True)]
        ytd_cents = [y + round(a * h * rng.uniform(0.95, 1.05) / 100)
                     for y, a, h in zip(ytd_cents, aid, aid_head, strict=True)]
        summer = month in (7, 8)
        out[("education", period)] = _frame("education", codes, {
            "school_age_children_persons": [round(a) for a in school["school_age_children_persons"]],
            "enrolled_primary_persons": primary_now,
            "enrolled_junior_persons": junior_now,
            "enrolled_total_persons": enrolled,
            "enrolled_poor_persons": poor,
            "dropouts_persons": [0] * len(codes),
            "returned_to_school_ytd_persons": ytd["returned_to_school_ytd_persons"],
            "nutrition_beneficiaries_persons": [max(0, e - rng.randint(0, 4)) for e in enrolled],
            "student_aid_ytd_person_times": ytd["student_aid_ytd_person_times"],
            "student_aid_ytd_yuan": [wan(c) for c in ytd_cents],
            "teacher_training_person_times": [
                rng.randint(20, 40) if summer and code == CODES[0] else rng.randint(0, 8) if summer
                else rng.choice((0, 0, 0, 1, 2, 3)) for code in codes],
        })
    return out


# --------------------------------------------------------------------------------------------
# Health
# --------------------------------------------------------------------------------------------


def health_sequel(seed: int, story: Frames, values: Frames) -> Frames:
    rng = rng_for(seed, "sequel", "health")
    nov = story[("health", STORY_THROUGH)]
    out: Frames = {}
    checkups = [int(v) for v in nov["health_checkups_ytd_persons"]]
    for year in SEQUEL_YEARS:
        months = [p for p in SEQUEL_MONTHS if p.startswith(str(year))]
        codes = UNITS_2020 if year >= REFORM_DAY.year else CODES
        poor = [int(v) for v in nov["poor_population_persons"]] if year == 2017 else _register(values, year - 1)
        sign_start = [rng.uniform(0.93, 0.97) for _ in codes]
        if year == 2017:  # December: a few late check-ups complete the story's year
            targets = [c + round(p * rng.uniform(0.0, 0.02)) for c, p in zip(checkups, poor, strict=True)]
            plan = [[t - c] for t, c in zip(targets, checkups, strict=True)]
        else:
            weights = [rng.uniform(0.6, 1.0) * (2.5 if p[-2:] in ("04", "05", "06") else 1.0) for p in months]
            plan = [allocate(round(p * rng.uniform(0.85, 0.95)), weights) for p in poor]
            checkups = [0] * len(codes)
        for m, period in enumerate(months):
            month = parse_period(period)[1] or 1
            checkups = [c + plan[i][m] for i, c in enumerate(checkups)]
            signed = [min(p, math.floor(p * (s + (1 - s) * (month - 1) / 11))) for p, s in zip(poor, sign_start,
                                                                                           strict=True)]
            inpatients = [max(1, round(p * 0.011 * rng.uniform(0.6, 1.4))) for p in poor]
            cost = [max(30, round(n * rng.uniform(3200, 7800) / 100)) for n in inpatients]
            oop = [math.floor(c * rng.uniform(0.045, 0.092)) for c in cost]
            out[("health", period)] = _frame("health", codes, {
                "poor_population_persons": poor,
                "insured_persons": poor,
                "family_doctor_signed_persons": signed,
                "health_checkups_ytd_persons": checkups,
                "inpatient_person_times": inpatients,
                "inpatient_cost_yuan": [wan(c) for c in cost],
                "reimbursed_yuan": [wan(c - o) for c, o in zip(cost, oop, strict=True)],
                "out_of_pocket_yuan": [wan(o) for o in oop],
                "serious_illness_treated_persons": [rng.choice((0, 0, 0, 1, 1, 2)) if p else 0 for p in poor],
                "households_poor_due_to_illness": [round(p / 3.4 * rng.uniform(0.14, 0.24)) for p in poor],
                "insurance_rate_pct": [100.0] * len(codes),
                "chenghua_medical_experts_person_times": [
                    rng.randint(4, 8) if code == CODES[0] else rng.choice((0, 0, 0, 0, 1, 2)) for code in codes],
            })
    return out


def sequel_values(seed: int, story: Frames) -> Frames:
    """Every department's values 2017-12 … 2020-12 (poverty 2017–2020), continuing ``story``."""
    values: Frames = dict(story)
    values.update(poverty_sequel(seed, story))
    values.update(tourism_sequel(seed, story))
    values.update(labour_sequel(seed, story, values))
    values.update(education_sequel(seed, story, values))
    values.update(health_sequel(seed, story, values))
    return {key: frame for key, frame in values.items() if key not in story}
