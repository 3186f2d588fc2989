"""Dated definitions (口径): an indicator's or a KPI's meaning, version by version.

A declaration may give an indicator (``expectations/declarations/*.yaml``) or a KPI
(``expectations/kpis.yaml``) a ``definitions:`` list::

    definitions:
      - version: v1
        valid_to: 2018-12-31
        definition_zh: 农业户籍人口(户籍登记为农业户口的人数)
      - version: v2
        valid_from: 2019-01-01
        definition_zh: 乡村户籍人口(户籍制度改革后不再区分农业、非农业户口)

Versions are in date order, do not overlap and leave no gap; the first may be open at the start,
the last open at the end. A KPI's versions may also change its inputs (``indicator``, ``weight``,
``numerator``, ``denominator``, ``scale``) from a year on. A figure is computed with the version
valid for its period; a KPI's or an indicator's version boundaries fall on year boundaries (a
yearly figure never mixes two definitions). A series crossing a change carries both versions
(``mart_county_kpi_yearly.definition_version``) and a growth rate across it is refused, not
computed (``warehouse.marts``). Without ``definitions:`` a declaration has one version, ``v1``,
valid always, whose text is its ``definition_zh`` (KPIs) or ``description`` (indicators).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from itertools import pairwise
from typing import Any

#: fields of a KPI that a dated definition may change from its valid_from on
KPI_OVERRIDABLE = ("indicator", "weight", "numerator", "denominator", "scale")


class DefinitionError(ValueError):
    """A ``definitions:`` list that cannot be used (overlap, gap, mid-year boundary, unknown field)."""


@dataclass(frozen=True)
class Definition:
    """One version of a definition: valid from ``valid_from`` to ``valid_to`` (``None`` = open)."""

    version: str
    definition_zh: str
    valid_from: date | None = None
    valid_to: date | None = None
    changes: tuple[tuple[str, Any], ...] = field(default=())  # KPI inputs this version changes

    def covers(self, day: date) -> bool:
        return (self.valid_from is None or self.valid_from <= day) and (self.valid_to is None or day <= self.valid_to)

    def span_zh(self) -> str:
        """2019年起 / 2018年及以前 / 2016–2018年 / 始终."""
        if self.valid_from is None and self.valid_to is None:
            return "始终有效"
        if self.valid_to is None:
            return f"{_day_zh(self.valid_from)}起"  # type: ignore[arg-type]
        if self.valid_from is None:
            return f"至{_day_zh(self.valid_to)}"
        return f"{_day_zh(self.valid_from)}至{_day_zh(self.valid_to)}"


def _day_zh(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _as_date(value: Any, where: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise DefinitionError(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from exc


def parse_definitions(
    raw: Any, where: str, *, default_text: str, allowed_changes: Sequence[str] = ()
) -> tuple[Definition, ...]:
    """The ``definitions:`` list of a declaration, checked; one open ``v1`` when absent."""
    if raw is None:
        return (Definition("v1", default_text),)
    if not isinstance(raw, list) or not raw:
        raise DefinitionError(f"{where}: definitions is a non-empty list")
    out: list[Definition] = []
    for position, item in enumerate(raw, start=1):
        here = f"{where} definitions[{position}]"
        if not isinstance(item, dict):
            raise DefinitionError(f"{here}: each version is a mapping")
        known = {"version", "valid_from", "valid_to", "definition_zh", *allowed_changes}
        unknown = sorted(set(item) - known)
        if unknown:
            raise DefinitionError(f"{here}: unknown fields {unknown}; known: {sorted(known)}")
        version, text = item.get("version"), item.get("definition_zh")
        if not version or not text:
            raise DefinitionError(f"{here}: version and definition_zh are required")
        begins, ends = _as_date(item.get("valid_from"), here), _as_date(item.get("valid_to"), here)
        if begins is not None and (begins.month, begins.day) != (1, 1):
            raise DefinitionError(
                f"{here}: valid_from {begins} must be 1 January (a yearly figure never mixes two definitions)"
            )
        if ends is not None and (ends.month, ends.day) != (12, 31):
            raise DefinitionError(
                f"{here}: valid_to {ends} must be 31 December (a yearly figure never mixes two definitions)"
            )
        if begins and ends and ends < begins:
            raise DefinitionError(f"{here}: valid_to {ends} is before valid_from {begins}")
        changes = tuple((key, item[key]) for key in allowed_changes if key in item)
        out.append(Definition(str(version), str(text).strip(), begins, ends, changes))
    for before, after in pairwise(out):
        if before.valid_to is None or after.valid_from is None:
            raise DefinitionError(f"{where}: only the first version may be open at the start and the last at the end")
        if (after.valid_from - before.valid_to).days != 1:
            raise DefinitionError(
                f"{where}: {before.version} ends {before.valid_to} and {after.version} begins {after.valid_from}: "
                "versions must follow each other without gap or overlap"
            )
    if len({d.version for d in out}) != len(out):
        raise DefinitionError(f"{where}: version names repeat")
    return tuple(out)


def definition_for(definitions: Sequence[Definition], year: int) -> Definition | None:
    """The version valid for the calendar year (versions change on year boundaries only)."""
    for definition in definitions:
        if definition.covers(date(year, 1, 1)):
            return definition
    return None
