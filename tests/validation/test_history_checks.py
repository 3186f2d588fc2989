"""Checks against a township's own history: 本年累计 never decreases, magnitudes stay plausible."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import Engine

from expectations.declaration import load_declarations
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.submission.journey import parse, receive, validate
from warehouse.history import CheckHistory, earlier_values
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.refdata import reference_frames


def _history(department: str, periods: list[str]) -> pd.DataFrame:
    """Long history frame in base units from the demo values (as the warehouse would hold it)."""
    decl = load_declarations()[department]
    frames = []
    for period in periods:
        wide = demo_values()[(department, period)]
        long = wide.melt(id_vars="township_code", var_name="indicator", value_name="value")
        long["value"] = [v * decl.indicator(i).factor for i, v in zip(long["indicator"], long["value"], strict=True)]
        long["period"], long["year"], long["month"] = period, int(period[:4]), int(period[5:])
        frames.append(long)
    return pd.concat(frames, ignore_index=True)


def _submit(path: Path, department: str, period: str, history: pd.DataFrame | None):  # type: ignore[no-untyped-def]
    checked = CheckHistory(history) if history is not None else None
    return validate(parse(receive(path, department, period), reference_frames()), checked)


def test_good_month_passes_its_history_checks(tmp_path: Path) -> None:
    rows = demo_values()[("labour", "2016-05")]
    path = write_form(tmp_path / "l.xlsx", load_declarations()["labour"], "2016-05", rows)
    history = _history("labour", ["2016-01", "2016-02", "2016-03", "2016-04"])
    validation = _submit(path, "labour", "2016-05", history)
    assert validation.outcome == "loaded"
    ids = {r.check_id for r in validation.results}
    assert "transferred_ytd_total_persons__cumulative_not_decreasing" in ids
    assert "skills_training_person_times__magnitude" in ids


def test_a_decreasing_cumulative_value_is_quarantined(tmp_path: Path) -> None:
    rows = demo_values()[("labour", "2016-05")].copy()
    rows.loc[3, "transferred_ytd_total_persons"] = 1  # below April's running total
    rows.loc[3, "transferred_ytd_poor_persons"] = 0
    path = write_form(tmp_path / "l.xlsx", load_declarations()["labour"], "2016-05", rows)
    validation = _submit(path, "labour", "2016-05", _history("labour", ["2016-03", "2016-04"]))
    assert validation.outcome == "quarantined"
    found = [i for i in validation.issues if i.code == "CUMULATIVE_DECREASED"]
    assert found and all(i.action == "quarantine" for i in found)
    assert {i.rule_id for i in found} >= {"transferred_ytd_total_persons__cumulative_not_decreasing"}
    assert "上一期" in found[0].message
    flag = next(f for f in validation.flags if f.check_id == "transferred_ytd_total_persons__cumulative_not_decreasing")
    assert flag.severity == "critical" and flag.value == 1 and flag.reference_value is not None
    assert flag.score == 1 - flag.reference_value < 0 and flag.source_row in validation.rejected_rows
    # the 本月 column no longer matches the running total's change either: that one is a warning
    assert validation.flagged_cells == {(flag.source_row, "transferred_month_total_persons")}


def test_january_starts_a_new_running_total(tmp_path: Path) -> None:
    rows = demo_values()[("labour", "2016-01")]
    path = write_form(tmp_path / "l.xlsx", load_declarations()["labour"], "2016-01", rows)
    validation = _submit(path, "labour", "2016-01", _history("labour", ["2015-11", "2015-12"]))
    assert validation.outcome == "loaded"
    assert not any(r.check_id.endswith("cumulative_not_decreasing") for r in validation.results)


def test_a_value_ten_thousand_times_its_history_is_quarantined_with_the_factor(tmp_path: Path) -> None:
    rows = demo_values()[("tourism", "2016-05")].copy()
    rows.loc[0, "tourism_revenue_yuan"] = rows.loc[0, "tourism_revenue_yuan"] * 10000  # typed in 元
    rows.loc[0, "ticket_revenue_yuan"] = rows.loc[0, "ticket_revenue_yuan"] * 10000
    path = write_form(tmp_path / "t.xlsx", load_declarations()["tourism"], "2016-05", rows)
    validation = _submit(path, "tourism", "2016-05", _history("tourism", ["2016-02", "2016-03", "2016-04"]))
    assert validation.outcome == "quarantined"
    magnitude = [i for i in validation.issues if i.code == "MAGNITUDE_SUSPECT"]
    assert {i.rule_id for i in magnitude} == {"tourism_revenue_yuan__magnitude", "ticket_revenue_yuan__magnitude"}
    assert all("10000" in i.message for i in magnitude)
    flags = {f.check_id: f for f in validation.flags if f.check_id.endswith("__magnitude")}
    revenue = flags["tourism_revenue_yuan__magnitude"]
    assert revenue.severity == "critical" and 5000 < revenue.score < 20000
    assert revenue.value == pytest.approx(revenue.score * revenue.reference_value)
    assert magnitude[0].row is not None and magnitude[0].column and "旅游总收入" in magnitude[0].column


@pytest.mark.parametrize("warehouse_engine", ["sqlite", "postgres"], indirect=True)
def test_earlier_values_come_from_current_versions(warehouse_engine: Engine) -> None:
    towns = reference_frames().townships
    valid_2016 = pd.to_datetime(towns["valid_from"]) <= pd.Timestamp("2016-03-01")  # the 15 before the 2019 reform
    codes = towns.loc[valid_2016, "township_code"].tolist()
    assert len(codes) == 15
    for n, period in enumerate(["2016-03", "2016-04", "2016-05"]):
        sha = f"{n:x}" * 64
        record = SubmissionRecord(
            submission_id=submission_key("labour", sha), sha256=sha, department="labour", period=period,
            original_name=f"{period}.xlsx",
            received_at=datetime(2016, 6, 1, tzinfo=UTC), status="loaded", rows_read=15, rows_loaded=15,
            rows_rejected=0, archive_path=None, receipt_path=None,
        )
        facts = pd.DataFrame({"indicator": "skills_training_person_times", "township_code": codes,
                              "value": float(n + 1), "flagged": False, "source_row": range(5, 20)})
        totals = pd.DataFrame(columns=["indicator", "value", "label_zh"])
        record_submission(warehouse_engine, record, facts, totals, [], [])
    history = earlier_values(warehouse_engine, "labour", "2016-05")
    assert sorted(history["period"].unique()) == ["2016-03", "2016-04"]
    assert len(history) == 30 and set(history["value"]) == {1.0, 2.0}
    assert earlier_values(warehouse_engine, "labour", "2016-05", periods_back=1)["period"].unique().tolist() == [
        "2016-04"
    ]
