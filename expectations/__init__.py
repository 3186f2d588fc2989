"""Department declarations: one per return, and everything derived from them (rules, GX suites)."""

from expectations.declaration import (
    Declaration,
    Indicator,
    Kpi,
    Rule,
    load_declaration,
    load_declarations,
    load_kpis,
)

__all__ = [
    "Declaration",
    "Indicator",
    "Kpi",
    "Rule",
    "load_declaration",
    "load_declarations",
    "load_kpis",
]
