"""Cross-return checks: the declaration file and its refusals, pure evaluation with each period
alignment, the warehouse run when the later return arrives (SQLite and PostgreSQL), and the real
ingest and nightly flows catching a planted disagreement."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine, text

from expectations.cross_checks import (
    CrossCheck,
    CrossCheckError,
    Side,
    evaluate,
    load_cross_checks,
    parse_cross_checks,
)
from expectations.declaration import load_declarations
from tests.conftest import use_data_dir
from tests.helpers.ledger_helpers import TOWNSHIPS, record
from warehouse.cross_returns import run_cross_checks
from warehouse.followups import sync_followups

HEALTH_CHECK = "cross__health_poor_population_matches_register"
A, B = TOWNSHIPS[0], TOWNSHIPS[1]


def _raw(**overrides: Any) -> dict[str, Any]:
    check = {
        "id": "poor_match", "left": {"department": "health", "indicator": "poor_population_persons"},
        "right": {"department": "poverty", "indicator": "registered_poor_year_end_persons"},
        "align": "next_january", "operator": "==", "relative_tolerance": 0.02, "severity": "warning",
        "reason": "same register", "message_zh": "不一致",
    }
    check.update(overrides)
    return {"checks": [check]}


def test_committed_checks_load_and_name_real_indicators() -> None:
    checks = load_cross_checks()
    assert {c.check_id for c in checks} >= {HEALTH_CHECK, "cross__labour_poor_labour_within_poor_population"}
    declarations = load_declarations()
    for check in checks:
        for side in (check.left, check.right):
            assert side.indicator in declarations[side.department].indicator_names
        assert check.severity == "warning" and check.reason and check.message_zh


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"left": {"department": "finance", "indicator": "x"}}, "unknown department 'finance'"),
        ({"right": {"department": "poverty", "indicator": "poor_people"}}, "poverty has no indicator 'poor_people'"),
        ({"operator": "<>"}, "operator must be one of ==, <=, >="),
        ({"align": "march"}, "align must be one of"),
        ({"align": "same_period"}, "same_period needs two returns of one period type"),
        ({"left": {"department": "poverty", "indicator": "agricultural_population_persons"}},
         "pairs a monthly left return with an annual right one"),
        ({"severity": "critical"}, "never blocks a load"),
        ({"relative_tolerance": -0.1}, "relative_tolerance must be a number ≥ 0"),
        ({"id": "Bad-Id"}, "snake_case"),
        ({"message_zh": ""}, "missing field 'message_zh'"),
    ],
)
def test_malformed_checks_are_refused_naming_check_and_field(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(CrossCheckError, match=r"cross_checks\.yaml") as caught:
        parse_cross_checks(_raw(**overrides), "cross_checks.yaml", load_declarations())
    assert message in str(caught.value)


def test_repeated_ids_and_a_missing_list_are_refused() -> None:
    raw = _raw()
    raw["checks"] = raw["checks"] * 2
    with pytest.raises(CrossCheckError, match="repeat"):
        parse_cross_checks(raw, "x.yaml", load_declarations())
    with pytest.raises(CrossCheckError, match="list under 'checks'"):
        parse_cross_checks({"check": []}, "x.yaml", load_declarations())


def _check(align: str, operator: str = "==", rel: float = 0.0) -> CrossCheck:
    return CrossCheck("t", Side("labour", "rural_labour_poor_persons"),
                      Side("poverty", "registered_poor_year_end_persons"), align, operator,  # type: ignore[arg-type]
                      rel, 0.0, "warning", "r", "m")


def _side(rows: list[tuple[str, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["township_code", "period", "value"])


def test_alignments_pair_the_declared_periods() -> None:
    right = _side([(A, "2016", 100.0), (A, "2015", 80.0)])
    left = _side([(A, "2016-01", 70.0), (A, "2016-11", 200.0), (A, "2016-12", 120.0), (A, "2017-01", 130.0)])
    pairs = {align: evaluate(_check(align), left, right) for align in ("december", "next_january", "latest_month")}
    assert pairs["december"][["left_period", "right_period"]].values.tolist() == [["2016-12", "2016"]]
    assert pairs["latest_month"][["left_period", "right_period"]].values.tolist() == [["2016-12", "2016"]]
    assert sorted(pairs["next_january"][["left_period", "right_period"]].values.tolist()) == [
        ["2016-01", "2015"], ["2017-01", "2016"]]
    row = pairs["december"].iloc[0]
    assert (row.left_value, row.right_value) == (120.0, 100.0) and row.score == pytest.approx(0.2)


def test_operators_tolerance_and_blanks() -> None:
    right = _side([(A, "2016", 100.0), (B, "2016", 100.0)])
    left = _side([(A, "2016-12", 101.5), (B, "2016-12", None)])
    assert evaluate(_check("december", "==", rel=0.02), left, right).empty  # 1.5 % within 2 %
    assert len(evaluate(_check("december", "==", rel=0.01), left, right)) == 1
    assert len(evaluate(_check("december", "<="), left, right)) == 1
    assert evaluate(_check("december", ">="), left, right).empty  # the blank is never compared


# ---------------------------------------------------------------- warehouse


def _poverty(poor: dict[str, float]) -> dict[str, dict[str, float | None]]:
    return {"registered_poor_year_end_persons": dict(poor),
            "agricultural_population_persons": {c: 10_000.0 for c in poor}}


def _flags(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return conn.execute(text(
            "SELECT f.submission_id, f.township_code, f.indicator, f.check_id, f.severity, f.value, "
            "f.reference_value, f.accepted FROM dq_flag f JOIN submission s ON s.submission_id = f.submission_id "
            "WHERE s.status = 'loaded' AND f.check_id LIKE 'cross%' ORDER BY f.township_code")).all()


def _fact_flagged(engine: Engine, submission_id: str, code: str, indicator: str) -> bool:
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT flagged FROM fact_indicator_value WHERE submission_id = :s AND township_code = :t "
            "AND indicator = :i"), {"s": submission_id, "t": code, "i": indicator}).scalar_one())


def test_disagreement_is_caught_when_the_later_return_arrives(warehouse_engine: Engine) -> None:
    engine = warehouse_engine
    at = datetime(2017, 2, 8, 3, tzinfo=UTC)
    health = record(engine, "health", "2017-01", {"poor_population_persons": {A: 1100.0, B: 500.0}}, at)
    first = run_cross_checks(engine, ["health"])  # the register has not arrived: nothing to compare
    assert first.checks_run >= 2 and first.pairs_flagged == 0 and _flags(engine) == []

    record(engine, "poverty", "2016", _poverty({A: 1000.0, B: 505.0}), at)
    second = run_cross_checks(engine, ["poverty"])
    flags = _flags(engine)
    assert second.pairs_flagged == 1 and len(flags) == 1
    flag = flags[0]
    assert (flag.submission_id, flag.township_code, flag.check_id, flag.severity) == (health, A, HEALTH_CHECK,
                                                                                        "warning")
    assert (flag.value, flag.reference_value, bool(flag.accepted)) == (1100.0, 1000.0, False)
    assert _fact_flagged(engine, health, A, "poor_population_persons")
    assert not _fact_flagged(engine, health, B, "poor_population_persons")  # 1 % off: within tolerance

    sync_followups(engine)
    with engine.connect() as conn:
        followup = conn.execute(text("SELECT kind, department, period, status, value FROM followup")).one()
    assert tuple(followup) == ("cross", "health", "2017-01", "open", 1100.0)

    # the poverty office corrects its register: the disagreement goes, the fact is unflagged
    record(engine, "poverty", "2016", _poverty({A: 1090.0, B: 505.0}), at, tag="更正")
    run_cross_checks(engine, ["poverty"])
    assert _flags(engine) == [] and not _fact_flagged(engine, health, A, "poor_population_persons")
    assert sync_followups(engine).resolved == 1


# ---------------------------------------------------------------- the flows


@pytest.fixture
def flow_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_harness: None) -> Iterator[Path]:
    with use_data_dir(monkeypatch, tmp_path / "data", DUIKOU_AS_OF="2017-02-20") as data:
        yield data


@pytest.mark.flow
def test_ingest_and_nightly_flows_catch_a_planted_disagreement(flow_data_dir: Path) -> None:
    from duikou_settings import get_settings
    from flows.ingest import ingest_submission
    from flows.nightly import nightly
    from flows.warehouse_access import open_warehouse
    from tasks.demo.form_writer import write_form
    from tasks.demo.values import demo_values

    values = demo_values()
    poverty = values[("poverty", "2016")].copy()
    poverty.loc[0, "registered_poor_year_end_persons"] = round(poverty.loc[0, "registered_poor_year_end_persons"] * 0.8)
    decls = load_declarations()
    landing = flow_data_dir / "landing"
    poverty_file = write_form(landing / "poverty" / "2016" / "poverty.xlsx", decls["poverty"], "2016", poverty)
    nightly(run_label="cross", build_report=False)  # only the register: nothing to compare yet
    engine = open_warehouse(get_settings())
    assert _flags(engine) == []

    health_file = write_form(flow_data_dir / "inbox" / "health.xlsx", decls["health"], "2017-01",
                             values[("health", "2017-01")])
    result = ingest_submission(str(health_file), "health", "2017-01")  # the later return: checked on arrival
    assert result.status == "loaded" and poverty_file.exists()
    flags = _flags(engine)
    assert [(f.township_code, f.check_id, f.severity) for f in flags] == [(str(poverty.loc[0, "township_code"]),
                                                                           HEALTH_CHECK, "warning")]
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT kind, status FROM followup WHERE check_id = :c"), {"c": HEALTH_CHECK}).all()
    assert [tuple(k) for k in kinds] == [("cross", "open")]

    with engine.begin() as conn:  # forget the flag: the nightly must find it again on its own
        conn.execute(text("DELETE FROM dq_flag WHERE check_id LIKE 'cross%'"))
    summary = nightly(run_label="cross-again", build_report=False)
    assert summary.cross_checks["pairs_flagged"] == 1 and len(_flags(engine)) == 1
