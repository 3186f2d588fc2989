"""Person-level registry declarations (``kind: person_registry`` in ``declarations/*.yaml``).

A registry is one row per person, not one row per township: it has typed columns (enumerations,
booleans, numbers, dates, lists, free text), a person-id column, row checks with severities and
the reconciliation of its head counts against an aggregate return. The streaming reader, the
vectorised checks (``tasks/registry/checks.py``), the warehouse rows and the docs all derive from
this one declaration: no code names a registry's columns, so a new registry is a new YAML file.

The vocabulary of a column (every key but ``name`` and ``header`` optional):

* ``role`` — ``name`` (checked for presence, never stored), ``person_id`` (a 公民身份号码, GB
  11643: shape, Excel damage, check digit, birth date; replaced by the HMAC person key, birth
  year and age derived), ``township`` (resolved to ``township_code`` at the snapshot), ``data``
  (the default), or a *mart role* (``MART_ROLES``) telling the registry marts which column means
  what: ``sex`` (the ID's 17th digit is checked against it, ``male``/``female`` name its values),
  ``poor_household``, ``trainings`` (a list: each item one 人次), ``certificate`` (``mid_senior``,
  ``not_held``), ``employment`` (``not_employed``), ``education``. A mart-role column carries the
  name of its ``fact_person`` column (``MART_ROLES``).
* ``type`` — ``text``, ``enum`` (``values``, optional ``value_aliases: {alias: value}`` read as the
  value), ``boolean`` (``true_values``, ``false_values``), ``decimal`` / ``integer`` (optional
  ``min``/``max``), ``date`` (YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD or YYYYMMDD; optional ``min``/``max``
  dates), ``list`` (items separated by 、,，;；/).
* ``required`` (default true) — a blank cell fails ``value_missing``; ``unique`` — a repeated value
  fails ``id_duplicate`` (person id) or ``value_duplicate``; ``age_band`` on the person id —
  ``{min, max}`` or ``{min, max_male, max_female}`` (sex from the ID's 17th digit).

Each check kind (``KNOWN_CHECKS``) a column uses is declared once under ``checks:`` with its
severity, action, reason and message; a check declared but used by no column is an error, as is a
used one left undeclared. Storage (``tasks/registry/checks.py``): a column goes to the
``fact_person`` column of its name when there is one, otherwise into ``fact_person.attributes``
(a JSON object, column name → value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

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
from expectations.yaml_files import read_yaml

ColumnType = Literal["text", "enum", "boolean", "decimal", "integer", "date", "list"]
COLUMN_TYPES: tuple[ColumnType, ...] = ("text", "enum", "boolean", "decimal", "integer", "date", "list")
#: mart role → the ``fact_person`` column that holds it and the type it needs
MART_ROLES: dict[str, tuple[str, ColumnType]] = {
    "sex": ("sex", "enum"),
    "poor_household": ("poor_household", "boolean"),
    "trainings": ("training_trades", "list"),
    "certificate": ("certificate_level", "enum"),
    "employment": ("employment_status", "enum"),
    "education": ("education_level", "enum"),
}
ColumnRole = str  # name / person_id / township / data / a key of MART_ROLES
ROLES = ("name", "person_id", "township", "data", *MART_ROLES)
#: fact_person columns the reader derives: a declared column may not take these names
DERIVED_COLUMNS = ("submission_id", "source_row", "person_key", "township_code", "birth_year", "age_years",
                   "training_person_times", "flagged", "attributes")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: the check kinds the streaming validator implements (tasks/registry/checks.py); a declaration sets
#: their severity, action and messages, its columns say where each applies
KNOWN_CHECKS = (
    "id_excel_mangled", "id_format", "id_check_digit", "id_birth_date", "id_sex", "id_duplicate",
    "age_band", "value_missing", "value_not_allowed", "value_not_number", "value_out_of_range",
    "township_unknown", "value_not_integer", "value_not_date", "value_duplicate",
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
    "value_not_integer": "VALUE_NOT_INTEGER",
    "value_not_date": "VALUE_NOT_DATE",
    "value_duplicate": "VALUE_DUPLICATE",
}
_ID_CHECKS = ("id_excel_mangled", "id_format", "id_check_digit", "id_birth_date")


@dataclass(frozen=True)
class AgeBand:
    """Plausible ages at the snapshot, from the ID's birth date (the maximum may differ by sex)."""

    min_age: int
    max_male: int
    max_female: int


@dataclass(frozen=True)
class RegistryColumn:
    name: str
    header: str
    aliases: tuple[str, ...]
    role: ColumnRole
    type: ColumnType
    required: bool
    values: tuple[str, ...] = ()
    value_aliases: tuple[tuple[str, str], ...] = ()  # (alias, value) of an enum
    true_values: tuple[str, ...] = ()
    false_values: tuple[str, ...] = ()
    mid_senior: tuple[str, ...] = ()
    not_held: tuple[str, ...] = ()
    not_employed: tuple[str, ...] = ()
    male: str | None = None
    female: str | None = None
    min_value: float | None = None
    max_value: float | None = None
    min_date: date | None = None
    max_date: date | None = None
    unique: bool = False
    age_band: AgeBand | None = None

    @property
    def header_texts(self) -> tuple[str, ...]:
        return tuple(normalise_header(h) for h in (self.header, *self.aliases))

    @property
    def has_range(self) -> bool:
        return any(v is not None for v in (self.min_value, self.max_value, self.min_date, self.max_date))

    def checks(self) -> tuple[str, ...]:
        """The check kinds this column runs, in the order the validator runs them."""
        out: list[str] = []
        if self.role == "person_id":
            out += ["value_missing", *_ID_CHECKS]
        elif self.required:
            out.append("value_missing")
        if self.type in ("enum", "boolean"):
            out.append("value_not_allowed")
        elif self.type == "decimal":
            out.append("value_not_number")
        elif self.type == "integer":
            out.append("value_not_integer")
        elif self.type == "date":
            out.append("value_not_date")
        if self.has_range:
            out.append("value_out_of_range")
        if self.role == "township":
            out.append("township_unknown")
        if self.role == "sex":
            out.append("id_sex")  # the stated sex against the ID's 17th digit
        if self.role == "person_id" and self.age_band is not None:
            out.append("age_band")
        if self.unique:
            out.append("id_duplicate" if self.role == "person_id" else "value_duplicate")
        return tuple(out)


@dataclass(frozen=True)
class RegistryCheck:
    check_id: str
    severity: Severity
    action: Literal["reject", "quarantine"] | None
    reason: str
    message_zh: str

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

    def with_role(self, role: ColumnRole) -> RegistryColumn | None:
        """The column with this (mart) role, or None when the registry has none."""
        return next((c for c in self.columns if c.role == role), None)

    def check(self, check_id: str) -> RegistryCheck:
        for chk in self.checks:
            if chk.check_id == check_id:
                return chk
        raise KeyError(f"{self.dataset}: no check {check_id!r}")

    def columns_checked_by(self, check_id: str) -> tuple[RegistryColumn, ...]:
        """The columns a check kind runs on (docs and the declaration's own consistency test)."""
        return tuple(c for c in self.columns if check_id in c.checks())


def _require(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise DeclarationError(f"{where}: missing field {key!r}")
    return raw[key]


def _texts(value: Any) -> tuple[str, ...]:
    return tuple(str(v) for v in (value or []))


def _number(raw: dict[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DeclarationError(f"{where}: {key} must be a number, got {value!r}")
    return float(value)


def _date(raw: dict[str, Any], key: str, where: str) -> date | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, date):
        raise DeclarationError(f"{where}: {key} must be a date (YYYY-MM-DD), got {value!r}")
    return value


def _age_band(raw: Any, where: str) -> AgeBand | None:
    if raw is None:
        return None
    maxima = ({"max"}, {"max_male", "max_female"})
    if not isinstance(raw, dict) or "min" not in raw or not any(m <= set(raw) for m in maxima):
        raise DeclarationError(f"{where}: age_band is {{min, max}} or {{min, max_male, max_female}}")
    unknown = set(raw) - {"min", "max", "max_male", "max_female"}
    if unknown:
        raise DeclarationError(f"{where}: age_band does not know {sorted(unknown)}")
    try:
        low = int(raw["min"])
        male = int(raw["max_male"] if "max_male" in raw else raw["max"])
        female = int(raw["max_female"] if "max_female" in raw else raw["max"])
    except (TypeError, ValueError) as exc:
        raise DeclarationError(f"{where}: age_band ages are whole numbers") from exc
    if not 0 <= low <= min(male, female):
        raise DeclarationError(f"{where}: age_band min must be ≥ 0 and ≤ the maxima")
    return AgeBand(low, male, female)


_COLUMN_KEYS = {
    "name", "header", "aliases", "role", "type", "required", "values", "value_aliases", "true_values",
    "false_values", "mid_senior", "not_held", "not_employed", "male", "female", "min", "max", "unique", "age_band",
}


def _parse_column(raw: dict[str, Any], where: str) -> RegistryColumn:
    name = _require(raw, "name", where)
    where = f"{where} column {name!r}"
    if not _NAME_RE.match(name):
        raise DeclarationError(f"{where}: canonical names are snake_case ASCII")
    unknown = set(raw) - _COLUMN_KEYS
    if unknown:
        raise DeclarationError(f"{where}: unknown keys {sorted(unknown)}; a column knows {sorted(_COLUMN_KEYS)}")
    if name in DERIVED_COLUMNS:
        raise DeclarationError(f"{where}: {name} is derived by the reader (fact_person), not a declared column")
    role = raw.get("role", "data")
    if role not in ROLES:
        raise DeclarationError(f"{where}: role must be one of {', '.join(ROLES)}")
    col_type = raw.get("type", MART_ROLES[role][1] if role in MART_ROLES else "text")
    if col_type not in COLUMN_TYPES:
        raise DeclarationError(f"{where}: type must be one of {', '.join(COLUMN_TYPES)}")
    if role in MART_ROLES and (name, col_type) != MART_ROLES[role]:
        stored, needed = MART_ROLES[role]
        raise DeclarationError(f"{where}: a column with role {role} is the {needed} column named {stored} "
                               f"(fact_person.{stored}, which the registry marts count)")
    if role in ("name", "person_id", "township") and col_type != "text":
        raise DeclarationError(f"{where}: a {role} column is text")
    values = _texts(raw.get("values"))
    if (col_type == "enum") != bool(values):
        raise DeclarationError(f"{where}: an enum lists its values (and only an enum does)")
    value_aliases = raw.get("value_aliases") or {}
    if not isinstance(value_aliases, dict) or (value_aliases and col_type != "enum"):
        raise DeclarationError(f"{where}: value_aliases maps alias → value, for an enum")
    aliases = tuple((str(k), str(v)) for k, v in value_aliases.items())
    if any(v not in values for _, v in aliases) or any(a in values for a, _ in aliases):
        raise DeclarationError(f"{where}: each value alias names a declared value and is not one itself")
    mid_senior, not_held, not_employed = (_texts(raw.get(k)) for k in ("mid_senior", "not_held", "not_employed"))
    if set(mid_senior) - set(values) or set(not_held) - set(values) or set(not_employed) - set(values):
        raise DeclarationError(f"{where}: mid_senior / not_held / not_employed must be among the values")
    if ((mid_senior or not_held) and role != "certificate") or (not_employed and role != "employment"):
        raise DeclarationError(f"{where}: mid_senior / not_held belong to role certificate, not_employed to "
                               "role employment")
    male, female = raw.get("male"), raw.get("female")
    if (role == "sex") != (male is not None and female is not None) or (
            role == "sex" and (str(male) not in values or str(female) not in values or male == female)):
        raise DeclarationError(f"{where}: the sex column (and only it) names its male and female values")
    true_values, false_values = _texts(raw.get("true_values")), _texts(raw.get("false_values"))
    if (col_type == "boolean") != bool(true_values and false_values):
        raise DeclarationError(f"{where}: a boolean lists true_values and false_values (and only a boolean does)")
    if col_type == "date":
        min_date, max_date, min_value, max_value = _date(raw, "min", where), _date(raw, "max", where), None, None
    else:
        min_date = max_date = None
        min_value, max_value = _number(raw, "min", where), _number(raw, "max", where)
        if (min_value is not None or max_value is not None) and col_type not in ("decimal", "integer"):
            raise DeclarationError(f"{where}: min / max are for decimal, integer and date columns")
    age_band = _age_band(raw.get("age_band"), where)
    if age_band is not None and role != "person_id":
        raise DeclarationError(f"{where}: age_band belongs to the person_id column (ages come from the ID)")
    unique = raw.get("unique", False)
    if not isinstance(unique, bool):
        raise DeclarationError(f"{where}: unique is true or false")
    required = raw.get("required", True)
    if not isinstance(required, bool) or (role in ("name", "person_id", "township") and not required):
        raise DeclarationError(f"{where}: required is true or false (the name, ID and township are required)")
    return RegistryColumn(
        name=name,
        header=str(_require(raw, "header", where)),
        aliases=_texts(raw.get("aliases")),
        role=role,
        type=col_type,
        required=required,
        values=values,
        value_aliases=aliases,
        true_values=true_values,
        false_values=false_values,
        mid_senior=mid_senior,
        not_held=not_held,
        not_employed=not_employed,
        male=None if male is None else str(male),
        female=None if female is None else str(female),
        min_value=min_value,
        max_value=max_value,
        min_date=min_date,
        max_date=max_date,
        unique=unique,
        age_band=age_band,
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
    unknown = set(raw) - {"id", "severity", "action", "reason", "message_zh"}
    if unknown:
        raise DeclarationError(f"{where}: unknown keys {sorted(unknown)} (a check's parameters belong to its "
                               "columns, e.g. age_band on the person_id column, min/max on a number)")
    return RegistryCheck(check_id, severity, action, _require(raw, "reason", where),
                         _require(raw, "message_zh", where))


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
    for role in MART_ROLES:
        if sum(1 for c in columns if c.role == role) > 1:
            raise DeclarationError(f"{where}: at most one column has role {role}")
    checks = tuple(_parse_check(c, where) for c in _require(raw, "checks", where))
    declared = [c.check_id for c in checks]
    if len(set(declared)) != len(declared):
        raise DeclarationError(f"{where}: a check is declared twice")
    used = {check_id for c in columns for check_id in c.checks()}
    if used - set(declared):
        raise DeclarationError(f"{where}: checks not declared: {sorted(used - set(declared))} (the columns use them)")
    if set(declared) - used:
        raise DeclarationError(f"{where}: checks declared but used by no column: {sorted(set(declared) - used)}")
    reconciliations = tuple(_parse_reconciliation(r, where) for r in raw.get("reconciliation", []) or [])
    if any(r.count == "poor_persons" for r in reconciliations) and not any(c.role == "poor_household"
                                                                            for c in columns):
        raise DeclarationError(f"{where}: poor_persons is counted from the column with role poor_household")
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
    """Every ``kind: person_registry`` declaration in ``directory``, keyed by department id.

    The production path reads the package's ``declarations/`` (cached); a test or a tool passes
    another directory to read registries declared elsewhere (cached per directory).
    """
    out: dict[str, RegistryDeclaration] = {}
    for path in sorted(directory.glob("*.yaml")):
        if declaration_kind(path) != "person_registry":
            continue
        decl = parse_registry_declaration(read_yaml(path), path.name)
        if decl.department in out:
            raise DeclarationError(f"{path.name}: department {decl.department!r} declared twice")
        out[decl.department] = decl
    return out
