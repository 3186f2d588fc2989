"""``docs/datasets.md`` as a whole: the forms' sections (``expectations.docs``) and the person-level
registries' sections, which are rendered here because they also say where each column goes in the
warehouse (``fact_person``) and which marts are built from it — both from ``warehouse.schema``.

Everything in a registry's section comes from its declaration (``kind: person_registry``): the
columns with their roles, types and enumerations, the row checks with severity, action and issue
code, the reporting obligation (``snapshot_months``, ``due_day``, ``grace_days``), the township
coverage rule and the reconciliation with its tolerance. ``tests/forms/test_declarations.py`` fails when
the committed page differs from :func:`render_datasets_docs`; ``duikou docs`` rewrites it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from expectations.cross_checks import CrossCheck
from expectations.declaration import Declaration, Kpi, load_declarations, load_kpis
from expectations.docs import render_datasets_markdown
from expectations.markdown import markdown_cell
from expectations.obligations import ALL_MONTHS, obligation, owed_months
from expectations.registry_declaration import RegistryColumn, RegistryDeclaration, load_registry_declarations
from warehouse import schema

#: an example period for the obligation line (the calendar's arithmetic shown, not described)
_EXAMPLE_YEAR = 2017


def _stored_as(col: RegistryColumn) -> str:
    person = schema.fact_person.c
    if col.role == "name":
        return "**not stored** (checked for presence only; never logged or shown)"
    if col.role == "person_id":
        return ("**not stored**: `person_key` = HMAC-SHA256(`DUIKOU_PERSON_KEY`, ID); "
                "`birth_year`, `age_years` derived (the birth date is not kept)")
    if col.role == "township":
        return "`township_code` (resolved with the dated aliases at the snapshot)"
    if col.name not in person:
        return f"`attributes` → `{col.name}` (JSON)"
    extra = " + `training_person_times` (one 人次 per item listed)" if col.role == "trainings" else ""
    return f"`{col.name}`{extra}"


def _range(low: object, high: object) -> str:
    def text(value: object) -> str:
        return "—" if value is None else f"{value:g}" if isinstance(value, float) else str(value)
    return f"{text(low)} … {text(high)}"


def _values(col: RegistryColumn) -> str:
    parts: list[str] = []
    if col.type == "enum":
        text = "、".join(col.values)
        if col.value_aliases:
            text += " (read as: " + ", ".join(f"{a} → {v}" for a, v in col.value_aliases) + ")"
        if col.male is not None:
            text += f" (male {col.male}, female {col.female})"
        if col.mid_senior:
            text += f" (中级工 and above: {'、'.join(col.mid_senior)})"
        if col.not_held:
            text += f" (no certificate: {'、'.join(col.not_held)})"
        if col.not_employed:
            text += f" (not employed: {'、'.join(col.not_employed)})"
        parts.append(text)
    elif col.type == "boolean":
        parts.append(f"true: {', '.join(col.true_values)}; false: {', '.join(col.false_values)}")
    elif col.type in ("decimal", "integer"):
        kind = "number" if col.type == "decimal" else "whole number"
        parts.append(f"{kind}, plausible {_range(col.min_value, col.max_value)}" if col.has_range else kind)
    elif col.type == "date":
        parts.append(f"date, plausible {_range(col.min_date, col.max_date)}" if col.has_range else "date")
    elif col.type == "list":
        parts.append("items listed (、,，;；/)" + (" — each one 人次 of training" if col.role == "trainings" else ""))
    elif col.role == "person_id":
        parts.append("GB 11643 ID number")
    else:
        parts.append("text")
    if col.age_band is not None:
        band = col.age_band
        ages = (f"{band.min_age}–{band.max_male}" if band.max_male == band.max_female
                else f"{band.min_age}–{band.max_male} (men) / {band.min_age}–{band.max_female} (women)")
        parts.append(f"age band {ages}")
    if col.unique:
        parts.append("unique")
    return "; ".join(parts)


def _cadence(decl: RegistryDeclaration) -> str:
    months = owed_months(decl)
    if decl.period_type == "year":
        return "one snapshot per year"
    if months == ALL_MONTHS:
        return "one snapshot per month"
    if months == (3, 6, 9, 12):
        return "one snapshot per quarter, as of the quarter's last month (months 3, 6, 9, 12)"
    return f"one snapshot for each of months {', '.join(str(m) for m in months)}"


def _obligation_lines(decl: RegistryDeclaration) -> list[str]:
    months = owed_months(decl)
    period = str(_EXAMPLE_YEAR) if not months else f"{_EXAMPLE_YEAR}-{months[max(0, len(months) - 2)]:02d}"
    duty = obligation(decl, period)
    return [
        f"- reporting obligation (`mart_completeness`): **{_cadence(decl)}**, due day {decl.due_day} of the "
        f"following month, {decl.grace_days} grace day(s) — e.g. the {period} snapshot is due "
        f"{duty.due_date.isoformat()}, on time when first received by {duty.deadline.isoformat()}, late after, "
        "missing when nothing has arrived by then (alerted like a form: `duikou.returns.missing`). "
        + ("A snapshot of another month is accepted and reconciled but not expected (`expected` = 0)."
           if months not in ((), ALL_MONTHS) else ""),
        "- township completeness (`mart_completeness_township`): a snapshot is county-wide, so every township "
        "valid in the period is expected; a township counts as reported when the loaded snapshot lists at least "
        "one person there (`values_reported` = people listed, from `mart_registry_township`).",
    ]


def _column_lines(decl: RegistryDeclaration) -> list[str]:
    lines = [
        "",
        "Columns, their types, enumerations and per-column checks — all from the declaration (the check "
        "kinds are run by generic code; a new registry is a new YAML file). A mart role names the column "
        "the registry marts count.",
        "",
        "| column | header (aliases) | role | type | required | values | stored in `fact_person` as |",
        "|---|---|---|---|---|---|---|",
    ]
    for col in decl.columns:
        header = col.header + (f" ({', '.join(col.aliases)})" if col.aliases else "")
        lines.append(
            f"| `{col.name}` | {markdown_cell(header)} | {col.role} | {col.type} | {'yes' if col.required else 'no'} | "
            f"{markdown_cell(_values(col))} | {markdown_cell(_stored_as(col))} |"
        )
    return lines


def _check_lines(decl: RegistryDeclaration) -> list[str]:
    lines = [
        "",
        "Row checks: every one runs as a GX Core suite over every row (chunk by chunk, family expectations "
        "whose metrics are vectorised; uniqueness over all rows' keys after the last chunk), and GX's results "
        "decide: the highest failed severity decides the snapshot (any reject-level finding rejects all of it, "
        "nothing loads; warnings load the row flagged). Counts per check go to `dq_result` as "
        "`registry__<check>`.",
        "",
        "| check | severity | on failure | issue code | columns | why | message |",
        "|---|---|---|---|---|---|---|",
    ]
    for chk in decl.checks:
        action = chk.action or ("flag" if chk.severity == "warning" else "report")
        params = ", ".join(f"`{c.name}`" for c in decl.columns_checked_by(chk.check_id)) or "—"
        lines.append(
            f"| `{chk.check_id}` | {chk.severity} | {action} | `{chk.issue_code}` | {markdown_cell(params)} | "
            f"{markdown_cell(chk.reason)} | {markdown_cell(chk.message_zh)} |"
        )
    return lines


def _privacy_lines(decl: RegistryDeclaration) -> list[str]:
    personal = [c for c in decl.columns if c.role in ("name", "person_id")]
    kept = ", ".join(f"`{c.name}`" for c in schema.fact_person.columns)
    return [
        "",
        "Privacy: "
        + "; ".join(f"{c.header} (`{c.name}`, role {c.role}) is {_stored_as(c).replace('**', '')}" for c in personal)
        + ". Without `DUIKOU_PERSON_KEY` (≥ 32 characters) the registry is not read at all. "
        f"`fact_person` keeps only {kept}. Receipts, `submission_issue`, `dq_result` and `duikou dq docs` "
        "name rows by number, never the ID or the name; there is no correction workbook; GX's results carry row "
        "numbers and counts, never an ID or a name, and its Data Docs show a de-identified sample. "
        "The file as received (`archive/` or `quarantine/`) is the only copy with IDs.",
    ]


def _mart_lines() -> list[str]:
    marts = [t for t in schema.metadata.sorted_tables if t.name.startswith("mart_registry_")]
    lines = ["", "| table | grain |", "|---|---|",
             f"| `{schema.fact_person.name}` | {markdown_cell(schema.fact_person.comment)} |"]
    lines += [f"| `{t.name}` | {markdown_cell(t.comment)} |" for t in marts]
    return lines


def _reconciliation_lines(decl: RegistryDeclaration, forms: Mapping[str, Declaration]) -> list[str]:
    if not decl.reconciliations:
        return []
    lines = [
        "",
        "Reconciliation with the aggregate return of the same month, per township (`mart_registry_reconciliation`, "
        "rebuilt at each load and by the nightly, so a return that arrives after the snapshot is compared too); "
        "outside the tolerance: a `REGISTRY_RECONCILIATION` issue in the receipt, the snapshot still loads.",
        "",
        "| id | registry count | against | tolerance | severity | why |",
        "|---|---|---|---|---|---|",
    ]
    for rec in decl.reconciliations:
        form = forms.get(rec.department)
        label = f" ({form.indicator(rec.indicator).label_zh})" if form is not None else ""
        lines.append(
            f"| `{rec.check_id}` | `{rec.count}` | {rec.department} `{rec.indicator}`{markdown_cell(label)} | "
            f"±{rec.tolerance_relative:.0%} of the form's value | {rec.severity} | {markdown_cell(rec.reason)} |"
        )
    return lines


def registry_section(decl: RegistryDeclaration, forms: Mapping[str, Declaration]) -> list[str]:
    """The lines of one person-level registry's section of ``docs/datasets.md``."""
    return [
        f"## {decl.title_zh} — `{decl.department}` (person-level registry)",
        "",
        f"- period: the snapshot **{decl.period_type}** (`{'YYYY-MM' if decl.period_type == 'month' else 'YYYY'}`); "
        f"grain: {decl.grain}",
        *_obligation_lines(decl),
        f"- declaration: `expectations/declarations/{decl.source_file}` (`kind: person_registry`); streamed and "
        "checked row by row (`docs/scaling.md`)",
        *_column_lines(decl),
        *_check_lines(decl),
        *_privacy_lines(decl),
        "",
        "Built from the loaded snapshot in its load transaction (people add across townships within one "
        "snapshot, never across snapshots):",
        *_mart_lines(),
        *_reconciliation_lines(decl, forms),
        "",
    ]


def render_datasets_docs(
    declarations: Mapping[str, Declaration] | None = None,
    kpis: Sequence[Kpi] | None = None,
    registries: Mapping[str, RegistryDeclaration] | None = None,
    cross_checks: Sequence[CrossCheck] | None = None,
) -> str:
    """The whole of ``docs/datasets.md`` (``duikou docs``)."""
    forms = load_declarations() if declarations is None else declarations
    chosen = load_registry_declarations() if registries is None else registries
    sections = [line for decl in chosen.values() for line in registry_section(decl, forms)]
    return render_datasets_markdown(forms, load_kpis() if kpis is None else kpis, cross_checks, sections)
