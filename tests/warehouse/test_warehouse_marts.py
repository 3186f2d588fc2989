"""Unit tests of the pure KPI computation on small inline frames (no database).

The article's figures for Danba 2016 are the yardstick: net income 10827 元, 2.61× 2011
(4150 元), CAGR 21.1 %, poverty incidence 26.2 % → 12.78 %, tourism revenue 8.69 亿元 +17 %.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import pandas as pd
import pytest

from expectations.declaration import Kpi, load_declarations, load_kpis, parse_declaration
from warehouse.current_facts import VALUE_COLUMNS
from warehouse.marts import KPI_COLUMNS, compute_county_kpis

A, B, C = "513323100", "513323201", "513323101"


def townships(*codes: str, valid_to: dict[str, date] | None = None) -> pd.DataFrame:
    ends = valid_to or {}
    return pd.DataFrame(
        [
            {"township_code": c, "valid_from": date(2000, 1, 1), "valid_to": ends.get(c, date(2019, 12, 31))}
            for c in codes
        ]
    )


def value_rows(department: str, rows: Sequence[tuple[str, str, str, float | None]]) -> pd.DataFrame:
    """``(indicator, township, period, value)`` tuples → a ``v_indicator_value``-shaped frame."""
    return pd.DataFrame(
        [
            {
                "department": department,
                "indicator": indicator,
                "township_code": township,
                "period": period,
                "year": int(period[:4]),
                "value": float("nan") if value is None else value,
            }
            for indicator, township, period, value in rows
        ],
        columns=list(VALUE_COLUMNS),
    )


def poverty_year(
    year: str, per_township: dict[str, tuple[float, float, float]]
) -> list[tuple[str, str, str, float | None]]:
    rows: list[tuple[str, str, str, float | None]] = []
    for township, (population, poor, income) in per_township.items():
        rows += [
            ("agricultural_population_persons", township, year, population),
            ("registered_poor_year_end_persons", township, year, poor),
            ("net_income_per_capita_yuan", township, year, income),
        ]
    return rows


@pytest.fixture
def article_values() -> pd.DataFrame:
    poverty = value_rows(
        "poverty",
        poverty_year("2011", {A: (5000, 1310, 4000), B: (5000, 1310, 4300)})
        + poverty_year("2016", {A: (5000, 639, 10000), B: (5000, 639, 11654)}),
    )
    tourism = value_rows(
        "tourism",
        [("tourism_revenue_yuan", A, f"2015-{m:02d}", 7.43e8 / 12) for m in range(1, 13)]
        + [("tourism_revenue_yuan", A, f"2016-{m:02d}", 8.69e8 / 12) for m in range(1, 13)],
    )
    return pd.concat([poverty, tourism], ignore_index=True)


def kpi_table(frame: pd.DataFrame) -> dict[tuple[str, int], pd.Series]:
    return {(row["kpi"], int(row["year"])): row for _, row in frame.iterrows()}


def test_article_figures(article_values: pd.DataFrame) -> None:
    snapshot = article_values.copy()
    town = townships(*(f"5133232{n:02d}" for n in range(15)))
    out = compute_county_kpis(article_values, town, load_kpis(), load_declarations())
    pd.testing.assert_frame_equal(article_values, snapshot)  # pure: the input is untouched
    assert list(out.columns) == list(KPI_COLUMNS)
    kpi = kpi_table(out)
    assert kpi[("net_income_per_capita_yuan", 2016)]["value"] == pytest.approx(10827)
    assert kpi[("net_income_per_capita_yuan", 2011)]["value"] == pytest.approx(4150)
    assert round(kpi[("net_income_multiple_of_2011", 2016)]["value"], 2) == 2.61
    assert round(kpi[("net_income_cagr_since_2011_pct", 2016)]["value"], 1) == 21.1
    assert kpi[("poverty_incidence_pct", 2011)]["value"] == pytest.approx(26.2)
    assert kpi[("poverty_incidence_pct", 2016)]["value"] == pytest.approx(12.78)
    assert kpi[("tourism_revenue_yuan", 2016)]["value"] == pytest.approx(8.69e8)
    assert round(kpi[("tourism_revenue_yoy_pct", 2016)]["value"]) == 17
    # derived KPIs only where both years exist, and not for the base year itself
    assert ("net_income_multiple_of_2011", 2011) not in kpi
    assert ("net_income_cagr_since_2011_pct", 2011) not in kpi
    assert ("tourism_revenue_yoy_pct", 2015) not in kpi
    # KPIs without inputs produce no rows
    assert not out["kpi"].isin(["tourism_visitors_person_times", "job_fair_hire_rate_pct"]).any()
    # values are stored unrounded
    assert kpi[("net_income_multiple_of_2011", 2016)]["value"] == pytest.approx(10827 / 4150, rel=1e-12)


def test_coverage(article_values: pd.DataFrame) -> None:
    town = townships(*(f"5133232{n:02d}" for n in range(15)))
    kpi = kpi_table(compute_county_kpis(article_values, town, load_kpis(), load_declarations()))
    income = kpi[("net_income_per_capita_yuan", 2016)]
    assert (income["coverage_used"], income["coverage_expected"]) == (2, 15)  # annual: × 1
    assert income["coverage"] == pytest.approx(2 / 15)
    revenue = kpi[("tourism_revenue_yuan", 2016)]
    assert (revenue["coverage_used"], revenue["coverage_expected"]) == (12, 180)  # monthly: × 12
    yoy = kpi[("tourism_revenue_yoy_pct", 2016)]
    assert (yoy["coverage_used"], yoy["coverage_expected"]) == (24, 360)  # two years added up
    cagr = kpi[("net_income_cagr_since_2011_pct", 2016)]
    assert (cagr["coverage_used"], cagr["coverage_expected"]) == (4, 30)


def test_expected_coverage_follows_township_validity() -> None:
    values = value_rows(
        "poverty", poverty_year("2011", {A: (100, 10, 4000)}) + poverty_year("2016", {A: (100, 5, 9000)})
    )
    town = townships(A, B, C, valid_to={C: date(2012, 12, 31)})
    kpi = kpi_table(compute_county_kpis(values, town, load_kpis(), load_declarations()))
    assert kpi[("poverty_incidence_pct", 2011)]["coverage_expected"] == 3
    assert kpi[("poverty_incidence_pct", 2016)]["coverage_expected"] == 2


def test_inputs_must_all_be_present_for_a_township() -> None:
    # B has no population (the weight): it is left out of numerator and denominator alike
    values = value_rows(
        "poverty",
        [
            ("agricultural_population_persons", A, "2016", 1000),
            ("net_income_per_capita_yuan", A, "2016", 9000),
            ("agricultural_population_persons", B, "2016", None),
            ("net_income_per_capita_yuan", B, "2016", 20000),
            ("registered_poor_year_end_persons", A, "2016", 100),
        ],
    )
    kpi = kpi_table(compute_county_kpis(values, townships(A, B), load_kpis(), load_declarations()))
    income = kpi[("net_income_per_capita_yuan", 2016)]
    assert income["value"] == pytest.approx(9000)
    assert income["coverage_used"] == 1
    assert kpi[("poverty_incidence_pct", 2016)]["value"] == pytest.approx(10.0)


def test_zero_denominator_gives_null() -> None:
    values = value_rows(
        "labour",
        [("job_fair_hires_person_times", A, "2017-05", 0), ("job_fair_posts", A, "2017-05", 0)],
    )
    kpi = kpi_table(compute_county_kpis(values, townships(A), load_kpis(), load_declarations()))
    rate = kpi[("job_fair_hire_rate_pct", 2017)]
    assert rate["value"] is None or pd.isna(rate["value"])
    assert rate["coverage_used"] == 1
    assert kpi[("job_fair_posts", 2017)]["value"] == 0


DEMO = parse_declaration(
    {
        "dataset": "demo",
        "department": "demo",
        "title_zh": "演示月报表",
        "period_type": "month",
        "grain": "one row per township per month",
        "key": {"header": "乡(镇)"},
        "indicators": [
            {
                "name": "trained_ytd_person_times",
                "label_zh": "培训人次(本年累计)",
                "header": ["培训人次(本年累计)"],
                "unit": "人次",
                "type": "integer",
                "kind": "cumulative",
            },
            {"name": "posts", "label_zh": "岗位", "header": ["岗位"], "unit": "个", "type": "integer", "kind": "flow"},
            {"name": "pupils_persons", "label_zh": "在校学生", "header": ["在校学生"], "unit": "人", "type": "integer",
             "kind": "stock"},
        ],
    },
    "demo.yaml",
)
TRAINED = Kpi(
    kpi="trained",
    label_zh="培训",
    unit="人次",
    department="demo",
    method="period_end",
    decimals=0,
    definition_zh="本年累计取各乡镇最后一期之和",
    indicator="trained_ytd_person_times",
)
POSTS = Kpi(
    kpi="posts",
    label_zh="岗位",
    unit="个",
    department="demo",
    method="sum",
    decimals=0,
    definition_zh="各月之和",
    indicator="posts",
)
POSTS_YOY = Kpi(
    kpi="posts_yoy",
    label_zh="岗位同比",
    unit="%",
    department="demo",
    method="yoy",
    decimals=1,
    definition_zh="同比",
    of="posts",
)


def test_cumulative_indicator_uses_each_townships_latest_month() -> None:
    values = value_rows(
        "demo",
        [
            ("trained_ytd_person_times", A, "2017-01", 10),
            ("trained_ytd_person_times", A, "2017-02", 25),
            ("trained_ytd_person_times", A, "2017-03", 40),
            ("trained_ytd_person_times", B, "2017-01", 5),
            ("trained_ytd_person_times", B, "2017-02", 9),
            ("trained_ytd_person_times", B, "2017-03", None),  # blank: B's latest value is February's
            ("posts", A, "2017-01", 3),
            ("posts", A, "2017-02", 4),
            ("posts", B, "2017-02", 5),
        ],
    )
    out = compute_county_kpis(values, townships(A, B), [TRAINED, POSTS, POSTS_YOY], {"demo": DEMO})
    kpi = kpi_table(out)
    trained = kpi[("trained", 2017)]
    assert trained["value"] == 49  # 40 (A, March) + 9 (B, February)
    assert (trained["coverage_used"], trained["coverage_expected"]) == (5, 24)
    assert kpi[("posts", 2017)]["value"] == 12  # not cumulative: months add up
    assert ("posts_yoy", 2017) not in kpi  # no 2016 to compare with


def test_a_stock_counts_its_latest_month_and_is_never_summed_over_months() -> None:
    """A stock (head count) read by period_end: each township's latest month, summed over townships;
    the same stock handed to method sum (which would add twelve month-ends) is refused and skipped."""
    rows = [("pupils_persons", A, f"2017-{m:02d}", 100 + m) for m in (1, 2, 3)]
    values = value_rows("demo", [*rows, ("pupils_persons", B, "2017-02", 50)])
    end = Kpi(kpi="pupils", label_zh="在校学生", unit="人", department="demo", method="period_end", decimals=0,
              definition_zh="期末", indicator="pupils_persons")  # fmt: skip
    summed = Kpi(kpi="pupils_summed", label_zh="在校学生", unit="人", department="demo", method="sum",
                 decimals=0, definition_zh="各月之和", indicator="pupils_persons")  # fmt: skip
    skipped: list[str] = []
    kpi = kpi_table(compute_county_kpis(values, townships(A, B), [end, summed], {"demo": DEMO}, skipped))
    assert kpi[("pupils", 2017)]["value"] == 103 + 50  # not 101 + 102 + 103 + 50
    assert ("pupils_summed", 2017) not in kpi
    assert any("pupils_summed" in s and "stock" in s for s in skipped), skipped


def test_no_values_gives_an_empty_frame() -> None:
    empty = value_rows("poverty", [])
    out = compute_county_kpis(empty, townships(A), load_kpis(), load_declarations())
    assert out.empty and list(out.columns) == list(KPI_COLUMNS)


def test_derived_kpi_must_follow_its_base() -> None:
    with pytest.raises(ValueError, match="not computed before"):
        compute_county_kpis(value_rows("demo", []), townships(A), [POSTS_YOY], {"demo": DEMO})
