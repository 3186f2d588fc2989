"""duikou's own GX Core 1.x expectations, for the history-aware checks GX has no built-in for.

Both are multicolumn map expectations over columns the suite derives from the warehouse's
history (see :mod:`expectations.history_checks`), so a failing row is reported by GX itself with
its index (the form's row number), like every built-in row check:

- ``expect_values_within_modified_z_score_of_history`` — column_list ``[value, centre, scale]``:
  ``|value − centre| ≤ threshold × scale``. With centre the median of the series' history and
  scale its robust spread (MAD / 0.6745), the left side over scale is the modified z-score
  (Iglewicz & Hoaglin), so a row fails when its modified z-score is above ``threshold``.
- ``expect_increment_to_equal_cumulative_difference`` — column_list ``[month, ytd, previous_ytd]``:
  ``|month − (ytd − previous_ytd)| ≤ tolerance``: a 本月 figure equals the change of its 本年累计
  figure since the previous month (January: previous_ytd is 0).

Rows where any listed column is missing are skipped (no history, no previous month): GX's
``ignore_row_if="any_value_is_missing"``, fixed here. Pandas only: duikou validates a submission
in memory. Importing this module registers both with GX (class definition registers them).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import pandas as pd
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import MulticolumnMapExpectation
from great_expectations.expectations.metrics.map_metric_provider import MulticolumnMapMetricProvider
from great_expectations.expectations.metrics.map_metric_provider.multicolumn_condition_partial import (
    multicolumn_condition_partial,
)


class MulticolumnValuesWithinScaledDistance(MulticolumnMapMetricProvider):
    """Row condition: ``|column_list[0] − column_list[1]| ≤ threshold × column_list[2]``."""

    condition_metric_name = "multicolumn_values.within_scaled_distance"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
    condition_value_keys = ("threshold",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        value, centre, scale = (column_list.iloc[:, i].astype("float64") for i in range(3))
        return (value - centre).abs() <= float(kwargs["threshold"]) * scale


class MulticolumnIncrementEqualsDifference(MulticolumnMapMetricProvider):
    """Row condition: ``|column_list[0] − (column_list[1] − column_list[2])| ≤ tolerance``."""

    condition_metric_name = "multicolumn_values.increment_equals_difference"
    condition_domain_keys = ("batch_id", "table", "column_list", "row_condition", "condition_parser", "ignore_row_if")
    condition_value_keys = ("tolerance",)

    @multicolumn_condition_partial(engine=PandasExecutionEngine)
    def _pandas(cls, column_list: pd.DataFrame, **kwargs: Any) -> pd.Series:
        month, ytd, previous = (column_list.iloc[:, i].astype("float64") for i in range(3))
        return (month - (ytd - previous)).abs() <= float(kwargs["tolerance"])


class ExpectValuesWithinModifiedZScoreOfHistory(MulticolumnMapExpectation):
    """Expect each value within ``threshold`` modified z-scores of its series' history.

    ``column_list``: ``[value, centre, scale]`` — the value, the median of the series' history
    and its robust spread (MAD / 0.6745; 1.2533 × mean absolute deviation when the MAD is 0).
    """

    threshold: float
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "any_value_is_missing"

    map_metric = "multicolumn_values.within_scaled_distance"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "threshold")
    args_keys = ("column_list", "threshold")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "history"]}


class ExpectIncrementToEqualCumulativeDifference(MulticolumnMapExpectation):
    """Expect a 本月 value to equal its 本年累计 value minus the previous month's.

    ``column_list``: ``[month, ytd, previous_ytd]``; ``tolerance`` in base units.
    """

    tolerance: float = 0.0
    ignore_row_if: Literal["all_values_are_missing", "any_value_is_missing", "never"] = "any_value_is_missing"

    map_metric = "multicolumn_values.increment_equals_difference"
    success_keys: ClassVar[tuple[str, ...]] = ("mostly", "tolerance")
    args_keys = ("column_list", "tolerance")
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "history"]}
