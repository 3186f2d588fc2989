"""Nil returns (无数据申报): a form holding only 本月无数据, and the portal's button without a form.

Both are received submissions with no facts: completeness counts the return received (on time or
late by its first file), the receipt says 无数据申报. A return whose declaration does not allow nil
returns refuses both. Real warehouse (SQLite), real reader.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from duikou_settings import get_settings
from tasks.submission.journey import SubmissionError, parse, receive, validate
from tasks.submission.nil_return import nil_return_allowed, record_nil_return
from tests.conftest import use_data_dir
from warehouse import schema
from warehouse.bootstrap import ensure_warehouse
from warehouse.completeness import completeness_frames
from warehouse.engine import make_engine
from warehouse.refdata import reference_frames

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"


def test_the_nil_button_records_a_received_return_without_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with use_data_dir(monkeypatch, tmp_path / "data", DUIKOU_AS_OF="2017-06-20"):
        settings = get_settings()
        engine = make_engine(settings.resolved_warehouse_url)
        ensure_warehouse(engine)
        assert nil_return_allowed("tourism") and not nil_return_allowed("education")
        result = record_nil_return(engine, "tourism", "2017-05", filed_by="泽仁",
                                   received_at=datetime(2017, 6, 8, 2, 0, tzinfo=UTC))

        assert result.status == "loaded"
        receipt = result.receipt
        assert receipt["nil_return"] is True and receipt["filed_via"] == "portal_nil_button"
        assert "无数据申报" in receipt["summary_zh"]
        assert [i["code"] for i in receipt["issues"]] == ["ENCODING_DETECTED", "NIL_RETURN"]  # kept as CSV
        assert receipt["counts"]["facts_loaded"] == 0 and receipt["counts"]["rows_read"] == 0
        assert result.receipt_path is not None
        assert json.loads(result.receipt_path.read_text(encoding="utf-8"))["nil_return"] is True
        kept = settings.resolved_data_dir / receipt["stored_as"]
        assert "本期无数据" in kept.read_text(encoding="utf-8-sig") and "泽仁" in kept.read_text(encoding="utf-8-sig")
        with engine.begin() as conn:
            assert conn.execute(select(func.count()).select_from(schema.fact_indicator_value)).scalar() == 0
            rows, _ = completeness_frames(conn, date(2017, 6, 20))
        may = rows[(rows["department"] == "tourism") & (rows["period"] == "2017-05")].iloc[0]
        assert (may["status"], may["received"], may["on_time"]) == ("on_time", 1, 1)

        with pytest.raises(SubmissionError, match="不接受无数据申报"):
            record_nil_return(engine, "education", "2017-05")
        with pytest.raises(SubmissionError):
            record_nil_return(engine, "tourism", "2017-13")
        engine.dispose()


@pytest.mark.parametrize(
    ("name", "department", "period", "outcome", "codes"),
    [
        ("nil/tourism_nil_marker.xlsx", "tourism", "2016-08", "loaded", {"NIL_RETURN"}),
        ("nil/education_nil_not_allowed.xlsx", "education", "2017-05", "rejected", {"ROWS_EMPTY", "TOTAL_ROW_MISSING"}),
    ],
)
def test_a_form_holding_only_a_nil_marker(name: str, department: str, period: str, outcome: str,
                                          codes: set[str]) -> None:
    parsed = parse(receive(CORPUS / name, department, period), reference_frames())
    validation = validate(parsed)
    assert validation.outcome == outcome
    assert {i.code for i in validation.issues} == codes
    assert parsed.form is not None and parsed.form.nil_return == (outcome == "loaded")
    assert not any(i.code in ("TOWNSHIP_UNKNOWN", "VALUE_REQUIRED_MISSING") for i in validation.issues)
