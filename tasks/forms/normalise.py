"""Form table → canonical rows: header paths → indicators, names → township codes, text → numbers,
form units → base units, and the declared period checked against the title.

Pure: takes the grids, the declaration and reference frames; returns a :class:`NormalisedForm`
with every issue found. Checks that GX runs (uniqueness, completeness, sums, rules) are not
repeated here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

import pandas as pd

from expectations.declaration import Declaration, Indicator, load_declarations, load_units, normalise_header
from expectations.issues import Issue, issue
from tasks.forms.file_safety import ReadError
from tasks.forms.grid import Grid
from tasks.forms.layout import (
    IGNORED_COLUMNS,
    LABEL_COLUMNS,
    FormColumn,
    FormRow,
    FormTable,
    header_match_count,
    locate_form,
)
from tasks.forms.number_text import is_whole, parse_number
from tasks.forms.periods import Period, periods_in_title
from tasks.forms.townships import TownshipResolver

TOWNSHIP_CODE = "township_code"
TOWNSHIP_TEXT = "township_text"
_UNREADABLE = frozenset({"VALUE_NOT_NUMBER", "VALUE_EXCEL_ERROR"})


@dataclass(frozen=True)
class NormalisedForm:
    """One submission's township rows in base units, ready for validation.

    ``wide`` is indexed by the 1-based source row and has ``township_code`` (None when the name
    did not resolve), ``township_text`` and one float column per declared indicator present.
    """

    department: str
    period: Period
    sheet: str | None
    encoding: str | None
    wide: pd.DataFrame
    totals: dict[str, float | None]
    total_label: str | None
    total_row_number: int | None
    column_labels: dict[str, str]
    expected_townships: tuple[str, ...]
    township_names: dict[str, str]
    key_column_label: str | None = None
    issues: tuple[Issue, ...] = field(default_factory=tuple)
    #: a nil return (无数据申报): received, no township rows, nothing to check
    nil_return: bool = False

    @property
    def rows_read(self) -> int:
        return len(self.wide)


def choose_form(
    grids: list[Grid], declaration: Declaration, period: Period | None = None
) -> tuple[FormTable, list[Issue]]:
    """The one sheet / decoding that carries this return's form. Raises ReadError otherwise.

    A workbook with one visible copy of the form per month (sheets 3月, 4月, 5月, each titled with
    its month): the sheet whose title (or 报告期 line, or sheet name) states the declared ``period``
    is read and the others are named as ignored; two sheets claiming the period, or none, are
    ambiguous.
    """
    candidates: list[tuple[int, FormTable]] = []
    issues: list[Issue] = []
    for grid in grids:
        form = locate_form(grid, declaration)
        if form is not None:
            candidates.append((match_count(form, declaration), form))
    if not candidates:
        expected = "、".join(declaration.key.header_texts)
        wanted = "、".join("/".join(i.header) for i in declaration.indicators[:4])
        raise ReadError(
            issue(
                "HEADER_NOT_FOUND",
                f"未找到{declaration.title_zh}的表头: 应有“{expected}”列及{wanted}等指标列",
            )
        )
    is_csv = all(g.sheet is None for g in grids)
    best = max(score for score, _ in candidates)
    top = [form for score, form in candidates if score == best]
    if len(top) > 1 and not is_csv:
        visible = [f for f in top if not f.sheet_hidden]
        if len(visible) == 1:
            top = visible
    by_period: list[FormTable] = []
    if len(top) > 1 and not is_csv:
        visible = [f for f in top if not f.sheet_hidden]
        claims = [f for f in visible if period is not None and period in claimed_periods(f, declaration, period)]
        names = "、".join(str(f.sheet) for f in visible)
        if len(claims) == 1:
            top, by_period = claims, [f for f in visible if f is not claims[0]]
        elif claims:
            raise ReadError(issue("SHEET_AMBIGUOUS", f"工作表{'、'.join(str(f.sheet) for f in claims)}"
                                  f"都是{period.label_zh if period else ''}的{declaration.title_zh}；请只保留一个"))
        else:
            said = f"，但没有一个的表题写明{period.label_zh}" if period is not None else ""
            raise ReadError(issue("SHEET_AMBIGUOUS",
                                  f"多个工作表都像{declaration.title_zh}: {names}{said}；请只保留一个"))
    chosen = top[0]
    if is_csv and chosen.encoding:
        agrees = "，表头与申报表一致" if best > 0 else ""
        issues.append(issue("ENCODING_DETECTED", f"CSV按{chosen.encoding}编码读取{agrees}"))
    if len(grids) > 1 and not is_csv:
        others = [g.sheet for g in grids if g.sheet != chosen.sheet]
        hidden = [g.sheet for g in grids if g.sheet_hidden]
        text = f"读取工作表“{chosen.sheet}”；另有工作表: {'、'.join(map(str, others))}"
        if by_period:
            ignored = "、".join(f"“{f.sheet}”" for f in by_period)
            text += (f"(其中{ignored}是其他报告期的{declaration.title_zh}，未读取；"
                     f"读取的工作表表题为{period.label_zh if period else ''})")
        if hidden:
            text += f"(其中隐藏: {'、'.join(map(str, hidden))})"
        issues.append(issue("SHEET_CHOSEN", text, sheet=chosen.sheet))
    return chosen, issues


_SHEET_MONTH = re.compile(r"(\d{1,2})月份?")


def claimed_periods(form: FormTable, declaration: Declaration, period: Period) -> tuple[Period, ...]:
    """The periods a sheet says it holds: its title, else its 报告期 line, else its name (2017年5月,
    or 5月 in the declared year)."""
    stated = periods_in_title(form.title, declaration.period_type) if form.title else ()
    if not stated:
        line = next((t for t in form.preamble if any(k in t for k in ("报告期", "统计时间", "统计期"))), "")
        stated = periods_in_title(line, declaration.period_type) if line else ()
    if not stated and form.sheet:
        name = normalise_header(form.sheet)
        stated = periods_in_title(name, declaration.period_type)
        month = _SHEET_MONTH.fullmatch(name)
        if not stated and month and declaration.period_type == "month" and 1 <= int(month.group(1)) <= 12:
            stated = (Period(period.year, int(month.group(1))),)
    return stated


_PARENTHESISED = re.compile(r"(.*?)\(([^()]*)\)")


def split_unit(text: str) -> tuple[str, str | None]:
    """``"接待游客(万人次)"`` → ("接待游客", "万人次"); ``"资助金额(本年累计,万元)"`` →
    ("资助金额(本年累计)", "万元"); text without a known unit in brackets is returned as it is.
    Works on normalised header text (half-width brackets and commas)."""
    match = _PARENTHESISED.fullmatch(text)
    if not match:
        return text, None
    parts = [p.removeprefix("单位:") for p in match.group(2).split(",")]
    if parts[-1] not in load_units():
        return text, None
    rest = ",".join(parts[:-1])
    return match.group(1) + (f"({rest})" if rest else ""), parts[-1]


def _stem_path(path: tuple[str, ...]) -> tuple[tuple[str, ...], str | None]:
    unit = None
    stems = []
    for element in path:
        stem, found = split_unit(element)
        stems.append(stem)
        unit = found or unit
    return tuple(stems), unit


def _match_by_stem(
    col: FormColumn, by_stem: dict[tuple[str, ...], Indicator], sheet: str | None
) -> tuple[Indicator | None, Issue | None]:
    """Match a header that differs from the declaration only in its unit annotation."""
    stem, unit = _stem_path(col.path)
    ind = by_stem.get(stem)
    if ind is None:
        return None, None
    where = {"sheet": sheet, "column": col.label}
    shown = "/".join(col.path)
    if unit is None:
        return ind, issue("COLUMN_ALIAS", f"表头“{shown}”未注明单位，按申报单位{ind.unit}读取", **where)
    if unit == ind.unit:
        return ind, issue("COLUMN_ALIAS", f"表头“{shown}”识别为“{'/'.join(ind.header)}”(单位一致)", **where)
    units = load_units()
    if units[unit].base_unit == ind.base_unit:
        ratio = units[ind.unit].factor / units[unit].factor
        factor = f"{ratio:g}倍" if ratio >= 1 else f"1/{1 / ratio:g}"
        return None, issue(
            "UNIT_MISMATCH",
            f"表头“{shown}”的单位是{unit}，申报定义为{ind.unit}(相差{factor})；未自动换算，请核实",
            **where,
        )
    return None, issue(
        "UNIT_MISMATCH",
        f"表头“{shown}”的单位是{unit}，申报定义为{ind.unit}；{unit}与{ind.unit}不能互相换算",
        severity="critical", action="reject", **where,
    )


def _map_columns(
    form: FormTable, declaration: Declaration
) -> tuple[dict[str, FormColumn], list[Issue]]:
    issues: list[Issue] = []
    by_path: dict[tuple[str, ...], tuple[Indicator, bool]] = {}
    by_stem: dict[tuple[str, ...], Indicator] = {}
    for ind in declaration.indicators:
        for n, path in enumerate(ind.header_paths):
            by_path[path] = (ind, n > 0)
            by_stem.setdefault(_stem_path(path)[0], ind)
    mapped: dict[str, FormColumn] = {}
    sheet = form.sheet
    for col in form.columns:
        if not col.path:
            if any(_cell(r, col.index) for r in form.rows):
                issues.append(issue("COLUMN_UNKNOWN", f"{col.letter}列没有表头却有数据", sheet=sheet, column=col.label))
            continue
        if col.path not in by_path:
            stem_match, stem_issue = _match_by_stem(col, by_stem, sheet)
            if stem_issue is not None:
                issues.append(stem_issue)
            if stem_match is not None and stem_match.name in mapped:
                issues.append(issue("COLUMN_DUPLICATE", f"{mapped[stem_match.name].letter}列和{col.letter}列都对应指标"
                                    f"“{stem_match.label_zh}”", sheet=sheet, column=col.label))
            elif stem_match is not None:
                mapped[stem_match.name] = col
            if stem_issue is not None:
                continue
        if col.path in by_path:
            ind, via_alias = by_path[col.path]
            if ind.name in mapped:
                issues.append(
                    issue(
                        "COLUMN_DUPLICATE",
                        f"{mapped[ind.name].letter}列和{col.letter}列都对应指标“{ind.label_zh}”",
                        sheet=sheet,
                        column=col.label,
                    )
                )
                continue
            mapped[ind.name] = col
            if via_alias:
                issues.append(
                    issue(
                        "COLUMN_ALIAS",
                        f"表头“{'/'.join(col.path)}”按别名识别为“{'/'.join(ind.header)}”",
                        sheet=sheet,
                        column=col.label,
                    )
                )
        elif (alternative := _alternative_match(col, form, by_path, by_stem, flattened_headers(declaration),
                                                sheet)) is not None:
            ind, alias_issue = alternative
            if alias_issue is not None:
                issues.append(alias_issue)
            if ind.name in mapped:
                issues.append(issue("COLUMN_DUPLICATE", f"{mapped[ind.name].letter}列和{col.letter}列都对应指标"
                                    f"“{ind.label_zh}”", sheet=sheet, column=col.label))
            else:
                mapped[ind.name] = col
        elif _ignorable(col, form):
            continue
        else:
            issues.append(
                issue(
                    "COLUMN_UNKNOWN",
                    f"表头“{'/'.join(col.path)}”不在{declaration.title_zh}的申报定义中，需人工确认",
                    sheet=sheet,
                    column=col.label,
                )
            )
    mismatched = {i.column for i in issues if i.code == "UNIT_MISMATCH"}
    on_sublines = subline_targets(form, declaration, mapped)
    for ind in declaration.indicators:
        if ind.name in mapped or ind.name in on_sublines:
            continue
        if mismatched and any(_stem_path(p)[0] == _stem_path(c.path)[0] for p in ind.header_paths
                              for c in form.columns if c.label in mismatched):
            continue  # the column is there, in another unit: UNIT_MISMATCH says so
        code = "COLUMN_MISSING" if ind.required else "COLUMN_OPTIONAL_MISSING"
        issues.append(issue(code, f"缺少指标列“{'/'.join(ind.header)}”({ind.label_zh})", sheet=sheet))
    return mapped, issues


def match_count(form: FormTable, declaration: Declaration) -> int:
    """How many of the declaration's indicators the form's columns carry, however their headers are
    shaped (declared, unit-annotated, flattened, under a group title): used to choose a sheet."""
    if not form.columns:
        return 0
    mapped, _ = _map_columns(form, declaration)
    return len(mapped) if mapped else header_match_count(form, declaration)


def _ignorable(col: FormColumn, form: FormTable) -> bool:
    """序号 / 备注 columns, a 项目 column of line labels (其中:…), and hidden empty columns, carry no indicator."""
    if col.path[-1] in IGNORED_COLUMNS or col.path[0] in IGNORED_COLUMNS:
        return True
    if col.path[-1] in LABEL_COLUMNS and not any(
            isinstance(_cell(r, col.index), int | float) for r in (*form.rows, *(s.row for s in form.sublines))):
        return True
    return col.index in form.hidden_cols and not any(_cell(r, col.index) for r in form.rows)


_SEPARATORS = ("({})", "-{}", "—{}", "_{}", "/{}", ":{}", "{}")


@lru_cache(maxsize=16)
def flattened_headers(declaration: Declaration) -> dict[str, Indicator]:
    """A one-row header spelling a declared two-level path → its indicator: 在校学生数(小学),
    在校学生数-小学, 在校学生数小学, 小学在校学生数 (normalised, units dropped; 其中: optional)."""
    found: dict[str, Indicator | None] = {}
    for ind in declaration.indicators:
        for path in ind.header_paths:
            if len(path) != 2:
                continue
            parent, child = _stem_path(path)[0]
            children = {child, child.removeprefix("其中:").removeprefix("其中")}
            for c in children:
                keys = {parent + sep.format(c) for sep in _SEPARATORS} | {c + parent}
                if parent.endswith(")"):  # 转移就业人数(本年累计) + 合计 → 转移就业人数(本年累计,合计)
                    keys.add(f"{parent[:-1]},{c})")
                for key in keys:
                    if key in found and found[key] is not ind:
                        found[key] = None  # two indicators spell alike: neither is guessed
                    else:
                        found[key] = ind
    return {k: v for k, v in found.items() if v is not None}


def _alternative_match(
    col: FormColumn, form: FormTable, by_path: dict[tuple[str, ...], tuple[Indicator, bool]],
    by_stem: dict[tuple[str, ...], Indicator], flattened: dict[str, Indicator], sheet: str | None,
) -> tuple[Indicator, Issue | None] | None:
    """A header that is the declared one in another shape: under an extra top level (a group
    title over the declared two levels), flattened into one cell (在校学生数(小学)), or the parent
    of a sub-line group (农村劳动力 over 章谷镇's row, 其中:贫困劳动力 on the line below)."""
    for k in range(1, len(col.path)):
        lower = col.path[k:]
        if lower in by_path:
            return by_path[lower][0], None
        stem_match, stem_issue = _match_by_stem(FormColumn(col.index, lower), by_stem, sheet)
        if stem_match is not None:
            return stem_match, stem_issue
    text = col.path[-1] if col.path else ""
    stem, unit = split_unit(text)
    ind = flattened.get(stem)
    if ind is not None and (unit is None or unit == ind.unit):
        return ind, None
    if form.sublines and len(col.path) == 1:
        for candidate in by_stem.values():
            parent = _stem_path(candidate.header_paths[0])[0]
            if len(parent) == 2 and parent[0] == stem and parent[1] in ("合计", "小计"):
                return candidate, None
    return None


def _subline_key(text: str) -> str:
    """其中：过夜游客（万人次） → 过夜游客: the sub-line's own words."""
    stem, _ = split_unit(normalise_header(text))
    return stem.removeprefix("其中").lstrip(":")


def subline_targets(
    form: FormTable, declaration: Declaration, mapped: dict[str, FormColumn]
) -> dict[str, tuple[str, FormColumn]]:
    """Indicators the form carries on its townships' 其中 sub-lines: name → (the indicator whose
    column holds it on the sub-line, that column). Declared by ``subline_of``."""
    labels = {_subline_key(s.label) for s in form.sublines if s.label}
    out: dict[str, tuple[str, FormColumn]] = {}
    for ind in declaration.indicators:
        if ind.subline_of is None or ind.name in mapped or ind.subline_of not in mapped:
            continue
        names = {_subline_key(p[-1]) for p in ind.header_paths} | {_subline_key(ind.label_zh)}
        if names & labels:
            out[ind.name] = (ind.subline_of, mapped[ind.subline_of])
    return out


def _subline_indicator(label: str, parent: str, declaration: Declaration) -> Indicator | None:
    key = _subline_key(label)
    for ind in declaration.indicators:
        if ind.subline_of == parent and key in ({_subline_key(p[-1]) for p in ind.header_paths}
                                                 | {_subline_key(ind.label_zh)}):
            return ind
    return None


def _cell(row: FormRow, index: int) -> object:
    value = row.cells[index] if index < len(row.cells) else None
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _parse_cell(
    row: FormRow, col: FormColumn, ind: Indicator, sheet: str | None, issues: list[Issue], native_text: bool
) -> float | None:
    parsed = parse_number(_cell(row, col.index), unit=ind.unit, native_text=native_text)
    where = {"sheet": sheet, "row": row.row_number, "column": col.label}
    if parsed.error:
        raw = str(_cell(row, col.index))
        why = "是没有保存计算结果的公式，请在Excel中打开并保存后重报" if raw.startswith("=") else "不是有效数值"
        issues.append(issue(parsed.error, f"“{raw}”{why}({ind.label_zh})", value=raw, **where))
        return None
    if parsed.null_token is not None:
        issues.append(issue("VALUE_NULL_TOKEN", f"“{parsed.null_token}”按空值处理({ind.label_zh})", **where))
    if parsed.coercion:
        issues.append(issue("VALUE_COERCED", parsed.coercion, **where))
    if parsed.value is None:
        return None
    if ind.value_type == "integer" and not is_whole(parsed.value):
        # rejected either way; the value stays as written so the blank and 合计 checks do not
        # report a cell the department did fill
        issues.append(issue("VALUE_NOT_INTEGER", f"{ind.label_zh}应为整数，填了{parsed.value}", **where))
    return round(parsed.value * ind.factor, 6)


def _check_title(form: FormTable, declaration: Declaration, period: Period) -> list[Issue]:
    issues: list[Issue] = []
    title = form.title
    period_text = title
    stated = periods_in_title(title, declaration.period_type) if title else ()
    if not stated:  # no period in the title: a 报告期 / 统计时间 line above the header says it
        line = next((t for t in form.preamble if any(k in t for k in ("报告期", "统计时间", "统计期"))), "")
        stated = periods_in_title(line, declaration.period_type) if line else ()
        period_text = line or title
    said = "或".join(p.label_zh for p in stated)
    if len(stated) > 1 and period in stated:
        code = "PERIOD_AMBIGUOUS"
        text = (f"表题“{period_text}”的报告期可读作{said}(Excel会把2017.10显示为2017.1)；"
                f"请在表题中写明“{period.label_zh}”")
    elif stated and period not in stated:
        code = "PERIOD_MISMATCH"
        text = f"表题“{period_text}”的报告期是{said}，与申报的报告期{period.label_zh}不一致"
    else:
        code = ""
    if code:
        issues.append(issue(code, text, sheet=form.sheet, row=form.title_row))
    folded = normalise_header(title)
    own = normalise_header(declaration.title_zh)
    if own not in folded:
        for other in load_declarations().values():
            if other.department != declaration.department and normalise_header(other.title_zh) in folded:
                issues.append(
                    issue(
                        "TITLE_DEPARTMENT_MISMATCH",
                        f"表题“{title}”是{other.title_zh}，不是{declaration.title_zh}：可能报错了部门",
                        sheet=form.sheet,
                        row=form.title_row,
                    )
                )
    return issues


def _header_of_another_department(
    form: FormTable, declaration: Declaration, mapped: dict[str, FormColumn]
) -> list[Issue]:
    """A form without a telling title whose header is another department's: the one root cause of
    every missing and unknown column that follows (TITLE_DEPARTMENT_MISMATCH, at the header row)."""
    if len(mapped) * 2 >= len(declaration.indicators):
        return []
    scores = [(match_count(form, other), other) for other in load_declarations().values()
              if other.department != declaration.department]
    best, other = max(scores, key=lambda pair: pair[0], default=(0, declaration))
    if best < 3 or best <= len(mapped):
        return []
    return [issue("TITLE_DEPARTMENT_MISMATCH",
                  f"表中{best}列的表头是{other.title_zh}的表头，不是{declaration.title_zh}：可能报错了部门",
                  sheet=form.sheet, row=form.header_rows[0])]


def _settle_rate_scale(
    records: list[dict[str, object]], totals: dict[str, float | None], name: str, col: FormColumn,
    form: FormTable, issues: list[Issue],
) -> None:
    """Rates are stored in % (0–100). One column is one convention, decided from the column:

    a cell written with a % sign is a percentage, and so is a number cell the workbook shows as
    one (0.95 formatted ``0%`` — what Excel stores when 95% is typed): it is read as the 95 it
    shows, recorded per cell; if every value lies in [0, 1] and none is written or shown as a
    percentage, the column holds fractions (0.95) and is scaled ×100, recorded per cell; a column
    mixing fractions with percentages — plain 95, "99.8%" text, or a cell shown as 95% — is
    ambiguous (0.97 beside "99.8%" could be 0.97 % or 97 %) and the fractional cells are rejected.
    """
    by_row = {r.row_number: r for r in form.rows}
    where = {"sheet": form.sheet, "column": col.label}
    plain = []
    written_as_percent = 0  # cells that say they are percentages: "99.8%" text, or shown as 95%
    for record in records:
        value = record.get(name)
        if not isinstance(value, float) or value != value:
            continue
        row_number = int(str(record["source_row"]))
        raw = _cell(by_row[row_number], col.index)
        if isinstance(raw, str) and raw.strip().endswith(("%", "％")):
            written_as_percent += 1
            continue
        if (row_number, col.index) in form.percent_cells:
            written_as_percent += 1
            record[name] = round(value * 100, 6)
            issues.append(issue("VALUE_COERCED", f"单元格格式为百分比，{value:g}按显示读作{value * 100:g}%",
                                row=row_number, **where))
            continue
        plain.append(record)
    total = totals.get(name)
    total_shown_as_percent = (
        form.total_row is not None and (form.total_row.row_number, col.index) in form.percent_cells
    )
    if form.total_row is not None and total is not None and total_shown_as_percent:
        totals[name] = round(total * 100, 6)
        issues.append(issue("VALUE_COERCED", f"单元格格式为百分比，{total:g}按显示读作{total * 100:g}%",
                            row=form.total_row.row_number, **where))
    fractions = [r for r in plain if 0 < float(str(r[name])) <= 1]
    if not fractions:
        return
    if all(0 <= float(str(r[name])) <= 1 for r in plain) and not written_as_percent:
        for record in fractions:
            before = float(str(record[name]))
            record[name] = round(before * 100, 6)
            issues.append(issue("VALUE_COERCED", f"比率{before:g}按小数读作{before * 100:g}%",
                                row=int(str(record["source_row"])), **where))
        total = totals.get(name)
        if form.total_row is not None and total is not None and 0 < total <= 1 and not total_shown_as_percent:
            totals[name] = round(total * 100, 6)  # the 合计 cell follows its column's convention
            issues.append(issue("VALUE_COERCED", f"比率{total:g}按小数读作{total * 100:g}%",
                                row=form.total_row.row_number, **where))
        return
    for record in fractions:
        issues.append(issue("RATE_AMBIGUOUS",
                            f"比率列中既有百分数(如“99.8%”或95)又有小数，{record[name]}无法确定是{record[name]}%还是"
                            f"{float(str(record[name])) * 100:g}%；请统一填写百分数",
                            row=int(str(record["source_row"])), **where))


def _expected(
    resolver: TownshipResolver, declaration: Declaration, presumed: set[str], records: list[dict[str, object]]
) -> tuple[str, ...]:
    """The townships the form must list; one an unknown name most probably meant (聂嘎乡 → 聂呷乡)
    is not also reported missing: its TOWNSHIP_UNKNOWN already names it."""
    if not declaration.all_townships:
        return ()
    present = {r[TOWNSHIP_CODE] for r in records}
    return tuple(c for c in resolver.expected_codes if c not in presumed or c in present)


def _read_sublines(
    form: FormTable, declaration: Declaration, mapped: dict[str, FormColumn], records: list[dict[str, object]],
    issues: list[Issue], native_text: bool,
) -> dict[str, str]:
    """A township's 其中 sub-lines: a declared one (``subline_of``) reads into its indicator on the
    township's record; an undeclared one, or values in columns without such an indicator, are
    reported (SUBLINE_IGNORED) and not read. Returns indicator → column label of what was read."""
    by_row = {int(str(r["source_row"])): r for r in records}
    read: dict[str, str] = {}
    for sub in form.sublines:
        record = by_row.get(sub.parent_row)
        ignored: list[str] = []
        for name, col in mapped.items():
            if _cell(sub.row, col.index) is None:
                continue
            target = _subline_indicator(sub.label, name, declaration) if sub.label else None
            if target is None or target.name in mapped or record is None:
                ignored.append(col.label)
                continue
            record[target.name] = _parse_cell(sub.row, col, target, form.sheet, issues, native_text)
            read[target.name] = f"{col.label}(第{sub.row.row_number}行 {sub.label})"
        if ignored:
            shown = sub.label or "(无标签)"
            issues.append(issue(
                "SUBLINE_IGNORED",
                f"第{sub.row.row_number}行“{shown}”是{sub.row.key}的分项行，申报定义中没有这一分项"
                f"({'、'.join(ignored)})，其数值未读取",
                sheet=form.sheet, row=sub.row.row_number, column=form.key_column.label,
            ))
    for name in read:
        for record in records:
            record.setdefault(name, None)
    return read


def _ignore_plain_sum_totals(
    records: list[dict[str, object]], totals: dict[str, float | None], mapped: dict[str, FormColumn],
    form: FormTable, declaration: Declaration, issues: list[Issue],
) -> None:
    """A per-capita or rate column whose 合计 is the plain sum of the townships (a SUM formula copied
    across): say so, as a warning, and leave that 合计 out of the checks; the townships load."""
    if form.total_row is None:
        return
    for name, col in mapped.items():
        ind = declaration.indicator(name)
        total = totals.get(name)
        if total is None or not (ind.aggregation == "weighted_mean" or ind.value_type == "rate"):
            continue
        values = [float(str(r[name])) for r in records if isinstance(r.get(name), float) and r[name] == r[name]]
        if len(values) < 2:
            continue
        plain = sum(values)
        tolerance = 0.5 * ind.factor + 1e-9 * abs(plain)
        if abs(total - plain) > tolerance:
            continue
        if ind.weight and ind.weight in mapped:
            pairs = [(float(str(r[name])), float(str(r[ind.weight]))) for r in records
                     if isinstance(r.get(name), float) and isinstance(r.get(ind.weight), float)]
            weight = sum(w for _, w in pairs)
            if weight and abs(total - sum(v * w for v, w in pairs) / weight) <= tolerance:
                continue  # the weighted mean happens to equal the sum: nothing wrong
        on_form = total / ind.factor
        issues.append(issue(
            "TOTAL_IS_PLAIN_SUM",
            f"合计行似为各乡镇数值直接相加：“{ind.label_zh}”的{form.total_row.key}为{on_form:g}{ind.unit}，"
            f"等于各乡镇之和；人均数、比率的合计应为加权平均，此合计不作核对，各乡镇数值照常入库",
            sheet=form.sheet, row=form.total_row.row_number, column=col.label,
        ))
        totals[name] = None


def nil_form(
    declaration: Declaration, period: Period, resolver: TownshipResolver, *, form: FormTable | None = None,
    title_issues: list[Issue] | None = None, marker: str = "本期无数据", marker_row: int | None = None,
) -> NormalisedForm:
    """A nil return (无数据申报): received, no township rows, no facts. From a form whose only line
    below the header is a declared marker (本月无数据 / 无), or from the portal's nil button (no form)."""
    where = f"第{marker_row}行写明“{marker}”" if marker_row else f"部门申报“{marker}”"
    nil = issue("NIL_RETURN", f"无数据申报: {where}，{declaration.title_zh}{period.label_zh}按已报送、无数据记录",
                sheet=form.sheet if form else None, row=marker_row)
    return NormalisedForm(
        department=declaration.department,
        period=period,
        sheet=form.sheet if form else None,
        encoding=form.encoding if form else None,
        wide=pd.DataFrame(columns=["source_row", TOWNSHIP_CODE, TOWNSHIP_TEXT]).set_index("source_row"),
        totals={},
        total_label=None,
        total_row_number=None,
        column_labels={},
        expected_townships=(),
        township_names={code: resolver.name_of(code) for code in resolver.expected_codes},
        key_column_label=form.key_column.label if form else None,
        issues=(*(title_issues or []), nil),
        nil_return=True,
    )


_UNIT_LINE = re.compile(r"(?<!填报)(?<!报送)单位[:：]\s*(.+)")


def units_on_unit_line(preamble: tuple[str, ...]) -> frozenset[str]:
    """Units a form's 单位 line states (``单位：人、万元``); empty when there is no such line.

    ``填报单位：…`` names the reporting office, not a unit, and is skipped.
    """
    known = load_units()
    found: set[str] = set()
    for line in preamble:
        match = _UNIT_LINE.search(line.replace("：", ":"))
        if not match:
            continue
        for token in re.split(r"[、，,/;；\s]+", match.group(1)):
            token = token.strip("()（）")
            if token in known:
                found.add(token)
            elif token:
                break
    return frozenset(found)


def _check_unit_line(
    form: FormTable, declaration: Declaration, mapped: dict[str, FormColumn]
) -> list[Issue]:
    """A unit line saying 元 where the declaration has 万元 → quarantine with the suspected factor.

    Only when the line names no unit of the declared kind that fits. A header stating 万元 under a
    unit line stating 元 contradicts itself: quarantined too, an operator decides.
    """
    stated = units_on_unit_line(form.preamble)
    if not stated:
        return []
    units = load_units()
    issues = []
    for name, col in mapped.items():
        ind = declaration.indicator(name)
        if ind.unit in stated:
            continue
        same_kind = sorted(u for u in stated if units[u].base_unit == ind.base_unit)
        if not same_kind:
            continue
        ratio = units[ind.unit].factor / units[same_kind[0]].factor
        issues.append(issue(
            "UNIT_MISMATCH",
            f"单位行写的是{'、'.join(same_kind)}，“{ind.label_zh}”申报单位为{ind.unit}(相差{ratio:g}倍)；未自动换算，请核实",
            sheet=form.sheet, column=col.label,
        ))
    return issues


def normalise_form(
    form: FormTable, declaration: Declaration, period: Period, resolver: TownshipResolver
) -> NormalisedForm:
    """Turn a located form into canonical rows; collects issues instead of raising."""
    sheet = form.sheet
    issues = _check_title(form, declaration, period)
    title_issues = list(issues)
    mapped, column_issues = _map_columns(form, declaration)
    if not any(i.code == "TITLE_DEPARTMENT_MISMATCH" for i in issues):
        issues.extend(_header_of_another_department(form, declaration, mapped))
    issues.extend(column_issues)
    issues.extend(_check_unit_line(form, declaration, mapped))
    native_text = form.encoding is not None  # CSV: every cell is text
    if not form.rows and form.marker_rows:
        marker_row, marker = form.marker_rows[0]
        if declaration.nil_return.allowed:
            # the columns do not matter when nothing is reported; the title's period and department do
            return nil_form(declaration, period, resolver, form=form, title_issues=title_issues, marker=marker,
                            marker_row=marker_row)
        issues.append(issue("ROWS_EMPTY", f"第{marker_row}行写明“{marker}”，但{declaration.title_zh}不接受无数据申报"
                            "(申报定义未允许)；请填写各乡镇数据(没有的填0)后重报", sheet=sheet, row=marker_row))
    if form.key_is_code:
        by = "/".join(form.key_column.path)
        issues.append(issue("COLUMN_ALIAS", f"表中没有“{declaration.key.header}”列，按“{by}”列的区划代码识别乡镇",
                            sheet=sheet, column=form.key_column.label))
    records: list[dict[str, object]] = []
    presumed: set[str] = set()  # the townships unknown names most probably meant
    for row in form.rows:
        resolution = resolver.resolve_code(row.key) if form.key_is_code else resolver.resolve(row.key)
        if resolution.township_code is None:
            issues.append(
                issue(
                    "TOWNSHIP_UNKNOWN",
                    resolution.problem or f"“{row.key}”无法识别",
                    sheet=sheet,
                    row=row.row_number,
                    column=form.key_column.label,
                    value=row.key,
                )
            )
            if resolution.nearest_code:
                presumed.add(resolution.nearest_code)
        elif not form.key_is_code and (resolution.alias_kind in ("short", "former") or row.key != resolution.name_zh):
            issues.append(
                issue(
                    "TOWNSHIP_ALIAS",
                    f"“{row.key}”识别为{resolution.name_zh}({resolution.township_code})",
                    sheet=sheet,
                    row=row.row_number,
                    column=form.key_column.label,
                )
            )
        if resolution.township_code is not None and row.code and form.code_column is not None:
            problem = resolver.code_problem(resolution.township_code, row.code)
            if problem:
                issues.append(issue("TOWNSHIP_CODE_MISMATCH", problem, sheet=sheet, row=row.row_number,
                                    column=form.code_column.label, value=row.code))
        record: dict[str, object] = {
            "source_row": row.row_number,
            TOWNSHIP_CODE: resolution.township_code,
            TOWNSHIP_TEXT: row.key,
        }
        for name, col in mapped.items():
            record[name] = _parse_cell(row, col, declaration.indicator(name), sheet, issues, native_text)
        records.append(record)
    sub_columns = _read_sublines(form, declaration, mapped, records, issues, native_text)
    if not records and not any(i.code == "ROWS_EMPTY" for i in issues):
        issues.append(issue("ROWS_EMPTY", f"{declaration.title_zh}有表头但没有乡镇数据行", sheet=sheet))

    # a column with an unreadable township cell (already a rejection) has no sum to check its 合计 against
    unreadable = {i.column for i in issues if i.code in _UNREADABLE}
    totals: dict[str, float | None] = {}
    if form.total_row is not None:
        for name, col in mapped.items():
            total = _parse_cell(form.total_row, col, declaration.indicator(name), sheet, issues, native_text)
            totals[name] = None if col.label in unreadable else total
        if mapped and not any(_cell(form.total_row, col.index) is not None for col in mapped.values()):
            issues.append(issue("TOTAL_ROW_MISSING", f"合计行“{form.total_row.key}”没有数值，无法核对各乡镇之和",
                                sheet=sheet, row=form.total_row.row_number))
    else:
        issues.append(issue("TOTAL_ROW_MISSING", "表中没有合计行，无法核对各乡镇之和", sheet=sheet))
    for name, col in mapped.items():
        if declaration.indicator(name).value_type == "rate":
            _settle_rate_scale(records, totals, name, col, form, issues)
    _ignore_plain_sum_totals(records, totals, mapped, form, declaration, issues)
    read_names = [*mapped, *sub_columns]
    columns = ["source_row", TOWNSHIP_CODE, TOWNSHIP_TEXT, *read_names]
    wide = pd.DataFrame.from_records(records, columns=columns).set_index("source_row")
    for name in read_names:
        wide[name] = pd.to_numeric(wide[name], errors="coerce").astype("float64")
    for extra in form.extra_total_rows:
        issues.append(
            issue("TOTAL_ROW_MISSING", f"另有合计类行“{extra.key}”未作为数据读取", severity="info",
                  sheet=sheet, row=extra.row_number)
        )
    hidden_used = [col.label for name, col in mapped.items() if col.index in form.hidden_cols]
    if hidden_used:
        issues.append(issue("COLUMNS_HIDDEN", f"{'、'.join(hidden_used)}在Excel中被隐藏，已按数据列读取", sheet=sheet))
    hidden = [r.row_number for r in form.rows if r.hidden]
    if hidden:
        issues.append(
            issue("ROWS_HIDDEN", f"第{'、'.join(map(str, hidden))}行在Excel中被隐藏，已按数据行读取", sheet=sheet)
        )
    return NormalisedForm(
        department=declaration.department,
        period=period,
        sheet=sheet,
        encoding=form.encoding,
        wide=wide,
        totals=totals,
        total_label=form.total_row.key if form.total_row else None,
        total_row_number=form.total_row.row_number if form.total_row else None,
        column_labels={**{name: col.label for name, col in mapped.items()}, **sub_columns},
        expected_townships=_expected(resolver, declaration, presumed, records),
        township_names={code: resolver.name_of(code) for code in resolver.expected_codes},
        key_column_label=form.key_column.label,
        issues=tuple(issues),
    )
