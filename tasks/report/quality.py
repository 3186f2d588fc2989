"""Completeness, timeliness and data quality as the site shows them (pure; frames in, views out).

Reads the contract tables of contracts.md — ``mart_completeness`` (department × period),
``mart_completeness_township`` (department × period × township), ``mart_dq_scorecard``
(department × month), open ``followup`` rows — and the ledger (``v_submission``) for the
receipts. A table that does not exist yet arrives as ``None`` and gets an explanatory empty
state; an existing but empty one says there is nothing yet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import pandas as pd

from expectations.declaration import load_declarations
from expectations.registry_declaration import load_registry_declarations
from tasks.report.export import Column
from tasks.report.tables import Cell, ShownTable, count_text, frame_table
from tasks.report.view import DASH, number, period_label_zh
from warehouse.schema import COMPLETENESS_STATUS_ZH, SEVERITY_ZH, SUBMISSION_STATUS_ZH

STATUS_ZH = COMPLETENESS_STATUS_ZH
BEIJING = timezone(timedelta(hours=8), "北京时间")
ABSENT = {
    "mart_completeness": "完整性与及时性统计表(mart_completeness)尚未建立:"
    "数据质量模块上线后,夜间流程会按报送日历自动生成。",
    "mart_completeness_township": "分乡镇完整性统计表(mart_completeness_township)尚未建立。",
    "mart_dq_scorecard": "数据质量记分卡(mart_dq_scorecard)尚未建立:数据质量模块上线后自动生成。",
    "followup": "待跟进事项表(followup)尚未建立。",
}
EMPTY = {
    "mart_completeness": "尚无完整性记录:还没有到期的报表,或夜间流程尚未运行。",
    "mart_completeness_township": "尚无分乡镇完整性记录。",
    "mart_dq_scorecard": "尚无数据质量记分卡记录。",
    "followup": "没有待跟进的事项。",
}
_MONTHLY = re.compile(r"^\d{4}-\d{2}$")
_QUARTERLY = re.compile(r"^\d{4}-Q[1-4]$")


@dataclass(frozen=True)
class Section:
    """A table, or the reason there is none (``table`` None, ``message`` says why)."""

    table: ShownTable | None
    message: str = ""


def _state(frame: pd.DataFrame | None, name: str) -> str:
    return ABSENT[name] if frame is None else EMPTY[name] if frame.empty else ""


def _period_order(period: str) -> tuple[int, int]:
    """Within a year: months first, then quarters, then the year itself."""
    if _MONTHLY.match(period):
        return 0, int(period[5:])
    if _QUARTERLY.match(period):
        return 1, int(period[-1])
    return 2, 0


def _column_label(period: str) -> str:
    if _MONTHLY.match(period):
        return f"{int(period[5:])}月"
    if _QUARTERLY.match(period):
        return period_label_zh(period)[5:]
    return "全年"


# ---------------------------------------------------------------- completeness
COMPLETENESS_EXPORT = (
    Column("department_name", "部门"), Column("department", "部门代码"), Column("period", "报告期"),
    Column("due_date", "截止日期"), Column("status_zh", "状态"), Column("expected", "应报", "份", "number"),
    Column("received", "已收", "份", "number"), Column("on_time", "按时", "份", "number"),
    Column("late", "逾期", "份", "number"), Column("missing", "缺报", "份", "number"),
    Column("loaded", "已入库", "份", "number"), Column("quarantined", "隔离", "份", "number"),
    Column("rejected", "拒收", "份", "number"), Column("townships_expected", "应报乡镇", "个", "number"),
    Column("townships_reported", "已报乡镇", "个", "number"), Column("first_received", "首次收到时间(北京时间)"),
)  # fmt: skip


def _status_cell(row: dict[str, Any], href: str) -> Cell:
    status = str(row.get("status") or "")
    label = STATUS_ZH.get(status, status or DASH)
    towns = ""
    expected, reported = number(row.get("townships_expected")), number(row.get("townships_reported"))
    if expected and reported != expected:  # only a shortfall is written in the cell; the title has all
        towns = f" {count_text(reported)}/{count_text(expected)}"
    title = (f"{period_label_zh(row['period'])}:{label};截止 {row.get('due_date') or DASH};"
             f"应报 {count_text(row.get('expected'))} 份,已收 {count_text(row.get('received'))} 份,"
             f"已报乡镇 {count_text(reported)}/{count_text(expected)}")  # fmt: skip
    return Cell(label + towns, f"status st-{status}", href=href, title=title)


@dataclass(frozen=True)
class Matrix:
    year: int
    head: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


def _with_year(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(year=frame["period"].astype(str).str[:4].astype(int))


def years_shown(frame: pd.DataFrame, received: str) -> tuple[list[int], str]:
    """Years from the first to the last with anything received (newest first), and a note for the
    later years where nothing at all arrived (the calendar runs on to today; a page of 缺报 per year
    would bury the years that matter)."""
    years = _with_year(frame)
    got = years[pd.to_numeric(years[received], errors="coerce").fillna(0) > 0]["year"]
    every = sorted({int(y) for y in years["year"]})
    if got.empty:
        return sorted(every, reverse=True), ""
    last = int(got.max())
    later = [y for y in every if y > last]
    shown = sorted((y for y in every if y <= last), reverse=True)
    if not later:
        return shown, ""
    count = int((years["year"] > last).sum())
    span = f"{later[0]}年" if len(later) == 1 else f"{later[0]}年—{later[-1]}年"
    return shown, f"{span}:尚未收到任何报表({count} 个部门·期别均为缺报或未到期),不逐年列出;明细见下表与下载文件。"


def completeness_matrices(frame: pd.DataFrame, departments: dict[str, str]) -> tuple[list[Matrix], str]:
    """One department × period matrix per year that has data, newest first (cells link to the
    drill-down), and the note on later years with nothing received."""
    years, note = years_shown(frame, "received")
    frame = _with_year(frame)
    matrices = []
    for year in years:
        rows = frame[frame["year"] == year]
        periods = sorted({str(p) for p in rows["period"]}, key=_period_order)
        by_key = {(str(r["department"]), str(r["period"])): r for r in rows.to_dict("records")}
        body = []
        for department in sorted({str(d) for d in rows["department"]}):
            href = f"completeness/{department}.html"
            cells = [Cell(departments.get(department, department), href=href)]
            for period in periods:
                row = by_key.get((department, period))
                cells.append(_status_cell(row, f"{href}#y{year}") if row else Cell("", "status st-none"))
            body.append(tuple(cells))
        matrices.append(Matrix(year, ("部门", *(_column_label(p) for p in periods)), tuple(body)))
    return matrices, note


def completeness_section(frame: pd.DataFrame | None, departments: dict[str, str]) -> Section:
    message = _state(frame, "mart_completeness")
    if frame is None or frame.empty:
        return Section(None, message)
    data = frame.assign(
        department_name=frame["department"].map(lambda d: departments.get(str(d), str(d))),
        status_zh=frame["status"].map(lambda s: STATUS_ZH.get(str(s), str(s))),
        first_received=frame["first_received_at"].map(beijing_time),
    ).sort_values(["period", "department"], ascending=[False, True])
    return Section(frame_table("completeness", "报表完整性与及时性", data, COMPLETENESS_EXPORT))


@dataclass(frozen=True)
class Drilldown:
    """One department's township × period matrices (one per year with data) and the export."""

    section: Section
    matrices: tuple[Matrix, ...] = ()
    note: str = ""


def _township_cell(row: dict[str, Any] | None, period: str, counted: str = "项数值") -> Cell:
    if row is None:
        return Cell(DASH, "status st-none")
    if row["reported"]:
        values = count_text(row["values_reported"])
        return Cell(f"已报 {values}", "status st-on_time", title=f"{period_label_zh(period)}:已报 {values} {counted}")
    return Cell("未报", "status st-missing", title=f"{period_label_zh(period)}:未报")


def township_drilldown(
    frame: pd.DataFrame | None, department: str, townships: pd.DataFrame, departments: dict[str, str]
) -> Drilldown:
    """Township × period for one department: reported (with how many values) or not, per year.

    A person-level registry's snapshot is county-wide: a township is reported when the snapshot
    lists at least one person there, and the count shown is people (人), not values."""
    message = _state(frame, "mart_completeness_township")
    registry = load_registry_declarations().get(department)
    counted, unit, label = ("人", "人", "已报人数") if registry is not None else ("项数值", "项", "已报数值")
    rows = None if frame is None else frame[frame["department"] == department]
    if rows is None or rows.empty:
        return Drilldown(Section(None, message or EMPTY["mart_completeness_township"]))
    names = dict(zip(townships["township_code"], townships["township_name"], strict=True))
    rows = rows.assign(township_name=rows["township_code"].map(lambda c: names.get(c, c)),
                       reported_zh=rows["reported"].map(lambda v: "已报" if v else "未报"),
                       reported_count=rows["reported"].map(lambda v: 1 if v else 0))  # fmt: skip
    years, note = years_shown(rows, "reported_count")
    lookup = {(str(r["township_code"]), str(r["period"])): r for r in rows.to_dict("records")}
    matrices = []
    for year in years:
        in_year = rows[rows["period"].astype(str).str[:4] == str(year)]
        periods = sorted({str(p) for p in in_year["period"]}, key=_period_order)
        body = tuple(
            (Cell(str(names.get(code, code)), href=f"townships/{code}.html"),
             *(_township_cell(lookup.get((code, p)), p, counted) for p in periods))
            for code in sorted({str(c) for c in in_year["township_code"]})
        )  # fmt: skip
        matrices.append(Matrix(year, ("乡镇", *(_column_label(p) for p in periods)), body))
    columns = (Column("township_code", "乡镇代码"), Column("township_name", "乡镇"), Column("period", "报告期"),
               Column("reported_zh", "是否已报"),
               Column("values_reported", label, unit, "number"))  # fmt: skip
    shown = frame_table(f"completeness_{department}", f"{departments.get(department, department)}分乡镇报送",
                        rows.sort_values(["period", "township_code"], ascending=[False, True]), columns)  # fmt: skip
    if registry is not None:
        note = " ".join(t for t in (note, f"{registry.title_zh}为全县一份名册快照(应报月份:"
                                           f"{'、'.join(f'{m}月' for m in registry.snapshot_months)});"
                                           "某乡镇名册中至少有1人即为已报,格中数字为人数。") if t)
    return Drilldown(Section(shown), tuple(matrices), note)


# ---------------------------------------------------------------- data quality
SCORECARD_EXPORT = (
    Column("department_name", "部门"), Column("month", "月份"), Column("submissions", "报送", "份", "number"),
    Column("checks_run", "检查项次", "次", "number"), Column("checks_failed_critical", "严重未通过", "次", "number"),
    Column("checks_failed_warning", "警告未通过", "次", "number"), Column("values_flagged", "标记数值", "个", "number"),
    Column("followups_open", "待跟进", "项", "number"), Column("followups_closed", "已关闭", "项", "number"),
    Column("median_resolution_hours", "处理时长中位数", "小时", "number"),
)  # fmt: skip
FOLLOWUP_EXPORT = (
    Column("followup_id", "编号"), Column("department_name", "部门"), Column("period", "报告期"),
    Column("township_name", "乡镇"), Column("indicator_zh", "指标"), Column("severity_zh", "级别"),
    Column("value", "数值(基本单位)", kind="number"), Column("reason_zh", "原因"),
    Column("opened", "发现时间(北京时间)"), Column("indicator", "指标代码"),
)  # fmt: skip


def indicator_label(department: Any, indicator: Any) -> str:
    """An indicator's Chinese label from its department's declaration (its code if undeclared; — if none)."""
    if not isinstance(indicator, str) or not indicator:
        return DASH
    decl = load_declarations().get(str(department))
    if decl is not None and indicator in decl.indicator_names:
        return decl.indicator(indicator).label_zh
    return indicator


def scorecard_section(frame: pd.DataFrame | None, departments: dict[str, str]) -> Section:
    if frame is None or frame.empty:
        return Section(None, _state(frame, "mart_dq_scorecard"))
    data = frame.assign(department_name=frame["department"].map(lambda d: departments.get(str(d), str(d))))
    data = data.sort_values(["month", "department"], ascending=[False, True])
    return Section(frame_table("dq_scorecard", "数据质量记分卡", data, SCORECARD_EXPORT))


def followup_section(frame: pd.DataFrame | None, departments: dict[str, str], townships: pd.DataFrame) -> Section:
    if frame is None or frame.empty:
        return Section(None, _state(frame, "followup"))
    names = dict(zip(townships["township_code"], townships["township_name"], strict=True))
    data = frame.assign(
        department_name=frame["department"].map(lambda d: departments.get(str(d), str(d))),
        township_name=frame["township_code"].map(lambda c: names.get(c, DASH) if isinstance(c, str) else DASH),
        severity_zh=frame["severity"].map(lambda s: SEVERITY_ZH.get(str(s), str(s))),
        opened=frame["opened_at"].map(beijing_time),
        indicator_zh=[indicator_label(d, i) for d, i in zip(frame["department"], frame["indicator"], strict=True)],
    ).sort_values(["department", "period", "followup_id"])
    return Section(frame_table("followups_open", "待跟进事项", data, FOLLOWUP_EXPORT))


# ---------------------------------------------------------------- submissions and receipts
SUBMISSION_EXPORT = (
    Column("submission_id", "提交编号"), Column("department_name", "部门"), Column("period", "报告期"),
    Column("original_name", "文件名"), Column("status_zh", "状态"),
    Column("critical_issues", "严重问题", "项", "number"),
    Column("warning_issues", "警告", "项", "number"), Column("received", "收到时间(北京时间)"),
    Column("receipt", "回执"),
)  # fmt: skip


def receipt_name(submission_id: str) -> str:
    """The receipt's file stem in the site: the id, restricted to safe characters."""
    return re.sub(r"[^0-9A-Za-z_-]", "_", submission_id)


def submissions_section(subs: pd.DataFrame, receipts: set[str]) -> Section:
    """Every submission, newest period first; ``receipts``: ids whose receipt was copied into the site."""
    if subs.empty:
        return Section(None, "尚未收到任何报送。")
    data = subs.assign(
        status_zh=subs["status"].map(lambda s: SUBMISSION_STATUS_ZH.get(str(s), str(s))),
        received=subs["received_at"].map(beijing_time),
        receipt=subs["submission_id"].map(lambda i: f"receipts/{receipt_name(str(i))}.json" if str(i) in receipts
                                          else None),
    ).sort_values(["period", "department", "received"], ascending=[False, True, True])  # fmt: skip
    shown = frame_table("submissions", "报送记录", data, SUBMISSION_EXPORT)
    rows = []
    for record, cells in zip(data.to_dict("records"), shown.rows, strict=True):
        cls = "status st-" + {"loaded": "on_time", "superseded": "none", "duplicate": "none"}.get(
            str(record["status"]), str(record["status"]))
        link = Cell("查看回执", href=f"receipts/{receipt_name(str(record['submission_id']))}.html") \
            if str(record["submission_id"]) in receipts else Cell(DASH)
        rows.append((*cells[:4], Cell(cells[4].text, cls), *cells[5:8], link))
    return Section(ShownTable(shown.table, shown.head, tuple(rows)))


def beijing_time(value: Any) -> str:
    """A timestamp as 北京时间 ``YYYY-MM-DD HH:MM`` (naive values are UTC, as the ledger stores them)."""
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value) or value == "":
        return DASH
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        return str(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp
    return f"{stamp.tz_convert(BEIJING):%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class ReceiptView:
    submission_id: str
    summary: str
    facts: tuple[tuple[str, str], ...]
    issues: tuple[tuple[str, str, str, str], ...]
    json_name: str
    workbook: str | None


def receipt_view(receipt: dict[str, Any], departments: dict[str, str], workbook: str | None) -> ReceiptView:
    """A receipt JSON as a readable page: what was received, its outcome and every issue."""
    counts = receipt.get("counts") or {}
    facts = [
        ("部门", departments.get(str(receipt.get("department")), str(receipt.get("department")))),
        ("报表", str(receipt.get("title_zh") or DASH)),
        ("报告期", period_label_zh(receipt.get("period", ""))),
        ("文件名", str(receipt.get("original_name") or DASH)),
        ("状态", SUBMISSION_STATUS_ZH.get(str(receipt.get("status")), str(receipt.get("status")))),
        ("收到时间(北京时间)", beijing_time(receipt.get("received_at"))),
    ]
    if counts:
        facts.append(("行数", f"读取 {counts.get('rows_read', DASH)},入库 {counts.get('rows_loaded', DASH)},"
                              f"拒收 {counts.get('rows_rejected', DASH)}"))  # fmt: skip
    issues = tuple(
        (SEVERITY_ZH.get(str(i.get("severity")), str(i.get("severity"))), str(i.get("code", "")),
         " ".join(x for x in (f"[{i['sheet']}]" if i.get("sheet") else "", f"第{i['row']}行" if i.get("row") else "",
                              str(i.get("column") or "")) if x),
         str(i.get("message", "")))
        for i in receipt.get("issues", [])
    )  # fmt: skip
    sid = str(receipt.get("submission_id", ""))
    return ReceiptView(sid, str(receipt.get("summary_zh", "")), tuple(facts), issues, f"{receipt_name(sid)}.json",
                       workbook)  # fmt: skip


def receipt_json_text(receipt: dict[str, Any]) -> str:
    return json.dumps(receipt, ensure_ascii=False, indent=2, default=str)
