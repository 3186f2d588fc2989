"""Earlier current values of a department's return, for checks that compare with history.

Grain of the result: one row per township × indicator × earlier period (current loaded
versions only, as analysts see them in ``v_indicator_value``).
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Engine, text

HISTORY_COLUMNS = ("township_code", "indicator", "period", "year", "month", "value")


def earlier_values(engine: Engine, department: str, period: str, *, periods_back: int = 36) -> pd.DataFrame:
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
    return frame
