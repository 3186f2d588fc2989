"""``docs/datasets.md`` rendered from the declarations — the docs can never drift from the code.

A test compares the committed file with this rendering; ``duikou docs`` rewrites it. The
person-level registries' sections need the warehouse schema (their marts, what ``fact_person``
keeps), so ``warehouse.dataset_docs.render_datasets_docs`` renders them and passes them in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from expectations.cross_checks import CrossCheck, load_cross_checks
from expectations.declaration import DEFAULT_OUTLIER_THRESHOLD, Declaration, Kpi
from expectations.issues import ISSUE_CODES
from expectations.markdown import markdown_cell


def _history_lines(decl: Declaration) -> list[str]:
    """History-aware checks whose settings differ from the defaults (``outlier_threshold`` etc.)."""
    rows = []
    for ind in decl.indicators:
        settings = []
        if ind.outlier_threshold != DEFAULT_OUTLIER_THRESHOLD:
            threshold = "off" if ind.outlier_threshold is None else f"{ind.outlier_threshold:g}"
            settings.append(f"outlier_threshold {threshold}: {ind.outlier_reason}")
        if ind.band is not None:
            settings.append(f"band [{ind.band[0] / ind.factor:g}, {ind.band[1] / ind.factor:g}] {ind.unit} (warning)")
        if ind.increment_of:
            settings.append(f"increment_of `{ind.increment_of}`: 本月 = Δ本年累计 (warning)")

        if settings:
            rows.append(f"| `{ind.name}` | {markdown_cell('; '.join(settings))} |")
    if not rows:
        return []
    return ["", "| indicator | history-aware checks (other than the defaults) |", "|---|---|", *rows]


def _declaration_section(decl: Declaration) -> list[str]:
    lines = [
        f"## {decl.title_zh} — `{decl.department}`",
        "",
        f"- period: **{decl.period_type}**, due day {decl.due_day} of the following "
        f"{'month' if decl.period_type == 'month' else 'year (January)'}, "
        f"{decl.grace_days} grace day(s): first received later than that is late (`mart_completeness`)",
        f"- grain: {decl.grain}",
        f"- key column: `{decl.key.header}` (aliases: {', '.join(decl.key.aliases) or '—'}); "
        f"{'every township valid in the period is expected' if decl.all_townships else 'not all townships'}; "
        f"a division-code column ({', '.join(decl.key.code_headers)}) beside it must agree with it, "
        "or keys the form alone",
        "- nil return (无数据申报): "
        + (f"**allowed** — no township rows and a marker line ({', '.join(decl.nil_return.markers)}), or the "
           "portal's nil button (`tasks.submission.nil_return.record_nil_return`)" if decl.nil_return.allowed
           else "refused (ROWS_EMPTY): every township reports every period"),
        f"- declaration: `expectations/declarations/{decl.source_file}`",
        "",
        "| indicator | 中文 | header on the form | form unit → base unit | type | required | 本年累计 |",
        "|---|---|---|---|---|---|---|",
    ]
    for ind in decl.indicators:
        header = " / ".join(ind.header)
        aliases = "; ".join(" / ".join(a) for a in ind.aliases)
        if aliases:
            header += f" (aliases: {aliases})"
        if ind.subline_of:
            header += f"; or a township's 其中 sub-line in `{ind.subline_of}`'s column"
        lines.append(
            f"| `{ind.name}` | {markdown_cell(ind.label_zh)} | {markdown_cell(header)} | {ind.unit} → {ind.base_unit} "
            f"(×{ind.factor:g}) | {ind.value_type} | {'yes' if ind.required else 'no'} | "
            f"{'yes' if ind.cumulative else ''} |"
        )
    lines += ["", "| rule | check | severity | on failure | why |", "|---|---|---|---|---|"]
    for rule in decl.rules:
        tol = f" (±{rule.tolerance:g})" if rule.tolerance else ""
        lines.append(
            f"| `{rule.rule_id}` | `{markdown_cell(rule.check)}`{tol} | {rule.severity} | "
            f"{rule.action or ('flag' if rule.severity == 'warning' else 'report')} | {markdown_cell(rule.reason)} |"
        )
    lines += _history_lines(decl)
    lines += [
        "",
        "Generated for every indicator present: required → not null (critical, reject); "
        "min 0 → not negative (critical, reject); the 合计 row → Σ township rows within tolerance "
        "(critical, reject); township codes unique (critical, reject); all townships present "
        "(warning). Against the township's own history in the warehouse "
        "(`expectations/history_checks.py`): modified z-score above `outlier_threshold` (default "
        f"{DEFAULT_OUTLIER_THRESHOLD:g}; monthly returns against the same month of earlier years when there "
        "are ≥3) → warning, the value loads flagged; `band` → warning; `increment_of` → warning; "
        "本年累计 decreasing or a value ≥1000× the township's median → critical, quarantine.",
        "",
    ]
    return lines


def _cross_check_section(checks: Sequence[CrossCheck]) -> list[str]:
    lines = [
        "",
        "## Cross-return checks (`expectations/cross_checks.yaml`)",
        "",
        "Run after every load (so when the later of the two returns arrives) and in the nightly flow, "
        "against current versions. A disagreement is recorded against the left return: a `dq_flag` row "
        "(`cross__<id>`), the left value flagged, and a follow-up of kind `cross`.",
        "",
        "| id | left | operator | right | periods | tolerance | severity | why |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        tolerance = " + ".join(t for t in (
            f"{c.relative_tolerance:.0%} of right" if c.relative_tolerance else "",
            f"{c.absolute_tolerance:g}" if c.absolute_tolerance else "") if t) or "—"
        lines.append(
            f"| `{c.check_name}` | {c.left.department} `{c.left.indicator}` | `{markdown_cell(c.operator)}` | "
            f"{c.right.department} `{c.right.indicator}` | {c.align} | {tolerance} | {c.severity} | "
            f"{markdown_cell(c.reason)} |"
        )
    return lines


def render_datasets_markdown(
    declarations: Mapping[str, Declaration], kpis: Sequence[Kpi], cross_checks: Sequence[CrossCheck] | None = None,
    registry_sections: Sequence[str] = (),
) -> str:
    """The page; ``registry_sections``: the person-level registries' lines, after the forms."""
    lines = [
        "# Datasets, rules and KPIs",
        "",
        "<!-- Generated by `duikou docs` from expectations/declarations/*.yaml, "
        "expectations/kpis.yaml and warehouse/schema.py. Do not edit by hand. -->",
        "",
        "Values are stored in base units (元, 人, 人次, 户, 个, 张); the form's unit is converted "
        "on load (万元 × 10000, 万人次 × 10000). 人 and 人次 never convert into each other.",
        "",
    ]
    for decl in declarations.values():
        lines += _declaration_section(decl)
    lines += registry_sections
    lines += [
        "## County KPIs (`mart_county_kpi_yearly`)",
        "",
        "| kpi | 中文 | unit | method | 口径 |",
        "|---|---|---|---|---|",
    ]
    for kpi in kpis:
        lines.append(
            f"| `{kpi.kpi}` | {kpi.label_zh} | {kpi.unit} | {kpi.method} | {markdown_cell(kpi.definition_zh)} |"
        )
    lines += _cross_check_section(load_cross_checks() if cross_checks is None else cross_checks)
    lines += ["", "## Receipt issue codes", "", "| code | default severity | action | meaning |", "|---|---|---|---|"]
    for code, (severity, action, meaning) in ISSUE_CODES.items():
        lines.append(f"| `{code}` | {severity} | {action} | {meaning} |")
    return "\n".join(lines) + "\n"
