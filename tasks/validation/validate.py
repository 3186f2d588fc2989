"""Validate a normalised submission with GX Core and decide its outcome.

One GX context per process, one suite per submission, validated in one call (GX costs ~3 ms
per expectation on a county form, and 2 s to import), the checks of one kind as one family
expectation whose result is split back into one outcome per check. The outcome is gated on the highest failed severity,
never on GX's overall ``success``: critical → rejected or quarantined (the check's action),
warning → loaded with the rows flagged, info → reported.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

import pandas as pd

from duikou_settings import get_settings
from expectations.declaration import Declaration
from expectations.history_checks import flag_reason_zh, history_columns_and_checks, suspected_factor
from expectations.issues import Issue, fold_under_root_cause, issue
from expectations.suite import CheckSpec, build_checks, to_gx_expectations, with_derived_columns
from tasks.forms.normalise import TOWNSHIP_CODE, NormalisedForm
from warehouse.history import HISTORY_COLUMNS, ValueKey
from warehouse.load import DqFlag, DqResult

Outcome = Literal["loaded", "rejected", "quarantined"]
MAX_ROW_ISSUES_PER_CHECK = 30


@dataclass(frozen=True)
class Validation:
    outcome: Outcome
    issues: tuple[Issue, ...]  # normalisation issues followed by check issues
    results: tuple[DqResult, ...]
    flagged_rows: frozenset[int]  # warning rules: the whole township row is flagged
    rejected_rows: frozenset[int]
    flags: tuple[DqFlag, ...] = ()  # history-aware checks: one per value × check (``dq_flag``)
    flagged_cells: frozenset[tuple[int, str]] = frozenset()  # (row, indicator) flagged by a value check


@lru_cache(maxsize=1)
def _gx_batch_definition() -> Any:
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in ("great_expectations", "great_expectations.data_context.types.base"):
        logging.getLogger(name).setLevel(logging.WARNING)  # its INFO chatter is not for receipts
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("duikou_submission")
    asset = source.add_dataframe_asset("township_rows")
    return asset.add_batch_definition_whole_dataframe("whole_submission")


def gx_suite(checks: tuple[CheckSpec, ...], suite_name: str) -> Any:
    """The GX ExpectationSuite of the checks: one family expectation per kind of check and
    severity (:func:`expectations.suite.to_gx_expectations`), built in one go (``add_expectation``
    compares each new expectation with all earlier ones, O(n²))."""
    import great_expectations as gx

    return gx.ExpectationSuite(name=suite_name, expectations=to_gx_expectations(checks))


@dataclass(frozen=True)
class CheckOutcome:
    """One check's part of its family's GX result: what ``dq_result`` and the receipt need."""

    success: bool
    failing_rows: tuple[int, ...] = ()  # row checks: the failing rows, in the frame's order
    observed: Any = None  # 合计 checks: the sum GX observed
    element_count: int | None = None  # row checks: rows in the batch
    unexpected_count: int | None = None  # row checks: failing rows
    error: str | None = None  # the check could not be evaluated


#: GX's ephemeral context is not thread-safe: two threads validating on the one batch definition
#: can validate each other's frame (seen as different nightly results with 2 worker threads)
GX_LOCK = threading.Lock()


def run_gx(frame: pd.DataFrame, checks: tuple[CheckSpec, ...], suite_name: str) -> list[CheckOutcome]:
    """Validate ``frame`` against the checks in ONE GX call; one outcome per check, in check order.

    GX validates one family expectation per kind of check; each family's result is split back
    into its checks' outcomes (``result.details.checks``, by check id)."""
    batch_definition = _gx_batch_definition()  # creates the process's GX context first
    suite = gx_suite(checks, suite_name)
    # only the columns the checks read: GX hashes and sizes the whole frame when it makes a batch,
    # and the frame also carries the columns kept for messages (scores, same-month markers)
    read = list(dict.fromkeys(c for check in checks for c in _columns_read(check) if c in frame.columns))
    with GX_LOCK:  # one context per process is shared by the nightly's worker threads
        batch = batch_definition.get_batch(batch_parameters={"dataframe": frame.loc[:, read]})
        # BASIC: a family reports its checks' failing rows itself, in its result's details
        result = batch.validate(suite, result_format="BASIC")
    by_id: dict[str, CheckOutcome] = {}
    for family in result.results:
        raised = isinstance(family.exception_info, dict) and family.exception_info.get("raised_exception")
        details = {} if raised else (family.result or {}).get("details", {}).get("checks", {})
        for check_id in family.expectation_config.meta["check_ids"]:
            if raised:
                by_id[check_id] = CheckOutcome(False, error=str(family.exception_info.get("exception_message")))
            else:
                by_id[check_id] = _check_outcome(details[check_id])
    return [by_id[c.check_id] for c in checks]


def _check_outcome(reported: Mapping[str, Any]) -> CheckOutcome:
    if "exception_message" in reported:
        return CheckOutcome(False, error=str(reported["exception_message"]))
    return CheckOutcome(
        success=bool(reported["success"]),
        failing_rows=tuple(_row_of(i) for i in reported.get("unexpected_index_list") or ()),
        observed=reported.get("observed_value"),
        element_count=reported.get("element_count"),
        unexpected_count=reported.get("unexpected_count"),
    )


def _columns_read(check: CheckSpec) -> list[str]:
    kw = check.kwargs
    named = [kw.get("column"), kw.get("column_A"), kw.get("column_B"), *(kw.get("column_list") or [])]
    return [str(c) for c in named if c]


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "空"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return str(value)


def _row_issue(
    check: CheckSpec, form: NormalisedForm, frame: pd.DataFrame, row: int, declaration: Declaration
) -> Issue:
    values = "，".join(_value_text(c, frame.at[row, c], declaration) for c in check.columns if c in frame.columns)
    township = frame.at[row, "township_text"]
    message = f"{township}: {check.message_zh}" + (f"({values})" if values else "")
    labels = [form.column_labels[c] for c in check.columns if c in form.column_labels]
    column = "；".join(labels) or form.key_column_label
    return issue(
        check.issue_code,
        message,
        severity=check.severity,
        action=check.action or ("flag" if check.severity == "warning" else "report"),
        sheet=form.sheet,
        row=int(row),
        column=column,
        rule_id=check.check_id,
    )


def _value_text(column: str, value: Any, declaration: Declaration) -> str:
    """A value as the department would read it: in the form's unit, history columns explained."""
    kind, _, name = column.partition("__")
    if kind == "ratio" and name in declaration.indicator_names:
        return f"为历史中位数的{_fmt(value)}倍，{suspected_factor(float(value))}"
    if kind == "prev" and name in declaration.indicator_names:
        ind = declaration.indicator(name)
        return f"上一期{_fmt(_on_form(value, ind.factor))}{ind.unit}"
    ind = declaration.indicator(column)
    return f"{ind.label_zh}={_fmt(_on_form(value, ind.factor))}{ind.unit}"


def _on_form(value: Any, factor: float) -> Any:
    """A base-unit value back in the form's unit, as the department wrote it."""
    return value / factor if isinstance(value, float) and factor != 1 else value


def _table_issue(
    check: CheckSpec, form: NormalisedForm, frame: pd.DataFrame, observed: Any, declaration: Declaration
) -> Issue:
    where: dict[str, Any] = {"sheet": form.sheet, "rule_id": check.check_id,
                             "severity": check.severity,
                             "action": check.action or ("flag" if check.severity == "warning" else "report")}
    if check.issue_code == "TOWNSHIP_MISSING":
        present = set(frame[TOWNSHIP_CODE].dropna())
        missing = [c for c in form.expected_townships if c not in present]
        names = "、".join(form.township_names.get(c, c) for c in missing)
        return issue(check.issue_code, f"{check.message_zh}: {names}", **where)
    indicator = check.columns[0]
    total = form.totals.get(indicator)
    where.update(row=form.total_row_number, column=form.column_labels.get(indicator))
    if check.derived_column:  # weighted mean
        weight_col = check.derived_term.right.id  # type: ignore[union-attr]
        weights = frame[weight_col].sum()
        observed_mean = (observed / weights) if weights else None
        text = f"{check.message_zh}: 合计行为{_fmt(total)}，按人口加权平均为{_fmt(observed_mean)}"
    else:
        ind = declaration.indicator(indicator)
        on_form_total, on_form_sum = _on_form(total, ind.factor), _on_form(_jsonable(observed), ind.factor)
        difference = (on_form_sum - on_form_total) if None not in (on_form_sum, on_form_total) else None
        text = (f"{check.message_zh}: {form.total_label or '合计'}行为{_fmt(on_form_total)}{ind.unit}，"
                f"各乡镇之和为{_fmt(on_form_sum)}{ind.unit}，相差{_fmt(difference)}{ind.unit}")
    return issue(check.issue_code, text, **where)


def prepare_suite(
    form: NormalisedForm, declaration: Declaration, history: pd.DataFrame | None = None
) -> tuple[pd.DataFrame, tuple[CheckSpec, ...]]:
    """The frame GX validates (township rows + derived columns) and the submission's checks.

    Shared by :func:`validate_form` and the on-demand Data Docs (``tasks.submission.dq_docs``), so both
    run the same suite. The form is not modified.
    """
    settings = get_settings()
    present = frozenset(c for c in form.wide.columns if c in declaration.indicator_names)
    weight_sums = {
        ind.weight: float(form.wide[ind.weight].sum())
        for ind in declaration.indicators
        if ind.weight and ind.weight in present
    }
    checks = build_checks(declaration, present, form.totals, form.expected_townships,
                          settings.sum_tolerance, weight_sums)
    frame = with_derived_columns(form.wide, checks)
    extra_columns, extra_checks = history_columns_and_checks(
        form.wide, declaration, form.period.year, form.period.month,
        history if history is not None else pd.DataFrame(columns=list(HISTORY_COLUMNS)),
    )
    return frame.assign(**extra_columns), (*checks, *extra_checks)


def validate_form(
    form: NormalisedForm,
    declaration: Declaration,
    history: pd.DataFrame | None = None,
    accepted: Mapping[ValueKey, float | None] | None = None,
) -> Validation:
    """Run every check on the submission and gate the outcome on the highest failed severity.

    ``history`` (earlier current values of the same department, see
    :func:`warehouse.history.earlier_values`) adds the checks against each township's history.
    ``accepted`` (``warehouse.followups.accepted_values``): values an operator accepted; a
    warning value check that fails on exactly such a value loads it unflagged (``dq_flag``
    row with ``accepted`` true, no receipt issue).
    """
    frame, checks = prepare_suite(form, declaration, history)
    issues: list[Issue] = list(form.issues)
    results: list[DqResult] = []
    flagged: set[int] = set()
    rejected_rows: set[int] = set()
    flags: list[DqFlag] = []
    flag_keys: set[tuple[str, str, str]] = set()  # dq_flag's key within the submission
    flagged_cells: set[tuple[int, str]] = set()
    if len(frame) == 0:
        gx_results: list[CheckOutcome] = []
        checks = ()
    else:
        gx_results = run_gx(frame, checks, f"{declaration.dataset}-{form.period.label}")
    for check, res in zip(checks, gx_results, strict=True):
        raised = res.error is not None
        failing_rows = list(res.failing_rows)
        observed = res.observed
        if raised:
            issues.append(issue("CHECK_ERROR", f"检查{check.check_id}无法执行: {res.error}", sheet=form.sheet))
        elif not res.success and check.value_check is not None:
            for row in failing_rows:
                flag = _value_flag(check, form, frame, row, declaration, accepted or {})
                key = (flag.township_code, flag.indicator, flag.check_id)
                # a row without a known township, or a township's second row, is a rejection of its
                # own (TOWNSHIP_UNKNOWN / TOWNSHIP_DUPLICATE): it gets the issue, not a second dq_flag
                if flag.township_code and key not in flag_keys:
                    flag_keys.add(key)
                    flags.append(flag)
                if flag.accepted:
                    continue
                issues.append(_flag_issue(check, form, flag))
                if check.severity == "warning":
                    flagged_cells.add((row, check.value_check.indicator))
                else:
                    rejected_rows.add(row)
        elif not res.success:
            if check.kind == "row":
                reportable = [r for r in failing_rows if not _already_explained(check, form, r)]
                for row in reportable[:MAX_ROW_ISSUES_PER_CHECK]:
                    issues.append(_row_issue(check, form, frame, row, declaration))
                if len(reportable) > MAX_ROW_ISSUES_PER_CHECK:
                    issues.append(issue(check.issue_code, f"{check.message_zh}: 另有"
                                        f"{len(reportable) - MAX_ROW_ISSUES_PER_CHECK}行未逐一列出",
                                        severity=check.severity, sheet=form.sheet, rule_id=check.check_id))
                (flagged if check.severity == "warning" else rejected_rows).update(failing_rows)
            else:
                issues.append(_table_issue(check, form, frame, observed, declaration))
        failing_codes = sorted({str(frame.at[r, TOWNSHIP_CODE]) for r in failing_rows if r in frame.index})
        results.append(DqResult(
            check_id=check.check_id,
            expectation_type=check.expectation_type,
            severity=check.severity,
            success=bool(res.success) and not raised,
            element_count=res.element_count,
            unexpected_count=res.unexpected_count,
            observed=json.dumps(
                {"townships": failing_codes} if failing_rows else {"observed": _jsonable(observed)},
                ensure_ascii=False,
            ),
            issue_code=check.issue_code,
            action=check.action or ("flag" if check.severity == "warning" else "report"),
            unexpected_rows=tuple(sorted(set(failing_rows))),
            label_zh=check.message_zh,
        ))
    return Validation(
        outcome=decide_outcome(issues),
        issues=fold_under_root_cause(issues),
        results=tuple(results),
        flagged_rows=frozenset(flagged),
        rejected_rows=frozenset((rejected_rows | _rows_with_critical(issues)) & set(frame.index)),
        flags=tuple(flags),
        flagged_cells=frozenset(flagged_cells),
    )


def _float_or_none(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _same_value(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def _value_flag(
    check: CheckSpec, form: NormalisedForm, frame: pd.DataFrame, row: int, declaration: Declaration,
    accepted: Mapping[ValueKey, float | None],
) -> DqFlag:
    """The ``dq_flag`` row of one failing value; accepted when an operator accepted this very value."""
    vc = check.value_check
    assert vc is not None
    ind = declaration.indicator(vc.indicator)
    raw_code = frame.at[row, TOWNSHIP_CODE]
    code = "" if raw_code is None or pd.isna(raw_code) else str(raw_code)
    value = _float_or_none(frame.at[row, vc.indicator])
    reference = _float_or_none(frame.at[row, vc.reference_column]) if vc.reference_column else None
    score = _float_or_none(frame.at[row, vc.score_column]) if vc.score_column else None
    if vc.family == "band" and vc.band is not None and value is not None:
        reference = vc.band[0] if value < vc.band[0] else vc.band[1]
        score = value - reference
    same_month_column = f"hist_same_month__{vc.indicator}"
    same_month = bool(frame.at[row, same_month_column]) if same_month_column in frame.columns else False
    township = (form.township_names.get(code) if code else None) or str(frame.at[row, "township_text"])
    key = (code, vc.indicator, check.check_id)
    is_accepted = check.severity == "warning" and key in accepted and _same_value(accepted[key], value)
    return DqFlag(
        indicator=vc.indicator,
        township_code=code,
        check_id=check.check_id,
        severity=check.severity,
        value=value,
        reference_value=reference,
        score=score,
        source_row=int(row),
        reason_zh=flag_reason_zh(check, ind, township, value, reference, score, same_month),
        accepted=is_accepted,
    )


def _flag_issue(check: CheckSpec, form: NormalisedForm, flag: DqFlag) -> Issue:
    return issue(
        check.issue_code,
        flag.reason_zh,
        severity=check.severity,
        action=check.action or "flag",
        sheet=form.sheet,
        row=flag.source_row,
        column=form.column_labels.get(flag.indicator),
        rule_id=check.check_id,
    )


SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
ACTION_ZH = {"reject": "退回", "quarantine": "待核", "flag": "入库并标记", "report": "仅提示", "coerce": "自动转换"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def check_summary_markdown(validation: Validation, title: str) -> str:
    """The run's data-quality artifact: what stopped or marked the file first — the reading (parse-level)
    issues, then the failing checks — in Chinese, then the passed checks folded below. No values, no
    personal data: check names, counts and row numbers only."""
    results = {r.check_id: r for r in validation.results}
    reading = [i for i in validation.issues if i.rule_id is None or i.rule_id not in results]
    reading = [i for i in reading if i.severity != "info"]
    failed = sorted((r for r in validation.results if not r.success),
                    key=lambda r: ({"critical": 0, "warning": 1}.get(r.severity, 2), r.check_id))
    passed = [r for r in validation.results if r.success]
    lines = [f"## {title}", "", f"结果 outcome: **{validation.outcome}** — {check_summary_text(validation)}", ""]
    if reading:
        lines += ["### 读取与数值问题 (parse-level causes)", "",
                  "| 级别 | 代码 | 说明 | 位置 | 处理 |", "|---|---|---|---|---|"]
        for i in reading:
            where = " ".join(x for x in (f"[{i.sheet}]" if i.sheet else "", f"第{i.row}行" if i.row else "",
                                         i.column or "") if x)
            lines.append(f"| {SEVERITY_ZH.get(i.severity, i.severity)} | `{i.code}` | {_cell(i.message)} | "
                         f"{_cell(where)} | {ACTION_ZH.get(i.action or '', i.action or '')} |")
        lines.append("")
    if failed:
        lines += [f"### 未通过的检查 {len(failed)} 项 (failing checks)", "",
                  "| 级别 | 检查 | 未通过行数 | 行 | 处理 | check |", "|---|---|---|---|---|---|"]
        for r in failed:
            rows = ", ".join(str(n) for n in r.unexpected_rows[:20]) + (" …" if len(r.unexpected_rows) > 20 else "")
            lines.append(f"| {SEVERITY_ZH.get(r.severity, r.severity)} | {_cell(r.label_zh or r.check_id)} | "
                         f"{r.unexpected_count or 0} | {rows} | {ACTION_ZH.get(r.action or '', r.action or '')} | "
                         f"`{r.check_id}` |")
        lines.append("")
    elif not validation.results:
        lines += ["没有运行任何检查：文件未能读取 (no checks ran: the file could not be read)", ""]
    if passed:
        lines += ["<details>", f"<summary>通过的检查 {len(passed)} 项 (passed checks)</summary>", "",
                  "| 检查 | check |", "|---|---|"]
        lines += [f"| {_cell(r.label_zh or r.check_id)} | `{r.check_id}` |" for r in passed]
        lines += ["", "</details>"]
    return "\n".join(lines)


def check_summary_text(validation: Validation) -> str:
    """One line: checks run, failed by severity, values flagged (accepted ones apart), the outcome."""
    failed = [r for r in validation.results if not r.success]
    by_severity = {s: sum(1 for r in failed if r.severity == s) for s in ("critical", "warning", "info")}
    accepted = sum(1 for f in validation.flags if f.accepted)
    return (f"{len(validation.results)} checks, {len(failed)} failed (critical {by_severity['critical']}, "
            f"warning {by_severity['warning']}, info {by_severity['info']}); "
            f"{len(validation.flags) - accepted} values flagged, {accepted} accepted; outcome {validation.outcome}")


def _already_explained(check: CheckSpec, form: NormalisedForm, row: int) -> bool:
    """A cell that could not be read is blank to GX; its reading issue already says why."""
    if check.issue_code != "VALUE_REQUIRED_MISSING":
        return False
    column = form.column_labels.get(check.columns[0])
    return any(i.row == row and i.column == column and i.severity == "critical" for i in form.issues)


def _row_of(index_entry: Any) -> int:
    """GX reports a failing row as its index value, or for pair checks as a dict holding it."""
    if isinstance(index_entry, dict):
        return int(index_entry["source_row"])
    return int(index_entry)


def _rows_with_critical(issues: list[Issue]) -> set[int]:
    return {i.row for i in issues if i.severity == "critical" and i.row is not None}


def _jsonable(value: Any) -> Any:
    if isinstance(value, float | int | str | bool) or value is None:
        return None if isinstance(value, float) and math.isnan(value) else value
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def decide_outcome(issues: list[Issue] | tuple[Issue, ...]) -> Outcome:
    """rejected if any critical issue rejects; quarantined if any critical quarantines; else loaded."""
    critical = [i for i in issues if i.severity == "critical"]
    if any(i.action == "reject" for i in critical):
        return "rejected"
    if critical:
        return "quarantined"
    return "loaded"
