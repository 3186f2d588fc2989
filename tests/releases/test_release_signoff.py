"""Releases on a small warehouse, on SQLite and PostgreSQL: the sign-off chain and its refusals.

Poverty returns for 2015 and 2016 (three townships) go straight into the ledger and facts; one
2016 value is flagged by a warning check (a follow-up). Officials are real accounts
(``tasks.accounts``). Covered: unknown id and account, wrong role, self-approval, approving with an
unexplained warning (then the department's 说明 as a footnote), missing returns without and with
``--allow-incomplete`` (marked on every page), two officials acting on the same state (one wins,
the other is refused naming who acted), a return back to draft with its reason, and a correction
after approval: the release still verifies byte for byte, the restatement moves income per capita.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, update

from tasks.accounts import create_account, find_account
from tasks.releases.restate import find_restatements
from tasks.releases.signoff import (
    NotPermitted,
    UnexplainedWarnings,
    approve_release,
    draft_release,
    read_release,
    return_release,
    review_release,
)
from tasks.report.build_site import render_site
from tasks.report.data import load_report_data
from warehouse import schema
from warehouse.followups import explain, sync_followups
from warehouse.release_values import ReleaseError
from warehouse.releases import ReleaseConflict, UnknownRelease, verify_release

TOWNS = ("513323100", "513323101", "513323201")
WHEN = datetime(2017, 3, 1, tzinfo=UTC)


def _return(conn: Any, sid: str, period: str, income: dict[str, float], *, status: str = "loaded",
            supersedes: str | None = None, name: str | None = None) -> None:
    conn.execute(insert(schema.submission).values(
        submission_id=sid, sha256=sid * 4, department="poverty", period=period,
        original_name=name or f"贫困人口年报{period}.xlsx", received_at=WHEN, processed_at=WHEN, loaded_at=WHEN,
        status=status, supersedes=supersedes))
    rows = []
    for i, town in enumerate(TOWNS):
        for indicator, value in (("agricultural_population_persons", 1000.0 * (i + 1)),
                                 ("registered_poor_year_end_persons", 100.0 * (i + 1)),
                                 ("exited_poverty_persons", 10.0),
                                 ("net_income_per_capita_yuan", income[town])):
            rows.append({"submission_id": sid, "indicator": indicator, "township_code": town, "department": "poverty",
                         "period": period, "year": int(period), "month": None, "value": value,
                         "flagged": sid == "p2016a" and town == TOWNS[2] and indicator == "net_income_per_capita_yuan"})
    conn.execute(insert(schema.fact_indicator_value), rows)


def fill(engine: Engine) -> None:
    with engine.begin() as conn:
        _return(conn, "p2015a", "2015", dict.fromkeys(TOWNS, 8000.0))
        _return(conn, "p2016a", "2016", {TOWNS[0]: 9000.0, TOWNS[1]: 9500.0, TOWNS[2]: 30000.0})
        conn.execute(insert(schema.dq_flag).values(
            submission_id="p2016a", indicator="net_income_per_capita_yuan", township_code=TOWNS[2],
            check_id="net_income_per_capita_yuan__outlier_mzscore", severity="warning", value=30000.0,
            reference_value=9000.0, score=6.1, reason_zh="人均纯收入远高于其他乡镇", accepted=False))
    sync_followups(engine)
    officials = (("prep", "编制员甲", {"preparer"}, None), ("rev", "审核员乙", {"reviewer"}, None),
                 ("rev2", "审核员丙", {"reviewer"}, None), ("boss", "分管领导丁", {"approver"}, None),
                 ("both", "戊", {"reviewer", "approver"}, None), ("pclerk", "扶贫办己", {"clerk"}, "poverty"))
    for login, name, roles, dept in officials:
        create_account(engine, login, name, roles, department=dept)


def who(engine: Engine, login: str) -> Any:
    return find_account(engine, login)


@pytest.fixture
def small(warehouse_engine: Engine, tmp_path: Path) -> tuple[Engine, Path]:
    fill(warehouse_engine)
    return warehouse_engine, tmp_path / "reports"


def test_sign_off_refusals_then_approval(small: tuple[Engine, Path]) -> None:
    engine, reports = small
    with pytest.raises(NotPermitted, match="没有“preparer”角色"):
        draft_release(engine, who(engine, "rev"), "annual", "2016", reports_dir=reports)
    with pytest.raises(NotPermitted, match="未知账号"):
        draft_release(engine, who(engine, "nobody"), "annual", "2016", reports_dir=reports)
    with pytest.raises(ReleaseError, match="期别"):
        draft_release(engine, who(engine, "prep"), "annual", "2016-05", reports_dir=reports)
    drafted = draft_release(engine, who(engine, "prep"), "annual", "2016", reports_dir=reports)
    assert drafted.release_id == "annual-2016-v1" and drafted.state == "draft"
    site = drafted.site.parent
    assert "草稿" in (site / "index.html").read_text(encoding="utf-8")

    with pytest.raises(UnknownRelease, match="没有发布版本"):
        review_release(engine, who(engine, "rev"), "annual-2099-v1", reports_dir=reports)
    with pytest.raises(NotPermitted, match="reviewer"):
        review_release(engine, who(engine, "boss"), drafted.release_id, reports_dir=reports)
    with pytest.raises(ReleaseError, match="下一步是“统计审核”"):
        approve_release(engine, who(engine, "boss"), drafted.release_id, reports_dir=reports)

    # two reviewers looked at the same draft; one signs first, the other is refused by the conditional UPDATE
    seen = read_release(engine, drafted.release_id)
    reviewed = review_release(engine, who(engine, "both"), drafted.release_id, "数据已核", reports_dir=reports,
                              seen=seen)
    assert reviewed.state == "in_review" and [w.township_code for w in reviewed.unexplained] == [TOWNS[2]]
    with pytest.raises(ReleaseConflict, match="戊（both）"):
        review_release(engine, who(engine, "rev2"), drafted.release_id, reports_dir=reports, seen=seen)

    # the reviewer may not approve what they reviewed; the approver may not with a flagged value unexplained
    with pytest.raises(NotPermitted, match="不能再做"):
        approve_release(engine, who(engine, "both"), drafted.release_id, reports_dir=reports)
    with pytest.raises(UnexplainedWarnings, match="既无部门说明也无运维确认") as refused:
        approve_release(engine, who(engine, "boss"), drafted.release_id, reports_dir=reports)
    fid = refused.value.warnings[0].followup_id
    explain(engine, fid, "pclerk", "poverty", "该乡新增光伏电站分红，收入属实")
    approved = approve_release(engine, who(engine, "boss"), drafted.release_id, "同意发布", reports_dir=reports)
    assert approved.state == "approved" and approved.published is not None
    published = approved.published.parent
    assert "已发布" in (published / "index.html").read_text(encoding="utf-8")
    provenance = (published / "provenance.html").read_text(encoding="utf-8")
    assert "光伏电站分红" in provenance and "分管领导丁" in provenance and "p2016a" in provenance
    data = load_report_data(engine)  # the nightly dashboard's 已发布 banner points at it
    assert [(p.kind, p.release_id) for p in data.published] == [("annual", "annual-2016-v1")]
    dashboard = render_site(data)["pages"]["index.html"]
    assert 'id="published-banner"' in dashboard and "../published/annual/index.html" in dashboard
    with pytest.raises(ReleaseError, match="已审批发布"):
        return_release(engine, who(engine, "boss"), drafted.release_id, "再看看", reports_dir=reports)

    # a correction lands: the release still reproduces exactly; the restatement moves income per capita
    with engine.begin() as conn:
        ledger = schema.submission
        conn.execute(update(ledger).where(ledger.c.submission_id == "p2016a").values(status="superseded"))
        _return(conn, "p2016b", "2016", {TOWNS[0]: 9000.0, TOWNS[1]: 9500.0, TOWNS[2]: 12000.0},
                supersedes="p2016a", name="贫困人口年报2016（修订）.xlsx")
        conn.execute(update(ledger).where(ledger.c.submission_id == "p2016a").values(superseded_by="p2016b"))
    values = (reports / "releases" / drafted.release_id / "values.json").read_bytes()
    assert verify_release(engine, drafted.release_id, values).ok
    found = find_restatements(engine, reports)
    assert [(r.published_id, r.draft_id) for r in found] == [("annual-2016-v1", "annual-2016-v2")]
    moved = {c["name"]: c for c in found[0].kpi_changes() if c["period"] == "2016"}
    income = moved["net_income_per_capita_yuan"]
    assert income["old_value"] > income["new_value"]
    corrections = (reports / "releases" / "annual-2016-v2" / "corrections.html").read_text(encoding="utf-8")
    assert "更正说明" in corrections and "农牧民人均纯收入" in corrections and "（修订）" in corrections
    assert find_restatements(engine, reports)[0].action == "redraft"  # the same draft, refrozen


def test_return_and_missing_returns(small: tuple[Engine, Path]) -> None:
    engine, reports = small
    with engine.begin() as conn:  # tourism reported January and March 2016, never February
        for sid, period in (("t1", "2016-01"), ("t3", "2016-03")):
            conn.execute(insert(schema.submission).values(
                submission_id=sid, sha256=sid * 32, department="tourism", period=period, original_name=f"{period}.xlsx",
                received_at=WHEN, processed_at=WHEN, loaded_at=WHEN, status="loaded"))
    with pytest.raises(ReleaseError, match="tourism 2016-02"):
        draft_release(engine, who(engine, "prep"), "annual", "2016", reports_dir=reports)
    drafted = draft_release(engine, who(engine, "prep"), "annual", "2016", reports_dir=reports, allow_incomplete=True)
    pages = list(drafted.site.parent.rglob("*.html"))
    assert len(pages) > 5 and all("数据不完整" in p.read_text(encoding="utf-8") for p in pages)
    review_release(engine, who(engine, "rev"), drafted.release_id, reports_dir=reports)
    with pytest.raises(ReleaseError, match="退回须写明原因"):
        return_release(engine, who(engine, "boss"), drafted.release_id, "  ", reports_dir=reports)
    back = return_release(engine, who(engine, "boss"), drafted.release_id, "旅游局2月报表未到，暂缓",
                          reports_dir=reports)
    assert (back.state, back.steps_done) == ("draft", 0)
    # back in draft, the preparer refreezes it; the earlier review no longer counts
    again = draft_release(engine, who(engine, "prep"), "annual", "2016", reports_dir=reports, allow_incomplete=True)
    assert again.release_id == drafted.release_id and again.action == "redraft"
    review_release(engine, who(engine, "rev"), drafted.release_id, reports_dir=reports)
    with pytest.raises(ReleaseError, match="正在审核中"):
        draft_release(engine, who(engine, "prep"), "annual", "2016", reports_dir=reports, allow_incomplete=True)
