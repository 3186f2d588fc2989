"""``duikou dq docs`` for a person-level registry submission: the declared checks with the counts the
load stored in ``dq_result``, GX Data Docs of the de-identified sample (re-validated from the kept
file: the same counts), nothing of the sample for a rejected snapshot, and the page without the GX
site when the person key is missing. (No ID or name in any of it: tests/registry/test_registry_privacy.py.)"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from sqlalchemy import Engine, select

from duikou_settings import Settings, get_settings, reset_settings_cache
from expectations.registry_declaration import load_registry_declarations
from flows.warehouse_access import open_warehouse
from tasks.demo.registry import registry_table, write_registry_csv
from tasks.registry.dq_docs import build_registry_docs
from tasks.validation.data_docs import DataDocs, docs_dir, ledger_row
from warehouse import schema

DECL = load_registry_declarations()["labour_registry"]


def build_data_docs(engine: Engine, settings: Settings, submission_id: str, out_dir: Path) -> DataDocs:
    """What ``duikou dq docs`` does for a registry submission."""
    return build_registry_docs(engine, settings, ledger_row(engine, submission_id),
                               docs_dir(settings, submission_id, out_dir))


def _ingest(tmp_path: Path, period: str, *, income: str | None = None, blank_sex: bool = False) -> str:
    from flows.cli import main

    table = registry_table(DECL, 60, date(2017, 9, 30), seed=33)
    if income is not None:  # one income outside 0 … 50 000 元: a warning, the snapshot loads flagged
        incomes = table.column("月收入(元)").to_pylist()
        incomes[4] = income
        table = table.set_column(table.column_names.index("月收入(元)"), "月收入(元)", pa.array(incomes))
    if blank_sex:  # a required field blank: critical, the snapshot is rejected
        sexes = table.column("性别").to_pylist()
        sexes[2] = None
        table = table.set_column(table.column_names.index("性别"), "性别", pa.array(sexes, pa.string()))
    path = write_registry_csv(table, tmp_path / f"registry-{period}.csv")
    main(["ingest", str(path), "--department", "labour_registry", "--period", period])
    engine = open_warehouse(get_settings())
    sub = schema.submission
    with engine.connect() as conn:
        return str(conn.execute(select(sub.c.submission_id).where(sub.c.department == "labour_registry",
                                                                   sub.c.period == period)).scalar_one())


def _row(check: str, *cells: object) -> str:
    return f"<td>{check}</td>" + "".join(f"<td>{c}</td>" for c in cells)


def test_loaded_snapshot_gets_its_checks_counts_and_sample_docs(
    prefect_harness: None, registry_env: Path, tmp_path: Path
) -> None:
    submission_id = _ingest(tmp_path, "2017-09", income="80000")
    engine = open_warehouse(get_settings())
    with engine.connect() as conn:
        stored = {r.check_id: r for r in conn.execute(select(schema.dq_result).where(
            schema.dq_result.c.submission_id == submission_id))}
    assert stored["registry__value_out_of_range"].unexpected_count == 1
    docs = build_data_docs(engine, get_settings(), submission_id, tmp_path / "docs")
    page = docs.index_html.read_text(encoding="utf-8")
    assert docs.index_html == (tmp_path / "docs" / "index.html").resolve()
    assert docs.checks == len(stored) and not docs.success  # a warning failed: not all passed
    # every declared check, with its issue code and the stored count of failing rows of rows read;
    # the re-run over the kept file finds the same
    for chk in DECL.checks:
        failing = stored[f"registry__{chk.check_id}"].unexpected_count
        action = chk.action or "flag"
        result = "通过 passed" if failing == 0 else "未通过 failed"
        assert _row(chk.check_id, chk.severity, action, chk.issue_code, failing, 60, result, failing) in page
    # the GX sample results as stored, and the same on the re-validated sample, with Data Docs
    income = stored["gx_sample__monthly_income_yuan__range"]
    assert (income.success, income.unexpected_count) == (False, 1)
    assert _row("gx_sample__monthly_income_yuan__range", "ExpectColumnValuesToBeBetween", "warning",
                "未通过 failed", 60, 1, "未通过 failed", 1) in page
    gx_index = tmp_path / "docs" / "gx" / "index.html"
    assert gx_index.is_file() and 'href="gx/index.html"' in page
    assert any("monthly_income_yuan" in p.read_text(encoding="utf-8") for p in (tmp_path / "docs" / "gx").rglob(
        "*.html"))


def test_rejected_snapshot_gets_counts_but_no_sample_docs(
    prefect_harness: None, registry_env: Path, tmp_path: Path
) -> None:
    from flows.cli import main

    submission_id = _ingest(tmp_path, "2017-06", blank_sex=True)
    out = tmp_path / "docs"
    assert main(["dq", "docs", submission_id, "--out", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<b>rejected</b>" in page
    assert _row("value_missing", "critical", "reject", "VALUE_REQUIRED_MISSING", 1, 60, "未通过 failed") in page
    assert "GX 只校验已入库快照" in page and not (out / "gx").exists()
    assert _row("VALUE_REQUIRED_MISSING", "critical", 1) in page  # the receipt's issue codes, counted


def test_without_the_person_key_the_page_is_written_without_rereading_the_file(
    prefect_harness: None, registry_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    submission_id = _ingest(tmp_path, "2017-09")
    monkeypatch.delenv("DUIKOU_PERSON_KEY")
    reset_settings_cache()
    docs = build_data_docs(open_warehouse(get_settings()), get_settings(), submission_id, tmp_path / "docs")
    page = docs.index_html.read_text(encoding="utf-8")
    assert "DUIKOU_PERSON_KEY 未设置" in page and not (tmp_path / "docs" / "gx").exists()
    assert _row("id_check_digit", "critical", "reject", "PERSON_ID_CHECK_DIGIT", 0, 60, "通过 passed", "—") in page
