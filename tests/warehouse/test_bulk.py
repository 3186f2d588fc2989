"""The bulk path (``warehouse.bulk``) stores exactly what the facts frame says, on both backends.

PostgreSQL goes through ``COPY`` with CSV written by pyarrow, SQLite through the driver's
``executemany``: floats round-trip exactly, NaN / None / NA become NULL, booleans stay booleans,
chunk boundaries lose nothing, and driver errors surface as SQLAlchemy's ``IntegrityError``.
"""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from warehouse import bulk, schema
from warehouse.keys import submission_key
from warehouse.load import SubmissionRecord, find_submission, record_submission

TOWNSHIPS = ["513323100", "513323101", "513323102", "513323201", "513323202", "513323204", "513323205"]
NO_TOTALS = pd.DataFrame(columns=["indicator", "value", "label_zh"])
AWKWARD = [
    1 / 3,
    0.1 + 0.2,
    1e-300,
    5e-324,
    1.7976931348623157e308,
    -0.0,
    123456789.12345679,
    -2.5,
    math.inf,
    -math.inf,
]


def make_record(content: str, period: str = "2016-07") -> SubmissionRecord:
    digest = hashlib.sha256(content.encode()).hexdigest()
    return SubmissionRecord(
        submission_id=submission_key("tourism", digest),
        sha256=digest,
        department="tourism",
        period=period,
        original_name=f"{content}.xlsx",
        received_at=datetime(2016, 8, 1, tzinfo=UTC),
        status="loaded",
        rows_read=7,
        rows_loaded=7,
        rows_rejected=0,
        archive_path=None,
        receipt_path=None,
    )


def stored(engine: Engine, sid: str) -> list[tuple[object, ...]]:
    fact = schema.fact_indicator_value
    query = (
        select(
            fact.c.indicator,
            fact.c.township_code,
            fact.c.value,
            fact.c.flagged,
            fact.c.source_row,
            fact.c.department,
            fact.c.period,
            fact.c.year,
            fact.c.month,
        )
        .where(fact.c.submission_id == sid)
        .order_by(fact.c.indicator, fact.c.township_code)
    )
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(query)]


def same_float(a: object, b: float | None) -> bool:
    if b is None:
        return a is None
    return isinstance(a, float) and a == b  # -0.0 == 0.0: SQLite itself stores -0.0 as 0


@pytest.mark.parametrize("chunk_rows", [3, bulk.CHUNK_ROWS])
def test_values_nulls_and_flags_survive(
    warehouse_engine: Engine, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(bulk, "CHUNK_ROWS", chunk_rows)
    values: list[float | None] = [*AWKWARD, math.nan, None, 7.0]
    n = len(values)
    indicators = ["visitors_person_times", "tourism_revenue_yuan"]
    facts = pd.DataFrame(
        {
            "indicator": [indicators[i % 2] for i in range(n)],
            # an int code is stored as its text, as str() would
            "township_code": [int(TOWNSHIPS[i // 2]) if i == 0 else TOWNSHIPS[i // 2] for i in range(n)],
            "value": pd.Series(values, dtype=object),  # floats, NaN and None mixed
            "flagged": pd.Series([True, False, None, np.True_, 0, 1, False, True, None, False, True, False, True]),
            "source_row": pd.Series([5, None, 7.0, 8, 9, 10, 11, 12, 13, None, 15, 16, 17], dtype=object),
        }
    )
    assert len(facts) == n == 13
    outcome = record_submission(warehouse_engine, make_record(f"bulk-{chunk_rows}"), facts, NO_TOTALS, [], [])
    assert (outcome.status, outcome.facts_loaded) == ("loaded", n)

    rows = stored(warehouse_engine, outcome.submission_id)
    assert len(rows) == n
    expected = facts.assign(township_code=facts["township_code"].astype(str)).sort_values(
        ["indicator", "township_code"], ignore_index=True
    )
    for row, want in zip(rows, expected.itertuples(index=False), strict=True):
        indicator, township, value, flagged, source_row, department, period, year, month = row
        assert (indicator, township) == (want.indicator, want.township_code)
        want_value = None if want.value is None or pd.isna(want.value) else float(want.value)
        assert same_float(value, want_value), (indicator, township, value, want.value)
        assert flagged is (False if want.flagged is None else bool(want.flagged))
        assert source_row == (None if want.source_row is None else int(want.source_row))
        assert (department, period, year, month) == ("tourism", "2016-07", 2016, 7)


def test_typed_frame_from_pandas(warehouse_engine: Engine) -> None:
    """The normaliser's dtypes: str keys, float64 with NaN, bool, nullable Int64."""
    facts = pd.DataFrame(
        {
            "indicator": pd.Series(["beds"] * 3, dtype="str"),
            "township_code": pd.Series(TOWNSHIPS[:3], dtype="str"),
            "value": [1.5, np.nan, 3.0],
            "flagged": pd.array([True, pd.NA, False], dtype="boolean"),
            "source_row": pd.array([5, pd.NA, 7], dtype="Int64"),
        }
    )
    outcome = record_submission(warehouse_engine, make_record("typed"), facts, NO_TOTALS, [], [])
    rows = stored(warehouse_engine, outcome.submission_id)
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        (TOWNSHIPS[0], 1.5, True, 5),
        (TOWNSHIPS[1], None, False, None),
        (TOWNSHIPS[2], 3.0, False, 7),
    ]


@pytest.mark.parametrize("chunk_rows", [2, bulk.CHUNK_ROWS])
def test_bad_rows_roll_back_as_integrity_errors(
    warehouse_engine: Engine, monkeypatch: pytest.MonkeyPatch, chunk_rows: int
) -> None:
    monkeypatch.setattr(bulk, "CHUNK_ROWS", chunk_rows)
    good = {"indicator": "beds", "value": 1.0, "flagged": False, "source_row": 5}
    unknown_township = pd.DataFrame(
        [{**good, "township_code": t} for t in TOWNSHIPS[:4]] + [{**good, "township_code": "513323999"}]
    )
    repeated_key = pd.DataFrame([{**good, "township_code": t} for t in [*TOWNSHIPS[:4], TOWNSHIPS[0]]])
    undeclared = pd.DataFrame([{**good, "township_code": TOWNSHIPS[0], "indicator": "not_declared"}])
    for n, frame in enumerate((unknown_township, repeated_key, undeclared)):
        with pytest.raises(IntegrityError):
            record_submission(warehouse_engine, make_record(f"bad-{n}"), frame, NO_TOTALS, [], [])
        assert find_submission(warehouse_engine, "tourism", make_record(f"bad-{n}").sha256) is None
    # the connection is usable afterwards and nothing half-written is left
    ok = record_submission(warehouse_engine, make_record("after"), unknown_township.iloc[:4], NO_TOTALS, [], [])
    assert ok.facts_loaded == 4 and len(stored(warehouse_engine, ok.submission_id)) == 4


def test_pause_point_is_inert_when_unset(warehouse_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(bulk.PAUSE_AT_ENV, raising=False)
    monkeypatch.setenv(bulk.PAUSE_MARKER_ENV, "/nonexistent/marker")  # never touched
    with warehouse_engine.connect() as conn:
        for point in bulk.PAUSE_POINTS:
            bulk.pause_point(point, conn)
