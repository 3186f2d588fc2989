"""Where a series breaks: a boundary reform (units valid from a later date than the first ones) or a
change of definition (口径: ``definition_version`` differs from one year to the next), and the
notes that state which basis a page's figures use. Pure: frames in, ``Break`` lists and text out.
"""

from __future__ import annotations

from itertools import pairwise

import pandas as pd

from tasks.report.charts import Break

#: the basis note of the county pages: county totals are the same on both views (warehouse/boundaries.py)
COUNTY_BASIS_NOTE = (
    "口径说明:县级数值按当时区划汇总(as reported)。乡镇区划调整只改变乡镇划分，县级合计按现行区划折算后相同；"
    "图中虚线标出区划调整与指标口径变更，口径不同的年份不计算增长率。"
)
TOWNSHIP_BASIS_NOTE = "口径说明:本页数值按当时区划(as reported)，即各期按其报送时的乡镇。"
CURRENT_BASIS_NOTE = (
    "按现行区划(current boundaries)的图中，{year}年前的数值由调整前各乡镇按区划对照表折算"
    "(权重为推定，未经核实)，虚线处为区划调整。"
)


def boundary_breaks(townships: pd.DataFrame) -> list[Break]:
    """One break before each year in which units began after the first ones (the 2019 reform: after 2019)."""
    if townships.empty:
        return []
    starts = sorted({pd.Timestamp(v).year for v in townships["valid_from"] if not pd.isna(v)})
    return [Break(year - 1, f"{year - 1}年末乡镇区划调整") for year in starts[1:]]


def definition_breaks(kpis: pd.DataFrame, kpi: str) -> list[Break]:
    """One break wherever the KPI's ``definition_version`` changes between consecutive years shown."""
    if "definition_version" not in kpis.columns:
        return []
    rows = kpis[(kpis["kpi"] == kpi) & kpis["definition_version"].notna()].sort_values("year")
    found = []
    for (year, before), (_, after) in pairwise(zip(rows["year"], rows["definition_version"], strict=True)):
        if before != after:
            found.append(Break(int(year), "指标口径变更"))
    return found
