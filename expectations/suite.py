"""GX suites generated from a declaration.

Each check is a :class:`CheckSpec`: a GX Core expectation plus what duikou needs around it — a
stable id, the severity and action (reject / quarantine) from the declaration, the issue code and
Chinese message for receipts, and, for rules that are not a plain column comparison, a derived
column computed from the rule's expression. Checks that depend on the submission (the 合计 row,
the townships valid in the period) take their values from it; the suite is built per submission
and validated in one call, the checks of one kind and severity as one GX family expectation
(:func:`to_gx_expectations`).
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd

from expectations.declaration import Declaration, Indicator, Rule, Severity
from expectations.rules import evaluate_term

CheckKind = Literal["row", "table"]
TOWNSHIP_COLUMN = "township_code"


HistoryFamily = Literal["outlier", "band", "increment", "cumulative", "magnitude"]


@dataclass(frozen=True)
class ValueCheck:
    """What makes a check a value check: each failing row flags one value (a ``dq_flag`` row).

    ``reference_column`` / ``score_column`` name the derived columns holding what the value was
    compared with and the check's score (modified z-score, ratio or difference); ``band`` the
    declared limits (base units) of a band check; ``threshold`` an outlier check's limit.
    """

    indicator: str
    family: HistoryFamily
    reference_column: str | None = None
    score_column: str | None = None
    band: tuple[float, float] | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class CheckSpec:
    check_id: str
    expectation_type: str
    kwargs: Mapping[str, Any]
    severity: Severity
    action: Literal["reject", "quarantine"] | None
    issue_code: str
    message_zh: str
    columns: tuple[str, ...]  # indicators shown next to a failing row
    kind: CheckKind
    derived_column: str | None = None
    derived_term: ast.expr | None = None
    rule: Rule | None = None
    value_check: ValueCheck | None = None  # history-aware checks: flag the value, not the whole row


def _total_tolerance(ind: Indicator, base_tolerance: float) -> float:
    # Values on the form carry two decimals of their unit at most: a 0.01 万元 difference is 100 元.
    return max(base_tolerance, 0.01 * ind.factor if ind.factor > 1 else base_tolerance)


def _rule_checks(rule: Rule) -> CheckSpec:
    expr = rule.expression
    base: dict[str, Any] = {
        "check_id": rule.rule_id,
        "severity": rule.severity,
        "action": rule.action,
        "issue_code": "RULE_FAILED",
        "message_zh": rule.message_zh,
        "columns": tuple(sorted(expr.names)),
        "kind": "row",
        "rule": rule,
    }
    simple = expr.simple_columns()
    if simple and len(simple) == 2 and rule.tolerance == 0:
        a, b = simple
        op = expr.ops[0]
        if op == "==":
            return CheckSpec(expectation_type="expect_column_pair_values_to_be_equal",
                             kwargs={"column_A": a, "column_B": b, "ignore_row_if": "either_value_is_missing"},
                             **base)
        bigger, smaller = (b, a) if op in ("<=", "<") else (a, b)
        return CheckSpec(
            expectation_type="expect_column_pair_values_a_to_be_greater_than_b",
            kwargs={"column_A": bigger, "column_B": smaller, "or_equal": op in ("<=", ">="),
                    "ignore_row_if": "either_value_is_missing"},
            **base,
        )
    bounds = expr.constant_bounds()
    if bounds is not None:
        lo, term, hi = bounds
        if len(expr.ops) == 2:
            strict = {"strict_min": expr.ops[0] == "<", "strict_max": expr.ops[1] == "<"}
        else:
            strict = {"strict_min": expr.ops[0] == ">", "strict_max": expr.ops[0] == "<"}
        if isinstance(term, ast.Name):
            column, derived = term.id, None
        else:
            column, derived = f"rule__{rule.rule_id}", term
        return CheckSpec(
            expectation_type="expect_column_values_to_be_between",
            kwargs={"column": column, "min_value": lo, "max_value": hi, **strict},
            derived_column=column if derived is not None else None,
            derived_term=derived,
            **base,
        )
    if len(expr.ops) != 1:
        raise ValueError(f"rule {rule.rule_id}: chained comparisons need constant bounds")
    op, tol = expr.ops[0], rule.tolerance
    lo, hi = {"==": (-tol, tol), "<=": (None, tol), "<": (None, tol), ">=": (-tol, None), ">": (-tol, None)}[op]
    column = f"rule__{rule.rule_id}"
    diff = ast.BinOp(left=expr.terms[0], op=ast.Sub(), right=expr.terms[1])
    return CheckSpec(
        expectation_type="expect_column_values_to_be_between",
        kwargs={"column": column, "min_value": lo, "max_value": hi,
                "strict_max": op == "<" and tol == 0, "strict_min": op == ">" and tol == 0},
        derived_column=column,
        derived_term=diff,
        **base,
    )


def build_checks(
    declaration: Declaration,
    present: frozenset[str],
    totals: Mapping[str, float | None],
    expected_townships: tuple[str, ...],
    base_tolerance: float,
    weight_sums: Mapping[str, float],
) -> tuple[CheckSpec, ...]:
    """Every check for one submission: generated (keys, nulls, signs, 合计) and declared rules.

    ``present`` are the indicators the form actually carries; checks on absent columns are left
    out (the missing column is already a receipt issue). ``weight_sums`` gives Σ weight for
    weighted-mean indicators so their 合计 can be checked as Σ(value × weight).
    """
    checks: list[CheckSpec] = [
        CheckSpec(
            check_id="township_unique",
            expectation_type="expect_column_values_to_be_unique",
            kwargs={"column": TOWNSHIP_COLUMN},
            severity="critical",
            action="reject",
            issue_code="TOWNSHIP_DUPLICATE",
            message_zh="同一乡镇出现在多行",
            columns=(),
            kind="row",
        )
    ]
    if expected_townships:
        checks.append(
            CheckSpec(
                check_id="township_complete",
                expectation_type="expect_column_distinct_values_to_contain_set",
                kwargs={"column": TOWNSHIP_COLUMN, "value_set": list(expected_townships)},
                severity="warning",
                action=None,
                issue_code="TOWNSHIP_MISSING",
                message_zh="表中缺少本报告期应报的乡镇",
                columns=(),
                kind="table",
            )
        )
    for ind in declaration.indicators:
        if ind.name not in present:
            continue
        if ind.required:
            checks.append(CheckSpec(
                check_id=f"{ind.name}__not_null",
                expectation_type="expect_column_values_to_not_be_null",
                kwargs={"column": ind.name},
                severity="critical", action="reject", issue_code="VALUE_REQUIRED_MISSING",
                message_zh=f"必填指标“{ind.label_zh}”为空", columns=(ind.name,), kind="row",
            ))
        if ind.min_value is not None:
            checks.append(CheckSpec(
                check_id=f"{ind.name}__min",
                expectation_type="expect_column_values_to_be_between",
                kwargs={"column": ind.name, "min_value": float(ind.min_value)},
                severity="critical", action="reject", issue_code="VALUE_NEGATIVE",
                message_zh=f"“{ind.label_zh}”不能小于{ind.min_value:g}", columns=(ind.name,), kind="row",
            ))
        total = totals.get(ind.name)
        if total is None or ind.aggregation == "none":
            continue
        tol = _total_tolerance(ind, base_tolerance)
        if ind.aggregation == "sum":
            column, target, derived = ind.name, total, None
        else:
            assert ind.weight is not None
            if ind.weight not in present or not weight_sums.get(ind.weight):
                continue
            weight_sum = weight_sums[ind.weight]
            column = f"total__{ind.name}"
            target, tol = total * weight_sum, max(tol, 1.0) * weight_sum
            derived = ast.BinOp(left=ast.Name(id=ind.name), op=ast.Mult(), right=ast.Name(id=ind.weight))
        checks.append(CheckSpec(
            check_id=f"{ind.name}__total",
            expectation_type="expect_column_sum_to_be_between",
            kwargs={"column": column, "min_value": target - tol, "max_value": target + tol},
            severity="critical", action="quarantine", issue_code="TOTAL_MISMATCH",
            message_zh=f"合计行“{ind.label_zh}”与各乡镇之和不一致", columns=(ind.name,), kind="table",
            derived_column=column if derived is not None else None, derived_term=derived,
        ))
    for rule in declaration.rules:
        if rule.expression.names <= present:
            checks.append(_rule_checks(rule))
    return tuple(checks)


def with_derived_columns(frame: pd.DataFrame, checks: tuple[CheckSpec, ...]) -> pd.DataFrame:
    """A copy of ``frame`` with the derived columns the checks need (the input is not mutated)."""
    out = frame.copy()
    for check in checks:
        if check.derived_column and check.derived_term is not None:
            out[check.derived_column] = evaluate_term(check.derived_term, out)
    return out


def to_gx_expectations(checks: tuple[CheckSpec, ...]) -> list[Any]:
    """The GX Core expectations validating the checks: one per kind of check and severity.

    GX's cost is per expectation (~5 ms of metric-graph planning each, whatever the rows), so the
    checks of one kind — every indicator's not-null, every range, every 合计 — are one family
    expectation (:mod:`expectations.custom_expectations`) whose metric evaluates them all on the
    batch and reports each check's outcome under its ``check_id``. ``meta["check_ids"]`` lists them.
    GX imported lazily (2 s).
    """
    from great_expectations.expectations.expectation_configuration import FailureSeverity

    from expectations.custom_expectations import FAMILY_OF

    families: dict[tuple[str, str], list[CheckSpec]] = {}
    for check in checks:
        families.setdefault((check.expectation_type, check.severity), []).append(check)
    return [
        FAMILY_OF[kind](
            checks=[_family_member(c) for c in members],
            severity=FailureSeverity(severity),
            meta={"check_ids": [c.check_id for c in members]},
            description="；".join(c.message_zh for c in members),
        )
        for (kind, severity), members in families.items()
    ]


def _family_member(check: CheckSpec) -> dict[str, Any]:
    kwargs = {k: v for k, v in check.kwargs.items() if v is not None or k in ("min_value", "max_value")}
    if "min_value" in kwargs and kwargs["min_value"] is None and kwargs.get("max_value") is None:
        raise ValueError(f"{check.check_id}: a range needs a bound")
    return {"check_id": check.check_id, "expectation_type": check.expectation_type, **kwargs}
