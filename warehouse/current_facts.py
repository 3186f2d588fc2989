"""The current facts: ``v_indicator_value`` read as one frame, and its one list of columns.

``VALUE_COLUMNS`` and ``read_current_values`` are shared by the marts (``warehouse/marts.py``),
completeness (``warehouse/completeness.py``), restatements and the report's data
(``tasks/report/data.py``); they live here, below all of them, so none imports another for them.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection, column, select, table

VALUE_COLUMNS = ("department", "indicator", "township_code", "period", "year", "value")
#: the columns of the view (schema.VIEWS) that the readers of current facts use
_V_INDICATOR_VALUE = table("v_indicator_value", *(column(c) for c in VALUE_COLUMNS))


def read_current_values(conn: Connection) -> pd.DataFrame:
    """``VALUE_COLUMNS`` of ``v_indicator_value`` (current loaded versions), value as float64."""
    rows = conn.execute(select(_V_INDICATOR_VALUE)).all()
    values = pd.DataFrame([tuple(r) for r in rows], columns=list(VALUE_COLUMNS))
    values["value"] = pd.to_numeric(values["value"], errors="coerce").astype("float64")
    return values
