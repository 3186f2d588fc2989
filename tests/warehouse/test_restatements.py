"""Versions and restatements: ``v_restatement``, ``kpi_changes`` and ``duikou history``.

Both backends (``warehouse_engine``). One poverty partition (2016) goes through three versions:
v2 changes a value, adds a township, drops a value and blanks another; v3 changes one value
back part of the way. A 2011 return is the base year of the derived KPIs; a tourism month is
another department that no restatement here touches.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime

import pandas as pd
import pytest
from sqlalchemy import Engine, select, text

import duikou_settings
import flows.warehouse_access
from flows.cli import main
from warehouse import schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.restatements import (
    KPI_CHANGE_COLUMNS,
    RESTATEMENT_COLUMNS,
    NotARestatement,
    UnknownSubmission,
    kpi_changes,
    partition_history,
    restatement_values,
)

ZHANGGU, BAWANG, NIEXIA = "513323100", "513323201", "513323202"
POP, POOR, EXITED, INCOME = (
    "agricultural_population_persons",
    "registered_poor_year_end_persons",
    "exited_poverty_persons",
    "net_income_per_capita_yuan",
)
Facts = dict[tuple[str, str], float | None]


def record(engine: Engine, content: str, department: str, period: str, facts: Facts) -> str:
    digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
    frame = pd.DataFrame(
        [
            {
                "indicator": indicator,
                "township_code": township,
                "value": math.nan if value is None else value,
                "flagged": False,
                "source_row": 5 + n,
            }
            for n, ((indicator, township), value) in enumerate(facts.items())
        ]
    )
    outcome = record_submission(
        engine,
        SubmissionRecord(
            submission_id=submission_key(department, digest),
            sha256=digest,
            department=department,
            period=period,
            original_name=f"{content}.xlsx",
            received_at=datetime(2017, 1, 10, 9, 30, tzinfo=UTC),
            status="loaded",
            rows_read=len(facts),
            rows_loaded=len(facts),
            rows_rejected=0,
            archive_path=None,
            receipt_path=None,
        ),
        frame,
        pd.DataFrame(columns=["indicator", "value", "label_zh"]),
        [],
        [],
    )
    assert outcome.status == "loaded"
    return outcome.submission_id


def poverty(rows: dict[str, tuple[float | None, ...]]) -> Facts:
    """``{township: (population, poor, exited, income)}``; a missing tuple entry means no row."""
    facts: Facts = {}
    for township, values in rows.items():
        for indicator, value in zip((POP, POOR, EXITED, INCOME), values, strict=False):
            facts[(indicator, township)] = value
    return facts


V1 = poverty({ZHANGGU: (1000, 100, 50, 10000), BAWANG: (3000, 300, 80, 12000)})
V2: Facts = {
    (POP, ZHANGGU): 1000,
    (POOR, ZHANGGU): 150,  # changed
    (EXITED, ZHANGGU): None,  # blanked: the value disappeared, the row stays
    (INCOME, ZHANGGU): 10000,
    (POP, BAWANG): 3000,
    (POOR, BAWANG): 300,
    (EXITED, BAWANG): 80,
    # (INCOME, BAWANG) dropped: the row disappeared
    (POP, NIEXIA): 2000,  # a township added
    (POOR, NIEXIA): 250,
    (INCOME, NIEXIA): None,  # added but blank: no value before, no value now — not a change
}
V3: Facts = {**V2, (POOR, ZHANGGU): 120}


@pytest.fixture
def versions(warehouse_engine: Engine) -> dict[str, str]:
    engine = warehouse_engine
    ids = {
        "base": record(engine, "poverty-2011", "poverty", "2011", poverty({ZHANGGU: (1000, 300, 0, 4000),
                                                                            BAWANG: (3000, 750, 0, 4200)})),
        "tourism": record(engine, "tourism-2016-05", "tourism", "2016-05",
                          {("tourism_revenue_yuan", ZHANGGU): 1_250_000.0}),
        "v1": record(engine, "poverty-2016-v1", "poverty", "2016", V1),
        "v2": record(engine, "poverty-2016-v2", "poverty", "2016", V2),
    }
    return ids


def view_rows(engine: Engine, new_id: str) -> list[tuple[object, ...]]:
    frame = restatement_values(engine, new_id)
    assert tuple(frame.columns) == RESTATEMENT_COLUMNS
    return [
        (r.indicator, r.township_code, _none(r.old_value), _none(r.new_value), _none(r.difference))
        for r in frame.itertuples(index=False)
    ]


def _none(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


# ------------------------------------------------------------------ v_restatement
def test_v_restatement_holds_exactly_the_changes(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    v1, v2 = versions["v1"], versions["v2"]
    assert view_rows(warehouse_engine, v2) == [
        (POP, NIEXIA, None, 2000.0, None),
        (EXITED, ZHANGGU, 50.0, None, None),
        (INCOME, BAWANG, 12000.0, None, None),
        (POOR, ZHANGGU, 100.0, 150.0, 50.0),
        (POOR, NIEXIA, None, 250.0, None),
    ]
    frame = restatement_values(warehouse_engine, v2)
    assert set(frame["old_submission_id"]) == {v1} and set(frame["new_submission_id"]) == {v2}
    assert set(frame["department"]) == {"poverty"} and set(frame["period"]) == {"2016"}
    poor = frame[(frame["indicator"] == POOR) & (frame["township_code"] == ZHANGGU)].iloc[0]
    assert (poor["label_zh"], poor["township_name"], poor["unit"]) == ("建档立卡贫困人口(年末)", "章谷镇", "人")
    with warehouse_engine.connect() as conn:
        loaded_at = conn.execute(
            select(schema.submission.c.loaded_at).where(schema.submission.c.submission_id == v2)
        ).scalar_one()
        first_versions = conn.execute(
            text("SELECT COUNT(*) FROM v_restatement WHERE new_submission_id IN (:a, :b)"),
            {"a": v1, "b": versions["base"]},
        ).scalar_one()
    assert first_versions == 0  # a first version restates nothing
    moment = poor["superseded_at"]
    expected = loaded_at.replace(tzinfo=UTC) if loaded_at.tzinfo is None else loaded_at
    assert moment == expected


def test_superseded_restatement_stays_visible(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    before = view_rows(warehouse_engine, versions["v2"])
    v3 = record(warehouse_engine, "poverty-2016-v3", "poverty", "2016", V3)
    assert view_rows(warehouse_engine, versions["v2"]) == before  # v2 is superseded now, still listed
    assert view_rows(warehouse_engine, v3) == [(POOR, ZHANGGU, 150.0, 120.0, -30.0)]
    with warehouse_engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*) FROM v_restatement")).scalar_one()
    assert total == len(before) + 1


def test_identical_values_restate_nothing(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    again = record(warehouse_engine, "tourism-2016-05-resent", "tourism", "2016-05",
                   {("tourism_revenue_yuan", ZHANGGU): 1_250_000.0})
    assert view_rows(warehouse_engine, again) == []
    changes = kpi_changes(warehouse_engine, again)
    assert tuple(changes.columns) == KPI_CHANGE_COLUMNS and changes.empty


# ------------------------------------------------------------------ kpi_changes
def kpi_rows(frame: pd.DataFrame) -> list[tuple[int, str, float | None, float | None, float | None]]:
    return [
        (int(r.year), str(r.kpi), _none(r.old_value), _none(r.new_value), _none(r.difference))
        for r in frame.itertuples(index=False)
    ]


def test_kpi_changes_show_the_moved_kpis(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    changes = kpi_changes(warehouse_engine, versions["v2"])
    assert tuple(changes.columns) == KPI_CHANGE_COLUMNS
    base = (1000 * 4000 + 3000 * 4200) / 4000
    old_income, new_income = (1000 * 10000 + 3000 * 12000) / 4000, 10000.0  # BAWANG, NIEXIA: no income
    old_rate, new_rate = 400 / 4000 * 100, 700 / 6000 * 100
    cagr = lambda value: ((value / base) ** (1 / 5) - 1) * 100  # noqa: E731
    expected = [
        (2016, "net_income_per_capita_yuan", old_income, new_income),
        (2016, "net_income_multiple_of_2011", old_income / base, new_income / base),
        (2016, "net_income_cagr_since_2011_pct", cagr(old_income), cagr(new_income)),
        (2016, "poverty_incidence_pct", old_rate, new_rate),
    ]
    rows = kpi_rows(changes)
    assert [(y, k) for y, k, *_ in rows] == [(y, k) for y, k, *_ in expected]  # 2011 and tourism: unmoved
    for (_, _, old, new, diff), (_, _, want_old, want_new) in zip(rows, expected, strict=True):
        assert old == pytest.approx(want_old) and new == pytest.approx(want_new)
        assert diff == pytest.approx(want_new - want_old)
    incidence = changes[changes["kpi"] == "poverty_incidence_pct"].iloc[0]
    assert (incidence["label_zh"], incidence["unit"]) == ("贫困发生率", "%")

    # a later version does not change what v2 moved; v3 moved the incidence only
    v3 = record(warehouse_engine, "poverty-2016-v3", "poverty", "2016", V3)
    pd.testing.assert_frame_equal(kpi_changes(warehouse_engine, versions["v2"]), changes)
    moved = kpi_rows(kpi_changes(warehouse_engine, v3))
    assert [(k, pytest.approx(o), pytest.approx(n)) for _, k, o, n, _ in moved] == [
        ("poverty_incidence_pct", new_rate, 670 / 6000 * 100)
    ]


def test_kpi_changes_needs_a_restatement(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    with pytest.raises(NotARestatement):
        kpi_changes(warehouse_engine, versions["v1"])
    with pytest.raises(UnknownSubmission):
        kpi_changes(warehouse_engine, "0" * 16)


def test_a_kpi_that_appears_has_no_old_value(warehouse_engine: Engine) -> None:
    first = record(warehouse_engine, "poverty-2016-no-poor", "poverty", "2016", {(POP, ZHANGGU): 1000})
    second = record(warehouse_engine, "poverty-2016-poor", "poverty", "2016", {(POP, ZHANGGU): 1000,
                                                                             (POOR, ZHANGGU): 100})
    assert first != second
    assert kpi_rows(kpi_changes(warehouse_engine, second)) == [(2016, "poverty_incidence_pct", None, 10.0, None)]


# ------------------------------------------------------------------ partition_history and the CLI
def test_partition_history(warehouse_engine: Engine, versions: dict[str, str]) -> None:
    v3 = record(warehouse_engine, "poverty-2016-v3", "poverty", "2016", V3)
    history = partition_history(warehouse_engine, "poverty", "2016")
    assert [v.submission_id for v in history.versions] == [v3, versions["v2"], versions["v1"]]
    assert [v.status for v in history.versions] == ["loaded", "superseded", "superseded"]
    newest = history.versions[0]
    assert (newest.supersedes, newest.superseded_by, newest.facts_loaded) == (versions["v2"], None, len(V3))
    assert history.versions[1].superseded_by == v3
    assert [(r.old_submission_id, r.new_submission_id) for r in history.restatements] == [
        (versions["v2"], v3),
        (versions["v1"], versions["v2"]),
    ]
    assert [len(r.values) for r in history.restatements] == [1, 5]
    assert partition_history(warehouse_engine, "poverty", "2015").versions == []


def _url_of(engine: Engine) -> str:
    """The engine's URL, with the test schema on PostgreSQL (the fixture sets it per connection)."""
    url = engine.url
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        url = url.update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@pytest.fixture
def cli_env(warehouse_engine: Engine, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``duikou`` pointed at a temporary data dir and the test's warehouse."""
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("DUIKOU_WAREHOUSE_URL", _url_of(warehouse_engine))
    duikou_settings.reset_settings_cache()
    flows.warehouse_access.clear_cache()
    yield
    flows.warehouse_access.open_warehouse(duikou_settings.get_settings()).dispose()
    flows.warehouse_access.clear_cache()
    duikou_settings.reset_settings_cache()


def test_history_command_prints_versions_and_changes(
    cli_env: None, warehouse_engine: Engine, versions: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", "poverty", "2016"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "poverty 2016: 2 个版本 versions, newest first"
    assert lines[1].startswith(f"  {versions['v2']}  loaded ")
    assert "poverty-2016-v2.xlsx" in lines[1] and f"supersedes {versions['v1']}" in lines[2]
    assert lines[3].startswith(f"  {versions['v1']}  superseded ")
    assert f"superseded_by {versions['v2']}" in lines[4]
    assert f"更正 restatement {versions['v1']} → {versions['v2']}" in out
    assert "5 values changed, 4 KPIs moved" in out
    assert "registered_poor_year_end_persons 建档立卡贫困人口(年末)  513323100 章谷镇: 100 → 150 (+50) 人" in out
    assert "net_income_per_capita_yuan 农牧民人均纯收入  513323201 巴旺乡: 12,000 → — (disappeared) 元" in out
    assert "2016 poverty_incidence_pct 贫困发生率: 10.00 → 11.67 (+1.67) %" in out  # as the report rounds it
    assert "北京时间" in lines[1] and "Z " not in lines[1]

    assert main(["history", "poverty", "2016", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["department"], data["period"]) == ("poverty", "2016")
    assert [v["submission_id"] for v in data["versions"]] == [versions["v2"], versions["v1"]]
    assert data["versions"][0]["supersedes"] == versions["v1"]
    assert data["versions"][1]["status"] == "superseded"
    assert data["versions"][0]["critical_issues"] == 0 and data["versions"][0]["rows_read"] == len(V2)
    (restatement,) = data["restatements"]
    assert restatement["new_submission_id"] == versions["v2"]
    changed = {(c["indicator"], c["township_code"]): c for c in restatement["changed_values"]}
    assert len(changed) == 5
    assert changed[(INCOME, BAWANG)] | {"superseded_at": None} == {
        "department": "poverty", "period": "2016", "indicator": INCOME, "label_zh": "农牧民人均纯收入",
        "township_code": BAWANG, "township_name": "巴旺乡", "old_submission_id": versions["v1"],
        "new_submission_id": versions["v2"], "old_value": 12000.0, "new_value": None, "difference": None,
        "unit": "元", "superseded_at": None,
    }
    assert changed[(POOR, ZHANGGU)]["superseded_at"] == restatement["superseded_at"] is not None
    moved = {(k["year"], k["kpi"]): k for k in restatement["kpi_changes"]}
    assert moved[(2016, "poverty_incidence_pct")]["new_value"] == pytest.approx(700 / 6000 * 100)


def test_history_command_on_an_empty_data_dir(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DUIKOU_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("DUIKOU_WAREHOUSE_URL", raising=False)
    duikou_settings.reset_settings_cache()
    flows.warehouse_access.clear_cache()
    try:
        assert main(["history", "labour", "2016-05"]) == 0
        assert capsys.readouterr().out.strip() == "labour 2016-05: 没有版本 (no versions received)"
        assert main(["history", "labour", "2016-05", "--json"]) == 0
        assert json.loads(capsys.readouterr().out) == {
            "department": "labour", "period": "2016-05", "versions": [], "restatements": [],
        }
        assert main(["history", "labour", "2016/05"]) == 2
        assert main(["history", "fisheries", "2016-05"]) == 2
        assert "unknown department" in capsys.readouterr().err
    finally:
        flows.warehouse_access.clear_cache()
        duikou_settings.reset_settings_cache()
