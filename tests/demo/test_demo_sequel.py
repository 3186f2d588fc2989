"""The demo after the article (tasks/demo/sequel.py): 2017-12 … 2020-12 across the 2019 township
reform. The story's values and files are what they were; the sequel's values pass every critical
rule, run on from the story without a jump, and from 2020 list the 12 units, each new unit continuing
its predecessors through the crosswalk; the county's series cross the two declared changes of 口径.

Values and the file plan only (cheap); the files of the full span are what ``duikou demo`` lands
(tests/flows/test_flows.py runs the nightly on the story's span).
"""

from __future__ import annotations

import itertools
from datetime import date

import pandas as pd
import pytest

from expectations.declaration import load_declarations, load_kpis
from tasks.demo.data import _check_through, _plan, demo_as_of, late_returns, missing_returns
from tasks.demo.figures import MONTHS
from tasks.demo.form_writer import township_codes
from tasks.demo.sequel import DEMO_THROUGH, INCIDENCE_PCT, SEQUEL_MONTHS, STORY_THROUGH, carry_counts, carry_levels
from tasks.demo.values import demo_values, in_span, story_figures
from tests.demo.test_demo_data import _critical_failures_and_warnings
from warehouse.marts import compute_county_kpis
from warehouse.refdata import reference_frames

DECLS = load_declarations()
OLD = township_codes(date(2019, 12, 31))
NEW = township_codes(date(2020, 1, 1))
JIAJU, BAWANG_2020, MOERDUOSHAN = "513323R01", "513323R02", "513323R04"
BAWANG, NIEXIA, SUOPO, ZHONGLU = "513323201", "513323202", "513323209", "513323210"


@pytest.fixture(scope="module")
def full() -> dict[tuple[str, str], pd.DataFrame]:
    return demo_values(through=DEMO_THROUGH)


def _year(values: dict[tuple[str, str], pd.DataFrame], department: str, name: str, year: int) -> pd.Series:
    """One indicator summed over the months of ``year``, per township."""
    frames = [f.set_index("township_code")[name] for (d, p), f in values.items() if d == department and
              p.startswith(f"{year}-")]
    return pd.concat(frames, axis=1).sum(axis=1)


def test_the_span_is_a_parameter_and_the_story_is_unchanged(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    story = demo_values()
    assert set(story) < set(full)
    for key, frame in story.items():
        pd.testing.assert_frame_equal(frame, full[key])
    assert story_figures(full)["net_income_2016_yuan"] == story_figures(story)["net_income_2016_yuan"]
    assert SEQUEL_MONTHS[0] == "2017-12" and SEQUEL_MONTHS[-1] == DEMO_THROUGH == "2020-12"
    expected = {("poverty", str(y)) for y in range(2011, 2021)}
    expected |= {(d, p) for d in ("education", "health", "labour", "tourism") for p in (*MONTHS, *SEQUEL_MONTHS)}
    assert set(full) == expected
    assert set(demo_values(through="2018-06")) == {k for k in expected if k[1] <= "2018-06" and k[1] != "2018"}


def test_2020_returns_list_the_12_units(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    assert len(OLD) == 15 and len(NEW) == 12
    for (department, period), frame in full.items():
        units = NEW if period >= "2020" else OLD
        assert list(frame["township_code"]) == list(units), (department, period)
        assert list(frame.columns) == ["township_code", *DECLS[department].indicator_names]
        assert frame.drop(columns="township_code").notna().all().all() and (frame.iloc[:, 1:] >= 0).all().all()


def test_the_sequel_passes_every_critical_rule(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    sequel = {k: f for k, f in full.items() if k not in demo_values()}
    failures, warnings = _critical_failures_and_warnings(sequel)
    assert failures == []
    assert sum(warnings.values()) == 0  # no planted problem after the story: its warnings stay the story's


def test_running_totals_run_on_and_restart_each_january(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    months = (*MONTHS, *SEQUEL_MONTHS)
    for department, name in [("education", "student_aid_ytd_person_times"), ("health", "health_checkups_ytd_persons"),
                             ("labour", "transferred_ytd_total_persons"), ("labour", "transferred_ytd_poor_persons")]:
        for before, after in itertools.pairwise(months):
            a, b = full[(department, before)], full[(department, after)]
            if before[:4] == after[:4]:
                assert (b[name].to_numpy() >= a[name].to_numpy()).all(), (department, name, after)
    for before, after in itertools.pairwise(months):  # 本月 = Δ本年累计 (the labour return's increment_of)
        ytd = full[("labour", after)]["transferred_ytd_total_persons"]
        previous = full[("labour", before)]["transferred_ytd_total_persons"] if before[:4] == after[:4] else 0
        assert (ytd - previous == full[("labour", after)]["transferred_month_total_persons"]).all(), after


def test_the_article_totals_to_2017_12(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    """December 2017 adds what the article's cumulative figures assume beyond the story's November."""
    months = (*MONTHS, "2017-12")
    trained = sum(int(full[("labour", p)]["skills_training_person_times"].sum()) for p in months)
    mid = sum(int(full[("labour", p)]["certified_mid_senior_persons"].sum()) for p in months)
    assert (trained, mid) == (3540, 564)
    revenue_2017 = _year(full, "tourism", "tourism_revenue_yuan", 2017).sum()
    assert revenue_2017 == pytest.approx(86900.0 * 1.16, abs=0.01)  # the story's +16 % over the whole year


def test_tourism_runs_on_from_the_story(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    """Spend per visit, the overnight share and the mix of townships carry on from 2017."""
    def county(year: int) -> tuple[float, float, float]:
        revenue = _year(full, "tourism", "tourism_revenue_yuan", year).sum()
        visitors = _year(full, "tourism", "visitors_person_times", year).sum()
        overnight = _year(full, "tourism", "overnight_visitors_person_times", year).sum()
        return revenue / visitors, overnight / visitors, visitors

    spend, overnight, visitors = zip(*(county(y) for y in range(2016, 2021)), strict=True)
    assert all(400 < s < 700 for s in spend), spend  # 元 per visit
    assert max(spend) / min(spend) < 1.1 and max(overnight) / min(overnight) < 1.15
    assert visitors[0] < visitors[1] < visitors[2] < visitors[3]  # 2016 … 2019 grow
    assert visitors[4] < visitors[3]  # 2020: the epidemic year


def test_poverty_ends_in_2020_and_incomes_grow(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    incidence, income = {}, {}
    for year in range(2016, 2021):
        f = full[("poverty", str(year))]
        pop = f["agricultural_population_persons"]
        incidence[year] = f["registered_poor_year_end_persons"].sum() / pop.sum() * 100
        income[year] = (f["net_income_per_capita_yuan"] * pop).sum() / pop.sum()
        assert (f["registered_poor_year_end_persons"] <= pop).all()
    assert [round(incidence[y], 2) for y in range(2017, 2021)] == [INCIDENCE_PCT[y] for y in range(2017, 2021)]
    assert all(income[a] < income[b] for a, b in itertools.pairwise(range(2016, 2021)))
    assert full[("poverty", "2020")]["exited_poverty_persons"].sum() == full[("poverty", "2019")][
        "registered_poor_year_end_persons"].sum()  # the last poor people of 2019 all exit in 2020
    # 口径 v2 of the population column from 2020 (乡村户籍人口): a few per cent more people, declared
    population = [full[("poverty", str(y))]["agricultural_population_persons"].sum() for y in (2019, 2020)]
    assert 1.02 < population[1] / population[0] < 1.05
    assert [d.version for d in DECLS["poverty"].indicator("agricultural_population_persons").definitions] == [
        "v1", "v2"]


def test_a_new_unit_continues_its_predecessors_through_the_crosswalk(
    full: dict[tuple[str, str], pd.DataFrame],
) -> None:
    """2020 values of a new unit ≈ the crosswalk-weighted sum of its predecessors' trend: its share of
    the county in 2020 is its predecessors' weighted share in 2019 (甲居镇 = 聂呷乡 + 0.2 巴旺乡)."""
    for department, name in [("tourism", "tourism_revenue_yuan"), ("labour", "skills_training_person_times")]:
        before, after = _year(full, department, name, 2019), _year(full, department, name, 2020)
        share_before, share_after = before / before.sum(), after / after.sum()
        expected = dict(zip(NEW, carry_levels([float(share_before[c]) for c in OLD]), strict=True))
        for unit in NEW:
            tolerance = 0.35 if department == "labour" else 0.2  # training is lumpy: a course here or there
            assert share_after[unit] == pytest.approx(expected[unit], rel=tolerance), (department, unit)
    assert expected[JIAJU] == pytest.approx(float(share_before[NIEXIA] + 0.2 * share_before[BAWANG]))
    assert expected[MOERDUOSHAN] == pytest.approx(float(share_before[SUOPO] + share_before[ZHONGLU]))
    # counts split exactly: 巴旺乡's 2019 poor people go 0.2 / 0.8 to 甲居镇 and the new 巴旺乡
    poor_2019 = [int(v) for v in full[("poverty", "2019")]["registered_poor_year_end_persons"]]
    carried = dict(zip(NEW, carry_counts(poor_2019), strict=True))
    assert sum(carried.values()) == sum(poor_2019)
    bawang = poor_2019[OLD.index(BAWANG)]
    assert carried[BAWANG_2020] == round(0.8 * bawang) and carried[JIAJU] == poor_2019[OLD.index(NIEXIA)] + (
        bawang - round(0.8 * bawang))
    health = full[("health", "2020-01")].set_index("township_code")["poor_population_persons"]
    assert health.to_dict() == carried  # the health register of 2020: the poverty office's 2019 year end


def test_the_county_series_cross_two_changes_of_definition(full: dict[tuple[str, str], pd.DataFrame]) -> None:
    """What the report draws as breaks: skills training counts ≥ 5-day courses from 2019 (v2), the
    poverty incidence's denominator counts 乡村户籍人口 from 2020; each year carries its version."""
    rows = []
    for (department, period), frame in full.items():
        if department not in ("poverty", "labour") or period[:4] < "2017":
            continue
        for ind in DECLS[department].indicators:
            for code, value in zip(frame["township_code"], frame[ind.name], strict=True):
                rows.append((department, ind.name, code, period, int(period[:4]), float(value) * ind.factor))
    facts = pd.DataFrame(rows, columns=["department", "indicator", "township_code", "period", "year", "value"])
    chosen = [k for k in load_kpis() if k.kpi in ("skills_training_person_times", "poverty_incidence_pct")]
    kpis = compute_county_kpis(facts, reference_frames().townships, chosen, DECLS).set_index(["kpi", "year"])
    training = kpis.loc["skills_training_person_times"]
    assert training.loc[2018, "definition_version"] != training.loc[2019, "definition_version"]
    assert "不少于5天" in training.loc[2019, "definition_zh"]
    assert training.loc[2019, "value"] < training.loc[2018, "value"]  # fewer 人次 count under v2
    incidence = kpis.loc["poverty_incidence_pct"]
    assert incidence.loc[2019, "definition_version"] != incidence.loc[2020, "definition_version"]
    assert incidence.loc[2020, "value"] == 0.0 and incidence.loc[2020, "coverage_used"] == 12


def test_the_full_plan_plants_its_late_and_missing_return_at_its_clock() -> None:
    assert demo_as_of(STORY_THROUGH) == date(2017, 12, 20) and demo_as_of(DEMO_THROUGH) == date(2021, 1, 20)
    slots = _plan(2017, DEMO_THROUGH)
    keys = [(s.department, s.period, s.kind) for s in slots]
    assert len(slots) == 6 + 4 + 4 * (35 + 37) - 1 + 4 + 1  # every return, one missing, 4 flawed, 1 restated
    assert ("health", "2020-12", "good") not in keys and ("health", "2017-11", "good") in keys
    assert missing_returns(DEMO_THROUGH) == {("health", "2020-12")}
    late = next(s for s in slots if (s.department, s.period) == ("education", "2020-12"))
    assert late.arrived_at == late_returns(DEMO_THROUGH)[("education", "2020-12")]
    assert date(2021, 1, 13) < late.arrived_at.date() <= date(2021, 1, 20)
    assert all(s.arrived_at.date() < date(2021, 1, 20) for s in slots)  # nothing arrives after the clock
    assert sum(s.kind == "flawed" for s in slots) == 4
    fmts = [s.fmt for s in slots if not in_span(s.period, STORY_THROUGH)]
    assert fmts.count("csv-gbk") == 26 and fmts.count("xls") == 5  # the sequel dressed like the story
    for wrong in ("2021-03", "2016-05", "2018"):
        with pytest.raises(ValueError, match="through"):
            _check_through(wrong)


def test_the_story_is_dressed_alike_whatever_the_span() -> None:
    """The story's files keep their formats and quirks when the demo runs on (only the story's missing
    return is sent then, plainly, and its late one arrives on time)."""
    def dressing(through: str) -> dict[tuple[str, str, str, str], tuple[str, str, tuple[str, ...]]]:
        return {(s.department, s.period, s.kind, s.suffix): (s.fmt, str(sorted(s.options.items())), tuple(s.quirks))
                for s in _plan(2017, through) if in_span(s.period, STORY_THROUGH)}

    short, full = dressing(STORY_THROUGH), dressing(DEMO_THROUGH)
    assert set(full) - set(short) == {("health", "2017-11", "good", "")}
    changed = {k for k in short if short[k] != full[k]}
    assert changed == {("education", "2017-11", "good", "")}  # late in the story, on time when it runs on
