"""Person-level registry declarations (``kind: person_registry`` in ``declarations/*.yaml``).

A registry is one row per person, not one row per township: it has typed columns (enumerations,
a boolean, numbers, free text), a person-id column, row checks with severities and the
reconciliation of its head counts against an aggregate return. The streaming reader, the
vectorised checks, the warehouse rows and the docs all derive from this one declaration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml

from expectations.declaration import (
    DECLARATIONS_DIR,
    SEVERITIES,
    DeclarationError,
    PeriodType,
    Severity,
    _day_count,
    declaration_kind,
    load_declarations,
    normalise_header,
)

ColumnType = Literal["text", "enum", "boolean", "decimal", "trades"]
ColumnRole = Literal["name", "person_id", "township", "data"]
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: the checks the streaming validator implements (tasks/registry_checks.py); a declaration sets
#: their severity, action, parameters and messages
KNOWN_CHECKS = (
    "id_excel_mangled", "id_format", "id_check_digit", "id_birth_date", "id_sex", "id_duplicate",
    "age_band", "value_missing", "value_not_allowed", "value_not_number", "value_out_of_range",
    "township_unknown",
)
#: registry head counts a reconciliation can compare (computed per township from the rows)
RECONCILED_COUNTS = ("persons", "poor_persons")
#: the receipt's issue code of each check (expectations/issues.py describes them)
ISSUE_CODE_OF_CHECK = {
    "id_excel_mangled": "PERSON_ID_EXCEL_MANGLED",
    "id_format": "PERSON_ID_INVALID",
    "id_check_digit": "PERSON_ID_CHECK_DIGIT",
    "id_birth_date": "PERSON_ID_BIRTH_DATE",
    "id_sex": "PERSON_SEX_MISMATCH",
    "id_duplicate": "PERSON_DUPLICATE",
    "age_band": "PERSON_AGE_OUT_OF_BAND",
    "value_missing": "VALUE_REQUIRED_MISSING",
    "value_not_allowed": "VALUE_NOT_ALLOWED",
    "value_not_number": "VALUE_NOT_NUMBER",
    "value_out_of_range": "VALUE_OUT_OF_RANGE",
    "township_unknown": "TOWNSHIP_UNKNOWN",
}


@dataclass(frozen=True)
class RegistryColumn:
    name: str
    header: str
    aliases: tuple[str, ...]
    role: ColumnRole
    type: ColumnType
    required: bool
    values: tuple[str, ...] = ()
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    mid_senior: tuple[str, ...] = ()
    not_employed: tuple[str, ...] = ()
    min_value: float | None = None
    max_value: float | None = None

    @property
    def header_texts(self) -> tuple[str, ...]:
        return tuple(normalise_header(h) for h in (self.header, *self.aliases))


@dataclass(frozen=True)
class RegistryCheck:
    check_id: str
    severity: Severity
    action: Literal["reject", "quarantine"] | None
    reason: str
    message_zh: str
    params: dict[str, float] = field(default_factory=dict)

    @property
    def issue_code(self) -> str:
        return ISSUE_CODE_OF_CHECK[self.check_id]


@dataclass(frozen=True)
class Reconciliation:
    check_id: str
    count: str
    department: str
    indicator: str
    tolerance_relative: float
    severity: Severity
    reason: str
    message_zh: str


@dataclass(frozen=True)
class RegistryDeclaration:
    dataset: str
    department: str
    title_zh: str
    period_type: PeriodType
    grain: str
    due_day: int  # day of the month after the snapshot month the snapshot is due
    grace_days: int  # days after the due day that still count as on time
    #: months whose snapshot the obligations calendar expects (a monthly registry may be owed
    #: quarterly); a snapshot of another month is accepted but not expected
    snapshot_months: tuple[int, ...]
    columns: tuple[RegistryColumn, ...]
    checks: tuple[RegistryCheck, ...]
    reconciliations: tuple[Reconciliation, ...]
    source_file: str = field(default="", compare=False)

    def column(self, name: str) -> RegistryColumn:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"{self.dataset}: no column {name!r}")

    def role(self, role: ColumnRole) -> RegistryColumn:
        return next(c for c in self.columns if c.role == role)

    def check(self, check_id: str) -> RegistryCheck:
        for chk in self.checks:
            if chk.check_id == check_id:
                return chk
        raise KeyError(f"{self.dataset}: no check {check_id!r}")


def _require(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise DeclarationError(f"{where}: missing field {key!r}")
    return raw[key]


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or []))


def _parse_column(raw: dict[str, Any], where: str) -> RegistryColumn:
    name = _require(raw, "name", where)
    where = f"{where} column {name!r}"
    if not _NAME_RE.match(name):
        raise DeclarationError(f"{where}: canonical names are snake_case ASCII")
    role = raw.get("role", "data")
    if role not in ("name", "person_id", "township", "data"):
        raise DeclarationError(f"{where}: role must be name, person_id, township or data")
    col_type = raw.get("type", "text")
    if col_type not in ("text", "enum", "boolean", "decimal", "trades"):
        raise DeclarationError(f"{where}: type must be text, enum, boolean, decimal or trades")
    values = _texts(raw.get("values"))
    if col_type == "enum" and not values:
        raise DeclarationError(f"{where}: an enum lists its values")
    mid_senior = _texts(raw.get("mid_senior"))
    if set(mid_senior) - set(values) or set(_texts(raw.get("not_employed"))) - set(values):
        raise DeclarationError(f"{where}: mid_senior / not_employed must be among the values")
    true_values, false_values = _texts(raw.get("true_values")), _texts(raw.get("false_values"))
    if col_type == "boolean" and (not true_values or not false_values):
        raise DeclarationError(f"{where}: a boolean lists true_values and false_values")
    return RegistryColumn(
        name=name,
        header=str(_require(raw, "header", where)),
        aliases=_texts(raw.get("aliases")),
        role=role,
        type=col_type,
        required=bool(raw.get("required", True)),
        values=values,
        true_values=true_values,
        false_values=false_values,
        mid_senior=mid_senior,
        not_employed=_texts(raw.get("not_employed")),
        min_value=raw.get("min"),
        max_value=raw.get("max"),
    )


def _parse_check(raw: dict[str, Any], where: str) -> RegistryCheck:
    check_id = _require(raw, "id", where)
    where = f"{where} check {check_id!r}"
    if check_id not in KNOWN_CHECKS:
        raise DeclarationError(f"{where}: unknown check; known: {', '.join(KNOWN_CHECKS)}")
    severity = _require(raw, "severity", where)
    if severity not in SEVERITIES:
        raise DeclarationError(f"{where}: severity must be one of {SEVERITIES}")
    action = raw.get("action")
    if severity == "critical" and action not in ("reject", "quarantine"):
        raise DeclarationError(f"{where}: a critical check needs action: reject or quarantine")
    if severity != "critical" and action is not None:
        raise DeclarationError(f"{where}: only critical checks take an action")
    reserved = {"id", "severity", "action", "reason", "message_zh"}
    params = {k: float(v) for k, v in raw.items() if k not in reserved}
    return RegistryCheck(check_id, severity, action, _require(raw, "reason", where),
                         _require(raw, "message_zh", where), params)


def _parse_reconciliation(raw: dict[str, Any], where: str) -> Reconciliation:
    check_id = _require(raw, "id", where)
    where = f"{where} reconciliation {check_id!r}"
    count = _require(raw, "count", where)
    if count not in RECONCILED_COUNTS:
        raise DeclarationError(f"{where}: count must be one of {RECONCILED_COUNTS}")
    against = _require(raw, "against", where)
    department = _require(against, "department", where)
    indicator = _require(against, "indicator", where)
    forms = load_declarations()
    if department not in forms or indicator not in forms[department].indicator_names:
        raise DeclarationError(f"{where}: {department}.{indicator} is not a declared indicator")
    severity = _require(raw, "severity", where)
    if severity not in ("warning", "info"):
        raise DeclarationError(f"{where}: a reconciliation warns or informs; it never blocks a load")
    tolerance = float(_require(raw, "tolerance_relative", where))
    if not 0 <= tolerance < 1:
        raise DeclarationError(f"{where}: tolerance_relative is a fraction in [0, 1)")
    return Reconciliation(check_id, count, department, indicator, tolerance, severity,
                          _require(raw, "reason", where), _require(raw, "message_zh", where))


def parse_registry_declaration(raw: dict[str, Any], source: str) -> RegistryDeclaration:
    where = source
    if raw.get("kind") != "person_registry":
        raise DeclarationError(f"{where}: not a person_registry declaration")
    period_type = _require(raw, "period_type", where)
    if period_type not in ("month", "year"):
        raise DeclarationError(f"{where}: period_type must be month or year")
    columns = tuple(_parse_column(c, where) for c in _require(raw, "columns", where))
    names = [c.name for c in columns]
    if len(set(names)) != len(names):
        raise DeclarationError(f"{where}: column names repeat")
    headers = [h for c in columns for h in c.header_texts]
    if len(set(headers)) != len(headers):
        raise DeclarationError(f"{where}: two columns share a header or alias")
    for role in ("person_id", "township"):
        if sum(1 for c in columns if c.role == role) != 1:
            raise DeclarationError(f"{where}: exactly one column has role {role}")
    if not any(c.name == "sex" and c.values for c in columns):
        raise DeclarationError(f"{where}: the ID checks need an enum column named sex (男/女)")
    checks = tuple(_parse_check(c, where) for c in _require(raw, "checks", where))
    missing = set(KNOWN_CHECKS) - {c.check_id for c in checks}
    if missing:
        raise DeclarationError(f"{where}: checks not declared: {sorted(missing)}")
    reconciliations = tuple(_parse_reconciliation(r, where) for r in raw.get("reconciliation", []) or [])
    months = raw.get("snapshot_months", list(range(1, 13)) if period_type == "month" else [])
    if period_type == "year" and months:
        raise DeclarationError(f"{where}: snapshot_months is for monthly registries only")
    if not isinstance(months, list) or any(isinstance(m, bool) or not isinstance(m, int) or not 1 <= m <= 12
                                           for m in months) or len(set(months)) != len(months):
        raise DeclarationError(f"{where}: snapshot_months must list distinct months 1–12, got {months!r}")
    if period_type == "month" and not months:
        raise DeclarationError(f"{where}: snapshot_months lists at least one month")
    return RegistryDeclaration(
        dataset=_require(raw, "dataset", where),
        department=_require(raw, "department", where),
        title_zh=_require(raw, "title_zh", where),
        period_type=period_type,
        grain=_require(raw, "grain", where),
        due_day=_day_count(raw, "due_day", 10, 1, 31, where),
        grace_days=_day_count(raw, "grace_days", 0, 0, 60, where),
        snapshot_months=tuple(sorted(months)),
        columns=columns,
        checks=checks,
        reconciliations=reconciliations,
        source_file=source,
    )


@lru_cache(maxsize=4)
def load_registry_declarations(directory: Path = DECLARATIONS_DIR) -> dict[str, RegistryDeclaration]:
    """Every ``kind: person_registry`` declaration, keyed by department id."""
    out: dict[str, RegistryDeclaration] = {}
    for path in sorted(directory.glob("*.yaml")):
        if declaration_kind(path) != "person_registry":
            continue
        with path.open(encoding="utf-8") as fh:
            decl = parse_registry_declaration(yaml.safe_load(fh), path.name)
        if decl.department in out:
            raise DeclarationError(f"{path.name}: department {decl.department!r} declared twice")
        out[decl.department] = decl
    return out
