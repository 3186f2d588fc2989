"""Declarations drive everything; adding a return needs no Python."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from expectations.declaration import DeclarationError, load_declarations, load_kpis, parse_declaration
from tasks.forms.layout import locate_form
from tasks.forms.normalise import normalise_form
from tasks.forms.periods import Period
from tasks.forms.read import read_grids
from tasks.forms.townships import TownshipResolver
from tasks.validation.validate import validate_form
from warehouse.dataset_docs import render_datasets_docs
from warehouse.refdata import reference_frames

ROOT = Path(__file__).resolve().parents[2]

SIXTH_RETURN = {
    "dataset": "herbs",
    "department": "poverty",
    "title_zh": "中药材种植基地情况年报表",
    "period_type": "year",
    "grain": "one row per township per year",
    "key": {"header": "乡(镇)"},
    "indicators": [
        {"name": "herb_area_mu", "label_zh": "种植面积", "header": ["种植面积(亩)"], "unit": "亩", "type": "decimal",
         "kind": "stock"},
        {"name": "herb_households", "label_zh": "种植户数", "header": ["种植户数"], "unit": "户", "type": "integer",
         "kind": "stock"},
        {"name": "herb_poor_households", "label_zh": "其中贫困户", "header": ["其中:贫困户"], "unit": "户",
         "type": "integer", "kind": "stock"},
    ],
    "rules": [
        {"id": "herbs_poor_le_all", "check": "herb_poor_households <= herb_households", "severity": "critical",
         "action": "quarantine", "reason": "subset", "message_zh": "贫困户多于种植户"},
    ],
}


def test_the_five_declarations_load_and_cover_the_domain() -> None:
    declarations = load_declarations()
    assert set(declarations) == {"education", "health", "labour", "tourism", "poverty"}
    assert declarations["poverty"].period_type == "year"
    assert declarations["tourism"].indicator("tourism_revenue_yuan").factor == 10000
    assert declarations["tourism"].indicator("visitors_person_times").base_unit == "人次"
    assert {k.kpi for k in load_kpis()} >= {"net_income_per_capita_yuan", "poverty_incidence_pct",
                                            "tourism_revenue_yuan", "job_fair_posts"}


def test_committed_dataset_docs_are_current() -> None:
    rendered = render_datasets_docs()  # the forms (expectations/docs.py) and the registries
    committed = (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    assert committed == rendered, "docs/datasets.md is stale: run `duikou docs`"


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"period_type": "week"}, "period_type"),
        ({"indicators": [{"name": "BadName", "label_zh": "x", "header": ["x"], "unit": "人"}]}, "snake_case"),
        ({"indicators": [{"name": "a", "label_zh": "x", "header": ["x"], "unit": "公斤"}]}, "units.csv"),
        ({"indicators": [{"name": "a", "label_zh": "x", "header": ["x"], "unit": "人"}]}, "kind must be one of"),
        ({"indicators": [{"name": "a", "label_zh": "x", "header": ["x"], "unit": "人", "cumulative": True}]},
         "now 'kind: cumulative'"),
        ({"indicators": [{"name": "a", "label_zh": "x", "header": ["x"], "unit": "人次", "kind": "stock"}]},
         "人次 counts events"),
        ({"indicators": [{"name": "a", "label_zh": "x", "header": ["x"], "unit": "%", "type": "rate",
                          "kind": "rate"}]}, "a rate is never summed"),
        ({"rules": [{"id": "r", "check": "__import__('os') <= 1", "severity": "critical", "action": "reject",
                     "reason": "x", "message_zh": "x"}]}, "unsupported"),
        ({"rules": [{"id": "r", "check": "nosuch <= herb_households", "severity": "critical", "action": "reject",
                     "reason": "x", "message_zh": "x"}]}, "unknown indicators"),
        ({"rules": [{"id": "r", "check": "herb_households >= 0", "severity": "critical",
                     "reason": "x", "message_zh": "x"}]}, "action"),
    ],
)
def test_malformed_declarations_are_refused_with_the_field_named(patch: dict[str, object], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        parse_declaration({**SIXTH_RETURN, **patch}, "herbs.yaml")


def test_a_sixth_return_needs_no_python(tmp_path: Path) -> None:
    import openpyxl

    declaration = parse_declaration(SIXTH_RETURN, "herbs.yaml")
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["丹巴县2016年中药材种植基地情况年报表"])
    ws.append(["乡（镇）", "种植面积（亩）", "种植户数", "其中：贫困户"])
    ref = reference_frames()
    of_2016 = ref.townships[ref.townships["valid_from"] <= date(2016, 1, 1)]  # the 15 before the 2019 reform
    codes = of_2016["township_code"].tolist()
    names = of_2016["name_zh"].tolist()
    for i, name in enumerate(names):
        ws.append([name, 100 + i, 10 + i, 12 + i if i == 3 else 5])
    ws.append(["合计", sum(100 + i for i in range(15)), sum(10 + i for i in range(15)), None])
    path = tmp_path / "herbs.xlsx"
    wb.save(path)

    grids = read_grids(path.read_bytes(), path.name)
    form_table = locate_form(grids[0], declaration)
    assert form_table is not None
    resolver = TownshipResolver(ref.townships, ref.aliases, ref.helper_units, ref.pairings,
                                date(2016, 1, 1), date(2016, 12, 31))
    form = normalise_form(form_table, declaration, Period(2016), resolver)
    assert list(form.wide["township_code"]) == codes
    assert form.wide["herb_area_mu"].sum() == sum(100 + i for i in range(15))
    validation = validate_form(form, declaration)
    assert validation.outcome == "quarantined"
    failed = {r.check_id for r in validation.results if not r.success}
    assert failed == {"herbs_poor_le_all"}
    assert pd.Index(sorted(validation.rejected_rows)).tolist() == [6]


KPI_HEAD = "kpis:\n"


@pytest.mark.parametrize(
    ("kpi", "message"),
    [
        # a stock summed over months: twelve month-end head counts of the same households
        ("method: sum\n    indicator: herb_households", "cannot take indicator 'herb_households', a stock"),
        ("method: period_end\n    indicator: herb_area_mu", None),
        ("method: period_end\n    indicator: herb_new_households", "a flow"),
        ("method: ratio\n    numerator: herb_share_pct\n    denominator: herb_households", "a rate"),
    ],
)
def test_a_kpi_that_adds_an_indicator_up_against_its_kind_is_refused(
    tmp_path: Path, kpi: str, message: str | None
) -> None:
    """Each indicator declares its kind; a KPI method that sums a stock over months (or sums a flow's
    last month, or a rate) is refused when kpis.yaml is loaded, naming the KPI and the fix."""
    declarations = tmp_path / "declarations"
    declarations.mkdir()
    herbs = {**SIXTH_RETURN, "period_type": "month", "indicators": [
        *SIXTH_RETURN["indicators"],  # type: ignore[list-item]
        {"name": "herb_new_households", "label_zh": "新增", "header": ["新增"], "unit": "户", "kind": "flow"},
        {"name": "herb_share_pct", "label_zh": "占比", "header": ["占比"], "unit": "%", "type": "rate", "kind": "rate",
         "aggregation": "none"},
    ]}  # fmt: skip
    import yaml

    (declarations / "herbs.yaml").write_text(yaml.safe_dump(herbs, allow_unicode=True), encoding="utf-8")
    kpis = tmp_path / "kpis.yaml"
    kpis.write_text(f"{KPI_HEAD}  - kpi: k\n    label_zh: 指标\n    unit: 户\n    department: poverty\n"
                    f"    definition_zh: 口径\n    {kpi}\n", encoding="utf-8")  # fmt: skip
    if message is None:
        assert load_kpis(kpis, declarations)[0].method == "period_end"
        return
    with pytest.raises(DeclarationError, match=message) as refused:
        load_kpis(kpis, declarations)
    assert "kpis.yaml kpi 'k'" in str(refused.value) and "use method:" in str(refused.value)
