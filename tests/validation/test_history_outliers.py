"""History-aware checks end to end: outliers (seasonal too), bands, 本月 = Δ本年累计, accepted values,
DQ results as data (dq_result, dq_flag, mart_dq_scorecard), the run's table artifact and Data Docs.

Warehouse tests run on SQLite and PostgreSQL (``warehouse_engine``); the artifact test runs the
real ``ingest-submission`` flow under Prefect's test harness.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, insert, select, text

from duikou_settings import get_settings
from expectations.declaration import DeclarationError, load_declarations, parse_declaration
from tasks.demo.departments import PLANTED_OUTLIER
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.submission.journey import history_for, load, parse, receive, validate
from tasks.validation.validate import Validation
from tests.conftest import use_data_dir
from warehouse import schema
from warehouse.followups import followup_id
from warehouse.history import CheckHistory
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, record_submission
from warehouse.marts import refresh_marts
from warehouse.refdata import reference_frames
from warehouse.scorecard import compute_dq_scorecard

DEPT, PERIOD, CODE, INDICATOR = PLANTED_OUTLIER  # health 2017-08, 丹东乡, 住院人次 ×4
OUTLIER_CHECK = f"{INDICATOR}__outlier_mzscore"
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with use_data_dir(monkeypatch, tmp_path / "data") as data:
        yield data


def _months_before(period: str, n: int) -> list[str]:
    start = pd.Period(period, freq="M")
    return [str(start - k) for k in range(n, 0, -1)]


def _seed_history(engine: Engine, department: str, periods: list[str], indicators: list[str]) -> None:
    """Earlier loaded versions carrying only ``indicators`` (demo values, base units)."""
    decl = load_declarations()[department]
    for period in periods:
        wide = demo_values()[(department, period)]
        facts = wide.melt(id_vars="township_code", value_vars=indicators, var_name="indicator", value_name="value")
        facts["value"] = [float(v) * decl.indicator(i).factor for i, v in zip(facts["indicator"], facts["value"],
                                                                               strict=True)]
        facts["flagged"], facts["source_row"] = False, 5
        sha = hashlib.sha256(f"{department} {period}".encode()).hexdigest()
        record = SubmissionRecord(
            submission_id=submission_key(department, sha), sha256=sha, department=department, period=period,
            original_name=f"{period}.xlsx", received_at=datetime(2017, 1, 1, tzinfo=UTC), status="loaded",
            rows_read=15, rows_loaded=15, rows_rejected=0, archive_path=None, receipt_path=None,
        )
        record_submission(engine, record, facts, NO_TOTALS, [], [])


def _ingest(engine: Engine, path: Path, department: str, period: str) -> tuple[Validation, str]:
    received = receive(path, department, period)
    parsed = parse(received, reference_frames())
    validation = validate(parsed, history_for(engine, received))
    outcome = load(engine, received, parsed, validation, get_settings())
    return validation, outcome.status


def _flags(engine: Engine, submission_id: str) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(select(schema.dq_flag).where(schema.dq_flag.c.submission_id == submission_id)).all()


def _flagged_facts(engine: Engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT township_code, indicator FROM v_indicator_value WHERE department = :d AND period = :p "
            "AND flagged"), {"d": DEPT, "p": PERIOD}).all()
    return {(r.township_code, r.indicator) for r in rows}


def _accept(engine: Engine, value: float, submission_id: str) -> None:
    """An operator's acceptance, as the follow-up list records it (followup + decision rows)."""
    fid = followup_id("value", DEPT, PERIOD, CODE, INDICATOR, OUTLIER_CHECK)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(schema.followup).values(
            followup_id=fid, kind="value", department=DEPT, period=PERIOD, township_code=CODE, indicator=INDICATOR,
            check_id=OUTLIER_CHECK, submission_id=submission_id, severity="warning", value=value,
            reason_zh="住院人次异常", status="accepted", opened_at=now - timedelta(hours=30), last_seen_at=now,
            closed_at=now,
        ))
        conn.execute(insert(schema.followup_decision).values(
            followup_id=fid, seq=1, decision="accept", decided_by="卓玛", decided_at=now,
            note="8月爆发手足口病，住院人次核实无误", value_at_decision=value,
        ))


@pytest.mark.parametrize("warehouse_engine", ["sqlite", "postgres"], indirect=True)
def test_planted_outlier_loads_flagged_and_an_acceptance_survives_reruns(
    warehouse_engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    _seed_history(warehouse_engine, DEPT, _months_before(PERIOD, 12), [INDICATOR])
    rows = demo_values()[(DEPT, PERIOD)]
    path = write_form(tmp_path / "v1.xlsx", load_declarations()[DEPT], PERIOD, rows)
    validation, status = _ingest(warehouse_engine, path, DEPT, PERIOD)

    assert status == "loaded"
    outliers = [i for i in validation.issues if i.code == "VALUE_OUTLIER"]
    assert [(i.severity, i.action, i.rule_id) for i in outliers] == [("warning", "flag", OUTLIER_CHECK)]
    assert "丹东乡" in outliers[0].message and "住院人次" in outliers[0].message
    assert _flagged_facts(warehouse_engine) == {(CODE, INDICATOR)}  # the value, not its whole row

    first_id = receive(path, DEPT, PERIOD).submission_id
    (flag,) = _flags(warehouse_engine, first_id)
    spiked = float(rows.loc[rows["township_code"] == CODE, INDICATOR].iloc[0])
    assert (flag.township_code, flag.indicator, flag.check_id) == (CODE, INDICATOR, OUTLIER_CHECK)
    assert flag.severity == "warning" and not flag.accepted and flag.value == spiked
    assert flag.score > 3.5 and flag.reference_value < spiked / 2
    assert all(s in flag.reason_zh for s in ("丹东乡", "住院人次", f"{spiked:g}", "修正Z分数", "中位数"))

    with warehouse_engine.connect() as conn:
        results = {r.check_id: r for r in conn.execute(
            select(schema.dq_result).where(schema.dq_result.c.submission_id == first_id))}
    assert len(results) == len(validation.results)
    outlier_result = results[OUTLIER_CHECK]
    assert not outlier_result.success and outlier_result.unexpected_count == 1
    assert outlier_result.issue_code == "VALUE_OUTLIER" and outlier_result.action == "flag"
    assert json.loads(outlier_result.unexpected_rows) == [flag.source_row]
    assert json.loads(results["township_unique"].unexpected_rows) == []

    refresh_marts(warehouse_engine)
    with warehouse_engine.connect() as conn:
        card = conn.execute(select(schema.mart_dq_scorecard).where(
            schema.mart_dq_scorecard.c.department == DEPT, schema.mart_dq_scorecard.c.month == PERIOD)).one()
    failed_warning = sum(1 for r in validation.results if not r.success and r.severity == "warning")
    assert (card.submissions, card.checks_run, card.values_flagged) == (1, len(validation.results), 1)
    assert card.checks_failed_warning == failed_warning and card.checks_failed_critical == 0

    _accept(warehouse_engine, spiked, first_id)
    for name, signatories in (("v2.xlsx", ("甲", "乙", "丙")), ("v3.xlsx", ("丁", "戊", "己"))):  # two re-sends
        again = write_form(tmp_path / name, load_declarations()[DEPT], PERIOD, rows, signatories=signatories)
        validation, status = _ingest(warehouse_engine, again, DEPT, PERIOD)
        assert status == "loaded"
        assert not [i for i in validation.issues if i.code == "VALUE_OUTLIER"]
        assert _flagged_facts(warehouse_engine) == set()
        (flag,) = _flags(warehouse_engine, receive(again, DEPT, PERIOD).submission_id)
        assert flag.accepted and flag.value == spiked
    refresh_marts(warehouse_engine)
    with warehouse_engine.connect() as conn:
        card = conn.execute(select(schema.mart_dq_scorecard).where(
            schema.mart_dq_scorecard.c.department == DEPT, schema.mart_dq_scorecard.c.month == PERIOD)).one()
    assert (card.submissions, card.values_flagged, card.followups_closed) == (3, 1, 1)  # v1's flag only
    assert card.median_resolution_hours == pytest.approx(30, abs=0.1)


def _tourism_history(octobers: list[int]) -> pd.DataFrame:
    """Revenue only: a quiet base every month, four times the base in the listed Octobers."""
    rows = demo_values()[("tourism", "2017-10")]
    base = rows.set_index("township_code")["tourism_revenue_yuan"] * 10000 / 4
    records = []
    for period in _months_before("2017-10", 36):
        year, month = int(period[:4]), int(period[5:])
        factor = 4 if month == 10 and year in octobers else 1
        if month == 10 and year not in octobers:
            continue
        records += [{"township_code": c, "indicator": "tourism_revenue_yuan", "period": period, "year": year,
                     "month": month, "value": float(v) * factor} for c, v in base.items()]
    return pd.DataFrame(records)


@pytest.mark.parametrize(("octobers", "flagged"), [([2014, 2015, 2016], False), ([2015, 2016], True)])
def test_a_high_month_is_normal_against_the_same_month_of_three_earlier_years(
    tmp_path: Path, octobers: list[int], flagged: bool
) -> None:
    rows = demo_values()[("tourism", "2017-10")]
    path = write_form(tmp_path / "t.xlsx", load_declarations()["tourism"], "2017-10", rows)
    parsed = parse(receive(path, "tourism", "2017-10"), reference_frames())
    validation = validate(parsed, CheckHistory(_tourism_history(octobers)))
    assert validation.outcome == "loaded"
    outliers = [f for f in validation.flags if f.check_id == "tourism_revenue_yuan__outlier_mzscore"]
    if flagged:  # two Octobers are too few: the whole series is the reference, and October stands out
        assert len(outliers) == len(rows) and all("历史各期" in f.reason_zh for f in outliers)
    else:
        assert outliers == []
        assert "tourism_revenue_yuan__outlier_mzscore" in {r.check_id for r in validation.results}


def _labour_history(period: str) -> CheckHistory:
    decl = load_declarations()["labour"]
    wide = demo_values()[("labour", period)]
    long = wide.melt(id_vars="township_code", var_name="indicator", value_name="value")
    long["value"] = [float(v) * decl.indicator(i).factor for i, v in zip(long["indicator"], long["value"], strict=True)]
    long["period"], long["year"], long["month"] = period, int(period[:4]), int(period[5:])
    return CheckHistory(long)


def test_this_month_must_equal_the_change_of_the_running_total(tmp_path: Path) -> None:
    rows = demo_values()[("labour", "2016-05")].copy()
    good = write_form(tmp_path / "good.xlsx", load_declarations()["labour"], "2016-05", rows)
    history = _labour_history("2016-04")
    passed = validate(parse(receive(good, "labour", "2016-05"), reference_frames()), history)
    assert "transferred_month_total_persons__increment_of_ytd" in {r.check_id for r in passed.results}
    assert not [i for i in passed.issues if i.code == "INCREMENT_MISMATCH"]

    rows.loc[2, "transferred_month_total_persons"] += 6  # 本月 no longer the running total's change
    bad = write_form(tmp_path / "bad.xlsx", load_declarations()["labour"], "2016-05", rows)
    validation = validate(parse(receive(bad, "labour", "2016-05"), reference_frames()), history)
    assert validation.outcome == "loaded"  # a warning: loads, flagged
    (mismatch,) = [i for i in validation.issues if i.code == "INCREMENT_MISMATCH"]
    assert mismatch.severity == "warning" and mismatch.action == "flag"
    (flag,) = validation.flags
    assert flag.indicator == "transferred_month_total_persons" and flag.score == 6
    assert flag.reference_value == flag.value - 6 and "本年累计较上月增加" in flag.reason_zh
    assert validation.flagged_cells == {(flag.source_row, "transferred_month_total_persons")}


def test_a_value_outside_the_declared_band_is_flagged(tmp_path: Path) -> None:
    rows = demo_values()[("poverty", "2016")].copy()
    rows.loc[4, "net_income_per_capita_yuan"] = 60000  # band [1000, 50000] 元
    path = write_form(tmp_path / "p.xlsx", load_declarations()["poverty"], "2016", rows)
    validation = validate(parse(receive(path, "poverty", "2016"), reference_frames()), None)
    (band,) = [i for i in validation.issues if i.code == "VALUE_OUT_OF_BAND"]
    assert band.severity == "warning" and validation.outcome == "loaded"
    (flag,) = validation.flags
    assert (flag.check_id, flag.value, flag.reference_value, flag.score) == (
        "net_income_per_capita_yuan__band", 60000, 50000, 10000)
    assert "[1,000, 50,000]" in flag.reason_zh


def _declaration(**indicator: Any) -> dict[str, Any]:
    base = {"name": "count_persons", "label_zh": "人数", "header": "人数", "unit": "人", "type": "integer",
            "kind": "flow"}
    total = {"name": "total_ytd_persons", "label_zh": "累计", "header": "累计", "unit": "人", "kind": "cumulative"}
    return {"dataset": "x", "department": "x", "title_zh": "x", "period_type": "month", "grain": "g",
            "key": {"header": "乡(镇)"}, "indicators": [{**base, **indicator}, total]}


@pytest.mark.parametrize(("fields", "message"), [
    ({"outlier_threshold": -1}, "positive number or off"),
    ({"outlier_threshold": 5}, "say why in outlier_reason"),
    ({"outlier_reason": "x"}, "outlier_reason without an outlier_threshold"),
    ({"band": [10, 1]}, "min < max"),
    ({"band": 5}, "band must be"),
    ({"increment_of": "nothing"}, "is not an indicator"),
    ({"increment_of": "count_persons"}, "cumulative"),
    ({"outlier_treshold": 5}, "unknown fields ['outlier_treshold']"),
])
def test_bad_history_fields_are_refused_naming_the_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(DeclarationError, match=r"x\.yaml indicator 'count_persons'") as caught:
        parse_declaration(_declaration(**fields), "x.yaml")
    assert message in str(caught.value)


def test_good_history_fields_parse_into_base_units() -> None:
    decl = parse_declaration(_declaration(outlier_threshold="off", outlier_reason="events", band=[0, 10],
                                          increment_of="total_ytd_persons"), "x.yaml")
    ind = decl.indicator("count_persons")
    assert (ind.outlier_threshold, ind.band, ind.increment_of) == (None, (0.0, 10.0), "total_ytd_persons")
    yuan = load_declarations()["poverty"].indicator("net_income_per_capita_yuan")
    assert yuan.band == (1000.0, 50000.0)


def test_scorecard_counts_by_department_and_reporting_month() -> None:
    subs = pd.DataFrame({"submission_id": ["a", "b", "c"], "department": ["health", "health", "poverty"],
                         "period": ["2017-08", "2017-08", "2016"]})
    results = pd.DataFrame({"submission_id": ["a", "a", "a", "b", "c"],
                            "severity": ["critical", "warning", "warning", "warning", "critical"],
                            "success": [False, False, True, True, True]})
    flags = pd.DataFrame({"submission_id": ["a", "b"], "accepted": [False, True]})
    t0 = pd.Timestamp("2026-11-01T00:00:00Z")
    followups = pd.DataFrame({
        "department": ["health", "health", "health"], "period": ["2017-08"] * 3,
        "status": ["open", "accepted", "dismissed"], "opened_at": [t0] * 3,
        "closed_at": [None, t0 + pd.Timedelta(hours=2), t0 + pd.Timedelta(hours=6)],
    })
    card = compute_dq_scorecard(subs, results, flags, followups).set_index(["department", "month"])
    health = card.loc[("health", "2017-08")]
    assert (health.submissions, health.checks_run, health.checks_failed_critical, health.checks_failed_warning,
            health.values_flagged, health.followups_open, health.followups_closed) == (2, 4, 1, 1, 1, 1, 2)
    assert health.median_resolution_hours == 4.0
    poverty = card.loc[("poverty", "2016-12")]  # an annual return counts in December
    assert (poverty.submissions, poverty.checks_run, poverty.followups_open) == (1, 1, 0)
    assert pd.isna(poverty.median_resolution_hours)
    empty = compute_dq_scorecard(subs.iloc[0:0], results.iloc[0:0], flags.iloc[0:0], followups.iloc[0:0])
    assert empty.empty and list(empty.columns)[:2] == ["department", "month"]


def test_the_ingest_run_publishes_its_check_summary_and_data_docs_build_on_demand(
    prefect_harness: None, data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.cli import main
    from flows.ingest import ingest_submission

    rows = demo_values()[("poverty", "2016")].copy()
    rows.loc[4, "net_income_per_capita_yuan"] = 60000  # one band warning to show
    path = write_form(tmp_path / "poverty.xlsx", load_declarations()["poverty"], "2016", rows)
    result = ingest_submission(str(path), "poverty", "2016")
    assert result.status == "loaded"

    with get_client(sync_client=True) as client:
        key = ArtifactFilter(key=ArtifactFilterKey(any_=["dq-poverty-2016"]))
        keyed = client.read_artifacts(artifact_filter=key)
    # the session's harness also holds other tests' poverty-2016 runs: this submission's own one
    artifacts = [a for a in keyed if result.submission_id in (a.description or "")]
    assert len(artifacts) == 1 and artifacts[0].type == "markdown"
    text = str(artifacts[0].data)
    failing, passed = text.split("<details>")  # the failing checks first, the passed ones folded below
    [band] = [line for line in failing.splitlines() if "`net_income_per_capita_yuan__band`" in line]
    assert band.startswith("| 警告 | “农牧民人均纯收入”超出声明的合理范围 | 1 | 8 |")  # one row failed: form row 8
    assert "`township_unique`" in passed and "`township_unique`" not in failing
    assert result.submission_id in (artifacts[0].description or "")

    out = tmp_path / "docs"
    capsys.readouterr()
    assert main(["dq", "docs", result.submission_id, "--out", str(out)]) == 0
    index = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert index == (out / "index.html").resolve() and index.is_file()
    pages = list((out / "validations").rglob("*.html"))
    assert pages and "超出声明的合理范围" in pages[0].read_text(encoding="utf-8")
    assert main(["dq", "docs", "0000000000000000"]) == 2
    assert "no submission" in capsys.readouterr().err


@pytest.mark.parametrize("warehouse_engine", ["sqlite"], indirect=True)
def test_a_repeated_township_is_rejected_and_records_one_flag_per_value(
    warehouse_engine: Engine, data_dir: Path, tmp_path: Path
) -> None:
    rows = demo_values()[("poverty", "2016")].copy()
    rows.loc[4, "net_income_per_capita_yuan"] = 60000  # out of band …
    rows = pd.concat([rows, rows.iloc[[4]]], ignore_index=True)  # … on a township listed twice
    path = write_form(tmp_path / "p.xlsx", load_declarations()["poverty"], "2016", rows)
    validation, status = _ingest(warehouse_engine, path, "poverty", "2016")
    assert status == "rejected" and any(i.code == "TOWNSHIP_DUPLICATE" for i in validation.issues)
    assert len([i for i in validation.issues if i.code == "VALUE_OUT_OF_BAND"]) == 2  # both rows named
    (flag,) = _flags(warehouse_engine, receive(path, "poverty", "2016").submission_id)
    assert flag.check_id == "net_income_per_capita_yuan__band"
