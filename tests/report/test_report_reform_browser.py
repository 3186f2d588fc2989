"""The report across the 2019 township reform in headless Chromium (issue 21): the dashboard's and a
new unit's charts draw the reform (and the change of the population denominator's 口径) as a break,
and each page states the basis of its figures. One small warehouse: poverty and tourism returns for
2019 (15 townships) and 2020 (12 units), as tests/warehouse/test_boundaries.py loads them; then the
demo's own poverty and training returns 2011–2020 (``duikou demo``'s values, tasks/demo/sequel.py).
"""

from __future__ import annotations

import shutil
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from expectations.declaration import load_declarations
from tasks.demo.sequel import DEMO_THROUGH
from tasks.demo.values import demo_values
from tasks.report.build_site import build_report
from tests.helpers.ledger_helpers import record
from tests.warehouse.test_boundaries import JIAJU, load_across_the_reform
from warehouse.marts import refresh_marts

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test does)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make test installs it)")


def test_break_markers_and_basis_notes(sqlite_engine: Engine, tmp_path: Path) -> None:
    load_across_the_reform(sqlite_engine)
    site = build_report(sqlite_engine, tmp_path, today=date(2021, 2, 1)).parent.parent / "latest"
    with playwright.sync_playwright() as pw:
        browser: Any = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((site / "index.html").as_uri())
            page.screenshot(path=str(tmp_path / "dashboard-reform.png"), full_page=True)
            trends = page.locator("#trends")
            assert "按当时区划" in trends.locator("p.basis-note").inner_text()
            incidence = trends.locator("figure", has_text="贫困发生率")
            labels = incidence.locator("text.break-label").all_text_contents()
            assert labels == ["2019年末乡镇区划调整；指标口径变更"]  # one line, both reasons
            card = page.locator("article.card", has_text="贫困发生率").inner_text()
            assert "口径不同，不计算变化" in card and "变化 -0.50" not in card  # 13.00 % (2019) vs 12.50 % (2020)
            assert trends.locator("line.break-marker").count() >= 2  # every county chart crossing 2019 → 2020

            page.goto((site / f"townships/{JIAJU}.html").as_uri())
            page.screenshot(path=str(tmp_path / "jiaju.png"), full_page=True)
            notes = page.locator("p.basis-note").all_inner_texts()
            assert "按当时区划" in notes[0] and "2020年前的数值由调整前各乡镇按区划对照表折算" in notes[1]
            recut = page.locator("figure", has_text="贫困发生率(%，按现行区划)")
            assert recut.locator("line.break-marker").count() == 1
            assert "2019年末乡镇区划调整(此前为折算值)" in (recut.locator("text.break-label").text_content() or "")
        finally:
            browser.close()


def load_demo_across_the_reform(engine: Engine) -> None:
    """The demo's own returns across the reform (``duikou demo``'s values, tasks/demo/sequel.py): the
    poverty office's 2011–2020 and the labour bureau's training columns 2018-01 … 2020-12 — what the
    incidence (口径 v2 of its denominator from 2020) and the certification rate (its denominator's v2
    from 2019) need."""
    values = demo_values(through=DEMO_THROUGH)
    decls = load_declarations()
    wanted = {"poverty": None, "labour": ("skills_training_person_times", "certified_persons")}
    for (department, period), frame in values.items():
        if department not in wanted or (department == "labour" and period < "2018"):
            continue
        names = wanted[department] or tuple(decls[department].indicator_names)
        facts = {name: {str(c): float(v) * decls[department].indicator(name).factor
                        for c, v in zip(frame["township_code"], frame[name], strict=True)} for name in names}
        year, month = int(period[:4]), int(period[5:] or 12)
        arrived = datetime(year + (month == 12), month % 12 + 1, 8, 10, tzinfo=timezone(timedelta(hours=8)))
        record(engine, department, period, facts, arrived)
    refresh_marts(engine, today=date(2021, 1, 20))


def test_the_demo_report_draws_the_reform(sqlite_engine: Engine, tmp_path: Path) -> None:
    """The demo's data: the dashboard's incidence chart breaks at the reform and its denominator's
    口径 (one dashed line, both reasons), the certification rate also at 2019's change of 口径 of
    its denominator (技能培训人次: courses of five days or more); 甲居镇's page
    states both bases and draws its current-boundaries series with the reform as a break; 章谷镇
    (unchanged by the reform) still shows the change of 口径 on its own series."""
    load_demo_across_the_reform(sqlite_engine)
    site = build_report(sqlite_engine, tmp_path, today=date(2021, 1, 20)).parent.parent / "latest"
    with playwright.sync_playwright() as pw:
        browser: Any = pw.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((site / "index.html").as_uri())
            page.screenshot(path=str(tmp_path / "demo-dashboard.png"), full_page=True)
            trends = page.locator("#trends")
            assert "按当时区划" in trends.locator("p.basis-note").inner_text()
            incidence = trends.locator("figure", has_text="贫困发生率")
            assert incidence.locator("text.break-label").all_text_contents() == ["2019年末乡镇区划调整；指标口径变更"]
            rate = trends.locator("figure", has_text="培训取证率")
            assert rate.locator("text.break-label").all_text_contents() == ["指标口径变更", "2019年末乡镇区划调整"]
            assert rate.locator("line.break-marker").count() == 2
            card = page.locator("article.card", has_text="贫困发生率").inner_text()
            assert "口径不同，不计算变化" in card  # 0.86 % (2019, v1) vs 0.00 % (2020, v2)

            page.goto((site / f"townships/{JIAJU}.html").as_uri())
            page.screenshot(path=str(tmp_path / "demo-jiaju.png"), full_page=True)
            notes = page.locator("p.basis-note").all_inner_texts()
            assert "按当时区划" in notes[0] and "2020年前的数值由调整前各乡镇按区划对照表折算" in notes[1]
            recut = page.locator("figure", has_text="农牧民人均纯收入(元，按现行区划)")
            assert recut.locator("line.break-marker").count() == 1
            assert "2019年末乡镇区划调整(此前为折算值)" in (recut.locator("text.break-label").text_content() or "")

            page.goto((site / "townships/513323100.html").as_uri())  # 章谷镇: the same unit before and after
            page.screenshot(path=str(tmp_path / "demo-zhanggu.png"), full_page=True)
            assert "按当时区划" in page.locator("p.basis-note").first.inner_text()
            own = page.locator("figure", has_text="贫困发生率")
            assert own.locator("line.break-marker").count() == 1
            assert own.locator("text.break-label").all_text_contents() == ["指标口径变更"]
        finally:
            browser.close()
