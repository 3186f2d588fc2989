"""The demo county's numbers: the final values of every return, the story check, the registry's counts.

- :func:`demo_values` — the FINAL values (what the good/correction files carry) per
  (department, period), in form units, one row per township. Tests recompute KPIs from it.
- :func:`story_figures` — the article's county figures as those values give them; every seed's
  values are checked against the article (domain.md §4) before anything uses them.
- :func:`registry_targets` — what each quarterly 劳动力实名登记表 snapshot counts per township,
  from the demo's own labour returns (the people themselves: ``tasks.demo.registry``).

Only the demo knows the article's story; the marts compute KPIs from whatever arrives. The files
that carry these values: ``tasks.demo.data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from functools import lru_cache

import pandas as pd

from tasks.demo.departments import education_values, health_values, labour_values, poverty_values, tourism_values
from tasks.demo.figures import (
    CODES,
    JOB_FAIR_2017_05_HIRES,
    JOB_FAIR_2017_05_POSTS,
    MONTHS,
    NET_INCOME_2011_YUAN,
    NET_INCOME_2016_YUAN,
    POVERTY_INCIDENCE_PCT,
    SKILLS_TRAINING_DEMO_TOTAL,
    TOURISM_REVENUE_2015_CENTS,
    TOURISM_REVENUE_2016_CENTS,
    N,
    allocate,
    rng_for,
)
from tasks.demo.registry import TownshipTargets
from tasks.demo.sequel import DEMO_THROUGH, STORY_THROUGH, sequel_values

__all__ = ["DEMO_THROUGH", "STORY_THROUGH", "demo_values", "final_values", "registry_targets", "story_figures"]

# --------------------------------------------------------------------------------------------
# All final values
# --------------------------------------------------------------------------------------------


@lru_cache(maxsize=4)
def final_values(seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], str]:
    """Every department's final values through :data:`DEMO_THROUGH` (cached and shared: copy before
    changing one) and the code of the restated township; the story's are checked against the
    article's figures, the sequel (``tasks.demo.sequel``) continues them without changing them."""
    story, restated_code = _story_values(seed)
    return {**story, **sequel_values(seed, story)}, restated_code


def _story_values(seed: int) -> tuple[dict[tuple[str, str], pd.DataFrame], str]:
    """The article's story: 2015-01 … 2017-11 (poverty 2011–2016), checked against the article."""
    poverty = poverty_values(seed)
    labour, restated_code = labour_values(seed, poverty)
    values: dict[tuple[str, str], pd.DataFrame] = {}
    values.update({("poverty", p): f for p, f in poverty.items()})
    values.update({("education", p): f for p, f in education_values(seed, poverty).items()})
    values.update({("health", p): f for p, f in health_values(seed, poverty).items()})
    values.update({("labour", p): f for p, f in labour.items()})
    values.update({("tourism", p): f for p, f in tourism_values(seed).items()})
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


def in_span(period: str, through: str) -> bool:
    """Whether a return of ``period`` belongs to a demo that runs through the month ``through``: a
    monthly one up to that month, an annual one when its year has ended by then."""
    return period <= through if len(period) == 7 else f"{period}-12" <= through


def demo_values(seed: int = 2017, *, through: str = STORY_THROUGH) -> dict[tuple[str, str], pd.DataFrame]:
    """The FINAL values per (department, period) through the month ``through``: what the good and
    correction files carry. The default is the article's story (2015-01 … 2017-11, poverty
    2011–2016, the 15 townships); ``through=DEMO_THROUGH`` adds the sequel to 2020-12, whose 2020
    returns list the 12 units of the 2019 reform.

    One row per township (or unit) in code order; columns ``township_code`` then every declared indicator,
    in FORM units exactly as written (万元 with 2 decimals, 万人次 with 4, counts as ints).
    Superseded files (flawed ones, the first labour 2016-06 return) are not here.
    """
    values, _ = final_values(seed)
    return {key: frame.copy() for key, frame in values.items() if in_span(key[1], through)}


def restated_township(seed: int = 2017) -> str:
    """Code of the township whose labour 2016-06 技能培训人次 is restated (+5)."""
    return final_values(seed)[1]


# --------------------------------------------------------------------------------------------
# Labour registry (劳动力实名登记表): quarterly person-level snapshots
# --------------------------------------------------------------------------------------------

#: the snapshots the demo lands [A]: the quarters owed (the declaration's snapshot_months 3/6/9/12,
#: due on the 10th + 5 days' grace) between the registry's start and the demo's clock; 2017-12 is
#: not due until 2018-01-10
REGISTRY_SNAPSHOTS: tuple[str, ...] = ("2017-06", "2017-09")
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
    values, _ = final_values(seed)
    jitter = [rng_for(seed, "registry", "training", code).uniform(0.92, 1.08) for code in CODES]
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
        rng = rng_for(seed, "registry", period)
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
