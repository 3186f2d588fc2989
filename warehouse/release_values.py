"""A release's figures: what it covers, freezing them from pinned ledger versions, and their bytes.

A release of kind ``annual`` for ``2016`` or ``monthly`` for ``2017-05`` has a *scope*
(:class:`Scope`): the returns it is computed from are every loaded version of a declared return
whose period is up to the release's period (annual returns of earlier years only, for a monthly
release), so derived KPIs (同比, multiple of 2011, CAGR) have their comparison years. Freezing
pins those versions (``release_input``) and stores (``release_value``):

* ``kpi`` rows — every county KPI of every year up to the period, computed by
  ``warehouse.marts.compute_county_kpis`` from the pinned versions' facts only, with the KPI
  definitions frozen with the release (``definitions``);
* ``indicator`` rows — the township values of the release's own period (the year, or the month)
  behind them, with the version each came from.

``canonical_values`` turns those rows into the bytes of ``values.json`` (sorted, fixed float
text): the same pins and definitions give the same bytes, which is what ``duikou release verify``
checks. The ledger keeps every version (a correction supersedes, never deletes), so the pinned
facts stay readable after any number of corrections. Pure functions except the readers.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from expectations.declaration import Declaration, Kpi
from warehouse import schema
from warehouse.marts import compute_county_kpis

COUNTY_CODE = "513323"  # 丹巴县: KPIs are county figures
VALUE_KEY = ("value_kind", "name", "period", "township_code")
VALUE_FIELDS = (*VALUE_KEY, "department", "value", "unit", "submission_id", "flagged", "coverage_used",
                "coverage_expected")
_PERIOD = {"annual": re.compile(r"^(\d{4})$"), "monthly": re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")}
FACT_COLUMNS = ("department", "indicator", "township_code", "period", "year", "value", "flagged", "submission_id")


class ReleaseError(ValueError):
    """A release request that cannot be done; the message says what and where (Chinese first)."""


@dataclass(frozen=True)
class Scope:
    kind: str
    period: str
    year: int
    month: int | None

    def feeds(self, period: str) -> bool:
        """Whether a return for ``period`` is an input: up to the release's period (an annual
        return of the release's own year does not feed a monthly release)."""
        if len(period) == 4:
            return int(period) <= self.year if self.month is None else int(period) < self.year
        return period[:4].isdigit() and (int(period[:4]) < self.year or (
            int(period[:4]) == self.year and (self.month is None or period <= self.period)))

    def shows(self, period: str) -> bool:
        """Whether a township value of ``period`` is one of the release's own figures."""
        return period[:4] == str(self.year) if self.month is None else period == self.period

    @property
    def title_zh(self) -> str:
        return f"{self.year}年" if self.month is None else f"{self.year}年{self.month}月"


def parse_scope(kind: str, period: str) -> Scope:
    if kind not in _PERIOD:
        raise ReleaseError(f"发布类型 {kind!r} 未知：应为 monthly 或 annual (release kind must be monthly or annual)")
    match = _PERIOD[kind].match(period.strip())
    if match is None:
        shape = "YYYY" if kind == "annual" else "YYYY-MM"
        raise ReleaseError(f"期别 {period!r} 不符合 {kind} 发布的格式 {shape} (period must look like {shape})")
    return Scope(kind, period.strip(), int(match.group(1)), int(match.group(2)) if kind == "monthly" else None)


def release_id_for(scope: Scope, version: int) -> str:
    return f"{scope.kind}-{scope.period}-v{version}"


# ---------------------------------------------------------------- readers
def current_inputs(conn: Connection, scope: Scope, departments: Iterable[str]) -> list[dict[str, Any]]:
    """The loaded version of every partition of ``departments`` the scope feeds on, by department, period."""
    sub = schema.submission
    rows = conn.execute(
        select(sub.c.submission_id, sub.c.department, sub.c.period, sub.c.sha256, sub.c.original_name,
               sub.c.received_at)
        .where(sub.c.status == "loaded", sub.c.department.in_(sorted(departments)))
        .order_by(sub.c.department, sub.c.period)
    ).mappings()
    return [dict(r) for r in rows if scope.feeds(str(r["period"]))]


def pinned_facts(conn: Connection, submission_ids: Sequence[str]) -> pd.DataFrame:
    """Every fact of the given versions (whatever their status now), in one fixed order."""
    fact = schema.fact_indicator_value
    frames = []
    ids = sorted(set(submission_ids))
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(*(fact.c[c] for c in FACT_COLUMNS)).where(fact.c.submission_id.in_(ids[start:start + 500]))
        ).all()
        frames.append(pd.DataFrame([tuple(r) for r in rows], columns=list(FACT_COLUMNS)))
    facts = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(FACT_COLUMNS))
    facts["value"] = pd.to_numeric(facts["value"], errors="coerce").astype("float64")
    facts["year"] = facts["year"].astype("int64")
    facts["flagged"] = facts["flagged"].map(bool)
    return facts.sort_values(["department", "indicator", "township_code", "period"], kind="stable").reset_index(
        drop=True)


def townships_frame(conn: Connection) -> pd.DataFrame:
    town = schema.ref_township
    rows = conn.execute(select(town.c.township_code, town.c.valid_from, town.c.valid_to)
                        .order_by(town.c.township_code)).all()
    return pd.DataFrame([tuple(r) for r in rows], columns=["township_code", "valid_from", "valid_to"])


# ---------------------------------------------------------------- KPI definitions, frozen
def definitions_of(kpis: Sequence[Kpi]) -> list[dict[str, Any]]:
    return [asdict(k) for k in kpis]


def kpis_from(definitions: Sequence[Mapping[str, Any]]) -> tuple[Kpi, ...]:
    names = {f.name for f in fields(Kpi)}
    return tuple(Kpi(**{k: v for k, v in d.items() if k in names}) for d in definitions)


# ---------------------------------------------------------------- freezing
def _number(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def freeze_values(
    facts: pd.DataFrame,
    townships: pd.DataFrame,
    scope: Scope,
    kpis: Sequence[Kpi],
    declarations: Mapping[str, Declaration],
    units: Mapping[tuple[str, str], str],
) -> list[dict[str, Any]]:
    """The release's rows (``VALUE_FIELDS``), sorted by ``VALUE_KEY``. Pure.

    ``facts``: the pinned versions' facts (``FACT_COLUMNS``); ``units``: (department, indicator) → base unit.
    """
    skipped: list[str] = []
    table = compute_county_kpis(facts.loc[:, ["department", "indicator", "township_code", "period", "year", "value"]],
                                townships, kpis, declarations, skipped)
    rows: list[dict[str, Any]] = []
    for rec in table.to_dict("records"):
        if int(rec["year"]) > scope.year:
            continue
        rows.append({"value_kind": "kpi", "name": str(rec["kpi"]), "period": str(int(rec["year"])),
                     "township_code": COUNTY_CODE, "department": str(rec["department"]),
                     "value": _number(rec["value"]), "unit": str(rec["unit"]), "submission_id": None,
                     "flagged": False, "coverage_used": int(rec["coverage_used"]),
                     "coverage_expected": int(rec["coverage_expected"])})
    shown = facts[facts["period"].map(scope.shows)]
    for rec in shown.to_dict("records"):
        rows.append({"value_kind": "indicator", "name": str(rec["indicator"]), "period": str(rec["period"]),
                     "township_code": str(rec["township_code"]), "department": str(rec["department"]),
                     "value": _number(rec["value"]),
                     "unit": units.get((str(rec["department"]), str(rec["indicator"])), ""),
                     "submission_id": str(rec["submission_id"]), "flagged": bool(rec["flagged"]),
                     "coverage_used": None, "coverage_expected": None})
    return sorted(rows, key=lambda r: tuple(r[k] for k in VALUE_KEY))


def _float_text(value: float | None) -> str | None:
    return None if value is None else repr(float(value))


def canonical_values(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """values.json: one JSON object per line, keys in ``VALUE_FIELDS`` order, floats as repr text."""
    ordered = sorted(rows, key=lambda r: tuple(str(r[k]) for k in VALUE_KEY))
    lines = []
    for row in ordered:
        out = {k: row[k] for k in VALUE_FIELDS}
        out["value"] = _float_text(_number(out["value"]))
        out["flagged"] = bool(out["flagged"])
        for k in ("coverage_used", "coverage_expected"):
            out[k] = None if out[k] is None or pd.isna(out[k]) else int(out[k])
        lines.append(json.dumps(out, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8")


def stored_values(conn: Connection, release_id: str) -> list[dict[str, Any]]:
    rv = schema.release_value
    rows = conn.execute(select(*(rv.c[c] for c in VALUE_FIELDS)).where(rv.c.release_id == release_id)).mappings()
    return [dict(r) for r in rows]


def unit_map(conn: Connection) -> dict[tuple[str, str], str]:
    ind = schema.ref_indicator
    return {(str(d), str(i)): str(u) for d, i, u in conn.execute(select(ind.c.department, ind.c.indicator, ind.c.unit))}


# ---------------------------------------------------------------- what moved between two versions
def _key(row: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(row[k]) for k in VALUE_KEY)


def _same(a: Any, b: Any) -> bool:
    a, b = _number(a), _number(b)
    return a == b or (a is None and b is None)


def moved_figures(old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every figure whose value differs between two releases' rows (appeared or disappeared too),
    KPIs first, then township values; each with old, new and the difference."""
    before, after = {_key(r): r for r in old}, {_key(r): r for r in new}
    out = []
    for key in sorted(set(before) | set(after), key=lambda k: (k[0] != "kpi", k)):
        a, b = before.get(key), after.get(key)
        va, vb = (None if a is None else a["value"]), (None if b is None else b["value"])
        if a is not None and b is not None and _same(va, vb):
            continue
        ref = b if b is not None else a
        assert ref is not None
        na, nb = _number(va), _number(vb)
        out.append({"value_kind": key[0], "name": key[1], "period": key[2], "township_code": key[3],
                    "department": ref["department"], "unit": ref["unit"], "old_value": na, "new_value": nb,
                    "difference": None if na is None or nb is None else nb - na,
                    "old_submission_id": None if a is None else a.get("submission_id"),
                    "new_submission_id": None if b is None else b.get("submission_id")})
    return out
