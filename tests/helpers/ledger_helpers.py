"""Small helpers for tests that need submissions in a warehouse without reading files:
one call records one department return (ledger row + facts) through the real loader."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

import pandas as pd
from sqlalchemy import Engine

from warehouse.keys import submission_key
from warehouse.load import DqFlag, SubmissionRecord, record_submission

TOWNSHIPS = ("513323100", "513323101", "513323102", "513323201", "513323202", "513323204", "513323205",
             "513323206", "513323207", "513323208", "513323209", "513323210", "513323211", "513323212",
             "513323213")
Values = Mapping[str, Mapping[str, float | None]]  # indicator → township_code → value (base unit)


def record(
    engine: Engine,
    department: str,
    period: str,
    values: Values,
    received_at: datetime,
    *,
    status: str = "loaded",
    tag: str = "",
    flagged: Sequence[tuple[str, str]] = (),
    dq_flags: Sequence[DqFlag] = (),
) -> str:
    """Record one return; returns its submission id. ``tag`` makes otherwise equal files differ.

    Facts get source rows in township order (row 5 = the first township listed); ``flagged``
    lists (township_code, indicator) facts loaded flagged.
    """
    digest = hashlib.sha256(repr((department, period, sorted((k, sorted(v.items())) for k, v in values.items()),
                                  tag)).encode()).hexdigest()
    codes = sorted({code for by_town in values.values() for code in by_town})
    rows = [
        {"indicator": indicator, "township_code": code, "value": value,
         "flagged": (code, indicator) in flagged, "source_row": 5 + codes.index(code)}
        for indicator, by_town in values.items() for code, value in by_town.items()
    ]
    facts = pd.DataFrame(rows, columns=["indicator", "township_code", "value", "flagged", "source_row"])
    facts["value"] = facts["value"].astype("float64")
    rec = SubmissionRecord(
        submission_id=submission_key(department, digest), sha256=digest, department=department, period=period,
        original_name=f"{department}-{period}{tag}.xlsx", received_at=received_at, status=status,  # type: ignore[arg-type]
        rows_read=len(codes), rows_loaded=len(codes) if status == "loaded" else 0, rows_rejected=0,
        archive_path=None, receipt_path=None,
    )
    totals = pd.DataFrame(columns=["indicator", "value", "label_zh"])
    record_submission(engine, rec, facts, totals, (), (), dq_flags=dq_flags)
    return rec.submission_id


def row_of(code: str, codes: Sequence[str]) -> int:
    """The source row ``record`` gives township ``code`` among ``codes``."""
    return 5 + sorted(codes).index(code)
