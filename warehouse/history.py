"""What the history-aware checks read from the warehouse before a submission is validated.

``earlier_values``: one row per township × indicator × earlier period (current loaded versions
only, as analysts see them in ``v_indicator_value``). ``read_check_history`` adds the values an
operator has accepted for the submission's partition (``warehouse.followups.accepted_values``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine, text

from warehouse.followups import ValueKey, accepted_values

HISTORY_COLUMNS = ("township_code", "indicator", "period", "year", "month", "value")
#: five years of monthly returns: enough for three earlier years of the same month, with gaps
PERIODS_BACK = 60

__all__ = ["HISTORY_COLUMNS", "PERIODS_BACK", "CheckHistory", "ValueKey", "earlier_values", "read_check_history"]


@dataclass(frozen=True)
class CheckHistory:
    """Earlier values (``HISTORY_COLUMNS``, base units) and accepted values of one partition."""

    values: pd.DataFrame
    accepted: Mapping[ValueKey, float | None] = field(default_factory=dict)


def earlier_values(
    engine: Engine, department: str, period: str, *, periods_back: int = PERIODS_BACK
) -> pd.DataFrame:
    """Current values of ``department`` for up to ``periods_back`` periods before ``period``."""
    query = text(
        "SELECT township_code, indicator, period, year, month, value FROM v_indicator_value "
        "WHERE department = :department AND period < :period AND period IN ("
        "  SELECT DISTINCT period FROM v_indicator_value WHERE department = :department AND period < :period "
        "  ORDER BY period DESC LIMIT :n)"
    )
    with engine.connect() as conn:
        rows = conn.execute(query, {"department": department, "period": period, "n": periods_back}).all()
    frame = pd.DataFrame(rows, columns=list(HISTORY_COLUMNS))
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce").astype("float64")
    frame["month"] = pd.to_numeric(frame["month"], errors="coerce").astype("float64")  # NaN: annual
    return frame


def read_check_history(engine: Engine, department: str, period: str) -> CheckHistory:
    """Everything the history-aware checks of one submission read, in two short reads."""
    values = earlier_values(engine, department, period)
    with engine.connect() as conn:
        accepted = accepted_values(conn, department, period)
    return CheckHistory(values=values, accepted=accepted)
