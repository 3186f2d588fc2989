"""The KPI report: formatting, marking incomplete KPIs, escaping, and writing from a SQLite warehouse."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, create_engine, insert, text

from tasks.report import (
    KPI_COLUMNS,
    SUBMISSION_COLUMNS,
    TOWNSHIP_COLUMNS,
    ReportData,
    headline_rows,
    load_report_data,
    render_report_html,
    write_report,
)
from tasks.report_charts import Point, bar_chart, line_chart, nice_ticks
from tasks.report_view import Display
from warehouse import schema

GENERATED = datetime(2017, 6, 1, 2, 0, tzinfo=UTC)
MALICIOUS = "<script>x</script>.xlsx"
TOWNSHIP = "513323201"  # 巴旺乡 in warehouse/reference/townships.csv


def kpi(
    year: int, name: str, label: str, value: float, unit: str, dept: str, used: int, expected: int
) -> dict:
    return {
        "year": year, "kpi": name, "label_zh": label, "value": value, "unit": unit, "department": dept,
        "coverage_used": used, "coverage_expected": expected, "coverage": used / expected,
        "definition_zh": f"{label}的口径",
    }  # fmt: skip


def kpi_rows(job_fair_used: int = 165) -> list[dict]:
    """Article figures in base units (元, %, 人次); 2015 tourism revenue so that 2016 is +17 %."""
    cagr = ((10827 / 4150) ** (1 / 5) - 1) * 100
    return [
        kpi(2011, "net_income_per_capita_yuan", "农牧民人均纯收入", 4150, "元", "poverty", 15, 15),
        kpi(2016, "net_income_per_capita_yuan", "农牧民人均纯收入", 10827, "元", "poverty", 15, 15),
        kpi(2016, "net_income_multiple_of_2011", "倍数", 10827 / 4150, "倍", "poverty", 15, 15),
        kpi(2016, "net_income_cagr_since_2011_pct", "年均增长", cagr, "%", "poverty", 15, 15),
        kpi(2011, "poverty_incidence_pct", "贫困发生率", 26.2, "%", "poverty", 15, 15),
        kpi(2016, "poverty_incidence_pct", "贫困发生率", 12.78, "%", "poverty", 15, 15),
        kpi(2015, "tourism_revenue_yuan", "旅游总收入", 7.427e8, "元", "tourism", 180, 180),
        kpi(2016, "tourism_revenue_yuan", "旅游总收入", 8.69e8, "元", "tourism", 180, 180),
        kpi(2016, "tourism_revenue_yoy_pct", "同比", (8.69e8 / 7.427e8 - 1) * 100, "%", "tourism", 180, 180),
        kpi(2016, "tourism_visitors_person_times", "接待游客", 1_234_500, "人次", "tourism", 180, 180),
        kpi(2016, "skills_training_person_times", "技能培训", 3540, "人次", "labour", 180, 180),
        kpi(2016, "job_fair_posts", "招聘会提供岗位", 10000, "个", "labour", job_fair_used, 180),
        kpi(2016, "job_fair_hires_person_times", "招聘会达成就业", 775, "人次", "labour", job_fair_used, 180),
    ]  # fmt: skip


def submission_rows() -> list[dict]:
    base = {"department": "tourism", "department_name": "县旅游局", "received_at": GENERATED,
            "critical_issues": 0, "warning_issues": 0}  # fmt: skip
    return [
        {**base, "submission_id": "a" * 16, "period": "2016-05", "status": "loaded",
         "original_name": "旅游5月.xlsx", "receipt_path": "receipts/2016-05/aaaa.json"},
        {**base, "submission_id": "b" * 16, "period": "2016-06", "status": "rejected", "critical_issues": 2,
         "original_name": MALICIOUS, "receipt_path": "receipts/2016-06/bbbb.json"},
        {**base, "submission_id": "c" * 16, "period": "2016-07", "status": "quarantined",
         "original_name": "旅游7月.xls", "receipt_path": None},
    ]  # fmt: skip


def township_rows() -> list[dict]:
    def row(dept: str, indicator: str, value: float, unit: str) -> dict:
        place = {"township_code": TOWNSHIP, "township_name": "巴旺乡", "year": 2016}
        return {
            "department": dept,
            "indicator": indicator,
            "label_zh": indicator,
            "unit": unit,
            "value": value,
            **place,
        }

    return [
        row("poverty", "net_income_per_capita_yuan", 9876, "元"),
        row("poverty", "registered_poor_year_end_persons", 138, "人"),
        row("poverty", "agricultural_population_persons", 1000, "人"),
        row("tourism", "tourism_revenue_yuan", 12_345_678, "元"),
    ]


@pytest.fixture
def data() -> ReportData:
    return ReportData(
        kpis=pd.DataFrame(kpi_rows(), columns=list(KPI_COLUMNS)),
        submissions=pd.DataFrame(submission_rows(), columns=list(SUBMISSION_COLUMNS)),
        township_values=pd.DataFrame(township_rows(), columns=list(TOWNSHIP_COLUMNS)),
        generated_at=GENERATED,
    )


def cards(page: str) -> list[str]:
    return re.findall(r'<article class="card[^"]*">.*?</article>', page, flags=re.S)


# ---------------------------------------------------------------- rendering
def test_page_is_chinese_first_and_self_contained(data: ReportData) -> None:
    page = render_report_html(data)
    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    assert "丹巴县对口帮扶数据报告" in page and "成华区—丹巴县" in page
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in page
    assert "2017-06-01 10:00 北京时间" in page


def test_headline_figures_are_formatted_exactly(data: ReportData) -> None:
    page = render_report_html(data)
    figures = ["10827 元", "为2011年的倍数 2.61 倍", "年均增长 21.1%", "26.20% → 12.78%", "8.69 亿元"]
    figures += ["同比 +17.0%", "123.45 万人次", "3540 人次", "10000 个 / 775 人次"]
    for figure in figures:
        assert figure in page, figure
    assert "覆盖 15/15 乡镇·年" in page
    assert "口径:农牧民人均纯收入的口径" in page


def test_headline_rows_for_the_cli(data: ReportData) -> None:
    rows = headline_rows(data)
    assert rows[0] == ("农牧民人均纯收入", "10827 元（为2011年的倍数 2.61 倍，年均增长 21.1%）", "覆盖 15/15 乡镇·年")
    assert rows[1] == ("贫困发生率", "26.20% → 12.78%（2011年 → 2016年，变化 -13.42 个百分点）", "覆盖 15/15 乡镇·年")
    assert rows[2] == ("旅游总收入", "8.69 亿元（同比 +17.0%）", "覆盖 180/180 乡镇·月")
    assert rows[-1][2] == "覆盖 165/180 乡镇·月"


def test_default_year_is_the_latest_with_net_income(data: ReportData) -> None:
    extra = pd.DataFrame([kpi(2017, "skills_training_person_times", "技能培训", 1, "人次", "labour", 1, 1)])
    later = ReportData(pd.concat([data.kpis, extra]), data.submissions, data.township_values, GENERATED)
    assert "主要指标(2016年)" in render_report_html(later)
    assert headline_rows(data, year=2011)[0][1].startswith("4150 元")
    assert headline_rows(data, year=2011)[1][1] == "26.20%"


def test_incomplete_kpi_is_marked(data: ReportData) -> None:
    marked = [c for c in cards(render_report_html(data)) if 'class="card incomplete"' in c]
    assert len(marked) == 1
    assert "招聘会" in marked[0] and "数据不完整" in marked[0] and "覆盖 165/180 乡镇·月" in marked[0]

    complete = ReportData(
        pd.DataFrame(kpi_rows(job_fair_used=180)), data.submissions, data.township_values, GENERATED
    )
    assert not any("数据不完整" in c for c in cards(render_report_html(complete)))


def test_file_names_are_escaped_and_receipts_linked(data: ReportData) -> None:
    page = render_report_html(data)
    assert MALICIOUS not in page
    assert "&lt;script&gt;x&lt;/script&gt;.xlsx" in page
    assert 'href="../../receipts/2016-06/bbbb.json"' in page
    assert "已拒收" in page and "已隔离待查" in page
    assert "旅游5月.xlsx" not in page  # loaded submissions are counted, not listed


def test_trend_charts_and_tables(data: ReportData) -> None:
    page = render_report_html(data)
    assert page.count("<svg") == 3
    assert ">7.43<" in page and ">8.69<" in page  # tourism bars in 亿元
    assert "<th>2011</th><th>2015</th><th>2016</th>" in page
    # township: 138 / 1000 × 100 = 13.80 %; 12 345 678 元 = 1234.57 万元
    assert re.search(r"<th>巴旺乡</th><td[^>]*>9876</td><td[^>]*>13.80</td><td[^>]*>1234.57</td>", page)


def test_render_does_not_mutate_its_input(data: ReportData) -> None:
    before = [frame.copy() for frame in (data.kpis, data.submissions, data.township_values)]
    render_report_html(data)
    for old, new in zip(before, (data.kpis, data.submissions, data.township_values), strict=True):
        pd.testing.assert_frame_equal(old, new)


def test_empty_data_renders_no_data() -> None:
    empty = ReportData(
        pd.DataFrame(columns=list(KPI_COLUMNS)),
        pd.DataFrame(columns=list(SUBMISSION_COLUMNS)),
        pd.DataFrame(columns=list(TOWNSHIP_COLUMNS)),
        GENERATED,
    )
    page = render_report_html(empty)
    assert "暂无数据" in page and "<svg" not in page
    assert headline_rows(empty) == []


@pytest.mark.parametrize(
    ("display", "value", "expected"),
    [
        (Display("亿元", 1e8, 2), 8.69e8, "8.69 亿元"),
        (Display("万人次", 1e4, 2), 1_234_500, "123.45 万人次"),
        (Display("%", 1, 1), -0.04, "0.0%"),
        (Display("元", 1, 0), None, "—"),
        (Display("元", 1, 0), float("nan"), "—"),
    ],
)
def test_display_text(display: Display, value: Any, expected: str) -> None:
    assert display.text(value) == expected


def test_charts_escape_and_handle_empty() -> None:
    assert nice_ticks(10827) == [0, 5000, 10000, 15000]
    assert "暂无数据" in line_chart([], title="t", y_label="元")
    svg = bar_chart([Point(2016, 1.0, "<b>", incomplete=True)], title="<i>", y_label="&")
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;" in svg and "数据不完整" in svg


# ---------------------------------------------------------------- warehouse
@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'warehouse.db'}")
    schema.metadata.create_all(engine)
    with engine.begin() as conn:
        for name, sql in schema.VIEWS.items():
            conn.execute(text(f"CREATE VIEW {name} AS {sql}"))
    return engine


def fill_warehouse(engine: Engine) -> None:
    """Two loaded tourism months and one rejected file (reference data comes from ensure_warehouse)."""
    when = datetime(2016, 6, 10, tzinfo=UTC)
    # executemany takes its columns from the first row: every row names the same keys
    sub = {"department": "tourism", "received_at": when, "processed_at": when, "status": "loaded",
           "receipt_path": None}  # fmt: skip
    fact = {"indicator": "tourism_revenue_yuan", "township_code": TOWNSHIP, "department": "tourism",
            "year": 2016, "flagged": False}  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(schema.submission), [
            {**sub, "submission_id": "m5", "sha256": "5", "period": "2016-05", "original_name": "5月.xlsx"},
            {**sub, "submission_id": "m6", "sha256": "6", "period": "2016-06", "original_name": "6月.xlsx"},
            {**sub, "submission_id": "bad", "sha256": "7", "period": "2016-07", "status": "rejected",
             "original_name": MALICIOUS, "receipt_path": "receipts/bad.json"},
        ])  # fmt: skip
        conn.execute(insert(schema.submission_issue), [
            {"submission_id": "bad", "seq": 1, "code": "x", "severity": "critical", "message_zh": "合计不符"}
        ])  # fmt: skip
        conn.execute(insert(schema.fact_indicator_value), [
            {**fact, "submission_id": "m5", "period": "2016-05", "month": 5, "value": 1_000_000},
            {**fact, "submission_id": "m6", "period": "2016-06", "month": 6, "value": 2_500_000},
            {**fact, "submission_id": "bad", "period": "2016-07", "month": 7, "value": 9e9},  # not loaded
        ])  # fmt: skip
        conn.execute(insert(schema.mart_county_kpi_yearly), [{**r, "refreshed_at": when} for r in kpi_rows()])


def test_load_report_data_reads_the_warehouse(warehouse_engine: Engine) -> None:
    """Shared fixture: SQLite, and PostgreSQL when DUIKOU_TEST_POSTGRES_URL is set."""
    fill_warehouse(warehouse_engine)
    data = load_report_data(warehouse_engine)
    assert list(data.kpis.columns) == list(KPI_COLUMNS) and len(data.kpis) == len(kpi_rows())
    assert list(data.township_values.columns) == list(TOWNSHIP_COLUMNS)
    revenue = data.township_values.set_index("indicator").loc["tourism_revenue_yuan"]
    assert revenue["value"] == 3_500_000 and revenue["township_name"] == "巴旺乡"  # months summed
    bad = data.submissions.set_index("submission_id").loc["bad"]
    assert bad["critical_issues"] == 1 and bad["department_name"] == "县旅游局"
    assert headline_rows(data)[2] == ("旅游总收入", "8.69 亿元（同比 +17.0%）", "覆盖 180/180 乡镇·月")


def test_write_report_from_a_filled_warehouse(sqlite_engine: Engine, tmp_path: Path) -> None:
    fill_warehouse(sqlite_engine)
    path = write_report(sqlite_engine, tmp_path / "reports", today=date(2017, 6, 1))
    page = path.read_text(encoding="utf-8")
    assert "8.69 亿元" in page and "350.00" in page  # 3 500 000 元 = 350.00 万元 for 巴旺乡
    assert "&lt;script&gt;" in page and 'href="../../receipts/bad.json"' in page


def test_write_report_on_an_empty_warehouse(engine: Engine, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    path = write_report(engine, reports, today=date(2017, 6, 1))
    assert path == reports / "2017-06-01" / "index.html"
    assert "暂无数据" in path.read_text(encoding="utf-8")
    assert (reports / "latest").is_symlink()
    assert (reports / "latest" / "index.html").read_text(encoding="utf-8") == path.read_text(encoding="utf-8")

    second = write_report(engine, reports, today=date(2017, 6, 2))
    assert (reports / "latest").resolve() == second.parent.resolve()
    assert sorted(p.name for p in reports.iterdir()) == ["2017-06-01", "2017-06-02", "latest"]


def test_latest_is_a_copy_when_symlinks_fail(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("symlinks not permitted")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    reports = tmp_path / "reports"
    write_report(engine, reports, today=date(2017, 6, 1))
    write_report(engine, reports, today=date(2017, 6, 2))
    latest = reports / "latest"
    assert latest.is_dir() and not latest.is_symlink()
    assert (latest / "index.html").exists()
