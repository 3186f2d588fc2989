"""Cross-return checks declared as data (``cross_checks.yaml``): reading, validating, evaluating.

A check compares one department's indicator (the *left* return, which a disagreement is recorded
against) with another's (the *right*, the reference) for the same township, with periods paired
by a declared alignment. Evaluation here is pure (frames in, disagreements out); running it
against the warehouse and recording flags is ``warehouse.cross_returns``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from expectations.declaration import Declaration, DeclarationError, load_declarations
from expectations.yaml_files import read_yaml

CROSS_CHECKS_FILE = Path(str(resources.files("expectations") / "cross_checks.yaml"))
CHECK_ID_PREFIX = "cross__"
Alignment = Literal["same_period", "december", "latest_month", "next_january"]
ALIGNMENTS: tuple[Alignment, ...] = ("same_period", "december", "latest_month", "next_january")
Operator = Literal["==", "<=", ">="]
OPERATORS: tuple[Operator, ...] = ("==", "<=", ">=")
CROSS_SEVERITIES = ("warning", "info")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: columns of the frames ``evaluate`` takes: one row per township × period of one indicator
SIDE_COLUMNS = ("township_code", "period", "value")
DISAGREEMENT_COLUMNS = ("township_code", "left_period", "right_period", "left_value", "right_value", "score")


class CrossCheckError(DeclarationError):
    """``cross_checks.yaml`` is malformed; the message names the file, the check and the field."""


@dataclass(frozen=True)
class Side:
    department: str
    indicator: str


@dataclass(frozen=True)
class CrossCheck:
    check_name: str
    left: Side
    right: Side
    align: Alignment
    operator: Operator
    relative_tolerance: float
    absolute_tolerance: float
    severity: str
    reason: str
    message_zh: str

    @property
    def check_id(self) -> str:
        """The ``dq_flag.check_id`` / follow-up check id of this check's flags."""
        return f"{CHECK_ID_PREFIX}{self.check_name}"

    def involves(self, department: str) -> bool:
        return department in (self.left.department, self.right.department)


def _field(raw: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise CrossCheckError(f"{where}: missing field {key!r}")
    return raw[key]


def _side(raw: Any, which: str, where: str, declarations: Mapping[str, Declaration]) -> tuple[Side, str]:
    where = f"{where} {which}"
    if not isinstance(raw, dict):
        raise CrossCheckError(f"{where}: must be a mapping with department and indicator")
    department = _field(raw, "department", where)
    if department not in declarations:
        raise CrossCheckError(f"{where}: unknown department {department!r} (one of {', '.join(sorted(declarations))})")
    indicator = _field(raw, "indicator", where)
    decl = declarations[department]
    if indicator not in decl.indicator_names:
        raise CrossCheckError(f"{where}: {department} has no indicator {indicator!r}")
    return Side(department, indicator), decl.period_type


def _tolerance(raw: Mapping[str, Any], key: str, where: str) -> float:
    value = raw.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise CrossCheckError(f"{where}: {key} must be a number ≥ 0, got {value!r}")
    return float(value)


def parse_cross_check(raw: Any, where: str, declarations: Mapping[str, Declaration]) -> CrossCheck:
    if not isinstance(raw, dict):
        raise CrossCheckError(f"{where}: a check is a mapping, got {raw!r}")
    name = _field(raw, "id", where)
    where = f"{where} check {name!r}"
    if not isinstance(name, str) or not _ID_RE.match(name):
        raise CrossCheckError(f"{where}: ids are snake_case ASCII")
    left, left_type = _side(raw.get("left"), "left", where, declarations)
    right, right_type = _side(raw.get("right"), "right", where, declarations)
    if left == right:
        raise CrossCheckError(f"{where}: left and right are the same indicator")
    align = _field(raw, "align", where)
    if align not in ALIGNMENTS:
        raise CrossCheckError(f"{where}: align must be one of {', '.join(ALIGNMENTS)}, got {align!r}")
    if align == "same_period" and left_type != right_type:
        raise CrossCheckError(f"{where}: same_period needs two returns of one period type "
                              f"({left.department} is {left_type}ly, {right.department} {right_type}ly)")
    if align != "same_period" and (left_type, right_type) != ("month", "year"):
        raise CrossCheckError(f"{where}: align {align} pairs a monthly left return with an annual right "
                              f"one ({left.department} is {left_type}ly, {right.department} {right_type}ly)")
    operator = str(_field(raw, "operator", where))
    if operator not in OPERATORS:
        raise CrossCheckError(f"{where}: operator must be one of {', '.join(OPERATORS)}, got {operator!r}")
    severity = raw.get("severity", "warning")
    if severity not in CROSS_SEVERITIES:
        raise CrossCheckError(f"{where}: severity must be one of {', '.join(CROSS_SEVERITIES)} "
                              f"(a cross-return disagreement never blocks a load), got {severity!r}")
    return CrossCheck(
        check_name=name, left=left, right=right, align=align, operator=operator,  # type: ignore[arg-type]
        relative_tolerance=_tolerance(raw, "relative_tolerance", where),
        absolute_tolerance=_tolerance(raw, "absolute_tolerance", where),
        severity=str(severity), reason=str(_field(raw, "reason", where)),
        message_zh=str(_field(raw, "message_zh", where)),
    )


def parse_cross_checks(
    raw: Any, source: str, declarations: Mapping[str, Declaration]
) -> tuple[CrossCheck, ...]:
    if not isinstance(raw, dict) or not isinstance(raw.get("checks"), list):
        raise CrossCheckError(f"{source}: expected a mapping with a list under 'checks'")
    checks = tuple(parse_cross_check(item, source, declarations) for item in raw["checks"])
    names = [c.check_name for c in checks]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise CrossCheckError(f"{source}: check ids repeat: {repeated}")
    return checks


@lru_cache(maxsize=2)
def load_cross_checks(path: Path = CROSS_CHECKS_FILE) -> tuple[CrossCheck, ...]:
    """Every declared cross-return check, validated against the declarations."""
    raw = read_yaml(path)
    return parse_cross_checks(raw, path.name, load_declarations())


# ---------------------------------------------------------------- periods


def right_period_for(check: CrossCheck, left_period: str, left_periods: frozenset[str]) -> str | None:
    """The right-hand period a left period is compared with, or None when it is not compared.

    ``left_periods``: the left return's periods that have a value (``latest_month`` needs them).
    """
    if check.align == "same_period":
        return left_period
    year, month = int(left_period[:4]), int(left_period[5:7])
    if check.align == "december":
        return str(year) if month == 12 else None
    if check.align == "next_january":
        return str(year - 1) if month == 1 else None
    latest = max(p for p in left_periods if p[:4] == left_period[:4])
    return str(year) if left_period == latest else None


# ---------------------------------------------------------------- evaluation


def holds(check: CrossCheck, left: float, right: float) -> bool:
    """Whether ``left OPERATOR right`` holds within the declared tolerances."""
    slack = check.relative_tolerance * abs(right) + check.absolute_tolerance
    if check.operator == "==":
        return abs(left - right) <= slack
    if check.operator == "<=":
        return left <= right + slack
    return left >= right - slack


def evaluate(check: CrossCheck, left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
    """Disagreements (``DISAGREEMENT_COLUMNS``) between the two sides' current values.

    ``left`` / ``right``: ``SIDE_COLUMNS`` of the check's left and right indicator. Pairs with a
    blank on either side are not compared. ``score`` is (left − right) / right, None when right
    is 0. Pure.
    """
    for frame, which in ((left, "left"), (right, "right")):
        missing = [c for c in SIDE_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{check.check_id}: {which} frame lacks columns {missing}")
    left = left[left["value"].notna()]
    right = right[right["value"].notna()]
    periods = frozenset(str(p) for p in left["period"])
    reference = {(str(r.township_code), str(r.period)): float(r.value) for r in right.itertuples(index=False)}
    rows: list[dict[str, Any]] = []
    for item in left.itertuples(index=False):
        right_period = right_period_for(check, str(item.period), periods)
        if right_period is None:
            continue
        other = reference.get((str(item.township_code), right_period))
        if other is None:
            continue
        value = float(item.value)
        if not holds(check, value, other):
            rows.append({
                "township_code": str(item.township_code), "left_period": str(item.period),
                "right_period": right_period, "left_value": value, "right_value": other,
                "score": (value - other) / other if other else None,
            })
    return pd.DataFrame(rows, columns=list(DISAGREEMENT_COLUMNS))
