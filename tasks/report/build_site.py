"""The report site: static HTML built into ``<reports>/<YYYY-MM-DD>/``, ``<reports>/latest`` → it.

``build_report(engine, data_dir, year=None, out=None)`` is the one entry point (``duikou report``,
the nightly flow and the refresh-reports flow call it). It reads the warehouse once
(``tasks.report.data``), builds the pages from pure view modules and writes:

    index.html                 county dashboard: narrative, headline KPIs (口径, coverage), trends, KPI table
    townships.html             league table, small multiples per KPI, pairings
    townships/<code>.html      one page per township: paired Chenghua unit, its KPIs over time
    completeness.html          department × period matrix (mart_completeness)
    completeness/<dept>.html   township × period drill-down (mart_completeness_township)
    registry.html              劳动力实名登记: people vs 人次, certification, employment by township,
                               reconciliation with the labour return, snapshots (mart_registry_*)
    quality.html               DQ scorecard, open follow-ups, every submission with its receipt
    receipts/<id>.{json,html}  each receipt copied (and its correction workbook), plus a readable page
    downloads.html, data/      every table as .xlsx and .csv (tasks.report.export), data/marts/*.parquet
    assets/site.css

No scripts and nothing from the network: it opens from disk. The site is built in a temporary
folder next to the target and swapped in, so a reader never sees half a site.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import date, timedelta, timezone
from pathlib import Path
from typing import Any

from markupsafe import Markup
from sqlalchemy import Engine

from expectations.declaration import load_declarations
from tasks.report.charts import Point, bar_chart, grouped_bar_chart, line_chart
from tasks.report.data import (
    SUBMISSION_COLUMNS,
    TOWNSHIP_COLUMNS,
    VALUE_COLUMNS,
    ReportData,
    load_marts,
    load_report_data,
)
from tasks.report.export import export_tables, write_parquet
from tasks.report.narrative import narrative
from tasks.report.page import CSS, render_page
from tasks.report.quality import (
    Matrix,
    completeness_matrices,
    completeness_section,
    followup_section,
    receipt_json_text,
    receipt_name,
    receipt_view,
    scorecard_section,
    submissions_section,
    township_drilldown,
)
from tasks.report.registry import registry_summary, registry_views
from tasks.report.release_marks import link_figures
from tasks.report.tables import ShownTable, kpi_table
from tasks.report.townships import TownshipViews
from tasks.report.view import NO_DATA, KpiIndex, default_year, headline_cards

__all__ = [
    "SUBMISSION_COLUMNS", "TOWNSHIP_COLUMNS", "VALUE_COLUMNS", "ReportData", "build_report", "headline_rows",
    "load_report_data", "render_site",
]  # fmt: skip

COUNTY = "丹巴县"
TITLE = "丹巴县对口帮扶数据报告"
TITLE_EN = "Danba paired-assistance data report"
SUBTITLE = "成华区—丹巴县"
BEIJING = timezone(timedelta(hours=8), "北京时间")


# ---------------------------------------------------------------- pages (pure: data in, files' text out)
def _series(idx: KpiIndex, kpi: str) -> list[Point]:
    shown = idx.display(kpi)
    return [
        Point(y, (idx.value(kpi, y) or 0.0) / shown.factor, shown.text(idx.value(kpi, y), with_unit=False),
              idx.incomplete(kpi, y))
        for y in idx.kpi_years(kpi)
    ]  # fmt: skip


def _ratio_parts(idx: KpiIndex, kpi: str) -> list[str]:
    """The sum KPIs that are a ratio KPI's numerator and denominator (job-fair hires and posts)."""
    spec = idx.specs.get(kpi)
    if spec is None or spec.method != "ratio":
        return []
    return [k for k in idx.base_kpis() if k in idx.specs and idx.specs[k].method == "sum"
            and idx.specs[k].indicator in (spec.numerator, spec.denominator)]  # fmt: skip


def trend_charts(idx: KpiIndex) -> list[tuple[str, Markup]]:
    """One chart per base KPI (money sums as bars, the rest as lines); the two parts of a ratio KPI
    share one grouped bar chart (e.g. job-fair posts vs hires) placed before the ratio's own line."""
    grouped = {kpi: parts for kpi in idx.base_kpis() if len(parts := _ratio_parts(idx, kpi)) == 2}
    in_groups = {k for parts in grouped.values() for k in parts}
    charts: list[tuple[str, Markup]] = []
    # the chart functions escape every text they draw, so their markup is safe to embed
    for kpi in idx.base_kpis():
        if kpi in in_groups:
            continue
        if kpi in grouped:
            parts = grouped[kpi]
            title = " 与 ".join(f"{idx.label(k)}({idx.display(k).unit})" for k in parts)
            svg = grouped_bar_chart([(idx.label(k), _series(idx, k)) for k in parts], title=title, y_label="")
            charts.append((title, Markup(svg)))
        spec = idx.specs.get(kpi)
        unit = idx.display(kpi).unit
        title = f"{idx.label(kpi)}({unit})"
        draw = bar_chart if spec is not None and spec.method == "sum" and spec.unit == "元" else line_chart
        charts.append((title, Markup(draw(_series(idx, kpi), title=title, y_label=unit))))
    return charts


def _common(data: ReportData, year: int | None, here: str, root: str, page_title: str) -> dict[str, Any]:
    stamp = data.generated_at.astimezone(BEIJING)
    return {
        "title": TITLE, "title_en": TITLE_EN, "subtitle": SUBTITLE, "year": year, "here": here, "root": root,
        "generated": f"{stamp:%Y-%m-%d %H:%M} 北京时间", "page_title": page_title, "no_data": NO_DATA,
        "release": data.release, "published": data.published,
    }  # fmt: skip


def _receipt(data_dir: Path | None, path: Any) -> dict[str, Any] | None:
    if data_dir is None or not isinstance(path, str) or not path:
        return None
    source = (data_dir / path).resolve()
    if not source.is_relative_to(data_dir.resolve()) or not source.is_file():
        return None  # a receipt path must stay inside the data directory
    try:
        loaded = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def render_site(data: ReportData, *, year: int | None = None, data_dir: Path | None = None) -> dict[str, Any]:
    """Every file of the site: {relative path: str (text) | bytes-producing Path (copy) | ShownTable list}.

    Returns {"pages": {path: html}, "tables": [ShownTable], "copies": {path: source}, "texts": {path: text}}.
    """
    chosen = year if year is not None else default_year(data.kpis)
    departments = data.departments
    idx = KpiIndex(data.kpis, departments)
    pages: dict[str, str] = {}
    tables: list[ShownTable] = []
    copies: dict[str, Path] = {}
    texts: dict[str, str] = {"assets/site.css": CSS}

    county = kpi_table(data.kpis, departments)
    if data.release is not None:  # a release's figures link to their provenance
        county = link_figures(county, idx.kpi_order(), idx.years())
    tables.append(county)

    views = TownshipViews(data.values, data.townships, departments)
    league, pairing = views.league(chosen), views.pairing_table()
    tables += [league, pairing]
    pages["townships.html"] = render_page(
        "townships.html", **_common(data, chosen, "townships.html", "", "乡镇"),
        league=league, multiples=views.multiples(), pairing=pairing,
    )  # fmt: skip
    for page in views.pages():
        tables.append(page.table)
        pages[f"townships/{page.code}.html"] = render_page(
            "township.html", **_common(data, chosen, "townships.html", "../", page.name), t=page
        )

    matrices: list[Matrix] = []
    later = ""
    if data.completeness is not None and not data.completeness.empty:
        matrices, later = completeness_matrices(data.completeness, departments)
    detail = completeness_section(data.completeness, departments)
    tables += [detail.table] if detail.table else []
    pages["completeness.html"] = render_page(
        "completeness.html", **_common(data, chosen, "completeness.html", "", "报送完整性"),
        matrices=matrices, later=later, detail=detail,
    )  # fmt: skip
    for department in sorted(set(load_declarations()) | set(departments)):
        drill = township_drilldown(data.completeness_township, department, data.townships, departments)
        tables += [drill.section.table] if drill.section.table else []
        name = departments.get(department, department)
        pages[f"completeness/{department}.html"] = render_page(
            "department.html", **_common(data, chosen, "completeness.html", "../", name),
            department_name=name, detail=drill,
        )  # fmt: skip

    receipts: set[str] = set()
    for record in data.submissions.to_dict("records"):
        receipt = _receipt(data_dir, record["receipt_path"])
        if receipt is None:
            continue
        sid = receipt_name(str(record["submission_id"]))
        receipts.add(str(record["submission_id"]))
        texts[f"receipts/{sid}.json"] = receipt_json_text(receipt)
        workbook = None
        source = (data_dir / str(receipt.get("correction_workbook") or "")) if data_dir else None
        if source is not None and receipt.get("correction_workbook") and source.is_file():
            workbook = f"{sid}.correction.xlsx"
            copies[f"receipts/{workbook}"] = source
        pages[f"receipts/{sid}.html"] = render_page(
            "receipt.html", **_common(data, chosen, "quality.html", "../", f"回执 {sid}"),
            r=receipt_view(receipt, departments, workbook),
        )  # fmt: skip
    sections = {
        "scorecard": scorecard_section(data.dq_scorecard, departments),
        "followups": followup_section(data.followups, departments, data.townships),
        "submissions": submissions_section(data.submissions, receipts),
    }
    tables += [s.table for s in sections.values() if s.table]
    pages["quality.html"] = render_page("quality.html", **_common(data, chosen, "quality.html", "", "数据质量"),
                                        **sections)  # fmt: skip

    registry = registry_views(data, receipts)
    for view in registry:
        tables += [t for t in (view.certification, view.townships, view.reconciliation, view.history) if t]
    pages["registry.html"] = render_page(
        "registry.html", **_common(data, chosen, "registry.html", "", "劳动力实名登记"), views=registry
    )
    pages["index.html"] = render_page(
        "index.html", **_common(data, chosen, "index.html", "", "县级总览"),
        narrative=narrative(data.kpis, chosen, COUNTY), cards=headline_cards(data.kpis, chosen, departments),
        charts=trend_charts(idx), kpi_table=county,
        registry=[registry_summary(v) for v in registry if v.period is not None],
    )  # fmt: skip
    return {"pages": pages, "tables": tables, "copies": copies, "texts": texts, "year": chosen}


def headline_rows(data: ReportData, year: int | None = None) -> list[tuple[str, str, str]]:
    """(label_zh, value with details, coverage text) per headline card, for the CLI's short table."""
    chosen = year if year is not None else default_year(data.kpis)
    return [
        (c.label, c.value + (f"（{'，'.join(c.details)}）" if c.details else ""),
         c.coverage + (" 数据不完整" if c.incomplete else ""))
        for c in headline_cards(data.kpis, chosen, data.departments)
    ]  # fmt: skip


# ---------------------------------------------------------------- writing
def _write_site(site: dict[str, Any], marts: dict[str, Any], data: ReportData, target: Path, *,
                export: bool = True) -> None:
    """``export=False``: the tables' files are already in ``target/data`` (a release re-rendered for a new
    banner keeps the exports of its frozen figures)."""
    for rel, text in {**site["texts"], **site["pages"]}.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    for rel, source in site["copies"].items():
        shutil.copyfile(source, target / rel)
    tables = [t.table for t in site["tables"]]
    if export:
        export_tables(tables, target / "data")
    for name, frame in marts.items():
        write_parquet(frame, target / "data" / "marts" / f"{name}.parquet")
    listing = [(t.name, t.title_zh) for t in tables]
    page = render_page("downloads.html", **_common(data, site["year"], "downloads.html", "", "数据下载"),
                       tables=listing, marts=sorted(marts))  # fmt: skip
    (target / "downloads.html").write_text(page, encoding="utf-8")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _swap_in(built: Path, day_dir: Path) -> None:
    """Replace ``day_dir`` by ``built``: the old one is renamed aside first, then dropped. Two builders
    of the same day (nightly and refresh-reports) may race: the later one wins, neither fails."""
    for _ in range(5):
        old = day_dir.with_name(f".{day_dir.name}.old-{uuid.uuid4().hex[:12]}")
        with contextlib.suppress(FileNotFoundError):
            os.replace(day_dir, old)
        try:
            os.replace(built, day_dir)
        except OSError:  # another builder put its site there in between: set it aside again
            _remove(old)
            continue
        _remove(old)
        return
    raise RuntimeError(f"could not put the report into {day_dir}: other builders keep replacing it")


def _point_latest(reports_dir: Path, day_dir: Path) -> None:
    """``latest`` → the day's directory: a relative symlink swapped in atomically; a copy where
    symlinks are not allowed (e.g. Windows without developer mode)."""
    latest, tmp = reports_dir / "latest", reports_dir / f".latest-{uuid.uuid4().hex[:12]}"
    try:
        tmp.symlink_to(day_dir.name, target_is_directory=True)
    except OSError:
        shutil.copytree(day_dir, tmp)
    if latest.is_dir() and not latest.is_symlink():
        _remove(latest)  # a copy left by an earlier run; rename cannot replace a directory
    os.replace(tmp, latest)


def build_report(
    engine: Engine,
    data_dir: Path | None,
    year: int | None = None,
    out: Path | None = None,
    *,
    today: date | None = None,
) -> Path:
    """Build the site into ``<out or data_dir/reports>/<today>/``, point ``latest`` at it, and
    return the dashboard's path (``…/<today>/index.html``). ``data_dir`` is where receipt paths
    in the ledger are relative to (None: receipts are not copied)."""
    if out is None and data_dir is None:
        raise ValueError("build_report needs data_dir or out")
    reports_dir = Path(out) if out is not None else Path(data_dir) / "reports"  # type: ignore[arg-type]
    data = load_report_data(engine)
    site = render_site(data, year=year, data_dir=Path(data_dir) if data_dir is not None else None)
    marts = load_marts(engine)
    reports_dir.mkdir(parents=True, exist_ok=True)
    day_dir = reports_dir / (today or date.today()).isoformat()
    built = Path(tempfile.mkdtemp(dir=reports_dir, prefix=f".{day_dir.name}.building-"))
    try:
        _write_site(site, marts, data, built)
        built.chmod(0o755)
        _swap_in(built, day_dir)
    except BaseException:
        _remove(built)
        raise
    _point_latest(reports_dir, day_dir)
    return day_dir / "index.html"
