"""The small, safe expression language of declared rules.

A rule's ``check`` is one comparison over indicator names, numbers, ``+ - * /`` and brackets:
``a <= b``, ``a + b == c``, ``100 <= a / b <= 3000``. It is parsed with :mod:`ast` and only those
node types are accepted, so a declaration can never run code. Evaluation is vectorised over a
pandas frame whose columns are the indicators (in base units).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy and pandas only where a rule is evaluated: the CLI's argument checks parse rules
    import pandas as pd

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
}
_CMP = {ast.LtE: "<=", ast.Lt: "<", ast.GtE: ">=", ast.Gt: ">", ast.Eq: "=="}


@dataclass(frozen=True)
class RuleExpression:
    """``terms[0] ops[0] terms[1] [ops[1] terms[2]]`` — one or two comparisons."""

    source: str
    terms: tuple[ast.expr, ...]
    ops: tuple[str, ...]
    names: frozenset[str]

    def simple_columns(self) -> tuple[str, ...] | None:
        """The column names if every term is a bare indicator name, else None."""
        if all(isinstance(t, ast.Name) for t in self.terms):
            return tuple(t.id for t in self.terms if isinstance(t, ast.Name))
        return None

    def constant_bounds(self) -> tuple[float | None, ast.expr, float | None] | None:
        """For ``lo <= expr <= hi`` / ``expr <= hi`` / ``expr == k``: (lo, expr, hi), else None."""
        consts = [isinstance(t, ast.Constant) for t in self.terms]
        if len(self.terms) == 3 and consts == [True, False, True] and set(self.ops) <= {"<=", "<"}:
            return (_const(self.terms[0]), self.terms[1], _const(self.terms[2]))
        if len(self.terms) == 2 and consts == [False, True]:
            op, k = self.ops[0], _const(self.terms[1])
            return {"<=": (None, self.terms[0], k), "<": (None, self.terms[0], k),
                    ">=": (k, self.terms[0], None), ">": (k, self.terms[0], None),
                    "==": (k, self.terms[0], k)}[op]
        return None


def _const(node: ast.expr) -> float:
    assert isinstance(node, ast.Constant) and isinstance(node.value, int | float)
    return float(node.value)


def _check_node(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.Constant):
        if not isinstance(node.value, int | float) or isinstance(node.value, bool):
            raise ValueError(f"only numbers may appear as constants, not {node.value!r}")
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            raise ValueError("only + - * / are allowed")
        _check_node(node.left, names)
        _check_node(node.right, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        _check_node(node.operand, names)
    else:
        raise ValueError(f"unsupported syntax {type(node).__name__}")


def parse_rule_expression(source: str) -> RuleExpression:
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"check {source!r} is not a valid expression: {exc.msg}") from exc
    body = tree.body
    if not isinstance(body, ast.Compare) or not 1 <= len(body.ops) <= 2:
        raise ValueError(f"check {source!r} must be one comparison such as a <= b or lo <= a <= hi")
    ops: list[str] = []
    for op in body.ops:
        if type(op) not in _CMP:
            raise ValueError(f"check {source!r}: comparison must be <, <=, >, >= or ==")
        ops.append(_CMP[type(op)])
    names: set[str] = set()
    terms = (body.left, *body.comparators)
    for term in terms:
        _check_node(term, names)
    return RuleExpression(source=source, terms=tuple(terms), ops=tuple(ops), names=frozenset(names))


def evaluate_term(node: ast.expr, frame: pd.DataFrame) -> pd.Series:
    """Evaluate one side of a rule over ``frame``; division by zero gives inf/NaN, never raises."""
    import numpy as np
    import pandas as pd

    if isinstance(node, ast.Name):
        return frame[node.id].astype("float64")
    if isinstance(node, ast.Constant):
        return pd.Series(_const(node), index=frame.index)
    if isinstance(node, ast.UnaryOp):
        return -evaluate_term(node.operand, frame)
    assert isinstance(node, ast.BinOp)
    left = evaluate_term(node.left, frame)
    right = evaluate_term(node.right, frame)
    with np.errstate(divide="ignore", invalid="ignore"):
        return pd.Series(_BINOPS[type(node.op)](left, right), index=frame.index, dtype="float64")
