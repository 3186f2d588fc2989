"""Two views of every series across a boundary change: as reported, and on current boundaries.

Facts stay on the unit they were reported for — a 2017 value of 梭坡乡 is 梭坡乡's forever, and
``fact_indicator_value`` is never rewritten when the county's map changes. The "current
boundaries" view is computed on the fly through ``ref_township_crosswalk``: each fact of a unit
that no longer exists is split among its successors by the crosswalk's weights (followed through
later changes too), then added up per successor and period.

How an indicator is carried follows its declared ``aggregation``:

* ``sum`` (flows and stocks: persons, 人次, 元, households) — the value × the share;
* ``weighted_mean`` (a per-capita value weighted by another indicator, e.g. net income per
  capita by agricultural population) — the successor's value is the mean of its pieces weighted
  by the weight indicator × the share, so a KPI computed from the result (Σ value × weight /
  Σ weight) is what it would have been on the successor's boundaries;
* ``none`` (rates a form states, e.g. 参保率) — not carried: a rate cannot be re-weighted from
  itself. Rates that matter are KPIs (``ratio``) recomputed from re-weighted numerators and
  denominators, never averaged.

County totals are the same on both views (the shares of each predecessor add up to 1;
``warehouse.refdata.crosswalk_problems`` refuses a crosswalk where they do not); township series
differ. Pure: frames in, frames out.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pandas as pd

from expectations.declaration import Declaration

BASES = ("as_reported", "current_boundaries")
BASIS_LABELS_ZH = {
    "as_reported": "按当时区划(各期按其报送时的乡镇)",
    "current_boundaries": "按现行区划(调整前各期经区划对照表折算)",
}


def _day(value: object) -> date | None:
    if value is None or (not isinstance(value, date) and pd.isna(value)):  # type: ignore[call-overload]
        return None
    return value if isinstance(value, date) and not isinstance(value, pd.Timestamp) else pd.Timestamp(value).date()


def current_units(townships: pd.DataFrame) -> list[str]:
    """Codes of the units that still exist (no ``valid_to``): the current boundaries."""
    return [str(row.township_code) for row in townships.itertuples(index=False) if _day(row.valid_to) is None]


def shares_on_current_boundaries(townships: pd.DataFrame, crosswalk: pd.DataFrame) -> dict[str, dict[str, float]]:
    """For every township: {current unit: share}. A current unit maps to itself (1); an abolished
    one to its successors, through every later change (shares multiply along the way)."""
    current = set(current_units(townships))
    onward: dict[str, list[tuple[str, float]]] = {}
    for row in crosswalk.itertuples(index=False):
        onward.setdefault(str(row.predecessor_code), []).append((str(row.successor_code), float(row.weight)))

    def resolve(code: str, seen: tuple[str, ...]) -> dict[str, float]:
        if code in current:
            return {code: 1.0}
        if code in seen:
            raise ValueError(f"township crosswalk loops through {code}")
        out: dict[str, float] = {}
        for successor, weight in onward.get(code, []):
            for unit, share in resolve(successor, (*seen, code)).items():
                out[unit] = out.get(unit, 0.0) + weight * share
        return out

    return {str(code): resolve(str(code), ()) for code in townships["township_code"]}


def to_current_boundaries(
    values: pd.DataFrame,
    townships: pd.DataFrame,
    crosswalk: pd.DataFrame,
    declarations: Mapping[str, Declaration],
) -> pd.DataFrame:
    """``values`` (columns of ``v_indicator_value`` used by the marts) re-aggregated onto the
    current units; same columns, one row per department × indicator × current unit × period.

    A fact of a unit with no successor in the crosswalk (a county's crosswalk not yet complete)
    is left out rather than guessed; so is a ``none`` indicator of an abolished unit.
    """
    shares = shares_on_current_boundaries(townships, crosswalk)
    columns = list(values.columns)
    if values.empty:
        return values.copy()
    kind = {
        (decl.department, ind.name): (ind.aggregation, ind.weight)
        for decl in declarations.values()
        for ind in decl.indicators
    }
    moved = values.copy()
    moved["township_code"] = moved["township_code"].astype(str)
    share_rows = [
        {"township_code": code, "unit": unit, "share": share}
        for code, units in shares.items()
        for unit, share in units.items()
    ]
    split = moved.merge(pd.DataFrame(share_rows, columns=["township_code", "unit", "share"]), on="township_code")
    keys = ["department", "period", "township_code"]
    # the weight each row carries (weighted_mean indicators): its weight indicator's value there
    weights = moved.loc[:, [*keys, "indicator", "value"]].rename(columns={"indicator": "weight", "value": "w"})
    declared = [kind.get((d, i), ("sum", None)) for d, i in zip(split["department"], split["indicator"], strict=True)]
    split["aggregation"] = [aggregation for aggregation, _ in declared]
    split["weight"] = [weight for _, weight in declared]
    split = split.merge(weights, on=[*keys, "weight"], how="left")
    stays = split["share"] == 1.0
    split = split[(split["aggregation"] != "none") | (stays & (split["township_code"] == split["unit"]))]
    additive = split[split["aggregation"] != "weighted_mean"].copy()
    additive["value"] = additive["value"] * additive["share"]
    group = ["department", "indicator", "unit", "period", "year"]
    summed = additive.groupby(group, as_index=False, dropna=False)["value"].sum(min_count=1)
    mean = split[split["aggregation"] == "weighted_mean"].copy()
    mean["w"] = mean["w"] * mean["share"]
    mean["vw"] = mean["value"] * mean["w"]
    mean = mean[mean["value"].notna() & mean["w"].notna()]
    averaged = mean.groupby(group, as_index=False, dropna=False)[["vw", "w"]].sum()
    averaged["value"] = averaged["vw"] / averaged["w"].where(averaged["w"] != 0)
    out = pd.concat([summed, averaged.loc[:, [*group, "value"]]], ignore_index=True)
    out = out.rename(columns={"unit": "township_code"})
    for column in columns:
        if column not in out.columns:
            out[column] = None
    ordered = out.loc[:, columns].sort_values(["department", "indicator", "township_code", "period"])
    return ordered.reset_index(drop=True)
