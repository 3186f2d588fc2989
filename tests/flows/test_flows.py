"""End-to-end: the real flows under Prefect's test harness, on the embedded SQLite warehouse.

The full Danba demo runs once (module fixture); the KPIs in the mart are then recomputed
independently from the generator's values and compared. The demo's landing area holds the
labour registry's quarterly snapshots too (keyed under a test DUIKOU_PERSON_KEY): their marts are
checked against the generator's per-township targets and the demo's labour returns. Then the 2016
annual release is drafted, signed, published and restated on a copy of the demo's warehouse.

Only tests that need the demo live here (``make test`` gives whole files to its workers: this one is
one worker's longest stretch); ``duikou ingest`` and the nightly on small landings are in
tests/flows/test_ingest_command.py.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from duikou_settings import get_settings, reset_settings_cache
from expectations.declaration import load_declarations
from flows.warehouse_access import clear_cache, open_warehouse
from tasks.demo.data import DEMO_AS_OF, LATE_RETURNS, MISSING_RETURNS, GeneratedFile, generate_demo
from tasks.demo.figures import MONTHS
from tasks.demo.form_writer import write_form
from tasks.demo.values import PEOPLE_PER_TRAINING, REGISTRY_SHORT, REGISTRY_SNAPSHOTS, demo_values, registry_targets
from tests.conftest import use_data_dir
from tests.flows.test_ingest_command import _settled_bytes
from tests.helpers.report_texts import site_texts

pytestmark = pytest.mark.flow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory, prefect_harness: None) -> Iterator[dict[str, object]]:
    from flows.nightly import nightly

    data_dir = tmp_path_factory.mktemp("demo") / "data"
    mp = pytest.MonkeyPatch()
    mp.setenv("DUIKOU_DATA_DIR", str(data_dir))
    mp.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    mp.setenv("DUIKOU_AS_OF", DEMO_AS_OF.isoformat())  # the demo's clock, as duikou demo sets it
    mp.setenv("DUIKOU_PERSON_KEY", "demo-test-key-" + "d" * 40)  # duikou demo makes its own when unset
    reset_settings_cache()
    clear_cache()
    files = generate_demo(get_settings().landing_dir, seed=2017)
    first = nightly(run_label="test")
    second = nightly(run_label="test-again", build_report=False)
    yield {"files": files, "first": first, "second": second, "engine": open_warehouse(get_settings()),
           "settings": get_settings()}
    mp.undo()
    reset_settings_cache()
    clear_cache()


def _mart(engine: object) -> dict[tuple[int, str], float]:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        rows = conn.execute(text("SELECT year, kpi, value FROM mart_county_kpi_yearly")).all()
    return {(int(r.year), r.kpi): r.value for r in rows}


def test_demo_headline_kpis_match_the_article(demo_run: dict[str, object]) -> None:
    mart = _mart(demo_run["engine"])
    assert round(mart[(2016, "net_income_per_capita_yuan")]) == 10827
    assert round(mart[(2016, "net_income_multiple_of_2011")], 2) == 2.61
    assert round(mart[(2016, "net_income_cagr_since_2011_pct")], 1) == 21.1
    assert round(mart[(2011, "poverty_incidence_pct")], 1) == 26.2
    assert round(mart[(2016, "poverty_incidence_pct")], 2) == 12.78
    assert round(mart[(2016, "tourism_revenue_yuan")] / 1e8, 2) == 8.69
    assert round(mart[(2016, "tourism_revenue_yoy_pct")]) == 17
    assert mart[(2017, "job_fair_posts")] >= 10000


def test_mart_agrees_with_an_independent_recomputation(demo_run: dict[str, object]) -> None:
    """Recompute from the generator's final values (form units), not from the warehouse."""
    values = demo_values(2017)
    mart = _mart(demo_run["engine"])
    for year in range(2011, 2017):
        frame = values[("poverty", str(year))]
        pop = frame["agricultural_population_persons"]
        income = (frame["net_income_per_capita_yuan"] * pop).sum() / pop.sum()
        incidence = frame["registered_poor_year_end_persons"].sum() / pop.sum() * 100
        assert math.isclose(mart[(year, "net_income_per_capita_yuan")], income, rel_tol=1e-9)
        assert math.isclose(mart[(year, "poverty_incidence_pct")], incidence, rel_tol=1e-9)
    for year in (2015, 2016):
        revenue_wan = sum(
            values[("tourism", f"{year}-{m:02d}")]["tourism_revenue_yuan"].sum() for m in range(1, 13)
        )
        assert math.isclose(mart[(year, "tourism_revenue_yuan")], revenue_wan * 10000, rel_tol=1e-9)
    hires = values[("labour", "2017-05")]["job_fair_hires_person_times"].sum()
    assert hires == 775
    assert mart[(2017, "job_fair_hires_person_times")] >= 775


def test_flawed_submissions_are_refused_with_a_reason(demo_run: dict[str, object]) -> None:
    files: list[GeneratedFile] = demo_run["files"]  # type: ignore[assignment]
    first = demo_run["first"]
    by_name = {r.original_name + r.period: r for r in first.processed}  # type: ignore[attr-defined]
    flawed = [f for f in files if f.kind == "flawed"]
    assert len(flawed) >= 3
    for item in flawed:
        result = by_name[item.path.name + item.period]
        assert result.status in ("rejected", "quarantined"), item
        critical = [i for i in result.receipt["issues"] if i["severity"] == "critical"]
        assert critical and all(i["message"] for i in critical)
    codes = {i["code"] for r in first.processed for i in r.receipt["issues"]}  # type: ignore[attr-defined]
    assert {"TOTAL_MISMATCH", "TOWNSHIP_UNKNOWN", "PERIOD_MISMATCH", "RULE_FAILED"} <= codes


def test_every_submission_has_a_receipt_and_one_current_version(demo_run: dict[str, object]) -> None:
    settings = demo_run["settings"]
    first = demo_run["first"]
    for result in first.processed:  # type: ignore[attr-defined]
        receipt = json.loads(Path(result.receipt_path).read_text(encoding="utf-8"))
        assert receipt["status"] == result.status
        assert receipt["submission_id"] == result.submission_id
        assert (settings.resolved_data_dir / receipt["stored_as"]).exists()  # type: ignore[attr-defined]
    with demo_run["engine"].connect() as conn:  # type: ignore[attr-defined]
        per_partition = pd.read_sql(
            text("SELECT department, period, COUNT(*) AS n FROM submission WHERE status = 'loaded' "
                 "GROUP BY department, period"), conn)
        superseded = conn.execute(text("SELECT COUNT(*) FROM submission WHERE status = 'superseded'")).scalar()
    assert (per_partition["n"] == 1).all()
    # one planted missing return; the registry's snapshots are partitions of their own department
    assert len(per_partition) == 6 + 35 * 4 - len(MISSING_RETURNS) + len(REGISTRY_SNAPSHOTS)
    assert superseded == 1  # the labour 2016-06 restatement


def test_completeness_shows_the_planted_late_and_missing_returns(demo_run: dict[str, object]) -> None:
    with demo_run["engine"].connect() as conn:  # type: ignore[attr-defined]
        rows = pd.read_sql(text("SELECT department, period, status FROM mart_completeness"), conn)
    status = {(r.department, r.period): r.status for r in rows.itertuples()}
    assert all(status[key] == "late" for key in LATE_RETURNS)
    assert all(status[key] == "missing" for key in MISSING_RETURNS)
    assert status[("poverty", "2016")] == "on_time" and ("labour", "2017-12") not in status  # not ended yet
    # the registry's quarterly snapshots: both on time; 2017-12 is not due before 2018-01-10
    assert {p: s for (d, p), s in status.items() if d == "labour_registry"} == dict.fromkeys(REGISTRY_SNAPSHOTS,
                                                                                              "on_time")
    with demo_run["engine"].connect() as conn:  # type: ignore[attr-defined]
        towns = conn.execute(text(
            "SELECT period, SUM(CASE WHEN reported THEN 1 ELSE 0 END), SUM(values_reported) "
            "FROM mart_completeness_township WHERE department = 'labour_registry' GROUP BY period")).all()
    targets = registry_targets(2017)
    assert {p: (int(n), int(v)) for p, n, v in towns} == {
        p: (15, sum(t.persons for t in targets[p].values())) for p in REGISTRY_SNAPSHOTS}  # people listed
    assert set(rows["status"]) <= {"on_time", "late", "missing"}  # every flawed file was corrected
    assert (rows["status"] == "missing").sum() == len(MISSING_RETURNS)
    assert demo_run["first"].missing == [  # type: ignore[attr-defined]
        {"department": d, "period": p, "due_date": "2017-12-10", "days_overdue": 7} for d, p in MISSING_RETURNS]


def test_registry_marts_count_people_as_the_generator_planted(demo_run: dict[str, object]) -> None:
    """KPIs from people: the marts equal the generator's per-township targets, people trained are
    fewer than training 人次 (the article's 2630 vs 3540), and the reconciliation with the labour
    return flags the one planted township — nothing else."""
    targets = registry_targets(2017)
    values = demo_values(2017)
    with demo_run["engine"].connect() as conn:  # type: ignore[attr-defined]
        county = pd.read_sql(text("SELECT * FROM mart_registry_county"), conn).set_index("period")
        town = pd.read_sql(text("SELECT * FROM mart_registry_township"), conn)
        recon = pd.read_sql(text("SELECT * FROM mart_registry_reconciliation"), conn)
        levels = pd.read_sql(text(
            "SELECT period, category, SUM(persons) AS persons FROM mart_registry_category "
            "WHERE dimension = 'certificate_level' GROUP BY period, category"), conn)
    assert sorted(county.index) == list(REGISTRY_SNAPSHOTS)
    measures = ("persons", "poor_persons", "persons_trained", "training_person_times", "certified_persons",
                "certified_mid_senior_persons")
    for period in REGISTRY_SNAPSHOTS:
        got = town[town["period"] == period].set_index("township_code")
        assert {c: {m: int(got.at[c, m]) for m in measures} for c in got.index} == {
            c: {m: getattr(t, m) for m in measures} for c, t in targets[period].items()}
        row = county.loc[period]
        assert row["persons_trained"] < row["training_person_times"]  # 人 < 人次
        # 参训工种 lists every training since the programme began: the returns' cumulative 人次
        cumulative = sum(int(values[("labour", m)]["skills_training_person_times"].sum())
                         for m in MONTHS if m <= period)
        assert row["training_person_times"] == cumulative
        assert row["persons_trained"] == round(cumulative * PEOPLE_PER_TRAINING)  # the article's ratio
        certified = levels[(levels["period"] == period) & ~levels["category"].isin(["无"])]
        assert int(certified["persons"].sum()) == row["certified_persons"]
    assert recon["form_value"].notna().all() and len(recon) == 2 * 15 * len(REGISTRY_SNAPSHOTS)
    outside = recon[~recon["within_tolerance"].astype(bool)]
    assert sorted(zip(outside["period"], outside["township_code"], strict=True)) == [REGISTRY_SHORT] * 2
    assert set(outside["check_id"]) == {"registry_labour_force_vs_form", "registry_poor_labour_vs_form"}
    labour = values[("labour", REGISTRY_SHORT[0])].set_index("township_code")
    short = outside.set_index("check_id")
    assert short.at["registry_labour_force_vs_form", "form_value"] == labour.at[REGISTRY_SHORT[1],
                                                                                "rural_labour_total_persons"]


def test_demo_report_has_the_registry_page_and_no_person_data(demo_run: dict[str, object]) -> None:
    site = Path(demo_run["first"].report_path).parent  # type: ignore[attr-defined]
    page = (site / "registry.html").read_text(encoding="utf-8")
    with demo_run["engine"].connect() as conn:  # type: ignore[attr-defined]
        latest = conn.execute(text(
            "SELECT persons, persons_trained, training_person_times FROM mart_registry_county "
            "ORDER BY period DESC LIMIT 1")).one()
        keys = set(conn.execute(text("SELECT person_key FROM fact_person")).scalars())
    assert f'data-measure="persons">{latest.persons} 人<' in page
    assert f'data-measure="training_person_times">{latest.training_person_times} 人次<' in page
    assert "岳扎乡" in page.split('id="reconciliation-result"')[1].split("</p>")[0]
    assert 'href="registry.html"' in (site / "index.html").read_text(encoding="utf-8")
    # no ID number and no person key in any file of the site (pages, CSV, xlsx, Parquet)
    ids: set[str] = set()
    for f in demo_run["files"]:  # type: ignore[attr-defined]
        if f.department == "labour_registry":
            if f.path.suffix == ".xlsx":
                with zipfile.ZipFile(f.path) as book:
                    content = "".join(book.read(n).decode("utf-8") for n in book.namelist())
            else:
                content = f.path.read_bytes().decode("gb18030")
            ids |= set(re.findall(r"\d{17}[\dX]", content))
    assert len(ids) > 29_000 and len(keys) > 29_000
    found: dict[str, set[str]] = {}
    for rel, content in site_texts(site).items():
        hits = (set(re.findall(r"\d{17}[\dX]", content)) & ids) | (set(re.findall(r"[0-9a-f]{64}", content)) & keys)
        if hits:
            found[rel] = hits
    assert found == {}


def test_second_nightly_run_loads_nothing(demo_run: dict[str, object]) -> None:
    second = demo_run["second"]
    assert second.processed == []  # type: ignore[attr-defined]
    assert second.unchanged == len(demo_run["files"])  # type: ignore[attr-defined,arg-type]


def test_report_was_written(demo_run: dict[str, object]) -> None:
    report = Path(demo_run["first"].report_path)  # type: ignore[attr-defined]
    html = report.read_text(encoding="utf-8")
    assert "10827" in html and "12.78%" in html and "8.69 亿元" in html
    assert "培训取证率" in html and "59.52%" in html  # the forms' figures, unchanged by the registry


# ---------------------------------------------------------------- releases (issue 20), on a copy of the demo
def _explain_all(engine: object, release_id: str, clerks: dict[str, object]) -> int:
    """Each flagged value of the release without a 说明 gets its department clerk's 说明; how many."""
    from warehouse.followups import explain
    from warehouse.releases import get_release, release_warnings

    with engine.connect() as conn:  # type: ignore[attr-defined]
        open_ones = [w for w in release_warnings(conn, get_release(conn, release_id)) if not w.explained]
    for w in open_ones:
        clerk = clerks[w.department]
        explain(engine, w.followup_id, clerk.login, w.department, f"{w.township_code} 该数值经乡镇核实属实")  # type: ignore[arg-type,attr-defined]
    return len(open_ones)


def test_release_2016_signed_published_and_restated(
    demo_run: dict[str, object], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20's done: the 2016 annual release drafted from the demo, reviewed and approved by different
    officials, published; a corrected 2016 poverty return lands (nightly): the restatement event fires,
    v2's 更正说明 shows income per capita old → new, v1 still verifies byte for byte, v2 is approved and
    published; Chromium reads both banners (v1: 已更正，见 v2; the published folder: v2)."""
    import shutil

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.events import RESTATEMENT_NEEDED
    from flows.nightly import nightly
    from tasks.accounts import create_account
    from tasks.releases.signoff import NotPermitted, approve_release, draft_release, review_release
    from warehouse.releases import verify_release

    source: Path = demo_run["settings"].resolved_data_dir  # type: ignore[attr-defined]
    _settled_bytes(source / "warehouse.sqlite")  # the WAL checkpointed: the copy is the warehouse as it is
    data = tmp_path / "data"
    shutil.copytree(source, data, ignore=shutil.ignore_patterns("reports", "prefect-home"))
    with use_data_dir(monkeypatch, data, DUIKOU_AS_OF=DEMO_AS_OF.isoformat(),
                      DUIKOU_PERSON_KEY="demo-test-key-" + "d" * 40):
        engine = open_warehouse(get_settings())
        reports = data / "reports"
        officials = {login: create_account(engine, login, name, {role}) for login, name, role in (
            ("zhang", "张编制", "preparer"), ("li", "李审核", "reviewer"), ("wang", "王审批", "approver"))}
        clerks = {d: create_account(engine, f"{d}-clerk", f"{d}填报员", {"clerk"}, department=d)
                  for d in load_declarations()}
        v1 = draft_release(engine, officials["zhang"], "annual", "2016", reports_dir=reports)
        assert v1.release_id == "annual-2016-v1"
        review_release(engine, officials["li"], v1.release_id, "与台账核对无误", reports_dir=reports)
        with pytest.raises(NotPermitted):
            approve_release(engine, officials["li"], v1.release_id, reports_dir=reports)
        _explain_all(engine, v1.release_id, clerks)
        done = approve_release(engine, officials["wang"], v1.release_id, "同意发布", reports_dir=reports)
        assert done.published == reports / "published" / "annual" / "index.html"
        v1_values = (reports / "releases" / v1.release_id / "values.json").read_bytes()

        rows = demo_values(2017)[("poverty", "2016")].copy()
        rows.loc[0, "net_income_per_capita_yuan"] += 600
        landing = get_settings().landing_dir / "poverty" / "2016"
        landing.mkdir(parents=True, exist_ok=True)
        write_form(landing / "贫困人口年报2016（更正）.xlsx", load_declarations()["poverty"], "2016", rows)
        summary = nightly(run_label="restatement", build_report=False)
        assert [r["published_id"] for r in summary.restatements] == ["annual-2016-v1"]
        assert "net_income_per_capita_yuan" in summary.restatements[0]["kpis_moved"]
        draft_id = summary.restatements[0]["draft_id"]
        assert draft_id == "annual-2016-v2"

        corrections = (reports / "releases" / draft_id / "corrections.html").read_text(encoding="utf-8")
        assert "更正说明" in corrections and "农牧民人均纯收入" in corrections and "（更正）" in corrections
        assert verify_release(engine, v1.release_id, v1_values).ok  # v1 reproduces exactly after the correction
        review_release(engine, officials["li"], draft_id, "更正已核", reports_dir=reports)
        _explain_all(engine, draft_id, clerks)
        approve_release(engine, officials["wang"], draft_id, "同意更正", reports_dir=reports)
        assert (reports / "releases" / v1.release_id / "values.json").read_bytes() == v1_values

        with get_client(sync_client=True) as client:  # the nightly's event reached the server
            seen = []
            for _ in range(30):
                seen = client.read_events(filter=EventFilter(event=EventNameFilter(name=[RESTATEMENT_NEEDED])),
                                          limit=50).events
                if seen:
                    break
                import time

                time.sleep(1)
        assert seen and seen[0].payload["draft_id"] == draft_id
        moved = {c["name"]: c for c in seen[0].payload["kpi_changes"] if c["period"] == "2016"}
        income = moved["net_income_per_capita_yuan"]
        assert income["new_value"] > income["old_value"]

        playwright = pytest.importorskip("playwright.sync_api")
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("Debian chromium not installed (make test installs it)")
        with playwright.sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto((reports / "releases" / v1.release_id / "index.html").as_uri())
            banner = page.locator("#release-banner").inner_text()
            assert "已发布" in banner and "已更正，见 v2" in banner
            page.locator("#release-banner a", has_text="v2").click()
            assert page.url.endswith(f"/releases/{draft_id}/index.html")
            page.goto((reports / "published" / "annual" / "index.html").as_uri())
            banner = page.locator("#release-banner").inner_text()
            assert "已发布" in banner and draft_id in banner and "草稿" not in banner
            page.locator('article.card[data-kpi="net_income_per_capita_yuan"] a.provenance').click()
            assert "#k-net_income_per_capita_yuan-2016" in page.url
            assert page.locator("#signoff tr.signoff").count() == 3  # the system's draft, review, approve
            page.goto((reports / "published" / "annual" / "corrections.html").as_uri())
            assert page.locator("#moved tr.moved.kpi").count() >= 1
            page.screenshot(path=str(tmp_path / "corrections.png"), full_page=True)
            browser.close()
