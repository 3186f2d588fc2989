"""Checks against each township's own history, generated from the declaration.

Each check is a GX expectation over columns derived here from the warehouse's current values
(``history``: one row per township × indicator × earlier period, base units). Every failing row
flags one value (``CheckSpec.value_check``), which becomes a ``dq_flag`` row:

- **outlier** (warning; ``<indicator>__outlier_mzscore``): the modified z-score
  ``(value − median) / (MAD / 0.6745)`` of the value against the township's series is above the
  indicator's ``outlier_threshold`` (default 3.5, Iglewicz & Hoaglin). Monthly returns compare
  with the same month of earlier years when there are at least three (seasonality: October's
  tourism is not an outlier against October), else with the whole series (at least
  :data:`MIN_SERIES_POINTS` earlier values: 12 monthly, 5 annual). The spread is floored
  at 10 % of the median (and √median for counts), see :data:`RELATIVE_SPREAD_FLOOR`.
  本年累计 indicators only against the same month: a running total is not comparable across
  months. When the MAD is 0 the spread is 1.2533 × the mean absolute deviation; a series with no
  spread at all is not scored. Custom expectation
  ``expect_values_within_modified_z_score_of_history``.
- **band** (warning; ``<indicator>__band``): outside the declaration's ``band: [min, max]``.
- **increment** (warning; ``<indicator>__increment_of_ytd``): a 本月 indicator declared
  ``increment_of: <本年累计 indicator>`` differs from the change of that running total since the
  previous month (January: from 0). Custom expectation
  ``expect_increment_to_equal_cumulative_difference``.
- **cumulative** (critical, quarantine; ``<indicator>__cumulative_not_decreasing``): a 本年累计
  value below the township's latest earlier month of the same year.
- **magnitude** (critical, quarantine; ``<indicator>__magnitude``): 1000× or more away from the
  township's median (at least three earlier non-zero values): a unit slip (元 vs 万元, 人次 vs
  万人次 are 10 000×) — the message names the suspected factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from expectations.declaration import Declaration, Indicator
from expectations.suite import CheckSpec, ValueCheck

MAGNITUDE_LIMIT = 1000.0  # a unit slip is a factor of 10 000 (万) or 100 000 000 (亿); 1000 leaves room
MIN_HISTORY = 3  # earlier non-zero values before a magnitude is judged
MIN_SAME_MONTH_YEARS = 3  # earlier years of the same month before seasonality is used
#: earlier values before a whole series is a reference: a monthly series needs a full year (its
#: seasonal peak seen once), an annual one five years
MIN_SERIES_POINTS = {"month": 12, "year": 5}
MAD_TO_SIGMA = 0.6745  # MAD of a normal distribution in standard deviations
MEAN_AD_TO_SIGMA = 1.253314  # mean absolute deviation → σ when the MAD is 0 (IBM SPSS's choice)
#: the spread is never taken below 10 % of the median: level series (populations, enrolment) sit
#: still for months and step a few percent at a new year, so their MAD is ~0 and any step would
#: score in the hundreds; with the floor a value must be 35 % (3.5 × 10 %) off before it is unusual
RELATIVE_SPREAD_FLOOR = 0.10  # and counts (integer indicators) vary at least as a Poisson count: σ ≥ √median
CENTRE, SCALE, SCORE, PREVIOUS, PREVIOUS_YTD, RATIO, MEDIAN = (
    "hist_centre", "hist_scale", "hist_z", "prev", "prev_ytd", "ratio", "hist_median",
)


_NO_HISTORY = pd.DataFrame(columns=["township_code", "indicator", "period", "year", "month", "value"])


@dataclass(frozen=True)
class SeriesReference:
    """Per township: the centre and robust spread of its history, and which history it was."""

    centre: pd.Series  # median, by township_code
    scale: pd.Series  # robust σ, by township_code (NaN: no spread → not scored)
    same_month: pd.Series  # bool, by township_code: compared with the same month of earlier years


def series_reference(
    series: pd.DataFrame, indicator: Indicator, month: int | None, period_type: str
) -> SeriesReference:
    """Median and robust spread of each township's earlier values (``series``: ``indicator``'s history)."""
    rows = series[series["value"].notna()]
    if period_type == "month" and month is not None:
        same = rows[rows["month"] == month]
        seasonal = same.groupby("township_code")["value"].count() >= MIN_SAME_MONTH_YEARS
        seasonal_codes = set(seasonal[seasonal].index)
    else:
        seasonal_codes = set()
    whole = rows[~rows["township_code"].isin(seasonal_codes)]
    if indicator.cumulative:
        whole = whole.iloc[0:0]  # running totals only compare with the same month
    counts = whole.groupby("township_code")["value"].count()
    whole = whole[whole["township_code"].isin(counts[counts >= MIN_SERIES_POINTS[period_type]].index)]
    chosen = pd.concat([rows[rows["township_code"].isin(seasonal_codes) & (rows["month"] == month)], whole])
    if chosen.empty:
        empty = pd.Series(dtype="float64")
        return SeriesReference(empty, empty, pd.Series(dtype="bool"))
    by_code = chosen.groupby("township_code")["value"]
    centre = by_code.median()
    deviation = (chosen["value"] - chosen["township_code"].map(centre)).abs()
    mad = deviation.groupby(chosen["township_code"]).median()
    mean_ad = deviation.groupby(chosen["township_code"]).mean()
    scale = (mad / MAD_TO_SIGMA).where(mad > 0, mean_ad * MEAN_AD_TO_SIGMA)
    floor = RELATIVE_SPREAD_FLOOR * centre.abs()
    if indicator.value_type == "integer":
        floor = np.maximum(floor, np.sqrt(centre.abs()))
    scale = np.maximum(scale, floor)
    scale = scale.where(scale > 0)
    same_month = pd.Series(centre.index.isin(list(seasonal_codes)), index=centre.index)
    return SeriesReference(centre, scale, same_month)


def _outlier_check(
    wide: pd.DataFrame, ind: Indicator, series: pd.DataFrame, month: int | None, period_type: str,
    columns: dict[str, pd.Series],
) -> CheckSpec | None:
    if ind.outlier_threshold is None:
        return None
    ref = series_reference(series, ind, month, period_type)
    if ref.scale.notna().sum() == 0:
        return None
    codes = wide["township_code"]
    centre = codes.map(ref.centre).astype("float64")
    scale = codes.map(ref.scale).astype("float64")
    names = {k: f"{k}__{ind.name}" for k in (CENTRE, SCALE, SCORE)}
    columns[names[CENTRE]] = centre
    columns[names[SCALE]] = scale
    columns[names[SCORE]] = (wide[ind.name].astype("float64") - centre) / scale
    columns[f"hist_same_month__{ind.name}"] = codes.map(ref.same_month).astype("boolean")
    return CheckSpec(
        check_id=f"{ind.name}__outlier_mzscore",
        expectation_type="expect_values_within_modified_z_score_of_history",
        kwargs={"column_list": [ind.name, names[CENTRE], names[SCALE]], "threshold": ind.outlier_threshold},
        severity="warning", action=None, issue_code="VALUE_OUTLIER",
        message_zh=f"“{ind.label_zh}”与该乡镇历史相比异常(修正Z分数超过{ind.outlier_threshold:g})",
        columns=(ind.name,), kind="row",
        value_check=ValueCheck(ind.name, "outlier", names[CENTRE], names[SCORE], threshold=ind.outlier_threshold),
    )


def _band_check(ind: Indicator) -> CheckSpec | None:
    if ind.band is None:
        return None
    lo, hi = ind.band
    return CheckSpec(
        check_id=f"{ind.name}__band",
        expectation_type="expect_column_values_to_be_between",
        kwargs={"column": ind.name, "min_value": lo, "max_value": hi},
        severity="warning", action=None, issue_code="VALUE_OUT_OF_BAND",
        message_zh=f"“{ind.label_zh}”超出声明的合理范围",
        columns=(ind.name,), kind="row",
        value_check=ValueCheck(ind.name, "band", band=ind.band),
    )


def _latest_same_year(series: pd.DataFrame, year: int, month: int) -> pd.Series:
    earlier = series[(series["year"] == year) & (series["month"] < month)]
    return earlier.sort_values("month").groupby("township_code")["value"].last()


def _increment_check(
    wide: pd.DataFrame, ind: Indicator, decl: Declaration, by_indicator: dict[str, pd.DataFrame], year: int,
    month: int, columns: dict[str, pd.Series],
) -> CheckSpec | None:
    ytd = ind.increment_of
    if ytd is None or ytd not in wide.columns:
        return None
    name = f"{PREVIOUS_YTD}__{ind.name}"
    codes = wide["township_code"]
    if month == 1:
        columns[name] = pd.Series(0.0, index=wide.index)
    else:  # the previous month's running total, when that month is in the warehouse
        ytd_series = by_indicator.get(ytd, _NO_HISTORY)
        previous = ytd_series[(ytd_series["year"] == year) & (ytd_series["month"] == month - 1)]
        columns[name] = codes.map(previous.groupby("township_code")["value"].last()).astype("float64")
        if columns[name].isna().all():
            del columns[name]
            return None
    delta = f"hist_delta__{ind.name}"
    columns[delta] = wide[ytd].astype("float64") - columns[name]
    columns[f"{SCORE}__{ind.name}__increment"] = wide[ind.name].astype("float64") - columns[delta]
    ytd_label = decl.indicator(ytd).label_zh
    tolerance = 0.0 if ind.value_type == "integer" else 0.005 * ind.factor  # half the form's last digit
    return CheckSpec(
        check_id=f"{ind.name}__increment_of_ytd",
        expectation_type="expect_increment_to_equal_cumulative_difference",
        kwargs={"column_list": [ind.name, ytd, name], "tolerance": tolerance},
        severity="warning", action=None, issue_code="INCREMENT_MISMATCH",
        message_zh=f"“{ind.label_zh}”不等于“{ytd_label}”较上月的增加数",
        columns=(ind.name, ytd), kind="row",
        value_check=ValueCheck(ind.name, "increment", delta, f"{SCORE}__{ind.name}__increment"),
    )


def _cumulative_check(
    wide: pd.DataFrame, ind: Indicator, series: pd.DataFrame, year: int, month: int | None,
    columns: dict[str, pd.Series],
) -> CheckSpec | None:
    if not ind.cumulative or month is None or month <= 1:
        return None
    latest = _latest_same_year(series, year, month)
    if latest.empty:
        return None
    name = f"{PREVIOUS}__{ind.name}"
    columns[name] = wide["township_code"].map(latest).astype("float64")
    columns[f"{SCORE}__{ind.name}__cumulative"] = wide[ind.name].astype("float64") - columns[name]
    return CheckSpec(
        check_id=f"{ind.name}__cumulative_not_decreasing",
        expectation_type="expect_column_pair_values_a_to_be_greater_than_b",
        kwargs={"column_A": ind.name, "column_B": name, "or_equal": True,
                "ignore_row_if": "either_value_is_missing"},
        severity="critical", action="quarantine", issue_code="CUMULATIVE_DECREASED",
        message_zh=f"“{ind.label_zh}”是本年累计数，比上一期还小",
        columns=(ind.name, name), kind="row",
        value_check=ValueCheck(ind.name, "cumulative", name, f"{SCORE}__{ind.name}__cumulative"),
    )


def _magnitude_check(
    wide: pd.DataFrame, ind: Indicator, series: pd.DataFrame, columns: dict[str, pd.Series]
) -> CheckSpec | None:
    nonzero = series[series["value"] > 0]
    counts = nonzero.groupby("township_code")["value"].count()
    medians = nonzero.groupby("township_code")["value"].median()[counts >= MIN_HISTORY]
    if medians.empty:
        return None
    name = f"{RATIO}__{ind.name}"
    baseline = wide["township_code"].map(medians).astype("float64")
    ratio = wide[ind.name].astype("float64") / baseline
    columns[name] = ratio.where(wide[ind.name] > 0)
    columns[f"{MEDIAN}__{ind.name}"] = baseline
    return CheckSpec(
        check_id=f"{ind.name}__magnitude",
        expectation_type="expect_column_values_to_be_between",
        kwargs={"column": name, "min_value": 1 / MAGNITUDE_LIMIT, "max_value": MAGNITUDE_LIMIT},
        severity="critical", action="quarantine", issue_code="MAGNITUDE_SUSPECT",
        message_zh=f"“{ind.label_zh}”与该乡镇历史中位数相差{MAGNITUDE_LIMIT:g}倍以上，疑似单位填错",
        columns=(ind.name, name), kind="row",
        value_check=ValueCheck(ind.name, "magnitude", f"{MEDIAN}__{ind.name}", name),
    )


def history_columns_and_checks(
    wide: pd.DataFrame,
    declaration: Declaration,
    year: int,
    month: int | None,
    history: pd.DataFrame,
) -> tuple[dict[str, pd.Series], tuple[CheckSpec, ...]]:
    """Derived columns (aligned with ``wide``'s index) and the checks that read them (pure).

    Band checks need no history and are generated even for a first submission.
    """
    columns: dict[str, pd.Series] = {}
    checks: list[CheckSpec | None] = []
    if "township_code" not in wide.columns:
        return columns, ()
    present = [ind for ind in declaration.indicators if ind.name in wide.columns]
    by_indicator = {str(name): rows for name, rows in history.groupby("indicator", sort=False)}  # split once
    for ind in present:
        checks.append(_band_check(ind))
        series = by_indicator.get(ind.name)
        if series is None:
            if month is not None and ind.increment_of and by_indicator:
                checks.append(_increment_check(wide, ind, declaration, by_indicator, year, month, columns))
            continue
        checks.append(_cumulative_check(wide, ind, series, year, month, columns))
        if month is not None:
            checks.append(_increment_check(wide, ind, declaration, by_indicator, year, month, columns))
        checks.append(_magnitude_check(wide, ind, series, columns))
        checks.append(_outlier_check(wide, ind, series, month, declaration.period_type, columns))
    return columns, tuple(c for c in checks if c is not None)


def suspected_factor(ratio: float) -> str:
    """The unit slip a ratio points at: 万 (10 000), 亿 (10⁸), or the power of ten itself."""
    if not ratio or ratio != ratio:
        return ""
    power = round(math.log10(ratio)) if ratio >= 1 else -round(math.log10(1 / ratio))
    named = {4: "约10000倍(疑似万元/元或万人次/人次混淆)", -4: "约1/10000(疑似元/万元混淆)",
             8: "约1亿倍(疑似亿元/元混淆)", -8: "约1/1亿"}
    return named.get(power, f"约10^{power}倍")


def _num(value: float | None) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "空"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def flag_reason_zh(
    check: CheckSpec, ind: Indicator, township: str, value: float | None, reference: float | None,
    score: float | None, same_month: bool = False,
) -> str:
    """The Chinese reason of one flagged value: township, indicator, value, reference and score.

    Values are shown in the form's unit (万元, 万人次), as the department wrote them.
    """
    vc = check.value_check
    assert vc is not None
    f, unit = ind.factor, ind.unit

    def on_form(v: float | None) -> str:
        return _num(None if v is None else v / f) + unit

    head = f"{township}“{ind.label_zh}”为{on_form(value)}"
    if vc.family == "outlier":
        basis = "往年同月" if same_month else "历史各期"
        return (f"{head}，该乡镇{basis}中位数为{on_form(reference)}，修正Z分数{_num(score)}"
                f"(阈值{vc.threshold:g})，明显偏离历史，请核实")
    if vc.family == "band":
        lo, hi = vc.band or (None, None)
        lo_text, hi_text = (_num(None if v is None else v / f) for v in (lo, hi))
        return f"{head}，超出声明的合理范围[{lo_text}, {hi_text}]{unit}，请核实"
    if vc.family == "increment":
        return (f"{head}，而本年累计较上月增加{on_form(reference)}，两者相差{on_form(score)}，"
                "本月数应等于本年累计的增加数")
    if vc.family == "cumulative":
        return f"{head}，是本年累计数，却比上一期的{on_form(reference)}还小"
    return (f"{head}，是该乡镇历史中位数{on_form(reference)}的{_num(score)}倍，"
            f"{suspected_factor(float(score)) if score is not None else ''}")
