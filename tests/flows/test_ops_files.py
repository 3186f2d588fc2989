"""``/ops/files/…`` on the intake application (FastAPI's TestClient): receipts, workbooks and reports
over HTTP for accounts allowed ``read_all`` — by session cookie or HTTP Basic — and for nobody else;
nothing outside receipts/ and reports/ (issue 15 part 4)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from duikou_settings import Settings
from flows.ops_files import SESSION_COOKIE, ops_file_url
from flows.warehouse_access import open_warehouse
from tasks.accounts import create_account, start_session

PASSWORD = "correct horse battery"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[TestClient, Settings]]:
    from flows.intake import create_app

    settings = Settings(data_dir=tmp_path / "data", public_url="https://duikou.example.cn/")
    receipts = settings.receipts_dir
    receipts.mkdir(parents=True)
    (receipts / "0123456789abcdef.json").write_text('{"status": "quarantined"}', encoding="utf-8")
    (receipts / "0123456789abcdef.correction.xlsx").write_bytes(b"PK\x03\x04 workbook")
    (receipts / ".receipts.lock").write_text("")
    (settings.reports_dir / "latest").mkdir(parents=True)
    (settings.reports_dir / "latest" / "index.html").write_text("<h1>丹巴</h1>", encoding="utf-8")
    (settings.resolved_data_dir / "secrets").mkdir(parents=True, exist_ok=True)
    (settings.resolved_data_dir / "secrets" / "key").write_text("secret")
    (receipts / "escape.json").symlink_to(settings.resolved_data_dir / "secrets" / "key")
    engine = open_warehouse(settings)
    create_account(engine, "ops.li", "李运维", ["ops"], password=PASSWORD)
    create_account(engine, "edu.zhang", "张老师", ["clerk"], department="education", password=PASSWORD)
    with TestClient(create_app(settings, prefect_api_url="")) as client:
        yield client, settings


def _basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def test_links_are_http_under_the_public_url(served: tuple[TestClient, Settings]) -> None:
    _, settings = served
    assert ops_file_url(settings.receipts_dir / "0123456789abcdef.json", settings) == (
        "https://duikou.example.cn/ops/files/receipts/0123456789abcdef.json")
    assert ops_file_url(settings.resolved_data_dir / "secrets" / "key", settings) is None


def test_ops_read_by_session_or_basic_and_nobody_else(served: tuple[TestClient, Settings]) -> None:
    client, settings = served
    url = "/ops/files/receipts/0123456789abcdef.json"
    # nobody: 401 asking for Basic credentials — a browser then prompts for the ops login itself
    for headers in ({"Accept": "text/html"}, {}):
        away = client.get(url, headers=headers, follow_redirects=False)
        assert away.status_code == 401 and away.headers["www-authenticate"] == 'Basic realm="duikou ops"'
    assert client.get(url, headers=_basic("ops.li", "wrong password!")).status_code == 401
    # a clerk, however signed in: 403
    engine = open_warehouse(settings)
    from tasks.accounts import find_account

    clerk = find_account(engine, "edu.zhang")
    assert clerk is not None
    client.cookies.set(SESSION_COOKIE, start_session(engine, clerk).token)
    assert client.get(url).status_code == 403
    client.cookies.clear()
    assert client.get(url, headers=_basic("edu.zhang", PASSWORD)).status_code == 403
    # ops: by Basic, and by its session
    got = client.get(url, headers=_basic("ops.li", PASSWORD))
    assert got.status_code == 200 and got.json() == {"status": "quarantined"}
    assert got.headers["cache-control"] == "private, no-store"
    ops = find_account(engine, "ops.li")
    assert ops is not None
    client.cookies.set(SESSION_COOKIE, start_session(engine, ops).token)
    workbook = client.get("/ops/files/receipts/0123456789abcdef.correction.xlsx")
    assert workbook.status_code == 200 and workbook.content.startswith(b"PK")
    assert "spreadsheetml" in workbook.headers["content-type"]
    report = client.get("/ops/files/reports/latest/index.html")
    assert report.status_code == 200 and "丹巴" in report.text
    # only files under receipts/ and reports/, never hidden ones, never through a link pointing out
    for outside in ("secrets/key", "receipts/.receipts.lock", "receipts/escape.json", "receipts/../secrets/key",
                    "receipts/%2e%2e/secrets/key", "receipts", "reports/latest", "warehouse.sqlite"):
        assert client.get(f"/ops/files/{outside}").status_code == 404, outside
