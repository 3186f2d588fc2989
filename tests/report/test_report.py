"""The report site: formatting, narrative, incomplete marking, completeness empty states, escaping,
and building the site (pages, exports, receipts, latest) from a real warehouse."""

from __future__ import annotations

import dataclasses
import json
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine, insert

from tasks.report.build_site import ReportData, build_report, headline_rows, render_site
from tasks.report.charts import Point, bar_chart, line_chart, nice_ticks, sparkline
from tasks.report.data import COMPLETENESS_COLUMNS, COMPLETENESS_TOWNSHIP_COLUMNS, load_report_data
from tasks.report.export import csv_text
from tasks.report.narrative import narrative, narrative_text
from tasks.report.registry import NO_SNAPSHOT, registry_lines, registry_views
from tasks.report.style import zh_punct
from tasks.report.view import Display, period_label_zh
from warehouse import schema
from warehouse.marts import KPI_COLUMNS

GENERATED = datetime(2017, 6, 1, 2, 0, tzinfo=UTC)
MALICIOUS = "<script>x</script>.xlsx"
TOWNSHIP = "513323201"  # 巴旺乡 in warehouse/reference/townships.csv
DEPARTMENTS = {"poverty": "县扶贫开发办公室", "tourism": "县旅游局", "labour": "县人力资源和社会保障局"}


def kpi(year: int, name: str, label: str, value: float, unit: str, dept: str, used: int, expected: int) -> dict:
    return {
        "year": year, "kpi": name, "label_zh": label, "value": value, "unit": unit, "department": dept,
        "coverage_used": used, "coverage_expected": expected, "coverage": used / expected,
        "publishable": used >= expected, "definition_zh": f"{label}的口径",
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
        kpi(2016, "job_fair_hire_rate_pct", "招聘会就业达成率", 7.76, "%", "labour", job_fair_used, 180),
    ]  # fmt: skip


def submission_rows() -> list[dict]:
    base = {"department": "tourism", "department_name": "县旅游局", "received_at": GENERATED,
            "critical_issues": 0, "warning_issues": 0}  # fmt: skip
    return [
        {**base, "submission_id": "a" * 16, "period": "2016-05", "status": "loaded",
         "original_name": "旅游5月.xlsx", "receipt_path": "receipts/aaaa.json"},
        {**base, "submission_id": "b" * 16, "period": "2016-06", "status": "rejected", "critical_issues": 2,
         "original_name": MALICIOUS, "receipt_path": "receipts/bbbb.json"},
        {**base, "submission_id": "c" * 16, "period": "2016-07", "status": "quarantined",
         "original_name": "旅游7月.xls", "receipt_path": None},
    ]  # fmt: skip


def township_frame() -> pd.DataFrame:
    return pd.DataFrame([
        {"township_code": TOWNSHIP, "township_name": "巴旺乡", "township_type": "乡", "valid_from": date(2011, 1, 1),
         "valid_to": None, "helper_unit_name": "猛追湾街道", "pairing_source": "ART", "pairing_verified": True},
        {"township_code": "513323208", "township_name": "格宗乡", "township_type": "乡",
         "valid_from": date(2011, 1, 1), "valid_to": None, "helper_unit_name": "圣灯街道",
         "pairing_source": "assumed", "pairing_verified": False},
    ])  # fmt: skip


def value_frame() -> pd.DataFrame:
    rows = []
    for code, income, poor in ((TOWNSHIP, 9876, 138), ("513323208", 11000, 90)):
        for year, factor in ((2011, 0.4), (2016, 1.0)):
            rows += [
                ("poverty", "net_income_per_capita_yuan", code, str(year), year, income * factor),
                ("poverty", "agricultural_population_persons", code, str(year), year, 1000.0),
                ("poverty", "registered_poor_year_end_persons", code, str(year), year, poor / factor / 2),
            ]
        rows += [("tourism", "tourism_revenue_yuan", code, f"2016-{m:02d}", 2016, 1e6 * m) for m in range(1, 13)]
    return pd.DataFrame(rows, columns=["department", "indicator", "township_code", "period", "year", "value"])


@pytest.fixture
def data() -> ReportData:
    return ReportData(
        kpis=pd.DataFrame(kpi_rows(), columns=list(KPI_COLUMNS)),
        submissions=pd.DataFrame(submission_rows()),
        generated_at=GENERATED,
        values=value_frame(),
        townships=township_frame(),
        departments=DEPARTMENTS,
    )


def cards(page: str) -> list[str]:
    return re.findall(r'<article class="card[^"]*".*?</article>', page, flags=re.S)


# ---------------------------------------------------------------- dashboard
def test_dashboard_is_chinese_first_and_offline(data: ReportData) -> None:
    page = render_site(data)["pages"]["index.html"]
    assert page.startswith("<!DOCTYPE html>") and '<html lang="zh-CN">' in page
    assert "丹巴县对口帮扶数据报告" in page and "Headline indicators" in page
    assert "<script" not in page and "https://" not in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "2017-06-01 10:00 北京时间" in page and 'href="assets/site.css"' in page


def test_narrative_in_the_programme_style(data: ReportData) -> None:
    text = narrative_text(narrative(data.kpis, 2016, "丹巴县"))
    assert text.startswith(
        "2016年丹巴县农牧民人均纯收入10827元，是2011年的2.61倍，年均增长21.1%；"
        "贫困发生率从2011年的26.20%下降到2016年的12.78%；旅游总收入8.69亿元，同比增长17.0%，接待游客123.45万人次；"
    )
    assert "技能培训3540人次" in text
    assert "招聘会提供岗位10000个，达成就业775人次，达成率7.76%（数据不完整：招聘会提供岗位覆盖165/180乡镇·月" in text
    assert text.endswith("。")
    assert narrative(data.kpis, 2013, "丹巴县") == [] and narrative(data.kpis, None, "x") == []


def test_the_narrative_never_compares_across_two_definitions(data: ReportData) -> None:
    """2016's incidence under another 口径 (as the demo's 2020 is, its denominator v2): both figures
    stated, no 下降到 between them."""
    kpis = data.kpis.copy()
    kpis["definition_version"] = "v1"
    kpis.loc[(kpis["kpi"] == "poverty_incidence_pct") & (kpis["year"] == 2016), "definition_version"] = "v2"
    text = narrative_text(narrative(kpis, 2016, "丹巴县"))
    assert "贫困发生率12.78%（2011年26.20%，口径不同，不作比较）；" in text and "下降到" not in text


def test_headline_cards_show_definition_unit_source_and_coverage(data: ReportData) -> None:
    page = render_site(data)["pages"]["index.html"]
    income = next(c for c in cards(page) if 'data-kpi="net_income_per_capita_yuan"' in c)
    assert "10827 元" in income and "为2011年的 2.61 倍" in income and "年均增长 21.1%" in income
    assert "口径：农牧民人均纯收入的口径；单位：元；来源：县扶贫开发办公室" in income
    assert "覆盖 15/15 乡镇·年" in income
    poverty = next(c for c in cards(page) if 'data-kpi="poverty_incidence_pct"' in c)
    assert "12.78%" in poverty and "2011年 26.20%，变化 -13.42 个百分点" in poverty
    assert "8.69 亿元" in page and "同比 +17.0%" in page and "123.45 万人次" in page


def test_incomplete_and_unpublishable_kpis_are_marked(data: ReportData) -> None:
    marked = [c for c in cards(render_site(data)["pages"]["index.html"]) if 'class="card incomplete"' in c]
    assert {re.search(r'data-kpi="(\w+)"', c).group(1) for c in marked} == {  # type: ignore[union-attr]
        "job_fair_posts", "job_fair_hires_person_times", "job_fair_hire_rate_pct"}  # fmt: skip
    assert all("数据不完整" in c and "（未达发布条件）" in c and "覆盖 165/180 乡镇·月" in c for c in marked)

    # publishable false alone (full coverage) also marks; publishable absent: coverage decides
    frame = pd.DataFrame(kpi_rows(job_fair_used=180))
    frame.loc[frame["kpi"] == "skills_training_person_times", "publishable"] = False
    page = render_site(ReportData(frame, data.submissions, GENERATED))["pages"]["index.html"]
    marked = [c for c in cards(page) if "incomplete" in c.split(">")[0]]
    assert len(marked) == 1 and 'data-kpi="skills_training_person_times"' in marked[0]
    absent = pd.DataFrame(kpi_rows()).drop(columns="publishable")
    rows = headline_rows(ReportData(absent, data.submissions, GENERATED))
    assert rows[-1][2] == "覆盖 165/180 乡镇·月 数据不完整"


def test_headline_rows_for_the_cli(data: ReportData) -> None:
    rows = headline_rows(data)
    assert rows[0] == ("农牧民人均纯收入", "10827 元（为2011年的 2.61 倍，年均增长 21.1%）", "覆盖 15/15 乡镇·年")
    assert rows[1][1] == "12.78%（2011年 26.20%，变化 -13.42 个百分点）"
    assert rows[2] == ("旅游总收入", "8.69 亿元（同比 +17.0%）", "覆盖 180/180 乡镇·月")
    assert headline_rows(data, year=2011)[0][1] == "4150 元"


def test_trend_charts_and_kpi_table(data: ReportData) -> None:
    page = render_site(data)["pages"]["index.html"]
    assert ">7.43<" in page and ">8.69<" in page  # tourism bars in 亿元
    assert "招聘会提供岗位（个） 与 招聘会达成就业（人次）" in page
    assert "<th>2011年</th><th>2015年</th><th>2016年</th>" in page
    assert re.search(r'title="覆盖 165/180 乡镇·月">10000\*</td>', page)


def test_empty_warehouse_renders_empty_states() -> None:
    empty = ReportData(pd.DataFrame(columns=list(KPI_COLUMNS)), pd.DataFrame(columns=["submission_id"]), GENERATED)
    site = render_site(empty)
    assert "暂无数据" in site["pages"]["index.html"] and "<svg" not in site["pages"]["index.html"]
    completeness = site["pages"]["completeness.html"]
    assert "mart_completeness" in completeness and "尚未建立" in completeness
    quality = site["pages"]["quality.html"]
    assert "mart_dq_scorecard" in quality and "尚未收到任何报送" in quality
    assert headline_rows(empty) == []
    assert NO_SNAPSHOT in site["pages"]["registry.html"] and "registry-summary" not in site["pages"]["index.html"]
    assert registry_lines(registry_views(empty)[0])[0].endswith(NO_SNAPSHOT)


# ---------------------------------------------------------------- townships
def test_township_league_pages_and_pairing(data: ReportData) -> None:
    site = render_site(data)
    league = site["pages"]["townships.html"]
    # 格宗乡 has the higher 2016 income: rank 1; revenue 78 000 000 元 = 7800.00 万元? no: shown in 亿元 (0.78)
    assert re.search(r'<td class="num">1</td><td><a href="townships/513323208.html">格宗乡</a>', league)
    assert 'class="assumed"' in league and 'class="verified"' in league
    assert "（推定）" in league and "（已核实）" in league and "推定·未核实" in league
    page = site["pages"][f"townships/{TOWNSHIP}.html"]
    assert "猛追湾街道（已核实·报道明确）" in page and "9876" in page and "6.90" in page  # 69 / 1000 × 100
    assert page.count("<svg") >= 3 and 'href="../assets/site.css"' in page
    assert league.count('class="spark"') == 2 * len({"net_income_per_capita_yuan", "poverty_incidence_pct",
                                                      "tourism_revenue_yuan"})  # fmt: skip


# ---------------------------------------------------------------- completeness and quality
def completeness_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    def row(dept: str, period: str, status: str) -> dict[str, Any]:
        return {"department": dept, "period": period, "due_date": "2017-06-10", "status": status, "expected": 1,
                "received": int(status != "missing"), "on_time": int(status == "on_time"),
                "late": int(status == "late"),
                "missing": int(status == "missing"), "loaded": 0, "quarantined": int(status == "quarantined"),
                "rejected": int(status == "rejected"), "first_received_at": None, "townships_expected": 15,
                "townships_reported": 0 if status == "missing" else 15}  # fmt: skip

    summary = pd.DataFrame([row("tourism", "2017-05", "on_time"), row("tourism", "2017-06", "late"),
                            row("labour", "2017-05", "missing"), row("labour", "2017-06", "quarantined"),
                            row("poverty", "2016", "rejected"), row("tourism", "2019-01", "missing"),
                            row("tourism", "2020-02", "missing")], columns=list(COMPLETENESS_COLUMNS))  # fmt: skip
    towns = pd.DataFrame([("tourism", "2017-05", TOWNSHIP, True, 10), ("tourism", "2017-05", "513323208", False, 0)],
                         columns=list(COMPLETENESS_TOWNSHIP_COLUMNS))  # fmt: skip
    return summary, towns


def test_completeness_matrix_and_drilldown(data: ReportData) -> None:
    summary, towns = completeness_frames()
    filled = ReportData(data.kpis, data.submissions, GENERATED, data.values, data.townships, summary, towns,
                        departments=DEPARTMENTS)  # fmt: skip
    site = render_site(filled)
    page = site["pages"]["completeness.html"]
    # the township count is written only where townships are missing; the title always has it
    assert 'title="2017年6月:逾期;截止 2017-06-10;应报 1 份,已收 1 份,已报乡镇 15/15"' in page
    for label in (">按时<", ">逾期<", ">缺报 0/15<", ">隔离待查<", ">拒收<"):
        assert label in page, label
    assert 'class="status st-missing"' in page and '<h3 id="y2017">2017年</h3>' in page and "<th>5月</th>" in page
    assert "<th>全年</th>" in page and 'href="completeness/tourism.html#y2017"' in page
    # the calendar runs on past the data: later years with nothing received are one note, not pages of 缺报
    assert 'id="y2019"' not in page and "2019年—2020年:尚未收到任何报表(2 个部门·期别" in page
    assert "2020年2月" in page  # still in the detail table and its download
    drill = site["pages"]["completeness/tourism.html"]
    assert "已报 10" in drill and "未报" in drill and 'id="y2017"' in drill and "2017年5月" in drill
    assert "尚无分乡镇完整性记录" in site["pages"]["completeness/labour.html"]
    assert {"completeness", "completeness_tourism"} <= {t.name for t in site["tables"]}


def test_submissions_escape_names_and_link_copied_receipts(data: ReportData, tmp_path: Path) -> None:
    (tmp_path / "receipts").mkdir()
    receipt = {"submission_id": "b" * 16, "department": "tourism", "period": "2016-06", "status": "rejected",
               "original_name": MALICIOUS, "summary_zh": "已退回", "issues": [
                   {"code": "SUM_MISMATCH", "severity": "critical", "message": "合计不符", "sheet": "表1",
                    "row": 5}]}  # fmt: skip
    (tmp_path / "receipts" / "bbbb.json").write_text(json.dumps(receipt, ensure_ascii=False), encoding="utf-8")
    site = render_site(data, data_dir=tmp_path)
    quality = site["pages"]["quality.html"]
    assert MALICIOUS not in quality and "&lt;script&gt;x&lt;/script&gt;.xlsx" in quality
    assert f'href="receipts/{"b" * 16}.html"' in quality and "已拒收" in quality and "2016年6月" in quality
    assert "2017-06-01 10:00" in quality  # received 02:00 UTC, shown in 北京时间
    receipt_page = site["pages"][f"receipts/{'b' * 16}.html"]
    assert "合计不符" in receipt_page and "[表1] 第5行" in receipt_page and f'href="{"b" * 16}.json"' in receipt_page
    assert json.loads(site["texts"][f"receipts/{'b' * 16}.json"])["original_name"] == MALICIOUS


def test_receipt_paths_outside_the_data_dir_are_ignored(data: ReportData, tmp_path: Path) -> None:
    subs = data.submissions.assign(receipt_path="../../etc/passwd")
    site = render_site(ReportData(data.kpis, subs, GENERATED), data_dir=tmp_path / "data")
    assert not [p for p in site["pages"] if p.startswith("receipts/")]


# ---------------------------------------------------------------- formats
@pytest.mark.parametrize(
    ("period", "label"),
    [("2017-05", "2017年5月"), ("2017-Q2", "2017年第二季度"), ("2016", "2016年"), ("x", "x")],
)
def test_period_labels(period: str, label: str) -> None:
    assert period_label_zh(period) == label


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


def test_prose_keeps_the_figures_precision() -> None:
    """One precision per figure kind: the narrative shows what the card shows (26.20%, 8.00亿元)."""
    assert Display("%", 1, 2).prose(26.2) == "26.20%" and Display("亿元", 1e8, 2).prose(8e8) == "8.00亿元"


def test_charts_escape_and_handle_empty() -> None:
    assert nice_ticks(10827) == [0, 5000, 10000, 15000]
    assert "暂无数据" in line_chart([], title="t", y_label="元") and "暂无数据" in sparkline([], title="t", top=1)
    svg = bar_chart([Point(2016, 1.0, "<b>", incomplete=True)], title="<i>", y_label="&")
    assert "<b>" not in svg and "<i>" not in svg and "&lt;b&gt;" in svg and "数据不完整" in svg


def test_render_does_not_mutate_its_input(data: ReportData) -> None:
    before = [frame.copy() for frame in (data.kpis, data.submissions, data.values, data.townships)]
    render_site(data)
    for old, new in zip(before, (data.kpis, data.submissions, data.values, data.townships), strict=True):
        pd.testing.assert_frame_equal(old, new)


# ---------------------------------------------------------------- warehouse → site
def fill_warehouse(engine: Engine, data_dir: Path | None = None) -> None:
    """Two loaded tourism months, one rejected file with a receipt, and the KPI mart."""
    when = datetime(2016, 6, 10, tzinfo=UTC)
    sub = {"department": "tourism", "received_at": when, "processed_at": when, "status": "loaded",
           "receipt_path": None}  # fmt: skip
    fact = {"indicator": "tourism_revenue_yuan", "township_code": TOWNSHIP, "department": "tourism",
            "year": 2016, "flagged": False}  # fmt: skip
    if data_dir is not None:
        (data_dir / "receipts").mkdir(parents=True, exist_ok=True)
        receipt = {"submission_id": "bad", "status": "rejected", "department": "tourism", "period": "2016-07",
                   "original_name": MALICIOUS, "summary_zh": "已退回", "issues": []}  # fmt: skip
        (data_dir / "receipts" / "bad.json").write_text(json.dumps(receipt, ensure_ascii=False), encoding="utf-8")
    mart_columns = {c.name for c in schema.mart_county_kpi_yearly.columns}
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
        rows = [{k: v for k, v in {**r, "refreshed_at": when}.items() if k in mart_columns} for r in kpi_rows()]
        conn.execute(insert(schema.mart_county_kpi_yearly), rows)


def test_load_report_data_reads_the_warehouse(warehouse_engine: Engine) -> None:
    """Shared fixture: SQLite, and PostgreSQL when DUIKOU_TEST_POSTGRES_URL is set."""
    fill_warehouse(warehouse_engine)
    data = load_report_data(warehouse_engine)
    assert len(data.kpis) == len(kpi_rows())
    assert data.values["value"].sum() == 3_500_000  # the rejected file's value is not current
    bad = data.submissions.set_index("submission_id").loc["bad"]
    assert bad["critical_issues"] == 1 and bad["department_name"] == "县旅游局"
    assert data.departments["tourism"] == "县旅游局"
    assert len(data.townships) == 15 and data.townships["pairing_verified"].sum() == 4
    assert headline_rows(data)[2] == ("旅游总收入", "8.69 亿元（同比 +17.0%）", "覆盖 180/180 乡镇·月")


def test_contract_tables_are_read_when_present(warehouse_engine: Engine) -> None:
    """mart_completeness(_township), mart_dq_scorecard and open follow-ups, read from the real tables."""
    names = ("mart_completeness", "mart_completeness_township", "mart_dq_scorecard")
    if not all(hasattr(schema, n) for n in names):
        pytest.skip("the completeness/scorecard marts are not in warehouse/schema.py yet")
    when = datetime(2017, 7, 1, tzinfo=UTC)
    summary, towns = completeness_frames()
    summary = summary.assign(due_date=date(2017, 6, 10), deadline=date(2017, 6, 13),
                             status_zh=summary["status"].map(schema.COMPLETENESS_STATUS_ZH),
                             files_received=summary["received"], current_submission_id=None,
                             refreshed_at=when)  # fmt: skip
    mart_columns = {c.name for c in schema.mart_completeness.columns}
    with warehouse_engine.begin() as conn:
        rows = [{k: v for k, v in r.items() if k in mart_columns} for r in summary.to_dict("records")]
        conn.execute(insert(schema.mart_completeness), rows)
        conn.execute(insert(schema.mart_completeness_township),
                     [{**r, "reported": bool(r["reported"]), "values_reported": int(r["values_reported"]),
                       "refreshed_at": when} for r in towns.to_dict("records")])  # fmt: skip
        conn.execute(insert(schema.mart_dq_scorecard), [{
            "department": "tourism", "month": "2017-05", "submissions": 2, "checks_run": 80,
            "checks_failed_critical": 1, "checks_failed_warning": 3, "values_flagged": 2, "followups_open": 1,
            "followups_closed": 1, "median_resolution_hours": 5.5, "refreshed_at": when}])  # fmt: skip
        conn.execute(insert(schema.followup), [{
            "followup_id": "f1", "kind": "value", "department": "tourism", "period": "2017-05",
            "township_code": TOWNSHIP, "indicator": "tourism_revenue_yuan", "check_id": "outlier",
            "severity": "warning", "value": 9e9, "reason_zh": '=HYPERLINK("http://x","y")', "status": "open",
            "opened_at": when, "last_seen_at": when}])  # fmt: skip
    data = load_report_data(warehouse_engine)
    assert data.completeness is not None and len(data.completeness) == len(summary)
    assert data.completeness_township is not None and data.completeness_township["reported"].tolist().count(True) == 1
    assert data.dq_scorecard is not None and data.dq_scorecard["median_resolution_hours"].tolist() == [5.5]
    assert data.followups is not None and data.followups["followup_id"].tolist() == ["f1"]
    site = render_site(data)
    assert ">逾期<" in site["pages"]["completeness.html"]
    assert "已报 10" in site["pages"]["completeness/tourism.html"]
    quality = site["pages"]["quality.html"]
    assert "5.50" in quality and "巴旺乡" in quality and "=HYPERLINK" in quality
    # what needs attention comes first, in Chinese (旅游总收入, not tourism_revenue_yuan); then the heat view;
    # the full tables folded at the end
    order = [quality.index(f'id="{s}"') for s in ("attention", "heat", "followups", "scorecard", "submissions")]
    assert order == sorted(order)
    attention = quality[order[0]:order[1]]
    assert "巴旺乡 旅游总收入：=HYPERLINK" in attention and "tourism_revenue_yuan" not in attention
    assert "待跟进 <strong>1</strong> 项" in attention and "标记待查的数值 <strong>2</strong> 个" in attention
    assert re.search(r'<td class="heat h2" title="2017年5月：检查 \d+ 项次，严重未通过 1，警告未通过 3', quality)
    assert '<details class="folded" id="scorecard">' in quality
    followups = next(t for t in site["tables"] if t.name == "followups_open")
    assert "'=HYPERLINK" in csv_text(followups.table)


def test_build_report_writes_the_site_and_exports(sqlite_engine: Engine, tmp_path: Path) -> None:
    fill_warehouse(sqlite_engine, tmp_path)
    path = build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1))
    site = tmp_path / "reports" / "2017-06-01"
    assert path == site / "index.html"
    for rel in ("townships.html", f"townships/{TOWNSHIP}.html", "completeness.html", "completeness/tourism.html",
                "quality.html", "downloads.html", "assets/site.css", "receipts/bad.json", "receipts/bad.html",
                "data/county_kpis.xlsx", "data/county_kpis.csv", "data/submissions.csv",
                "data/marts/mart_county_kpi_yearly.parquet"):  # fmt: skip
        assert (site / rel).is_file(), rel
    # every local link of every page resolves
    for page in site.rglob("*.html"):
        for href in re.findall(r'(?:href|src)="([^"#]+)', page.read_text(encoding="utf-8")):
            assert (page.parent / href).exists(), f"{page.relative_to(site)} → {href}"

    mart = pd.DataFrame(kpi_rows()).sort_values(["year", "kpi"]).reset_index(drop=True)
    sheet = load_workbook(site / "data" / "county_kpis.xlsx").active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:5] == ("年份", "指标代码", "指标", "数值", "单位")
    got = pd.DataFrame(rows[1:], columns=rows[0])
    assert got["指标代码"].tolist() == mart["kpi"].tolist()
    assert got["数值"].tolist() == pytest.approx(mart["value"].tolist(), rel=1e-14)
    assert got["已报送乡镇期数(个)"].tolist() == mart["coverage_used"].tolist()
    csv = pd.read_csv(site / "data" / "county_kpis.csv", encoding="utf-8-sig")
    assert csv["数值"].tolist() == mart["value"].tolist() and csv["年份"].tolist() == mart["year"].tolist()
    parquet = pq.read_table(site / "data" / "marts" / "mart_county_kpi_yearly.parquet").to_pandas()
    assert sorted(parquet["value"].tolist()) == sorted(mart["value"].tolist())
    submissions = pd.read_csv(site / "data" / "submissions.csv", encoding="utf-8-sig")
    assert "&lt;" not in submissions.to_csv() and MALICIOUS in submissions["文件名"].tolist()
    # a township's download is named and titled with the township, with a caption line above its header
    township_page = (site / "townships" / f"{TOWNSHIP}.html").read_text(encoding="utf-8")
    assert 'href="../data/巴旺乡_各年指标.xlsx"' in township_page
    book = load_workbook(site / "data" / "巴旺乡_各年指标.xlsx")
    assert book.sheetnames == ["巴旺乡各年指标"]
    caption, header = list(book.active.iter_rows(values_only=True))[:2]
    assert caption[0].startswith(f"丹巴县巴旺乡（{TOWNSHIP}）各年指标") and header[:2] == ("年份", "指标代码")
    assert (site / "data" / "巴旺乡_各年指标.csv").is_file()


def test_latest_link_and_rebuild(sqlite_engine: Engine, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    first = build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1))
    assert "暂无数据" in first.read_text(encoding="utf-8")
    assert (reports / "latest").is_symlink()
    assert (reports / "latest" / "index.html").read_text(encoding="utf-8") == first.read_text(encoding="utf-8")
    build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1))  # same day: replaced whole
    second = build_report(sqlite_engine, None, out=reports, today=date(2017, 6, 2))
    assert (reports / "latest").resolve() == second.parent.resolve()
    assert sorted(p.name for p in reports.iterdir()) == ["2017-06-01", "2017-06-02", "latest"]


def test_latest_is_a_copy_when_symlinks_fail(
    sqlite_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("symlinks not permitted")

    monkeypatch.setattr(Path, "symlink_to", refuse)
    build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1))
    build_report(sqlite_engine, tmp_path, today=date(2017, 6, 2))
    latest = tmp_path / "reports" / "latest"
    assert latest.is_dir() and not latest.is_symlink() and (latest / "index.html").exists()


def test_two_builders_of_the_same_day_both_succeed(sqlite_engine: Engine, tmp_path: Path) -> None:
    """nightly and refresh-reports may build the same day at once: the later wins, neither fails."""
    fill_warehouse(sqlite_engine, tmp_path)
    with ThreadPoolExecutor(max_workers=2) as pool:
        paths = list(pool.map(lambda _: build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1)), range(2)))
    assert paths[0] == paths[1] and paths[0].is_file()
    reports = tmp_path / "reports"
    assert sorted(p.name for p in reports.iterdir()) == ["2017-06-01", "latest"]  # nothing left aside
    assert (reports / "latest" / "data" / "county_kpis.xlsx").is_file()


def test_chinese_text_is_typeset_full_width_but_file_names_stay_as_received(data: ReportData) -> None:
    subs = data.submissions.copy()
    subs.loc[0, "original_name"] = "旅游(5月),修订.xlsx"
    site = render_site(dataclasses.replace(data, submissions=subs))
    quality = site["pages"]["quality.html"]
    assert "旅游(5月),修订.xlsx" in quality and "旅游（5月）" not in quality
    index = site["pages"]["index.html"]
    assert "主要指标（2016年）" in index and "口径：" in index and "本页数据期：" in index
    mixed = "时间 09:30, 1,000; Excel (.xlsx) 口径(人次):a"
    assert zh_punct(mixed) == "时间 09:30, 1,000; Excel (.xlsx) 口径（人次）：a"
