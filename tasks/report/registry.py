"""The 劳动力实名登记 page: KPIs from people, not rows (pure; the registry marts in, views out).

Reads only the registry marts (``mart_registry_county`` / ``_township`` / ``_category`` /
``_reconciliation``), which hold head counts: no ID number, no name and no person key ever reaches
this module. Per registry department, for its latest loaded snapshot:

- headline figures: people, poor people, people trained beside training 人次 (人 vs 人次: the
  article's 2630 people vs 3540 人次), certified (中级工 and above), employed;
- certification by level (``mart_registry_category``, dimension ``certificate_level``);
- employment status by township, poor people beside all;
- the reconciliation with the labour bureau's monthly return (registry head count vs the form,
  difference, within the declared tolerance or not);

and the history of every snapshot. The same view gives ``duikou demo`` its registry lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
from markupsafe import Markup

from expectations.declaration import load_declarations
from expectations.registry_declaration import RegistryDeclaration, load_registry_declarations
from tasks.report.charts import category_bar_chart
from tasks.report.data import REGISTRY_MEASURES
from tasks.report.export import Column
from tasks.report.tables import Cell, ShownTable, count_text, frame_table
from tasks.report.view import DASH, number, period_label_zh

NO_SNAPSHOT = "尚无已入库的实名登记快照：登记表入库后，这里按人（身份证去重）统计，而不是按行或人次。"
COUNT_SHORT = {"persons": "全部", "poor_persons": "贫困"}  # the reconciled head count, as a column prefix


@dataclass(frozen=True)
class Part:
    """One figure of a card, findable by ``data-measure`` (the browser test reads them)."""

    measure: str
    text: str


@dataclass(frozen=True)
class RegistryCard:
    label: str
    parts: tuple[Part, ...]
    details: tuple[str, ...]
    definition: str


@dataclass(frozen=True)
class Outside:
    """One township × check outside the declared tolerance."""

    township: str
    check: str
    registry_value: int
    form_value: float
    relative: float  # (registry − form) / form


@dataclass(frozen=True)
class RegistryView:
    department: str
    title: str  # the declaration's 劳动力实名登记表
    source: str  # the department that reports it
    obligation: str  # when a snapshot is owed, from the declaration
    period: str | None  # the latest loaded snapshot; None: nothing loaded yet
    period_label: str = ""
    submission_id: str = ""
    receipt_href: str | None = None
    snapshots: int = 0
    townships_covered: int = 0
    totals: dict[str, int] | None = None  # the latest snapshot's county row (mart_registry_county)
    cards: tuple[RegistryCard, ...] = ()
    certified_by_level: tuple[tuple[str, int], ...] = ()
    charts: tuple[tuple[str, Markup], ...] = ()
    certification: ShownTable | None = None
    townships: ShownTable | None = None
    reconciliation: ShownTable | None = None
    reconciliation_text: str = ""
    checked: int = 0  # township × check pairs compared with a form value
    outside: tuple[Outside, ...] = ()
    history: ShownTable | None = None
    empty: str = NO_SNAPSHOT


def _pct(part: float, whole: float) -> str:
    return DASH if not whole else f"{part / whole * 100:.1f}%"


def _department_frame(frame: pd.DataFrame | None, department: str) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame()
    return frame[frame["department"] == department]


def _names(townships: pd.DataFrame) -> dict[str, str]:
    return {str(c): str(n) for c, n in zip(townships["township_code"], townships["township_name"], strict=True)}


def _form_labels(declaration: RegistryDeclaration) -> dict[str, str]:
    """check_id → what is compared, e.g. 农村劳动力(合计) — from the form's own declaration."""
    forms = load_declarations()
    out: dict[str, str] = {}
    for rec in declaration.reconciliations:
        form = forms.get(rec.department)
        indicator = next((i for i in form.indicators if i.name == rec.indicator), None) if form else None
        out[rec.check_id] = indicator.label_zh if indicator is not None else rec.indicator
    return out


def _cards(totals: dict[str, int], townships: int) -> tuple[RegistryCard, ...]:
    t = totals
    return (
        RegistryCard("登记劳动力", (Part("persons", f"{t['persons']} 人"),), (f"覆盖 {townships} 个乡镇",),
                     "名册中的人数,按公民身份号码去重(一人一行)"),
        RegistryCard("其中:建档立卡贫困劳动力", (Part("poor_persons", f"{t['poor_persons']} 人"),),
                     (f"占登记劳动力 {_pct(t['poor_persons'], t['persons'])}",), "是否建档立卡贫困户 = 是 的人数"),
        RegistryCard(
            "参训人数 与 培训人次",
            (Part("persons_trained", f"{t['persons_trained']} 人"),
             Part("training_person_times", f"{t['training_person_times']} 人次")),
            (f"人均参训 {t['training_person_times'] / t['persons_trained']:.2f} 次" if t["persons_trained"] else DASH,),
            "参训人数 = 参训工种不为空的人(人);培训人次 = 所列工种数之和(人次)。人与人次不可互换",
        ),
        RegistryCard(
            "持证人数 与 中级工及以上",
            (Part("certified_persons", f"{t['certified_persons']} 人"),
             Part("certified_mid_senior_persons", f"{t['certified_mid_senior_persons']} 人")),
            (f"参训者取证 {_pct(t['certified_persons'], t['persons_trained'])}",),
            "持有任一等级职业资格证书的人数;中级工及以上 = 中级工、高级工、技师、高级技师",
        ),
        RegistryCard("就业人数", (Part("employed_persons", f"{t['employed_persons']} 人"),),
                     (f"就业率 {_pct(t['employed_persons'], t['persons'])}",), "就业状态不是“未就业”的人数"),
    )  # fmt: skip


def _certification(category: pd.DataFrame, declaration: RegistryDeclaration, totals: dict[str, int],
                   department: str, period: str) -> tuple[tuple[tuple[str, int], ...], ShownTable]:
    levels = [v for v in declaration.column("certificate_level").values if v != "无"]
    mid = set(declaration.column("certificate_level").mid_senior)
    rows = category[category["dimension"] == "certificate_level"] if not category.empty else category
    counts = rows.groupby("category")["persons"].sum() if not rows.empty else pd.Series(dtype="int64")
    by_level = tuple((level, int(counts.get(level, 0))) for level in levels)
    certified = sum(n for _, n in by_level)
    frame = pd.DataFrame({
        "certificate_level": [level for level, _ in by_level],
        "mid_senior": ["是" if level in mid else "否" for level, _ in by_level],
        "persons": [n for _, n in by_level],
        "share_pct": [round(n / certified * 100, 2) if certified else None for _, n in by_level],
    })  # fmt: skip
    columns = (Column("certificate_level", "证书等级"), Column("mid_senior", "中级工及以上"),
               Column("persons", "人数", "人", "number"), Column("share_pct", "占持证人数", "%", "number"))
    untrained = totals["persons"] - totals["persons_trained"]
    note = (f"{period_label_zh(period)}快照:持证 {certified} 人;未持证 {totals['persons'] - certified} 人"
            f"(其中参训未取证 {totals['persons_trained'] - totals['certified_persons']} 人,未参训 {untrained} 人)。")
    name = f"{department}_certification_{period}".replace("-", "_")
    return by_level, frame_table(name, f"实名登记:证书等级({period_label_zh(period)})", frame, columns, note=note)


def _townships_table(town: pd.DataFrame, category: pd.DataFrame, declaration: RegistryDeclaration,
                     names: dict[str, str], department: str, period: str) -> ShownTable:
    statuses = list(declaration.column("employment_status").values)
    status_rows = category[category["dimension"] == "employment_status"] if not category.empty else category
    wide = (status_rows.pivot_table(index="township_code", columns="category", values="persons", aggfunc="sum")
            if not status_rows.empty else pd.DataFrame())
    records: list[dict[str, Any]] = []
    for r in town.sort_values("township_code").to_dict("records"):
        code = str(r["township_code"])
        record = {"township": names.get(code, code), **{m: int(r[m]) for m in REGISTRY_MEASURES}}
        for i, status in enumerate(statuses):
            value = wide.at[code, status] if code in wide.index and status in wide.columns else 0
            record[f"status_{i}"] = int(0 if pd.isna(value) else value)
        records.append(record)
    if records:
        total: dict[str, Any] = {"township": "合计"}
        for key in records[0]:
            if key != "township":
                total[key] = sum(int(r[key]) for r in records)
        records.append(total)
    for r in records:
        r["poor_share_pct"] = round(r["poor_persons"] / r["persons"] * 100, 2) if r["persons"] else None
        r["employment_rate_pct"] = round(r["employed_persons"] / r["persons"] * 100, 2) if r["persons"] else None
    columns = (
        Column("township", "乡(镇)"), Column("persons", "登记人数", "人", "number"),
        Column("poor_persons", "其中贫困劳动力", "人", "number"), Column("poor_share_pct", "贫困占比", "%", "number"),
        Column("persons_trained", "参训人数", "人", "number"),
        Column("training_person_times", "培训人次", "人次", "number"),
        Column("certified_persons", "持证人数", "人", "number"), Column("employed_persons", "就业人数", "人", "number"),
        Column("employment_rate_pct", "就业率", "%", "number"),
        *(Column(f"status_{i}", status, "人", "number") for i, status in enumerate(statuses)),
    )  # fmt: skip
    frame = pd.DataFrame(records, columns=[c.key for c in columns])
    note = "就业状态各列之和等于登记人数;贫困占比 = 贫困劳动力 / 登记人数。"
    name = f"{department}_townships_{period}".replace("-", "_")
    table = frame_table(name, f"实名登记:分乡镇就业状态({period_label_zh(period)})", frame, columns, note=note)
    return ShownTable(table.table, table.head, _nowrap_first(table.rows), table.note)


def _reconciliation(rec: pd.DataFrame, declaration: RegistryDeclaration, names: dict[str, str],
                    department: str, period: str) -> tuple[ShownTable, tuple[Outside, ...], int, str]:
    """One row per township, each declared check's five columns side by side, and a 合计 row."""
    labels = _form_labels(declaration)
    checks = declaration.reconciliations
    outside: list[Outside] = []
    by_town: dict[str, dict[str, Any]] = {}
    for r in rec.sort_values("township_code").to_dict("records"):
        code, check = str(r["township_code"]), str(r["check_id"])
        i = next((n for n, c in enumerate(checks) if c.check_id == check), None)
        if i is None:
            continue
        form = number(r["form_value"])
        within = r["within_tolerance"]  # True / False / None (no form value): tasks.report.data
        relative = (int(r["registry_value"]) - form) / form if form else None
        record = by_town.setdefault(code, {"township": names.get(code, code)})
        record.update({
            f"c{i}_registry": int(r["registry_value"]), f"c{i}_form": form, f"c{i}_difference": number(r["difference"]),
            f"c{i}_pct": round(relative * 100, 2) if relative is not None else None,
            f"c{i}_within": "无月报数" if within is None else ("是" if within else "否"),
        })  # fmt: skip
        if within is False and form is not None and relative is not None:
            outside.append(Outside(names.get(code, code), labels[check], int(r["registry_value"]), form, relative))
    records = list(by_town.values())
    checked = sum(1 for r in records for i in range(len(checks)) if r.get(f"c{i}_within") in ("是", "否"))
    if records:
        total: dict[str, Any] = {"township": "合计"}
        for i in range(len(checks)):
            registry = sum(int(r.get(f"c{i}_registry") or 0) for r in records)
            forms = [r.get(f"c{i}_form") for r in records]
            form_total = sum(float(f) for f in forms if f is not None) if any(f is not None for f in forms) else None
            total.update({
                f"c{i}_registry": registry, f"c{i}_form": form_total,
                f"c{i}_difference": registry - form_total if form_total is not None else None,
                f"c{i}_pct": round((registry - form_total) / form_total * 100, 2) if form_total else None,
                f"c{i}_within": None,
            })  # fmt: skip
        records.append(total)
    columns: list[Column] = [Column("township", "乡(镇)")]
    for i, declared in enumerate(checks):
        short = COUNT_SHORT.get(declared.count, declared.count)
        columns += [
            Column(f"c{i}_registry", f"{short}·实名登记", "人", "number"),
            Column(f"c{i}_form", f"{short}·月报{labels[declared.check_id]}", "人", "number"),
            Column(f"c{i}_difference", f"{short}·差额(登记−月报)", "人", "number"),
            Column(f"c{i}_pct", f"{short}·相差", "%", "number"),
            Column(f"c{i}_within", f"{short}·在容差内"),
        ]  # fmt: skip
    frame = pd.DataFrame(records, columns=[c.key for c in columns])
    tolerance = "、".join(f"{COUNT_SHORT.get(c.count, c.count)} {c.tolerance_relative * 100:g}%" for c in checks)
    note = (f"容差为月报数的相对比例({tolerance},见登记表声明);合计行只作参考,核对按乡镇进行。"
            "差额为负:名册人数少于月报。")
    name = f"{department}_reconciliation_{period}".replace("-", "_")
    table = frame_table(name, f"实名登记与月报核对({period_label_zh(period)})", frame, columns, note=note)
    flagged = {n for n, c in enumerate(columns) if c.key.endswith("_within")}
    shown_rows = tuple(  # the 否 cells stand out like the other pages' warnings
        tuple(Cell(c.text, "flag") if n in flagged and c.text == "否" else c for n, c in enumerate(row))
        for row in table.rows
    )
    return (ShownTable(table.table, table.head, _nowrap_first(shown_rows), table.note), tuple(outside), checked,
            _reconciliation_text(outside, checked, declaration))


def _nowrap_first(rows: tuple[tuple[Cell, ...], ...]) -> tuple[tuple[Cell, ...], ...]:
    """Township names on one line (the tables are wide and would wrap 章谷镇 into 章谷 / 镇)."""
    return tuple((Cell(row[0].text, "nowrap", row[0].href, row[0].title), *row[1:]) for row in rows)


def _reconciliation_text(outside: list[Outside], checked: int, declaration: RegistryDeclaration) -> str:
    tolerance = ", ".join(sorted({f"{r.tolerance_relative * 100:g}%" for r in declaration.reconciliations}))
    if not checked:
        return "同月的就业扶贫月报尚未入库,暂无可核对的数。"
    if not outside:
        return f"{checked} 项核对全部在容差({tolerance})内。"
    towns = sorted({o.township for o in outside})
    listed = ";".join(f"{o.township} {o.check} 登记 {o.registry_value} 人 vs 月报 {o.form_value:g} 人"
                      f"({o.relative * 100:+.1f}%)" for o in outside)
    return (f"{checked} 项核对中 {checked - len(outside)} 项在容差({tolerance})内,{len(outside)} 项超出,"
            f"涉及 {len(towns)} 个乡镇({'、'.join(towns)}):{listed}。")


def _history(county: pd.DataFrame, rec: pd.DataFrame, department: str,
             receipts: set[str] | frozenset[str]) -> ShownTable:
    records: list[dict[str, Any]] = []
    for r in county.sort_values("period").to_dict("records"):
        period = str(r["period"])
        mine = rec[rec["period"] == period] if not rec.empty else rec
        outside = sum(1 for v in mine["within_tolerance"] if v is False) if not mine.empty else 0
        trained = int(r["persons_trained"])
        records.append({
            "period": period, "submission_id": str(r["submission_id"]), "townships": int(r["townships"]),
            **{m: int(r[m]) for m in REGISTRY_MEASURES},
            "times_per_person": round(int(r["training_person_times"]) / trained, 2) if trained else None,
            "outside": outside,
        })  # fmt: skip
    columns = (
        Column("period", "快照月份"), Column("submission_id", "提交编号"),
        Column("townships", "乡镇数", "个", "number"),
        Column("persons", "登记人数", "人", "number"), Column("poor_persons", "其中贫困劳动力", "人", "number"),
        Column("persons_trained", "参训人数", "人", "number"),
        Column("training_person_times", "培训人次", "人次", "number"),
        Column("times_per_person", "人均参训", "次", "number"), Column("certified_persons", "持证人数", "人", "number"),
        Column("certified_mid_senior_persons", "中级工及以上", "人", "number"),
        Column("employed_persons", "就业人数", "人", "number"), Column("outside", "核对超出容差", "项", "number"),
    )  # fmt: skip
    frame = pd.DataFrame(records, columns=[c.key for c in columns])
    table = frame_table(f"{department}_snapshots", "实名登记快照历史", frame, columns,
                        note="人数只在同一快照内按乡镇相加;不同快照的人数不能相加(同一人会在每期快照中出现)。")
    rows = tuple(
        tuple(Cell(c.text, c.cls, href=f"receipts/{c.text}.html") if i == 1 and c.text in receipts else c
              for i, c in enumerate(row))
        for row in table.rows
    )
    return ShownTable(table.table, table.head, rows, table.note)


def _history_chart(county: pd.DataFrame) -> Markup:
    ordered = county.sort_values("period")
    categories = [period_label_zh(p) for p in ordered["period"]]
    trained = [(float(v), count_text(v)) for v in ordered["persons_trained"]]
    times = [(float(v), count_text(v)) for v in ordered["training_person_times"]]
    svg = category_bar_chart(categories, [("参训人数（人）", trained), ("培训人次（人次）", times)],
                             title="参训人数与培训人次（各期快照）", y_label="人 / 人次", x_label="快照月份")
    return Markup(svg)  # the chart escapes every text it draws


def registry_view(data: Any, department: str, receipts: set[str] | frozenset[str] = frozenset()) -> RegistryView:
    """The page's view of one registry department (``data``: a ``tasks.report.data.ReportData``)."""
    declaration = load_registry_declarations()[department]
    title, source = declaration.title_zh, data.departments.get(department, department)
    obligation = (f"应报快照月份 {'、'.join(f'{m}月' for m in declaration.snapshot_months)},"
                  f"次月{declaration.due_day}日前报送(宽限{declaration.grace_days}天)")
    county = _department_frame(data.registry_county, department)
    if county.empty:
        return RegistryView(department, title, source, obligation, None)
    names = _names(data.townships)
    latest = county.sort_values("period").iloc[-1]
    period = str(latest["period"])
    totals = {m: int(latest[m]) for m in REGISTRY_MEASURES}
    town = _department_frame(data.registry_township, department)
    town = town[town["period"] == period] if not town.empty else town
    category = _department_frame(data.registry_category, department)
    category = category[category["period"] == period] if not category.empty else category
    rec_all = _department_frame(data.registry_reconciliation, department)
    rec = rec_all[rec_all["period"] == period] if not rec_all.empty else rec_all
    by_level, certification = _certification(category, declaration, totals, department, period)
    recon, outside, checked, text = _reconciliation(rec, declaration, names, department, period) if not rec.empty \
        else (None, (), 0, "同月的就业扶贫月报尚未入库,暂无可核对的数。")
    level_chart = category_bar_chart(
        [level for level, _ in by_level], [("持证人数（人）", [(float(n), str(n)) for _, n in by_level])],
        title=f"持证人数按证书等级（{period_label_zh(period)}）", y_label="人", x_label="证书等级",
    )
    submission = str(latest["submission_id"])
    return RegistryView(
        department, title, source, obligation, period, period_label_zh(period), submission,
        f"receipts/{submission}.html" if submission in receipts else None, len(county),
        int(latest["townships"]), totals, _cards(totals, int(latest["townships"])), by_level,
        (("参训人数与培训人次(各期快照)", _history_chart(county)),
         (f"持证人数按证书等级({period_label_zh(period)})", Markup(level_chart))),
        certification, _townships_table(town, category, declaration, names, department, period),
        recon, text, checked, outside, _history(county, rec_all, department, receipts),
    )  # fmt: skip


def registry_views(data: Any, receipts: set[str] | frozenset[str] = frozenset()) -> list[RegistryView]:
    """One view per declared person-level registry."""
    return [registry_view(data, d, receipts) for d in sorted(load_registry_declarations())]


def registry_summary(view: RegistryView) -> str:
    """One sentence for the dashboard's link to the page."""
    if view.period is None or view.totals is None:
        return f"{view.title}:{view.empty}"
    t = view.totals
    return (f"{view.period_label}快照:登记劳动力 {t['persons']} 人(其中贫困 {t['poor_persons']} 人),"
            f"参训 {t['persons_trained']} 人 / {t['training_person_times']} 人次,持证 {t['certified_persons']} 人;"
            f"与月报核对:{'全部在容差内' if not view.outside else f'{len(view.outside)} 项超出容差'}。")


def registry_lines(view: RegistryView) -> list[str]:
    """The CLI's registry section (``duikou demo``): the same figures as the page, from the marts."""
    if view.period is None or view.totals is None:
        return [f"劳动力实名登记 labour registry: {view.empty}"]
    t = view.totals
    levels = "，".join(f"{level} {n}" for level, n in view.certified_by_level if n)
    per = f"{t['training_person_times'] / t['persons_trained']:.2f}" if t["persons_trained"] else DASH
    lines = [
        f"劳动力实名登记 labour registry ({view.period_label}快照 latest of {view.snapshots}, "
        f"{view.townships_covered} 乡镇; mart_registry_*):",
        f"  登记劳动力 people            {t['persons']} 人（其中建档立卡贫困劳动力 {t['poor_persons']} 人，"
        f"{_pct(t['poor_persons'], t['persons'])}）",
        f"  参训人数 vs 培训人次 trained  {t['persons_trained']} 人 vs {t['training_person_times']} 人次"
        f"（人均 {per} 次）",
        f"  持证人数 certified           {t['certified_persons']} 人（{levels}；中级工及以上 "
        f"{t['certified_mid_senior_persons']} 人）",
        f"  就业人数 employed            {t['employed_persons']} 人"
        f"（就业率 {_pct(t['employed_persons'], t['persons'])}）",
    ]
    if not view.checked:
        lines.append(f"  与就业扶贫月报核对 reconciliation: {view.reconciliation_text}")
        return lines
    state = "all within tolerance" if not view.outside else f"{len(view.outside)} outside tolerance"
    lines.append(f"  与就业扶贫月报核对 reconciliation: {view.checked} checks, {state}")
    for o in view.outside:
        lines.append(f"    ⚠ {o.township} {o.check}: 登记 {o.registry_value} 人 vs 月报 {o.form_value:g} 人 "
                     f"({o.relative * 100:+.1f}%)")
    return lines
