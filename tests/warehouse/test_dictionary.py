"""The data dictionary (docs/warehouse.md) is generated from the schema and kept current; docs/datasets.md
documents the person-level registry from its declaration."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import Engine

from expectations.declaration import load_declarations, load_kpis
from expectations.registry_declaration import load_registry_declarations
from flows.cli import main as cli_main
from warehouse import schema
from warehouse.dataset_docs import render_datasets_docs
from warehouse.dictionary import (
    NO_DESCRIPTION,
    ExampleQuery,
    example_queries,
    kpi_inputs,
    render_warehouse_markdown,
    select_items,
    view_columns,
)
from warehouse.refdata import indicator_rows

ROOT = Path(__file__).resolve().parents[2]


def test_committed_warehouse_docs_are_current() -> None:
    committed = (ROOT / "docs" / "warehouse.md").read_text(encoding="utf-8")
    assert committed == render_warehouse_markdown(), "docs/warehouse.md is stale: run `duikou db docs`"


def test_every_view_has_a_description() -> None:
    missing = sorted(set(schema.VIEWS) - set(schema.VIEW_COMMENTS))
    assert not missing, f"add a line to schema.VIEW_COMMENTS for {missing}"
    assert not set(schema.VIEW_COMMENTS) - set(schema.VIEWS), "VIEW_COMMENTS names a view that is gone"
    assert NO_DESCRIPTION not in render_warehouse_markdown()


def test_every_table_states_its_grain() -> None:
    assert [t.name for t in schema.metadata.sorted_tables if not t.comment] == []


def test_view_columns_are_reflected_and_traced() -> None:
    columns = view_columns()
    assert list(columns) == list(schema.VIEWS)
    for view, cols in columns.items():
        assert cols, view
        # every column is found in the SELECT list: traced to a table column, or shown as computed
        assert [c.name for c in cols if not c.expression] == [], view
    by_name = {c.name: c for c in columns["v_indicator_value"]}
    assert by_name["value"].source == "fact_indicator_value.value"
    assert by_name["value"].unit == "as in `unit`"
    assert by_name["township_name"].source == "ref_township.name_zh"
    assert columns["v_submission"][-1].source is None  # COUNT(*) subquery: computed


def test_select_items_parse_aliases_and_computed_columns() -> None:
    items, aliases = select_items(
        "WITH x AS (SELECT 1 AS a FROM t) SELECT f.a, g.b AS bee, (SELECT COUNT(*) FROM u WHERE u.k = 'x, y') AS n "
        "FROM fact f LEFT JOIN ref g ON g.id = f.id WHERE f.a > 0"
    )
    assert items == {"a": "f.a", "bee": "g.b", "n": "(SELECT COUNT(*) FROM u WHERE u.k = 'x, y')"}
    assert aliases == {"f": "fact", "fact": "fact", "g": "ref", "ref": "ref"}


def test_indicators_are_listed_with_chinese_labels_and_units() -> None:
    rendered = render_warehouse_markdown()
    for row in indicator_rows(load_declarations()):
        assert f"| `{row['indicator']}` | {row['label_zh']} | {row['unit']} | {row['form_unit']} |" in rendered


def test_kpi_inputs_follow_derived_kpis_to_their_base() -> None:
    inputs = kpi_inputs(load_kpis())
    assert inputs["tourism_revenue_yoy_pct"] == inputs["tourism_revenue_yuan"] == ("tourism_revenue_yuan",)
    assert inputs["poverty_incidence_pct"] == (
        "registered_poor_year_end_persons",
        "agricultural_population_persons",
    )


@pytest.mark.parametrize("example", example_queries(), ids=lambda e: e.question[:40])
def test_example_queries_run(warehouse_engine: Engine, example: ExampleQuery) -> None:
    """On an empty warehouse: the SQL is valid and names real columns, on both backends."""
    with warehouse_engine.connect() as conn:
        conn.exec_driver_sql(example.sql.rstrip().rstrip(";")).all()


def test_cli_db_docs_writes_the_rendering(tmp_path: Path) -> None:
    out = tmp_path / "warehouse.md"
    assert cli_main(["db", "docs", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_warehouse_markdown()


# ---------------------------------------------------------------- docs/datasets.md: the person-level registry
def test_dataset_docs_document_the_registry_from_its_declaration(tmp_path: Path) -> None:
    registry = load_registry_declarations()["labour_registry"]
    rendered = render_datasets_docs()
    assert rendered == (ROOT / "docs" / "datasets.md").read_text(encoding="utf-8")
    section = rendered[rendered.index("## 劳动力实名登记表 — `labour_registry`"):rendered.index("## County KPIs")]
    for col in registry.columns:  # every column, its role and its enumeration
        assert f"| `{col.name}` | {col.header}" in section and f"| {col.role} | {col.type} |" in section
        assert all(v in section for v in col.values)
    for chk in registry.checks:  # every check with severity, action and issue code
        action = chk.action or "flag"
        assert f"| `{chk.check_id}` | {chk.severity} | {action} | `{chk.issue_code}` |" in section
    assert "`person_key` = HMAC-SHA256(`DUIKOU_PERSON_KEY`, ID)" in section
    assert all(f"| `{t}` |" in section for t in schema.metadata.tables if t.startswith("mart_registry_"))
    assert "| `registry_labour_force_vs_form` | `persons` | labour `rural_labour_total_persons`" in section
    assert "±5% of the form's value" in section and "one snapshot per quarter" in section
    # generated, not written: a changed declaration changes the page
    changed = replace(registry, snapshot_months=tuple(range(1, 13)), grace_days=2, reconciliations=(
        replace(registry.reconciliations[0], tolerance_relative=0.1),))
    other = render_datasets_docs(registries={"labour_registry": changed})
    assert "one snapshot per month" in other and "2 grace day(s)" in other and "±10% of the form's value" in other
    assert "registry_poor_labour_vs_form" not in other
    out = tmp_path / "datasets.md"
    assert cli_main(["docs", "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == rendered


def test_every_registry_check_has_a_catalogued_issue_code() -> None:
    from expectations.issues import ISSUE_CODES
    from expectations.registry_declaration import ISSUE_CODE_OF_CHECK, KNOWN_CHECKS

    assert set(ISSUE_CODE_OF_CHECK) == set(KNOWN_CHECKS)
    assert set(ISSUE_CODE_OF_CHECK.values()) <= set(ISSUE_CODES)
