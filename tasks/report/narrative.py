"""The dashboard's narrative paragraph, in the programme's own reporting style:

    2016年丹巴县农牧民人均纯收入10827元，是2011年的2.61倍，年均增长21.1%；贫困发生率从2011年的26.20%
    下降到2016年的12.78%；……；在校学生7097人，……；贫困人口参保率100.00%，……

Every figure is a value of ``mart_county_kpi_yearly`` formatted by its kpis.yaml display rule
(prose style: no blank before the unit; the card's precision). A clause whose KPI has no value
for the year is left out, never filled in; a figure computed from incomplete coverage is followed
by its coverage and 数据不完整. Pure: KPI frame in, segments out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from tasks.report.view import KpiIndex


@dataclass(frozen=True)
class Segment:
    """A run of text; ``kpi``/``year`` set when the text is a figure of that KPI."""

    text: str
    kpi: str | None = None
    year: int | None = None


class _Clause:
    def __init__(self, idx: KpiIndex) -> None:
        self.idx = idx
        self.parts: list[Segment] = []
        self.incomplete: list[str] = []

    def text(self, text: str) -> _Clause:
        self.parts.append(Segment(text))
        return self

    def figure(self, kpi: str, year: int) -> _Clause:
        self.parts.append(Segment(self.idx.prose(kpi, year), kpi, year))
        if self.idx.incomplete(kpi, year):
            self.incomplete.append(f"{self.idx.label(kpi)}{self.idx.coverage_text(kpi, year).replace(' ', '')}")
        return self

    def close(self) -> list[Segment]:
        if self.incomplete:
            self.parts.append(Segment(f"（数据不完整：{'，'.join(self.incomplete)}）"))
        return self.parts


#: (words before the figure, KPI) of the education and health clauses, in reading order
EDUCATION_CLAUSE = (("在校学生", "enrolled_students_persons"), ("期末辍学学生", "dropouts_persons"),
                    ("营养改善计划覆盖率", "nutrition_coverage_pct"))
HEALTH_CLAUSE = (("贫困人口参保率", "insurance_coverage_pct"), ("家庭医生签约率", "family_doctor_coverage_pct"),
                 ("住院", "inpatient_person_times"), ("住院费用个人自付比例", "out_of_pocket_share_pct"))


def _change_word(value: float | None, up: str, down: str) -> str:
    return down if value is not None and value < 0 else up


def narrative(kpis: pd.DataFrame, year: int | None, county: str) -> list[Segment]:
    """The paragraph for ``year`` as segments ([] when the year has no KPI at all)."""
    if year is None:
        return []
    idx = KpiIndex(kpis)
    has = lambda kpi, y=year: idx.value(kpi, y) is not None  # noqa: E731
    base = idx.base_year()
    clauses: list[list[Segment]] = []

    if has("net_income_per_capita_yuan"):
        c = _Clause(idx).text("农牧民人均纯收入").figure("net_income_per_capita_yuan", year)
        if has("net_income_multiple_of_2011"):
            c.text(f"，是{base}年的").figure("net_income_multiple_of_2011", year)
        if has("net_income_cagr_since_2011_pct"):
            c.text("，年均增长").figure("net_income_cagr_since_2011_pct", year)
        clauses.append(c.close())
    if has("poverty_incidence_pct"):
        c = _Clause(idx).text("贫困发生率")
        versions = {str((idx.row("poverty_incidence_pct", y) or {}).get("definition_version") or "v1")
                    for y in (base, year)}
        if year > base and has("poverty_incidence_pct", base) and len(versions) > 1:  # two 口径: no change word
            c.figure("poverty_incidence_pct", year).text(f"（{base}年").figure("poverty_incidence_pct", base)
            c.text("，口径不同，不作比较）")
        elif year > base and has("poverty_incidence_pct", base):
            change = (idx.value("poverty_incidence_pct", year) or 0) - (idx.value("poverty_incidence_pct", base) or 0)
            c.text(f"从{base}年的").figure("poverty_incidence_pct", base)
            c.text(f"{_change_word(change, '上升到', '下降到')}{year}年的").figure("poverty_incidence_pct", year)
        else:
            c.figure("poverty_incidence_pct", year)
        clauses.append(c.close())
    if has("tourism_revenue_yuan") or has("tourism_visitors_person_times"):
        c = _Clause(idx)
        if has("tourism_revenue_yuan"):
            c.text("旅游总收入").figure("tourism_revenue_yuan", year)
            if has("tourism_revenue_yoy_pct"):
                yoy = idx.value("tourism_revenue_yoy_pct", year)
                c.text(f"，同比{_change_word(yoy, '增长', '下降')}")
                c.parts.append(Segment(idx.display("tourism_revenue_yoy_pct").prose(abs(yoy or 0.0)),
                                       "tourism_revenue_yoy_pct", year))  # fmt: skip
        if has("tourism_visitors_person_times"):
            c.text("，接待游客" if c.parts else "接待游客").figure("tourism_visitors_person_times", year)
        clauses.append(c.close())
    labour = [k for k in ("skills_training_person_times", "transferred_employment_persons") if has(k)]
    if labour:
        c = _Clause(idx)
        for i, kpi in enumerate(labour):
            c.text(("，" if i else "") + idx.label(kpi).split("(")[0]).figure(kpi, year)
        clauses.append(c.close())
    if has("job_fair_posts") and has("job_fair_hires_person_times"):
        c = _Clause(idx).text("招聘会提供岗位").figure("job_fair_posts", year)
        c.text("，达成就业").figure("job_fair_hires_person_times", year)
        if has("job_fair_hire_rate_pct"):
            c.text("，达成率").figure("job_fair_hire_rate_pct", year)
        clauses.append(c.close())
    for parts in (EDUCATION_CLAUSE, HEALTH_CLAUSE):
        present = [(text, kpi) for text, kpi in parts if has(kpi)]
        if present:
            c = _Clause(idx)
            for i, (text, kpi) in enumerate(present):
                c.text(("，" if i else "") + text).figure(kpi, year)
            clauses.append(c.close())

    if not clauses:
        return []
    out = [Segment(f"{year}年{county}")]
    for i, clause in enumerate(clauses):
        out += ([Segment("；")] if i else []) + clause
    return [*out, Segment("。")]


def narrative_text(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments)
