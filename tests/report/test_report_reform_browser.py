"""The report across the 2019 township reform in headless Chromium (issue 21): the dashboard's and a
new unit's charts draw the reform (and the change of the population denominator's 口径) as a break,
and each page states the basis of its figures. One small warehouse: poverty and tourism returns for
2019 (15 townships) and 2020 (12 units), as tests/warehouse/test_boundaries.py loads them.
"""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tasks.report.build_site import build_report
from tests.warehouse.test_boundaries import JIAJU, load_across_the_reform

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
