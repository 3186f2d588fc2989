"""Run the declared cross-return checks (``expectations/cross_checks.yaml``) against current facts.

A check is evaluated over every pair of current (loaded) versions its alignment defines, so it
runs as soon as the later of its two returns is loaded — ``run_cross_checks`` is called after
every load with that return's department — and again in the nightly flow (all checks), which
also catches a disagreement left by a correction of either side.

For each current version of a check's *left* return, its ``dq_flag`` rows of that check
(``check_id = cross__<id>``) are replaced by the disagreements found now, in one transaction:

* ``value`` = the left figure, ``reference_value`` = the right one, ``score`` = relative difference;
* a value an operator accepted (``followups.accepted_values``) is written with ``accepted`` true;
* the left facts are flagged while an unaccepted disagreement stands, and unflagged when it goes
  (unless something else flags them, see ``followups.refresh_fact_flags``); severity ``info``
  records the disagreement without flagging.

Superseded versions keep the flags they had: history, as the rest of the ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, delete, insert, select

from expectations.cross_checks import CrossCheck, Side, evaluate, load_cross_checks
from expectations.declaration import load_declarations
from warehouse import schema
from warehouse.bootstrap import begin_write
from warehouse.engine import advisory_lock
from warehouse.followups import accepted_values, refresh_fact_flags, same_value


@dataclass(frozen=True)
class CrossCheckRun:
    checks_run: int
    pairs_flagged: int  # disagreements found (accepted ones included)
    accepted: int  # of those, values an operator had accepted

    def to_dict(self) -> dict[str, int]:
        return {"checks_run": self.checks_run, "pairs_flagged": self.pairs_flagged, "accepted": self.accepted}


def _side_values(conn: Connection, side: Side) -> pd.DataFrame:
    """Current values of one indicator, with the version and form row they came from."""
    fact, sub = schema.fact_indicator_value, schema.submission
    rows = conn.execute(
        select(fact.c.township_code, fact.c.period, fact.c.value, fact.c.submission_id, fact.c.source_row)
        .join(sub, sub.c.submission_id == fact.c.submission_id)
        .where(sub.c.status == "loaded", fact.c.department == side.department, fact.c.indicator == side.indicator)
    ).all()
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["township_code", "period", "value", "submission_id", "source_row"])
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    return frame


def _label(department: str, indicator: str) -> str:
    return load_declarations()[department].indicator(indicator).label_zh


def _fmt(value: float) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _reason(check: CrossCheck, row: Any) -> str:
    right_dept = load_declarations()[check.right.department].title_zh
    text = (f"{check.message_zh}: {_label(check.left.department, check.left.indicator)}"
            f"={_fmt(row.left_value)}，{right_dept}{row.right_period}"
            f"{_label(check.right.department, check.right.indicator)}={_fmt(row.right_value)}")
    if row.score is not None and not pd.isna(row.score):
        text += f"，相差{row.score * 100:+.1f}%"
    return text


def _apply(conn: Connection, check: CrossCheck) -> tuple[int, int]:
    left = _side_values(conn, check.left)
    right = _side_values(conn, check.right)
    found = evaluate(check, left.loc[:, ["township_code", "period", "value"]],
                     right.loc[:, ["township_code", "period", "value"]])
    where_from = {(str(r.township_code), str(r.period)): (str(r.submission_id), r.source_row)
                  for r in left.itertuples(index=False)}
    flag = schema.dq_flag
    current_left = sorted({str(s) for s in left["submission_id"]})
    touched: dict[str, set[tuple[str, str]]] = {}
    for submission_id in current_left:  # what the check flagged before: to unflag what no longer fails
        earlier = conn.execute(select(flag.c.township_code).where(
            flag.c.submission_id == submission_id, flag.c.check_id == check.check_id)).scalars()
        touched[submission_id] = {(str(code), check.left.indicator) for code in earlier}
        conn.execute(delete(flag).where(flag.c.submission_id == submission_id, flag.c.check_id == check.check_id))
    accepted_by_period: dict[str, dict[tuple[str, str, str], float | None]] = {}
    rows: list[dict[str, Any]] = []
    accepted_count = 0
    for item in found.itertuples(index=False):
        submission_id, source_row = where_from[(item.township_code, item.left_period)]
        if item.left_period not in accepted_by_period:
            accepted_by_period[item.left_period] = accepted_values(conn, check.left.department, item.left_period)
        key = (item.township_code, check.left.indicator, check.check_id)
        covered = accepted_by_period[item.left_period]
        accepted = key in covered and same_value(covered[key], float(item.left_value))
        accepted_count += accepted
        rows.append({
            "submission_id": submission_id, "indicator": check.left.indicator,
            "township_code": item.township_code, "check_id": check.check_id, "severity": check.severity,
            "value": float(item.left_value), "reference_value": float(item.right_value),
            "score": None if item.score is None or pd.isna(item.score) else float(item.score),
            "source_row": None if source_row is None or pd.isna(source_row) else int(source_row),
            "reason_zh": _reason(check, item), "accepted": accepted,
        })
        touched.setdefault(submission_id, set()).add((item.township_code, check.left.indicator))
    if rows:
        conn.execute(insert(flag), rows)
    for submission_id, keys in touched.items():
        if keys:
            refresh_fact_flags(conn, submission_id, keys)
    return len(rows), accepted_count


def checks_for(departments: Iterable[str] | None, checks: Sequence[CrossCheck] | None = None) -> list[CrossCheck]:
    """The declared checks touching any of ``departments`` (all when None)."""
    declared = load_cross_checks() if checks is None else checks
    if departments is None:
        return list(declared)
    wanted = set(departments)
    return [c for c in declared if wanted & {c.left.department, c.right.department}]


def run_cross_checks(
    engine: Engine, departments: Iterable[str] | None = None, checks: Sequence[CrossCheck] | None = None
) -> CrossCheckRun:
    """Evaluate the checks touching ``departments`` (all when None) and record their flags."""
    selected = checks_for(departments, checks)
    if not selected:
        return CrossCheckRun(0, 0, 0)
    flagged = accepted = 0
    with begin_write(engine) as conn:
        advisory_lock(conn, "cross_checks")
        for check in selected:
            n, a = _apply(conn, check)
            flagged += n
            accepted += a
    return CrossCheckRun(len(selected), flagged, accepted)
