"""Read and check the department declarations (``declarations/*.yaml``) and KPI definitions.

A declaration is the single source of a return's shape: the parser's header mapping, the GX
suite, ``ref_indicator`` and ``docs/datasets.md`` are all derived from it. Adding a sixth return
is adding a YAML file here; no Python changes.
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from expectations.definitions import KPI_OVERRIDABLE, Definition, DefinitionError, definition_for, parse_definitions
from expectations.rules import RuleExpression, parse_rule_expression
from expectations.yaml_files import read_yaml

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")
PeriodType = Literal["month", "year"]
#: how an indicator adds up (see INDICATOR_KINDS and docs/warehouse.md "How indicators add up")
IndicatorKind = Literal["flow", "stock", "cumulative", "rate"]
#: kind → (over townships, over the periods of a year): what may be done to the values
INDICATOR_KINDS: dict[str, tuple[str, str]] = {
    "flow": ("sum", "sum"),  # 人次, 元 per month: add over months and townships
    "stock": ("sum", "last"),  # head counts at the period's end: the last value over time
    "cumulative": ("sum", "last"),  # 本年累计: the year's figure is its last period's value
    "rate": ("weighted_mean", "none"),  # never summed: recomputed from its parts, or weighted
}
KIND_ZH = {"flow": "流量", "stock": "存量", "cumulative": "本年累计", "rate": "比率"}
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
#: modified z-score above which a value is an outlier against its own history (Iglewicz & Hoaglin's 3.5)
DEFAULT_OUTLIER_THRESHOLD = 3.5

DECLARATIONS_DIR = Path(str(resources.files("expectations") / "declarations"))
KPIS_FILE = Path(str(resources.files("expectations") / "kpis.yaml"))
UNITS_FILE = Path(str(resources.files("warehouse") / "reference" / "units.csv"))


class DeclarationError(ValueError):
    """A declaration file is malformed; the message names the file and the field."""


def normalise_header(text: str) -> str:
    """Canonical form of a header cell: NFKC (full-width → half-width), no whitespace at all.

    ``"资助金额（本年累计，\\n万元）"`` and ``"资助金额(本年累计,万元)"`` compare equal.
    """
    folded = unicodedata.normalize("NFKC", str(text))
    folded = folded.replace("：", ":")
    return re.sub(r"\s+", "", folded)


@dataclass(frozen=True)
class Unit:
    unit: str
    base_unit: str
    factor: float


@lru_cache(maxsize=1)
def load_units() -> dict[str, Unit]:
    with UNITS_FILE.open(encoding="utf-8") as fh:
        return {
            row["unit"]: Unit(row["unit"], row["base_unit"], float(row["factor"]))
            for row in csv.DictReader(fh)
        }


@dataclass(frozen=True)
class Indicator:
    name: str
    label_zh: str
    header: tuple[str, ...]
    aliases: tuple[tuple[str, ...], ...]
    unit: str
    base_unit: str
    factor: float
    value_type: Literal["integer", "decimal", "rate"]
    required: bool
    kind: IndicatorKind
    aggregation: Literal["sum", "weighted_mean", "none"]
    weight: str | None
    min_value: float | None
    description: str
    #: history-aware checks (expectations/history_checks.py); a band is in base units here
    outlier_threshold: float | None = DEFAULT_OUTLIER_THRESHOLD
    outlier_reason: str = ""
    band: tuple[float, float] | None = None
    increment_of: str | None = None
    #: a 其中 sub-line: on a township's sub-line labelled like this indicator's header, the value
    #: in the column of ``subline_of`` is this indicator (tasks/forms/normalise.py)
    subline_of: str | None = None
    #: dated 口径 (expectations/definitions.py); one open v1 when the declaration gives none
    definitions: tuple[Definition, ...] = ()

    def definition_for(self, year: int) -> Definition | None:
        return definition_for(self.definitions, year) if self.definitions else Definition("v1", self.description)

    @property
    def cumulative(self) -> bool:
        """本年累计: a running total within the year (``kind: cumulative``)."""
        return self.kind == "cumulative"

    @property
    def over_townships(self) -> str:
        """How values add up across townships: ``sum``, ``weighted_mean`` (by ``weight``) or ``none``."""
        return self.aggregation

    @property
    def over_periods(self) -> str:
        """How a year's value follows from its periods: ``sum`` (flow), ``last`` (stock, 本年累计) or ``none``."""
        return INDICATOR_KINDS[self.kind][1]

    @property
    def header_paths(self) -> tuple[tuple[str, ...], ...]:
        """Declared header path first, then aliases, all normalised."""
        paths = (self.header, *self.aliases)
        return tuple(tuple(normalise_header(p) for p in path) for path in paths)


@dataclass(frozen=True)
class Rule:
    rule_id: str
    check: str
    expression: RuleExpression
    severity: Severity
    action: Literal["reject", "quarantine"] | None
    tolerance: float
    reason: str
    message_zh: str


#: headers of a division-code column beside (or instead of) the township name: 9- or 12-digit
#: 统计用区划代码 (a declaration's ``key.code_headers`` replaces the list)
DEFAULT_CODE_HEADERS = ("区划代码", "乡镇代码", "乡(镇)代码", "行政区划代码", "统计用区划代码", "区划编码",
                        "乡镇区划代码", "代码")
#: what a department writes for "nothing to report this period" (a declaration's ``nil_return.markers``)
DEFAULT_NIL_MARKERS = ("本月无数据", "本期无数据", "本期无", "本月无", "本年无数据", "本年度无数据", "无数据", "无")


@dataclass(frozen=True)
class KeyColumn:
    header: str
    aliases: tuple[str, ...]
    code_headers: tuple[str, ...] = DEFAULT_CODE_HEADERS

    @property
    def header_texts(self) -> tuple[str, ...]:
        return tuple(normalise_header(h) for h in (self.header, *self.aliases))

    @property
    def code_header_texts(self) -> tuple[str, ...]:
        return tuple(normalise_header(h) for h in self.code_headers)


@dataclass(frozen=True)
class NilReturn:
    """Whether this return may be filed as "nothing to report" (无数据申报), and the marker lines that say so."""

    allowed: bool = False
    markers: tuple[str, ...] = DEFAULT_NIL_MARKERS

    @property
    def marker_texts(self) -> frozenset[str]:
        return frozenset(normalise_header(m) for m in self.markers)


@dataclass(frozen=True)
class Declaration:
    dataset: str
    department: str
    title_zh: str
    period_type: PeriodType
    grain: str
    due_day: int  # day of the month after the period (annual returns: of January) the return is due
    grace_days: int  # days after the due day that still count as on time
    all_townships: bool
    key: KeyColumn
    indicators: tuple[Indicator, ...]
    rules: tuple[Rule, ...]
    source_file: str = field(default="", compare=False)
    nil_return: NilReturn = NilReturn()

    def indicator(self, name: str) -> Indicator:
        for ind in self.indicators:
            if ind.name == name:
                return ind
        raise KeyError(f"{self.dataset}: no indicator {name!r}")

    @property
    def indicator_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.indicators)


def _require(raw: dict[str, Any], key: str, where: str) -> Any:
    if key not in raw or raw[key] in (None, ""):
        raise DeclarationError(f"{where}: missing field {key!r}")
    return raw[key]


def _as_path(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DeclarationError(f"{where}: a header path is a string or a list of strings, got {value!r}")


INDICATOR_FIELDS = frozenset({
    "name", "label_zh", "header", "aliases", "unit", "base_unit", "type", "required", "kind",
    "aggregation", "weight", "min", "description",
    "outlier_threshold", "outlier_reason", "band", "increment_of",  # history-aware checks
    "subline_of",
    "definitions",  # dated 口径 (expectations/definitions.py)
})


def _parse_indicator(raw: dict[str, Any], where: str) -> Indicator:
    name = _require(raw, "name", where)
    where = f"{where} indicator {name!r}"
    if "cumulative" in raw:
        raise DeclarationError(f"{where}: 'cumulative: true' is now 'kind: cumulative'")
    unknown_fields = sorted(set(raw) - INDICATOR_FIELDS)
    if unknown_fields:
        raise DeclarationError(f"{where}: unknown fields {unknown_fields}; known: {sorted(INDICATOR_FIELDS)}")
    if not _NAME_RE.match(name):
        raise DeclarationError(f"{where}: canonical names are snake_case ASCII")
    unit_name = _require(raw, "unit", where)
    units = load_units()
    if unit_name not in units:
        raise DeclarationError(f"{where}: unit {unit_name!r} is not in reference/units.csv")
    unit = units[unit_name]
    declared_base = raw.get("base_unit", unit.base_unit)
    if declared_base != unit.base_unit:
        raise DeclarationError(
            f"{where}: base_unit {declared_base!r} disagrees with units.csv ({unit_name} → {unit.base_unit})"
        )
    value_type = raw.get("type", "decimal")
    if value_type not in ("integer", "decimal", "rate"):
        raise DeclarationError(f"{where}: type must be integer, decimal or rate")
    if value_type == "rate" and unit_name != "%":
        raise DeclarationError(f"{where}: a rate is declared in % (stored as 0–100)")
    aggregation = raw.get("aggregation", "sum")
    if aggregation not in ("sum", "weighted_mean", "none"):
        raise DeclarationError(f"{where}: aggregation must be sum, weighted_mean or none")
    weight = raw.get("weight")
    if aggregation == "weighted_mean" and not weight:
        raise DeclarationError(f"{where}: weighted_mean needs a weight indicator")
    kind = _kind(raw, unit_name, value_type, aggregation, where)
    aliases = tuple(_as_path(a, f"{where} alias") for a in raw.get("aliases", []) or [])
    threshold, reason = _outlier_threshold(raw, where)
    return Indicator(
        name=name,
        label_zh=_require(raw, "label_zh", where),
        header=_as_path(_require(raw, "header", where), where),
        aliases=aliases,
        unit=unit_name,
        base_unit=unit.base_unit,
        factor=unit.factor,
        value_type=value_type,
        required=bool(raw.get("required", True)),
        kind=kind,
        aggregation=aggregation,
        weight=weight,
        min_value=raw.get("min", 0),
        description=raw.get("description", ""),
        outlier_threshold=threshold,
        outlier_reason=reason,
        band=_band(raw.get("band"), unit.factor, where),
        increment_of=raw.get("increment_of"),
        subline_of=raw.get("subline_of"),
        definitions=_definitions(raw.get("definitions"), where, str(raw.get("description") or raw["label_zh"])),
    )


def _definitions(
    raw: Any, where: str, default_text: str, allowed_changes: tuple[str, ...] = ()
) -> tuple[Definition, ...]:
    try:
        return parse_definitions(raw, where, default_text=default_text, allowed_changes=allowed_changes)
    except DefinitionError as exc:
        raise DeclarationError(str(exc)) from exc


def _kind(raw: dict[str, Any], unit: str, value_type: str, aggregation: str, where: str) -> IndicatorKind:
    """``kind``: required, one of INDICATOR_KINDS, and consistent with the unit, type and aggregation."""
    kind = raw.get("kind")
    if kind not in INDICATOR_KINDS:
        raise DeclarationError(
            f"{where}: kind must be one of {sorted(INDICATOR_KINDS)} (flow: 人次/元 per period, summed over "
            f"months; stock: head counts, last value over time; cumulative: 本年累计; rate: never summed), "
            f"got {kind!r}"
        )
    if value_type == "rate" and kind != "rate":
        raise DeclarationError(f"{where}: a value of type rate is kind rate, not {kind}")
    if kind == "rate" and aggregation == "sum":
        raise DeclarationError(
            f"{where}: a rate is never summed over townships; declare aggregation: weighted_mean (with a weight) "
            "or none"
        )
    if kind != "rate" and aggregation != "sum":
        raise DeclarationError(f"{where}: a {kind} adds up over townships; aggregation {aggregation} is for rates")
    if kind == "stock" and unit == "人次":
        raise DeclarationError(
            f"{where}: 人次 counts events, which add up over months (kind flow, or cumulative for 本年累计); "
            "a stock is a head count (人, 户)"
        )
    return kind  # type: ignore[no-any-return]


def _outlier_threshold(raw: dict[str, Any], where: str) -> tuple[float | None, str]:
    """``outlier_threshold``: a positive number, or ``off``; any change from 3.5 needs ``outlier_reason``."""
    value = raw.get("outlier_threshold", DEFAULT_OUTLIER_THRESHOLD)
    reason = str(raw.get("outlier_reason") or "").strip()
    if value in ("off", False):
        threshold: float | None = None
    elif isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        threshold = float(value)
    else:
        raise DeclarationError(f"{where}: outlier_threshold must be a positive number or off, got {value!r}")
    if threshold != DEFAULT_OUTLIER_THRESHOLD and not reason:
        raise DeclarationError(
            f"{where}: outlier_threshold {value!r} differs from the default {DEFAULT_OUTLIER_THRESHOLD:g}; "
            "say why in outlier_reason"
        )
    if reason and "outlier_threshold" not in raw:
        raise DeclarationError(f"{where}: outlier_reason without an outlier_threshold")
    return threshold, reason


def _band(value: Any, factor: float, where: str) -> tuple[float, float] | None:
    """``band: [min, max]`` in the form's unit → base units; None when not declared."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        or not value[0] < value[1]
    ):
        raise DeclarationError(f"{where}: band must be [min, max] with two numbers, min < max; got {value!r}")
    return (float(value[0]) * factor, float(value[1]) * factor)


def _check_increment_of(ind: Indicator, indicators: tuple[Indicator, ...], where: str) -> None:
    """``increment_of``: this 本月 indicator is the month's change of a 本年累计 indicator."""
    if ind.increment_of is None:
        return
    where = f"{where} indicator {ind.name!r}"
    target = next((i for i in indicators if i.name == ind.increment_of), None)
    if target is None:
        raise DeclarationError(f"{where}: increment_of {ind.increment_of!r} is not an indicator")
    if not target.cumulative or ind.cumulative:
        raise DeclarationError(
            f"{where}: increment_of pairs a 本月 indicator with a cumulative (本年累计) one; "
            f"{ind.increment_of!r} is {'' if target.cumulative else 'not '}cumulative and {ind.name!r} "
            f"is {'' if ind.cumulative else 'not '}cumulative"
        )
    if target.base_unit != ind.base_unit:
        raise DeclarationError(
            f"{where}: increment_of {ind.increment_of!r} is in {target.base_unit}, not {ind.base_unit}"
        )


def _parse_rule(raw: dict[str, Any], where: str, names: set[str]) -> Rule:
    rule_id = _require(raw, "id", where)
    where = f"{where} rule {rule_id!r}"
    if not _NAME_RE.match(rule_id):
        raise DeclarationError(f"{where}: rule ids are snake_case ASCII")
    severity = _require(raw, "severity", where)
    if severity not in SEVERITIES:
        raise DeclarationError(f"{where}: severity must be one of {SEVERITIES}")
    action = raw.get("action")
    if severity == "critical" and action not in ("reject", "quarantine"):
        raise DeclarationError(f"{where}: a critical rule needs action: reject or quarantine")
    if severity != "critical" and action is not None:
        raise DeclarationError(f"{where}: only critical rules take an action")
    check = _require(raw, "check", where)
    try:
        expression = parse_rule_expression(check)
    except ValueError as exc:
        raise DeclarationError(f"{where}: {exc}") from exc
    unknown = expression.names - names
    if unknown:
        raise DeclarationError(f"{where}: check uses unknown indicators {sorted(unknown)}")
    return Rule(
        rule_id=rule_id,
        check=check,
        expression=expression,
        severity=severity,
        action=action,
        tolerance=float(raw.get("tolerance", 0)),
        reason=_require(raw, "reason", where),
        message_zh=_require(raw, "message_zh", where),
    )


def _day_count(raw: dict[str, Any], key: str, default: int, low: int, high: int, where: str) -> int:
    """An integer field of the obligations calendar (``due_day``, ``grace_days``) within bounds."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DeclarationError(f"{where}: {key} must be a whole number from {low} to {high}, got {value!r}")
    return value


def parse_declaration(raw: dict[str, Any], source: str) -> Declaration:
    where = source
    dataset = _require(raw, "dataset", where)
    period_type = _require(raw, "period_type", where)
    if period_type not in ("month", "year"):
        raise DeclarationError(f"{where}: period_type must be month or year")
    key_raw = _require(raw, "key", where)
    key = KeyColumn(header=_require(key_raw, "header", f"{where} key"), aliases=tuple(key_raw.get("aliases", [])),
                    code_headers=tuple(key_raw.get("code_headers") or DEFAULT_CODE_HEADERS))
    indicators = tuple(
        _parse_indicator(r, f"{where}") for r in _require(raw, "indicators", where)
    )
    names = [i.name for i in indicators]
    if len(set(names)) != len(names):
        raise DeclarationError(f"{where}: indicator names repeat")
    headers = [p for i in indicators for p in i.header_paths]
    if len(set(headers)) != len(headers):
        raise DeclarationError(f"{where}: two indicators share a header path or alias")
    for ind in indicators:
        if ind.weight and ind.weight not in names:
            raise DeclarationError(f"{where}: {ind.name} weight {ind.weight!r} is not an indicator")
        _check_increment_of(ind, indicators, where)
        if ind.subline_of is not None and ind.subline_of not in names:
            raise DeclarationError(f"{where}: {ind.name} subline_of {ind.subline_of!r} is not an indicator")
    rules = tuple(_parse_rule(r, where, set(names)) for r in raw.get("rules", []) or [])
    rule_ids = [r.rule_id for r in rules]
    if len(set(rule_ids)) != len(rule_ids):
        raise DeclarationError(f"{where}: rule ids repeat")
    return Declaration(
        dataset=dataset,
        department=_require(raw, "department", where),
        title_zh=_require(raw, "title_zh", where),
        period_type=period_type,
        grain=_require(raw, "grain", where),
        due_day=_day_count(raw, "due_day", 10, 1, 31, where),
        grace_days=_day_count(raw, "grace_days", 0, 0, 60, where),
        all_townships=bool(raw.get("all_townships", True)),
        key=key,
        indicators=indicators,
        rules=rules,
        source_file=source,
        nil_return=_nil_return(raw.get("nil_return"), where),
    )


def _nil_return(value: Any, where: str) -> NilReturn:
    """``nil_return: {allowed: true, markers: [本月无数据, 无, …]}``; absent: nil returns are refused."""
    if value is None:
        return NilReturn()
    if not isinstance(value, dict) or set(value) - {"allowed", "markers"} or not isinstance(
            value.get("allowed", False), bool):
        raise DeclarationError(f"{where}: nil_return is {{allowed: true|false, markers: [...]}}, got {value!r}")
    markers = value.get("markers") or DEFAULT_NIL_MARKERS
    if not all(isinstance(m, str) and m.strip() for m in markers):
        raise DeclarationError(f"{where}: nil_return markers are non-empty strings")
    return NilReturn(allowed=bool(value.get("allowed", False)), markers=tuple(markers))


def load_declaration(path: Path) -> Declaration:
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise DeclarationError(f"{path.name}: not a mapping")
    return parse_declaration(raw, path.name)


#: ``kind:`` of a declaration file; absent means an aggregate ``form`` (township rows)
DECLARATION_KINDS = ("form", "person_registry")


def declaration_kind(path: Path) -> str:
    """``form`` (township × period return) or ``person_registry`` (one row per person)."""
    raw = read_yaml(path)
    kind = raw.get("kind", "form") if isinstance(raw, dict) else "form"
    if kind not in DECLARATION_KINDS:
        raise DeclarationError(f"{path.name}: kind must be one of {DECLARATION_KINDS}, got {kind!r}")
    return str(kind)


@lru_cache(maxsize=4)
def load_declarations(directory: Path = DECLARATIONS_DIR) -> dict[str, Declaration]:
    """All aggregate-form declarations keyed by department id, sorted by file name.

    Person-level registries (``kind: person_registry``) are skipped here: they have columns, not
    indicators, and are read by ``expectations.registry_declaration.load_registry_declarations``.
    """
    out: dict[str, Declaration] = {}
    for path in sorted(directory.glob("*.yaml")):
        if declaration_kind(path) != "form":
            continue
        decl = load_declaration(path)
        if decl.department in out:
            raise DeclarationError(f"{path.name}: department {decl.department!r} declared twice")
        out[decl.department] = decl
    return out


def _kpi_definitions(item: dict[str, Any], where: str, decl: Declaration) -> tuple[Definition, ...]:
    if "definitions" not in item:
        return ()
    definitions = _definitions(item["definitions"], where, str(item["definition_zh"]), KPI_OVERRIDABLE)
    for version in definitions:
        for key, value in version.changes:
            if key != "scale" and value not in decl.indicator_names:
                raise DeclarationError(
                    f"{where} {version.version}: {key} {value!r} is not a {decl.department} indicator"
                )
    return definitions


KpiMethod = Literal["sum", "period_end", "weighted_mean", "ratio", "multiple_of_base", "cagr", "yoy"]
#: the indicator kinds each base method may read (a stock summed over months is refused at load)
KPI_METHOD_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "sum": {"indicator": ("flow",)},
    "period_end": {"indicator": ("stock", "cumulative")},
    "weighted_mean": {"indicator": ("rate",), "weight": ("stock", "flow", "cumulative")},
    "ratio": {"numerator": ("flow", "stock", "cumulative"), "denominator": ("flow", "stock", "cumulative")},
}
_METHOD_HINT = {
    "flow": "method: sum (over months and townships)",
    "stock": "method: period_end (each township's last value in the year, summed over townships)",
    "cumulative": "method: period_end (本年累计: the year's last value of each township)",
    "rate": "method: ratio of its numerator and denominator, or weighted_mean",
}
#: one precision per figure kind: every KPI of a kind shows the same number of decimals
FIGURE_DECIMALS = {"growth": 1, "share": 2, "multiple": 2, "amount": 0, "count": 0}


def figure_kind(method: str, unit: str) -> str:
    """growth (yoy, cagr), share (other %), multiple (倍), amount (元) or count (人, 人次, 个, 户 ...)."""
    if method in ("yoy", "cagr"):
        return "growth"
    if unit == "%":
        return "share"
    if unit == "倍":
        return "multiple"
    return "amount" if unit.endswith("元") else "count"


@dataclass(frozen=True)
class Kpi:
    kpi: str
    label_zh: str
    unit: str
    department: str
    method: KpiMethod
    decimals: int
    definition_zh: str
    display_unit: str | None = None
    indicator: str | None = None
    weight: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    scale: float = 1.0
    of: str | None = None
    base_year: int | None = None
    #: dated 口径 (expectations/definitions.py): one open v1 (``definition_zh``) when none declared
    definitions: tuple[Definition, ...] = ()

    def for_year(self, year: int) -> Kpi | None:
        """This KPI as defined for ``year`` (inputs and 口径 of the version valid then); None when
        no version covers the year."""
        if not self.definitions:
            return self
        version = definition_for(self.definitions, year)
        if version is None:
            return None
        return replace(self, definition_zh=version.definition_zh, **dict(version.changes))

    def version_for(self, year: int) -> str | None:
        if not self.definitions:
            return "v1"
        version = definition_for(self.definitions, year)
        return None if version is None else version.version
    #: false: the article gives no figure to compare with (education, health), and the card says so
    article_figure: bool = True


_KPI_NEEDS: dict[str, tuple[str, ...]] = {
    "sum": ("indicator",),
    "period_end": ("indicator",),
    "weighted_mean": ("indicator", "weight"),
    "ratio": ("numerator", "denominator"),
    "multiple_of_base": ("of", "base_year"),
    "cagr": ("of", "base_year"),
    "yoy": ("of",),
}


@lru_cache(maxsize=2)
def load_kpis(path: Path = KPIS_FILE, declarations_dir: Path = DECLARATIONS_DIR) -> tuple[Kpi, ...]:
    """The KPIs of ``path``, checked against the declarations of ``declarations_dir``: each input
    indicator exists and the method adds it up as its kind allows (``KPI_METHOD_KINDS``)."""
    raw = read_yaml(path)
    declarations = load_declarations(declarations_dir)
    kpis: list[Kpi] = []
    for item in raw["kpis"]:
        where = f"{path.name} kpi {item.get('kpi')!r}"
        method = _require(item, "method", where)
        if method not in _KPI_NEEDS:
            raise DeclarationError(f"{where}: unknown method {method!r}")
        for need in _KPI_NEEDS[method]:
            _require(item, need, where)
        department = _require(item, "department", where)
        if department not in declarations:
            raise DeclarationError(f"{where}: unknown department {department!r}")
        decl = declarations[department]
        for ref in ("indicator", "weight", "numerator", "denominator"):
            if item.get(ref) and item[ref] not in decl.indicator_names:
                raise DeclarationError(f"{where}: {ref} {item[ref]!r} is not a {department} indicator")
        _check_kinds(item, method, decl, where)
        unit = _require(item, "unit", where)
        decimals = int(item.get("decimals", FIGURE_DECIMALS[figure_kind(method, unit)]))
        if decimals != FIGURE_DECIMALS[figure_kind(method, unit)]:
            kind = figure_kind(method, unit)
            raise DeclarationError(
                f"{where}: decimals {decimals}, but every {kind} figure shows {FIGURE_DECIMALS[kind]} "
                "(one precision per figure kind)"
            )
        if item.get("of") and item["of"] not in {k.kpi for k in kpis}:
            raise DeclarationError(f"{where}: of {item['of']!r} must name a KPI declared above it")
        kpis.append(
            Kpi(
                kpi=_require(item, "kpi", where),
                label_zh=_require(item, "label_zh", where),
                unit=unit,
                department=department,
                method=method,
                decimals=decimals,
                definition_zh=_require(item, "definition_zh", where),
                display_unit=item.get("display_unit"),
                indicator=item.get("indicator"),
                weight=item.get("weight"),
                numerator=item.get("numerator"),
                denominator=item.get("denominator"),
                scale=float(item.get("scale", 1.0)),
                of=item.get("of"),
                base_year=item.get("base_year"),
                definitions=_kpi_definitions(item, where, decl),
                article_figure=bool(item.get("article_figure", True)),
            )
        )
    return tuple(kpis)


def _check_kinds(item: dict[str, Any], method: str, decl: Declaration, where: str) -> None:
    """Refuse a method that adds an indicator up against its kind (e.g. a stock summed over months)."""
    for role, allowed in KPI_METHOD_KINDS.get(method, {}).items():
        name = item.get(role)
        if not name:
            continue
        kind = decl.indicator(name).kind
        if kind not in allowed:
            raise DeclarationError(
                f"{where}: method {method} cannot take {role} {name!r}, a {kind} ({KIND_ZH[kind]}); "
                f"use {_METHOD_HINT[kind]}"
            )
