"""The built site in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python
package over CDP — no browser download), opened from disk: no console errors, no request that is
not ``file://``, headline figures in the DOM equal to the mart (the dashboard's KPIs and the
劳动力实名登记 page's head counts), a screenshot kept in tmp_path.

Skipped with a reason when chromium or playwright is missing (``make test`` installs both).
"""

from __future__ import annotations

import re
import shutil
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select

from expectations.declaration import load_declarations, load_kpis
from tasks.demo.values import demo_values
from tasks.report.build_site import build_report
from tasks.report.view import display_for
from tests.report.test_report import fill_warehouse
from tests.report.test_report_registry import load_registry_snapshot
from warehouse import schema
from warehouse.current_facts import read_current_values
from warehouse.marts import compute_county_kpis

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test does)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make test installs it)")

PAGES = ("index.html", "townships.html", "townships/513323201.html", "completeness.html",
         "completeness/tourism.html", "quality.html", "receipts/bad.html", "downloads.html",
         "registry.html")  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Any:
    with playwright.sync_playwright() as pw:
        launched = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        yield launched
        launched.close()


def fill_education_and_health(engine: Engine) -> None:
    """The demo's 2016 education and health returns (all townships, twelve months) loaded as facts,
    and their KPIs computed into the mart by the mart's own methods (the rest of the mart is
    fill_warehouse's hand-made rows)."""
    when = datetime(2017, 1, 10, tzinfo=UTC)
    decls = load_declarations()
    subs, facts = [], []
    for (department, period), frame in demo_values().items():
        if department not in ("education", "health") or not period.startswith("2016"):
            continue
        sid = f"{department[:3]}{period}"
        subs.append({"submission_id": sid, "sha256": sid, "department": department, "period": period,
                     "original_name": f"{period}.xlsx", "received_at": when, "processed_at": when,
                     "status": "loaded"})  # fmt: skip
        for ind in decls[department].indicators:
            for code, value in zip(frame["township_code"], frame[ind.name], strict=True):
                facts.append({"submission_id": sid, "indicator": ind.name, "township_code": code,
                              "department": department, "period": period, "year": 2016,
                              "month": int(period[5:]), "flagged": False,
                              "value": None if pd.isna(value) else float(value) * ind.factor})  # fmt: skip
    chosen = [k for k in load_kpis() if k.department in ("education", "health")]
    with engine.begin() as conn:
        conn.execute(insert(schema.submission), subs)
        conn.execute(insert(schema.fact_indicator_value), facts)
        towns = pd.DataFrame(conn.execute(select(schema.ref_township)).mappings().all())
        kpis = compute_county_kpis(read_current_values(conn), towns, chosen, decls)
        rows = [{**r, "refreshed_at": when} for r in kpis.to_dict("records")]
        conn.execute(insert(schema.mart_county_kpi_yearly), rows)


def _number(text: str) -> float:
    match = re.search(r"-?\d+(?:\.\d+)?", text)
    assert match, f"no number in {text!r}"
    return float(match.group())


def test_site_in_headless_chromium(browser: Any, sqlite_engine: Engine, tmp_path: Path) -> None:
    fill_warehouse(sqlite_engine, tmp_path)
    fill_education_and_health(sqlite_engine)
    registry = load_registry_snapshot(sqlite_engine, tmp_path)  # + a labour return it disagrees with once
    index = build_report(sqlite_engine, tmp_path, today=date(2017, 6, 1))
    site = index.parent.parent / "latest"
    with sqlite_engine.connect() as conn:
        mart = pd.DataFrame(conn.execute(select(schema.mart_county_kpi_yearly)).mappings().all())
    specs = {k.kpi: k for k in load_kpis()}

    page = browser.new_page(viewport={"width": 1280, "height": 900})
    console: list[tuple[str, str, str]] = []
    requests: list[str] = []
    failed: list[str] = []
    page.on("console", lambda m: console.append((page.url, m.type, m.text)))
    page.on("pageerror", lambda e: console.append((page.url, "pageerror", str(e))))
    page.on("request", lambda r: requests.append(r.url))
    page.on("requestfailed", lambda r: failed.append(r.url))

    page.goto((site / "index.html").as_uri())
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    # headline figures: the rendered text of each card equals the mart's value in its display unit
    cards = page.locator("article.card")
    assert cards.count() >= 6
    checked = 0
    for i in range(cards.count()):
        card = cards.nth(i)
        kpi, year = card.get_attribute("data-kpi"), int(card.get_attribute("data-year") or 0)
        row = mart[(mart["kpi"] == kpi) & (mart["year"] == year)].iloc[0]
        shown = display_for(specs.get(str(kpi)), str(row["unit"]))
        text = card.locator(".value").inner_text()
        assert _number(text) == pytest.approx(round(row["value"] / shown.factor, shown.decimals)), (kpi, text)
        assert shown.unit in text
        checked += 1
    assert checked == cards.count()
    income = page.locator('article.card[data-kpi="net_income_per_capita_yuan"]').inner_text()
    assert "10827 元" in income and "口径" in income and "覆盖 15/15 乡镇·年" in income
    narrative = page.locator("#narrative").inner_text()
    assert narrative.startswith("2016年丹巴县农牧民人均纯收入10827元，是2011年的2.61倍，年均增长21.1%；")
    assert "贫困发生率从2011年的26.20%下降到2016年的12.78%" in narrative
    marked = page.locator("article.card.incomplete").all_inner_texts()
    assert marked and all("数据不完整" in t for t in marked)

    for rel in PAGES[1:]:
        page.goto((site / rel).as_uri())
        assert page.title(), rel
    # the registry page, reached from the dashboard's nav: its figures are the county mart's
    page.goto((site / "index.html").as_uri())
    page.locator("nav a", has_text="劳动力实名登记").click()
    assert page.url.endswith("/registry.html")
    with sqlite_engine.connect() as conn:
        county = conn.execute(select(schema.mart_registry_county)).mappings().one()
    figures = page.locator("article.registry-card [data-measure]")
    assert figures.count() == 7
    for i in range(figures.count()):
        figure = figures.nth(i)
        measure = str(figure.get_attribute("data-measure"))
        assert _number(figure.inner_text()) == county[measure], measure
    trained = page.locator('[data-measure="persons_trained"]').inner_text()
    times = page.locator('[data-measure="training_person_times"]').inner_text()
    assert trained.endswith(" 人") and times.endswith(" 人次") and _number(trained) < _number(times)
    assert registry["off_name"] in page.locator("#reconciliation-result").inner_text()
    assert page.locator("#table-labour_registry_reconciliation_2017_05 td.flag").all_inner_texts() == ["否"]
    assert page.locator("svg.chart").count() == 2
    page.screenshot(path=str(tmp_path / "registry.png"), full_page=True)

    page.goto((site / "quality.html").as_uri())
    page.get_by_text("查看回执").first.click()
    assert "回执 bad" in page.locator("h2").first.inner_text()
    page.screenshot(path=str(tmp_path / "receipt.png"))

    assert console == [], console
    assert failed == [], failed
    assert requests and all(url.startswith("file://") for url in requests), [
        u for u in requests if not u.startswith("file://")
    ]
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000
