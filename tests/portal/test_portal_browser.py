"""The department's whole loop in a real headless Chromium (Debian's ``chromium`` driven by Playwright,
as tests/report/test_report_browser.py does) against ``duikou intake-server``'s app on a real port:

the education clerk signs in, downloads the blank form for 2017年5月, fills it with openpyxl, sends it
(loaded); sends a flawed copy (refused), reads the advice on the receipt page, downloads the
correction workbook, fixes the cell, sends it again (loaded, superseding the first) and sees all
three in 本部门报送. Then the health clerk signs in and reaches none of it.

Uploads are processed as the triggered ``ingest-submission`` run does — ``process_submission`` on
the landed file — by a thread standing in for ``duikou serve`` (the event path itself is
tests/flows/test_operations_e2e.py's); the receipt page refreshes itself until the receipt is there.

Screenshots go to tmp_path; with ``DUIKOU_DOC_SCREENSHOTS=1`` also to docs/images/ (docs/departments.md
shows them).
"""

from __future__ import annotations

import io
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import uvicorn
from sqlalchemy import Engine

from duikou_settings import Settings
from expectations.declaration import load_declarations
from flows.pipeline import process_submission
from flows.warehouse_access import open_warehouse
from tasks.accounts import create_account
from tests.helpers.blank_forms import education_values, fill_blank
from tests.helpers.ops_processes import free_port, wait_for
from warehouse.ledger import ledger_row
from warehouse.refdata import reference_frames

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test does)")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (make test installs it)")

DOC_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
NAMES = [ind.name for ind in load_declarations()["education"].indicators]
PASSWORDS = {"edu-clerk": "教育局-填报-2017!", "health-clerk": "卫健局-填报-2017!"}
FIRST, FLAWED = "教育扶贫2017年5月.xlsx", "教育扶贫2017年5月_改.xlsx"


class Processor:
    """Stands in for ``duikou serve``'s ingest runs: every new landed file through the pipeline."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.settings, self.engine = settings, engine
        self.done: set[Path] = set()
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        reference = reference_frames()
        while not self._stop.is_set():
            landing = self.settings.landing_dir
            for path in sorted(landing.glob("*/*/*")) if landing.exists() else []:
                if path.name.startswith(".") or path in self.done or not path.is_file():
                    continue
                self.done.add(path)
                department, period = path.parent.parent.name, path.parent.name
                try:
                    process_submission(path, department, period, engine=self.engine, reference=reference,
                                       settings=self.settings)
                except Exception as exc:  # shown by the test when it waits in vain
                    self.errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            self._stop.wait(0.3)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, Any]]:
    from flows.intake import create_app

    root = tmp_path_factory.mktemp("portal-browser")
    settings = Settings(data_dir=root / "data", as_of="2017-06-05")
    engine = open_warehouse(settings)
    create_account(engine, "edu-clerk", "王老师", {"clerk"}, department="education", password=PASSWORDS["edu-clerk"])
    create_account(engine, "health-clerk", "李医生", {"clerk"}, department="health",
                   password=PASSWORDS["health-clerk"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings, prefect_api_url=""), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for("the portal's server", lambda: server.started, timeout=30)
    processor = Processor(settings, engine)
    processor.start()
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        yield {"url": f"http://127.0.0.1:{port}", "browser": browser, "settings": settings, "engine": engine,
               "processor": processor, "root": root}
        browser.close()
    processor.stop()
    server.should_exit = True
    thread.join(timeout=30)
    engine.dispose()


def _shot(page: Any, tmp: Path, name: str) -> None:
    path = tmp / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if os.environ.get("DUIKOU_DOC_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"{name}.png")


def _sign_in(page: Any, url: str, login: str) -> None:
    page.goto(f"{url}/portal/")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PASSWORDS[login])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/portal/submissions")


def _send(page: Any, url: str, path: Path, processor: Processor, expect: str) -> str:
    page.goto(f"{url}/portal/send")
    page.select_option("#period", "2017-05")
    page.set_input_files("#file", str(path))
    page.click("#send")
    page.wait_for_url(f"{url}/portal/submissions/*")
    try:  # the page refreshes itself (meta refresh) until the run has written the receipt
        playwright.expect(page.locator("#outcome .status")).to_have_text(expect, timeout=120_000)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\nprocessing errors: {processor.errors}") from None
    return str(page.url.rsplit("/", 1)[-1])


def test_a_department_closes_its_own_loop_and_another_reaches_none_of_it(served: dict[str, Any],
                                                                         tmp_path: Path) -> None:
    url, processor = served["url"], served["processor"]
    context = served["browser"].new_context(accept_downloads=True, locale="zh-CN", viewport={"width": 1100,
                                                                                              "height": 800})
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(url) else outside.append(r.url))
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    page.goto(f"{url}/portal/")
    _shot(page, tmp_path, "portal-sign-in")
    _sign_in(page, url, "edu-clerk")

    page.goto(f"{url}/portal/send")
    page.select_option("select[name=period] >> nth=0", "2017-05")
    with page.expect_download() as fetched:
        page.click("button:has-text('下载空白报表')")
    blank = fetched.value
    assert blank.suggested_filename == "丹巴县2017年5月教育扶贫工作进展月报表.xlsx"
    _shot(page, tmp_path, "portal-send")
    form = Path(blank.path()).read_bytes()

    first = tmp_path / FIRST
    first.write_bytes(fill_blank(form, NAMES))
    first_id = _send(page, url, first, processor, "已入库")

    flawed = tmp_path / FLAWED
    flawed.write_bytes(fill_blank(form, NAMES, override={("巴底镇", "school_age_children_persons"): "约600"}))
    flawed_id = _send(page, url, flawed, processor, "已退回")
    issue = page.locator("#issues li", has_text="VALUE_NOT_NUMBER")
    assert "约600" in issue.inner_text() and "怎样改正：只填数字" in issue.inner_text()
    assert "工作表“报表” 第6行" in issue.inner_text()  # 巴底镇's row of the blank form
    _shot(page, tmp_path, "portal-receipt")

    with page.expect_download() as fetched:
        page.click("#correction")
    correction = fetched.value
    assert correction.suggested_filename == "教育扶贫2017年5月_改_更正.xlsx"
    workbook = openpyxl.load_workbook(io.BytesIO(Path(correction.path()).read_bytes()))
    assert workbook.sheetnames[0] == "问题汇总"
    sheet = workbook["报表"]
    marked = [c for row in sheet.iter_rows() for c in row if c.value == "约600"]
    assert len(marked) == 1 and marked[0].fill.start_color.rgb.endswith("FFC7CE")  # red: critical
    marked[0].value = education_values(1)["school_age_children_persons"]  # fixed in the correction workbook itself
    fixed = io.BytesIO()
    workbook.save(fixed)
    flawed.write_bytes(fixed.getvalue())
    fixed_id = _send(page, url, flawed, processor, "已入库")
    assert page.locator("dl.facts").inner_text().count(first_id) == 1  # 取代 the first version

    page.goto(f"{url}/portal/submissions")
    rows = page.locator("#submissions tbody tr")
    assert rows.count() == 3
    listed = [(rows.nth(i).locator("td").nth(1).inner_text(), rows.nth(i).locator("td").nth(3).inner_text())
              for i in range(3)]
    assert listed == [(FLAWED, "已入库"), (FLAWED, "已退回"), (FIRST, "已入库（已被新版本取代）")]
    _shot(page, tmp_path, "portal-submissions")
    assert ledger_row(served["engine"], first_id)["superseded_by"] == fixed_id  # type: ignore[index]
    assert outside == [] and errors == []

    page.click("button:has-text('退出')")
    page.wait_for_url(f"{url}/portal/sign-in")
    _sign_in(page, url, "health-clerk")
    assert page.locator("#submissions").count() == 0 and "还没有报送记录" in page.content()
    for submission_id in (first_id, flawed_id, fixed_id):
        for path in (f"/portal/submissions/{submission_id}", f"/portal/submissions/{submission_id}/correction.xlsx"):
            answer = page.goto(f"{url}{path}")
            assert answer is not None and answer.status == 404, path
            assert "没有这个" in page.content() and FIRST not in page.content()
    context.close()
