"""Checks against a township's own history, generated from the declaration.

- 本年累计 (cumulative) indicators never decrease within a year: each township's value is
  compared with its latest earlier month of the same year → critical, quarantine.
- Magnitude: a value 1000× or more away from the township's median for that indicator (at least
  three earlier non-zero values) suggests a unit slip (元 vs 万元, 人次 vs 万人次) → critical,
  quarantine, with the suspected factor in the message.
Both are GX expectations over columns derived from history (``prev__*``, ``ratio__*``).
"""

from __future__ import annotations

import pandas as pd

from expectations.declaration import Declaration
from expectations.suite import CheckSpec

MAGNITUDE_LIMIT = 1000.0  # a unit slip is a factor of 10 000 (万) or 100 000 000 (亿); 1000 leaves room
MIN_HISTORY = 3


def history_columns_and_checks(
    wide: pd.DataFrame,
    declaration: Declaration,
    year: int,
    month: int | None,
    history: pd.DataFrame,
) -> tuple[dict[str, pd.Series], tuple[CheckSpec, ...]]:
    """Derived columns (aligned with ``wide``'s index) and the checks that read them."""
    columns: dict[str, pd.Series] = {}
    checks: list[CheckSpec] = []
    if history.empty or "township_code" not in wide.columns:
        return columns, ()
    codes = wide["township_code"]
    present = [ind for ind in declaration.indicators if ind.name in wide.columns]
    for ind in present:
        series = history[history["indicator"] == ind.name]
        if ind.cumulative and month is not None and month > 1:
            same_year = series[(series["year"] == year) & (series["month"] < month)]
            if not same_year.empty:
                latest = same_year.sort_values("month").groupby("township_code")["value"].last()
                name = f"prev__{ind.name}"
                columns[name] = codes.map(latest).astype("float64")
                checks.append(CheckSpec(
                    check_id=f"{ind.name}__cumulative_not_decreasing",
                    expectation_type="expect_column_pair_values_a_to_be_greater_than_b",
                    kwargs={"column_A": ind.name, "column_B": name, "or_equal": True,
                            "ignore_row_if": "either_value_is_missing"},
                    severity="critical", action="quarantine", issue_code="CUMULATIVE_DECREASED",
                    message_zh=f"“{ind.label_zh}”是本年累计数，比上一期还小",
                    columns=(ind.name, name), kind="row",
                ))
        nonzero = series[series["value"] > 0]
        counts = nonzero.groupby("township_code")["value"].count()
        medians = nonzero.groupby("township_code")["value"].median()[counts >= MIN_HISTORY]
        if medians.empty:
            continue
        name = f"ratio__{ind.name}"
        baseline = codes.map(medians).astype("float64")
        ratio = wide[ind.name].astype("float64") / baseline
        columns[name] = ratio.where(wide[ind.name] > 0)
        checks.append(CheckSpec(
            check_id=f"{ind.name}__magnitude",
            expectation_type="expect_column_values_to_be_between",
            kwargs={"column": name, "min_value": 1 / MAGNITUDE_LIMIT, "max_value": MAGNITUDE_LIMIT},
            severity="critical", action="quarantine", issue_code="MAGNITUDE_SUSPECT",
            message_zh=f"“{ind.label_zh}”与该乡镇历史中位数相差{MAGNITUDE_LIMIT:g}倍以上，疑似单位填错",
            columns=(ind.name, name), kind="row",
        ))
    return columns, tuple(checks)


def suspected_factor(ratio: float) -> str:
    """The unit slip a ratio points at: 万 (10 000), 亿 (10⁸), or the power of ten itself."""
    if not ratio or ratio != ratio:
        return ""
    from math import log10

    power = round(log10(ratio)) if ratio >= 1 else -round(log10(1 / ratio))
    named = {4: "约10000倍(疑似万元/元或万人次/人次混淆)", -4: "约1/10000(疑似元/万元混淆)",
             8: "约1亿倍(疑似亿元/元混淆)", -8: "约1/1亿"}
    return named.get(power, f"约10^{power}倍")
