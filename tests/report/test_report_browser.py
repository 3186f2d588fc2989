"""The built site in a real headless Chromium (Debian's ``chromium``, driven by Playwright's Python
package over CDP — no browser download), opened from disk: no console errors, no request that is
not ``file://``, headline figures in the DOM equal to the mart (the dashboard's KPIs — education and
health among them, computed by the mart's methods from the demo's returns — and the 劳动力实名登记
page's head counts), the dashboard printed to an A4 PDF (≤ 3 pages, no card split across a page
break), the 400 px phone layout (tables scroll in their box, no cell narrower than two characters,
the latest year in view), screenshots kept in tmp_path.

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


#: the townships whose education and health facts are loaded (each one costs the township pages time)
FILLED_TOWNSHIPS = ("513323100", "513323201", "513323208")


def fill_education_and_health(engine: Engine) -> None:
    """The demo's 2016 education and health returns (three townships, twelve months) loaded as facts,
    and their KPIs computed into the mart by the mart's own methods (the rest of the mart is
    fill_warehouse's hand-made rows)."""
    when = datetime(2017, 1, 10, tzinfo=UTC)
    decls = load_declarations()
    chosen = [k for k in load_kpis() if k.department in ("education", "health")]
    inputs = {name for k in chosen for name in (k.indicator, k.numerator, k.denominator) if name}
    subs, facts = [], []
    for (department, period), frame in demo_values().items():
        if department not in ("education", "health") or not period.startswith("2016"):
            continue
        sid = f"{department[:3]}{period}"
        subs.append({"submission_id": sid, "sha256": sid, "department": department, "period": period,
                     "original_name": f"{period}.xlsx", "received_at": when, "processed_at": when,
                     "status": "loaded"})  # fmt: skip
        for ind in (i for i in decls[department].indicators if i.name in inputs):  # the KPIs' inputs only
            for code, value in zip(frame["township_code"], frame[ind.name], strict=True):
                if code not in FILLED_TOWNSHIPS:
                    continue
                facts.append({"submission_id": sid, "indicator": ind.name, "township_code": code,
                              "department": department, "period": period, "year": 2016,
                              "month": int(period[5:]), "flagged": False,
                              "value": None if pd.isna(value) else float(value) * ind.factor})  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(schema.submission), subs)
        conn.execute(insert(schema.fact_indicator_value), facts)
        towns = pd.DataFrame(conn.execute(select(schema.ref_township)).mappings().all())
        kpis = compute_county_kpis(read_current_values(conn), towns, chosen, decls)
        rows = [{**r, "refreshed_at": when} for r in kpis.to_dict("records")]
        conn.execute(insert(schema.mart_county_kpi_yearly), rows)


def pdf_link_pages(pdf: bytes) -> tuple[int, dict[str, int]]:
    """(pages, {link URI: page number}) of a PDF as Chromium (Skia) writes it: plain objects, each page's
    /Annots listing its link annotations."""
    objects = {int(m.group(1)): m.group(2) for m in re.finditer(rb"(\d+) 0 obj(.*?)endobj", pdf, re.S)}
    tree = next(body for body in objects.values() if b"/Type /Pages" in body)
    kids = re.search(rb"/Kids \[([^\]]*)\]", tree)
    assert kids, "no page tree"
    pages = [int(ref) for ref in re.findall(rb"(\d+) 0 R", kids.group(1))]
    links: dict[str, int] = {}
    for number, page in enumerate(pages, start=1):
        annots = re.search(rb"/Annots \[([^\]]*)\]", objects[page])
        for ref in re.findall(rb"(\d+) 0 R", annots.group(1)) if annots else []:
            uri = re.search(rb"/URI \(([^)]*)\)", objects[int(ref)])
            if uri:
                links[uri.group(1).decode("latin-1")] = number
    return len(pages), links


#: wraps the first and the last line of every card in a link (no change to the layout): in the PDF,
#: each link lands on the page its line is printed on, so a card split by a page break shows as its
#: two links on two pages
MARK_CARDS = """() => document.querySelectorAll('article.card').forEach(card => {
  const kpi = card.dataset.kpi;
  for (const [where, el] of [['top', card.firstElementChild], ['bottom', card.lastElementChild]]) {
    const a = document.createElement('a');
    a.href = `https://card.invalid/${where}/${kpi}`;
    while (el.firstChild) a.appendChild(el.firstChild);
    el.appendChild(a);
  }
})"""

#: cells of the tables on screen narrower than two characters of their own font
NARROW_CELLS = """() => [...document.querySelectorAll('.table-wrap td, .table-wrap th')]
  .filter(c => c.offsetParent !== null)
  .filter(c => c.getBoundingClientRect().width < 2 * parseFloat(getComputedStyle(c).fontSize))
  .map(c => c.closest('table').id + ': ' + c.textContent)"""


def half_width(text: str) -> list[str]:
    """Half-width ( : ; , beside Chinese characters (Chinese text takes （：；，)."""
    return [text[max(0, m.start() - 10):m.end() + 10]
            for m in re.finditer(r"[\u4e00-\u9fff][(:;,]|[:;,)][\u4e00-\u9fff]", text)]  # fmt: skip


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
    # education and health are on the dashboard, each figure the mart's, and say the article has no figure
    for department, kpis in (("education", ("enrolled_students_persons", "nutrition_coverage_pct")),
                             ("health", ("insurance_coverage_pct", "out_of_pocket_share_pct"))):  # fmt: skip
        for kpi in kpis:
            card = page.locator(f'article.card[data-kpi="{kpi}"]')
            row = mart[(mart["kpi"] == kpi) & (mart["year"] == 2016)].iloc[0]
            assert row["department"] == department
            shown = display_for(specs[kpi], str(row["unit"]))
            assert _number(card.locator(".value").inner_text()) == round(row["value"] / shown.factor, shown.decimals)
            assert "报道中无此项数字" in card.inner_text() and "口径：" in card.inner_text()
    assert page.locator('article.card[data-kpi="insurance_coverage_pct"] .value').inner_text() == "100.00%"
    income = page.locator('article.card[data-kpi="net_income_per_capita_yuan"]').inner_text()
    assert "10827 元" in income and "口径" in income and "覆盖 15/15 乡镇·年" in income
    narrative = page.locator("#narrative").inner_text()
    assert narrative.startswith("2016年丹巴县农牧民人均纯收入10827元，是2011年的2.61倍，年均增长21.1%；")
    assert "贫困发生率从2011年的26.20%下降到2016年的12.78%" in narrative
    marked = page.locator("article.card.incomplete").all_inner_texts()
    assert marked and all("数据不完整" in t for t in marked)
    assert "在校学生" in narrative and "贫困人口参保率" in narrative
    # full-width punctuation beside Chinese text, anywhere on the page
    assert not half_width(page.locator("body").inner_text())

    # printed: A4, at most three pages, no card split across a page break
    page.emulate_media(media="print")
    page.evaluate(MARK_CARDS)
    pages, links = pdf_link_pages(page.pdf(path=str(tmp_path / "dashboard.pdf"), prefer_css_page_size=True))
    assert 1 <= pages <= 3, pages
    tops = {uri.rsplit("/", 1)[1]: n for uri, n in links.items() if "/top/" in uri}
    bottoms = {uri.rsplit("/", 1)[1]: n for uri, n in links.items() if "/bottom/" in uri}
    assert len(tops) == cards.count() and tops == bottoms, (tops, bottoms)
    page.emulate_media(media="screen")

    # on a phone: the page never scrolls sideways, tables scroll inside their box, no cell is squeezed
    # below two characters, and a table over years opens at its latest year
    phone = browser.new_page(viewport={"width": 400, "height": 800})
    for rel in ("index.html", "townships.html"):
        phone.goto((site / rel).as_uri())
        assert phone.evaluate("document.documentElement.scrollWidth") <= 400, rel
        assert phone.evaluate(NARROW_CELLS) == [], rel
        phone.screenshot(path=str(tmp_path / f"phone-{rel.replace('.html', '')}.png"))
    phone.goto((site / "townships.html").as_uri())
    league = phone.locator("#league .table-wrap").first
    assert league.evaluate("w => w.scrollWidth > w.clientWidth")  # wider than the phone: it scrolls
    phone.goto((site / "index.html").as_uri())
    wrap, latest = phone.locator("#kpi-table .table-wrap"), phone.locator("#table-county_kpis th").last
    assert latest.inner_text() == "2016年"
    box, cell = wrap.bounding_box(), latest.bounding_box()
    assert box and cell and box["x"] <= cell["x"] and cell["x"] + cell["width"] <= box["x"] + box["width"] + 1
    phone.close()

    for rel in PAGES[1:]:
        page.goto((site / rel).as_uri())
        assert page.title(), rel
        assert not half_width(page.locator("body").inner_text()), rel
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
