"""The demo generator: the article's figures come out exactly, good data passes every critical
rule, the flawed files are flawed as described, and the files are deterministic and dated.

The files are read back with a deliberately small reader defined here (not the pipeline's), so
these tests pin down what the writer produces independently of how the pipeline reads it.
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest
import xlrd

from expectations.declaration import Declaration, load_declarations, load_kpis, normalise_header
from expectations.rules import evaluate_term, parse_rule_expression
from tasks.demo.data import (
    DEMO_AS_OF,
    FLAWED,
    LATE_RETURNS,
    MISSING_RETURNS,
    REGISTRY_FORMATS,
    GeneratedFile,
    generate_demo,
)
from tasks.demo.departments import RESTATED_PERIOD, RESTATEMENT_DELTA
from tasks.demo.figures import (
    JOB_FAIR_2017_05_HIRES,
    JOB_FAIR_2017_05_POSTS,
    MID_SENIOR_DEMO_TOTAL,
    MONTHS,
    SKILLS_TRAINING_DEC_2017_ASSUMED,
    SKILLS_TRAINING_TO_2017_12,
    allocate,
)
from tasks.demo.form_writer import (
    HEADER_STYLES,
    build_form_grid,
    period_start,
    township_aliases,
    township_codes,
    write_form,
)
from tasks.demo.values import REGISTRY_SNAPSHOTS, demo_values, restated_township, story_figures
from warehouse.load import parse_period
from warehouse.marts import compute_county_kpis
from warehouse.refdata import reference_frames

DECLS = load_declarations()
CODES = township_codes()


# --------------------------------------------------------------------------------------------
# fixtures and a minimal reader
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[GeneratedFile]]:
    landing = tmp_path_factory.mktemp("landing")
    return landing, generate_demo(landing)


@pytest.fixture(scope="module")
def values() -> dict[tuple[str, str], pd.DataFrame]:
    return demo_values()


def _cells(path: Path) -> list[list[Any]]:
    """The first sheet as a list of rows; blanks are None; CSV text decoded as Excel would."""
    if path.suffix == ".xlsx":
        ws = openpyxl.load_workbook(path).worksheets[0]
        return [list(r) for r in ws.iter_rows(values_only=True)]
    if path.suffix == ".xls":
        sheet = xlrd.open_workbook(path).sheet_by_index(0)
        return [[None if v == "" else v for v in sheet.row_values(r)] for r in range(sheet.nrows)]
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        text = raw[3:].decode("utf-8")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("gbk")
    return [[v or None for v in row] for row in csv.reader(io.StringIO(text, newline=""))]


def _number(value: Any) -> float:
    if isinstance(value, str):
        return float(unicodedata.normalize("NFKC", value).replace(",", "").strip())
    return float(value)


def _clean(text: Any) -> str:
    return "".join(unicodedata.normalize("NFKC", str(text)).split())


@dataclass
class ReadForm:
    title: str
    paths: list[tuple[str, ...]]  # normalised header path per indicator column
    labels: list[str]  # township labels as written
    data: list[list[Any]]  # raw indicator cells per township row
    total: list[Any] | None
    total_at_top: bool


def _read(path: Path, decl: Declaration) -> ReadForm:
    rows = _cells(path)
    head = next(i for i, r in enumerate(rows) if r[0] is not None and normalise_header(r[0]) in decl.key.header_texts)
    first_body = next(i for i in range(head + 1, len(rows)) if rows[i][0] is not None)
    depth = first_body - head
    ncols = max(len(r) for r in rows)
    grid = [r + [None] * (ncols - len(r)) for r in rows]
    paths: list[tuple[str, ...]] = []
    parent = ""
    for c in range(1, ncols):
        top = grid[head][c] or ""
        if depth == 1:
            paths.append((normalise_header(top),))
            continue
        bottom = grid[head + 1][c]
        if top:
            parent = top
        paths.append(
            (normalise_header(top),) if bottom is None else (normalise_header(parent), normalise_header(bottom))
        )
    body: list[list[Any]] = []
    for r in grid[first_body:]:
        if r[0] is None:
            break
        body.append(r)
    if body and _clean(body[0][0]) == "甲":
        body = body[1:]
    total_idx = [i for i, r in enumerate(body) if _clean(r[0]) == "合计"]
    total = body[total_idx[0]][1:] if total_idx else None
    township_rows = [r for r in body if _clean(r[0]) != "合计"]
    return ReadForm(
        title=str(grid[0][0]),
        paths=paths,
        labels=[str(r[0]) for r in township_rows],
        data=[r[1:] for r in township_rows],
        total=total,
        total_at_top=bool(total_idx) and total_idx[0] == 0,
    )


def _resolve(label: str, period: str) -> str | None:
    """Township label → code through the dated alias table, as the pipeline must do it."""
    on = period_start(period)
    name = _clean(label)
    for alias in township_aliases():
        if alias.alias == name and alias.valid_from <= on <= alias.valid_to:
            return alias.township_code
    return None


def _indicator_by_path(decl: Declaration) -> dict[tuple[str, ...], str]:
    return {path: ind.name for ind in decl.indicators for path in ind.header_paths}


def _frame_of(form: ReadForm, decl: Declaration, period: str) -> pd.DataFrame:
    by_path = _indicator_by_path(decl)
    names = [by_path[p] for p in form.paths]
    data = {name: [_number(r[j]) for r in form.data] for j, name in enumerate(names)}
    codes = [_resolve(label, period) for label in form.labels]
    return pd.DataFrame({"township_code": codes, **data})


def _final_files(files: list[GeneratedFile]) -> Iterator[GeneratedFile]:
    """Per (department, period), the last good/correction form: the one carrying final values
    (the registry snapshots are person-level files: tests/registry/test_registry_demo.py reads those)."""
    last: dict[tuple[str, str], GeneratedFile] = {}
    for f in files:
        if f.kind != "flawed" and f.department in DECLS:
            last[(f.department, f.period)] = f
    yield from last.values()


# --------------------------------------------------------------------------------------------
# allocation
# --------------------------------------------------------------------------------------------


def test_allocate_sums_exactly_and_respects_caps() -> None:
    assert allocate(10, [1, 1, 1]) == [4, 3, 3]
    assert sum(allocate(8_690_000, [0.1, 3.7, 29.0, 2.2])) == 8_690_000
    capped = allocate(20, [10, 1, 1], caps=[5, 100, 100])
    assert capped[0] == 5 and sum(capped) == 20
    assert allocate(0, [1, 2]) == [0, 0]
    with pytest.raises(ValueError):
        allocate(5, [1, 1], caps=[1, 1])


# --------------------------------------------------------------------------------------------
# the values
# --------------------------------------------------------------------------------------------


def test_values_cover_every_return_with_declared_columns(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    expected = {("poverty", str(y)) for y in range(2011, 2017)}
    expected |= {(d, p) for d in ("education", "health", "labour", "tourism") for p in MONTHS}
    assert set(values) == expected
    assert len(MONTHS) == 35 and MONTHS[0] == "2015-01" and MONTHS[-1] == "2017-11"
    for (dept, _), frame in values.items():
        decl = DECLS[dept]
        assert list(frame.columns) == ["township_code", *decl.indicator_names]
        assert list(frame["township_code"]) == list(CODES)
        for ind in decl.indicators:
            column = frame[ind.name]
            assert column.notna().all()
            assert (column >= 0).all()
            if ind.value_type == "integer":
                assert pd.api.types.is_integer_dtype(column), (dept, ind.name)
            if ind.unit == "万元":
                assert (column.round(2) == column).all()


def test_article_income_and_poverty_figures(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    income: dict[int, float] = {}
    incidence: dict[int, float] = {}
    for year in range(2011, 2017):
        f = values[("poverty", str(year))]
        pop = f["agricultural_population_persons"]
        assert 48_000 <= pop.sum() <= 52_000
        assert (f["net_income_per_capita_yuan"] == f["net_income_per_capita_yuan"].round()).all()
        income[year] = float((f["net_income_per_capita_yuan"] * pop).sum() / pop.sum())
        incidence[year] = float(f["registered_poor_year_end_persons"].sum() / pop.sum() * 100)
    assert round(income[2016]) == 10827
    assert abs(income[2011] - 4150) <= 1
    assert round(income[2016] / income[2011], 2) == 2.61
    assert round(((income[2016] / income[2011]) ** (1 / 5) - 1) * 100, 1) == 21.1
    assert round(incidence[2011], 2) == 26.20
    assert round(incidence[2016], 2) == 12.78
    years = sorted(income)
    assert all(income[a] < income[b] for a, b in itertools.pairwise(years))
    assert all(incidence[a] > incidence[b] for a, b in itertools.pairwise(years))


def test_article_tourism_figures(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    def cents(year: str) -> int:
        return sum(
            round(v * 100) for p in MONTHS if p.startswith(year) for v in values[("tourism", p)]["tourism_revenue_yuan"]
        )

    assert cents("2016") == 8_690_000  # 86900.00 万元 = 8.69 亿元
    assert cents("2015") == 7_427_000
    assert round((cents("2016") / cents("2015") - 1) * 100, 1) == 17.0
    # the four tourist townships earn most; spring and autumn beat winter
    year = pd.concat([values[("tourism", p)] for p in MONTHS if p.startswith("2016")])
    by_township = year.groupby("township_code")["tourism_revenue_yuan"].sum().sort_values(ascending=False)
    assert set(by_township.index[:4]) == {"513323202", "513323100", "513323209", "513323210"}
    monthly = {p: values[("tourism", p)]["tourism_revenue_yuan"].sum() for p in MONTHS if p.startswith("2016")}
    assert monthly["2016-10"] > 3 * monthly["2016-01"]
    assert monthly["2016-04"] > 2 * monthly["2016-12"]


def test_article_labour_figures(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    may = values[("labour", "2017-05")]
    assert may["job_fair_posts"].sum() == JOB_FAIR_2017_05_POSTS >= 10_000
    assert may["job_fair_hires_person_times"].sum() == JOB_FAIR_2017_05_HIRES == 775
    for p in MONTHS:
        f = values[("labour", p)]
        assert (f["job_fair_hires_person_times"] <= f["job_fair_posts"]).all()
        if p != "2017-05":
            assert f["job_fair_posts"].sum() < 1000
        if p.startswith("2017") and p != "2017-05":
            assert f["job_fair_posts"].sum() == 0  # the 2017 job-fair KPIs equal the May event
    training = sum(int(values[("labour", p)]["skills_training_person_times"].sum()) for p in MONTHS)
    assert training == SKILLS_TRAINING_TO_2017_12 - SKILLS_TRAINING_DEC_2017_ASSUMED
    assert 3300 <= training <= 3450
    mid = sum(int(values[("labour", p)]["certified_mid_senior_persons"].sum()) for p in MONTHS)
    assert mid == MID_SENIOR_DEMO_TOTAL


def _base_units(frame: pd.DataFrame, decl: Declaration) -> pd.DataFrame:
    out = frame.copy()
    for ind in decl.indicators:
        out[ind.name] = frame[ind.name].astype("float64") * ind.factor
    return out


def _rule_holds(rule: Any, frame: pd.DataFrame) -> pd.Series:
    expression = parse_rule_expression(rule.check)
    terms = [evaluate_term(t, frame) for t in expression.terms]
    ok = pd.Series(True, index=frame.index)
    tol = rule.tolerance + 1e-6
    for left, op, right in zip(terms, expression.ops, terms[1:], strict=False):
        if op == "==":
            ok &= (left - right).abs() <= tol
        elif op in ("<=", "<"):
            ok &= (left <= right + tol) if op == "<=" else (left < right + tol)
        else:
            ok &= (left >= right - tol) if op == ">=" else (left > right - tol)
    return ok


def _critical_failures_and_warnings(values: dict[tuple[str, str], pd.DataFrame]) -> tuple[list[str], dict[str, int]]:
    failures: list[str] = []
    warnings: dict[str, int] = {}
    for (dept, period), frame in values.items():
        decl = DECLS[dept]
        base = _base_units(frame, decl)
        for rule in decl.rules:
            failed = int((~_rule_holds(rule, base)).sum())
            if rule.severity == "critical" and failed:
                failures.append(f"{dept} {period}: {rule.rule_id} fails on {failed} rows")
            elif rule.severity != "critical":
                warnings[rule.rule_id] = warnings.get(rule.rule_id, 0) + failed
    return failures, warnings


def test_every_critical_rule_passes_on_final_values(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    failures, warnings = _critical_failures_and_warnings(values)
    assert failures == []
    # a few deliberate warnings, and none from the unit-confusion guard
    assert 1 <= warnings["edu_no_dropouts"] <= 10
    assert 1 <= warnings["health_insured_full_coverage"] <= 10
    assert 1 <= warnings["health_out_of_pocket_share"] <= 5
    assert warnings["tourism_revenue_per_visit"] == 0
    assert warnings["labour_certified_le_trained"] == 0


@pytest.mark.parametrize("seed", [1, 27])
def test_other_seeds_keep_the_story_and_the_rules(seed: int) -> None:
    other = demo_values(seed)  # demo_values itself refuses values that miss the article's figures
    figures = story_figures(other)
    assert round(figures["net_income_2016_yuan"]) == 10827
    assert round(figures["tourism_revenue_2016_wan"], 2) == 86900.00
    assert _critical_failures_and_warnings(other)[0] == []


def test_domain_consistency(values: dict[tuple[str, str], pd.DataFrame]) -> None:
    for p in MONTHS:
        t = values[("tourism", p)]
        per_visit = t["tourism_revenue_yuan"] / t["visitors_person_times"]
        assert per_visit.between(300, 900).all(), p
        assert (t["overnight_visitors_person_times"] <= t["visitors_person_times"]).all()
        h = values[("health", p)]
        cost = (h["inpatient_cost_yuan"] * 100).round().astype(int)
        parts = (h["reimbursed_yuan"] * 100).round().astype(int) + (h["out_of_pocket_yuan"] * 100).round().astype(int)
        assert (cost == parts).all(), p
        assert (h["inpatient_cost_yuan"] > 0).all()
        # the health register is the poverty office's previous year-end register
        year = parse_period(p)[0]
        poor = values[("poverty", str(year - 1))]["registered_poor_year_end_persons"]
        assert list(h["poor_population_persons"]) == list(poor)
        e = values[("education", p)]
        assert (e["enrolled_total_persons"] == e["enrolled_primary_persons"] + e["enrolled_junior_persons"]).all()
        lab = values[("labour", p)]
        assert (lab["transferred_ytd_poor_persons"] <= lab["rural_labour_poor_persons"]).all()
    cumulative = [
        ("education", "returned_to_school_ytd_persons"),
        ("education", "student_aid_ytd_person_times"),
        ("education", "student_aid_ytd_yuan"),
        ("health", "health_checkups_ytd_persons"),
        ("labour", "transferred_ytd_total_persons"),
        ("labour", "transferred_ytd_poor_persons"),
    ]
    for dept, name in cumulative:
        assert DECLS[dept].indicator(name).cumulative
        for prev, cur in itertools.pairwise(MONTHS):
            if prev[:4] == cur[:4]:
                assert (values[(dept, cur)][name] >= values[(dept, prev)][name]).all(), (dept, name, cur)
        assert values[("labour", "2016-01")]["transferred_ytd_total_persons"].sum() < (
            values[("labour", "2015-12")]["transferred_ytd_total_persons"].sum() / 4
        )


# --------------------------------------------------------------------------------------------
# the files
# --------------------------------------------------------------------------------------------


def test_file_set_layout_and_formats(demo: tuple[Path, list[GeneratedFile]]) -> None:
    landing, files = demo
    assert len(files) == 6 + 35 * 4 + 4 + 1 - len(MISSING_RETURNS) + len(REGISTRY_SNAPSHOTS)
    assert [(f.period, f.fmt) for f in files if f.department == "labour_registry"] == list(REGISTRY_FORMATS.items())
    assert not {(f.department, f.period) for f in files} & MISSING_RETURNS  # never sent
    on_disk = sorted(p for p in landing.rglob("*") if p.is_file())
    assert on_disk == sorted(f.path for f in files)
    for f in files:
        assert f.path.parent == landing / f.department / f.period
        assert f.path.suffix == {"xlsx": ".xlsx", "xls": ".xls"}.get(f.fmt, ".csv")
    kinds = [f.kind for f in files]
    assert kinds.count("flawed") == 4 and kinds.count("correction") == 5
    assert sum(f.department == "poverty" for f in files) == 6
    fmts = [f.fmt for f in files]
    assert 20 <= fmts.count("csv-gbk") <= 30
    assert fmts.count("csv-utf8-bom") >= 2 and fmts.count("xls") >= 3
    assert fmts.count("xlsx") > len(files) / 2
    assert all(f.fmt == "xlsx" for f in files if f.kind == "flawed")
    for f in files:
        raw = f.path.read_bytes()
        if f.fmt == "csv-gbk":
            assert not raw.startswith(b"\xef\xbb\xbf")
            raw.decode("gbk")
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
        elif f.fmt == "csv-utf8-bom":
            assert raw.startswith(b"\xef\xbb\xbf")


def test_arrival_order_and_mtimes(demo: tuple[Path, list[GeneratedFile]]) -> None:
    _, files = demo
    for f in files:
        assert os.stat(f.path).st_mtime == f.arrived_at.timestamp()
        year, month = parse_period(f.period)
        arrived = f.arrived_at.date()
        if (f.department, f.period) in LATE_RETURNS:  # planted: after the deadline (10th + 3 days), before the clock
            assert date(arrived.year, arrived.month, 13) < arrived <= DEMO_AS_OF
            continue
        if f.kind == "good" and not (f.department == "labour" and f.period == RESTATED_PERIOD):
            if month is None:
                assert (arrived.year, arrived.month) == (year + 1, 1)
            else:
                nxt = date(year + (month == 12), month % 12 + 1, 1)
                assert (arrived.year, arrived.month) == (nxt.year, nxt.month) and 5 <= arrived.day <= 12
    by_mtime = sorted(files, key=lambda f: (os.stat(f.path).st_mtime, str(f.path)))
    assert [f.path for f in by_mtime] == [f.path for f in files]
    position = {f.path: i for i, f in enumerate(files)}
    for dept, period in [*FLAWED, ("labour", RESTATED_PERIOD)]:
        pair = [f for f in files if (f.department, f.period) == (dept, period)]
        assert [f.kind for f in pair] in (["flawed", "correction"], ["good", "correction"])
        assert position[pair[0].path] < position[pair[1].path]
        assert pair[0].arrived_at < pair[1].arrived_at
    restatement = [f for f in files if f.note == "restatement"]
    assert len(restatement) == 1 and restatement[0].period == RESTATED_PERIOD


def test_files_carry_the_final_values(
    demo: tuple[Path, list[GeneratedFile]], values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    _, files = demo
    seen_alias = seen_text = seen_short = seen_top = seen_numbers_row = 0
    for f in _final_files(files):
        decl = DECLS[f.department]
        form = _read(f.path, decl)
        assert form.title.startswith("丹巴县") and form.title.endswith(decl.title_zh)
        assert sorted(form.paths) == sorted(_indicator_by_path(decl).keys() & set(form.paths))
        seen_alias += any(p != ind.header_paths[0] for p, ind in zip(form.paths, decl.indicators, strict=True))
        read = _frame_of(form, decl, f.period)
        assert list(read["township_code"]) == list(CODES), (f.path.name, form.labels)
        expected = values[(f.department, f.period)]
        for ind in decl.indicators:
            diff = (read[ind.name] - expected[ind.name].astype(float)).abs().max()
            assert diff < 1e-9, (f.path.name, ind.name)
        # the 合计 row: sums, the weighted mean for per-capita income
        assert form.total is not None
        total = dict(zip(read.columns[1:], form.total, strict=True))
        for ind in decl.indicators:
            want: float
            if ind.aggregation == "none":  # a rate's 合计 cell is left empty
                assert total[ind.name] in (None, ""), (f.path.name, ind.name)
                continue
            if ind.aggregation == "weighted_mean":
                w = expected[ind.weight]
                want = round(float((expected[ind.name] * w).sum() / w.sum()))
            else:
                want = float(expected[ind.name].sum())
            assert abs(_number(total[ind.name]) - want) < 1e-6, (f.path.name, ind.name)
        seen_text += any(isinstance(v, str) for r in form.data for v in r) and f.fmt == "xlsx"
        seen_short += "章谷" in form.labels
        seen_top += form.total_at_top
        seen_numbers_row += "栏次 row" in f.note
    assert seen_alias >= 3 and seen_text >= 2 and seen_short >= 2
    assert 10 <= seen_top <= 60 and seen_numbers_row >= 10


def test_township_names_follow_the_calendar(demo: tuple[Path, list[GeneratedFile]]) -> None:
    _, files = demo
    labels = {
        (f.department, f.period, f.kind): [_clean(n) for n in _read(f.path, DECLS[f.department]).labels]
        for f in files if f.department in DECLS
    }
    for year in ("2011", "2012"):
        assert "巴底乡" in labels[("poverty", year, "good")]
    for year in ("2011", "2015"):
        assert "革什扎乡" in labels[("poverty", year, "good")]
    assert "革什扎镇" in labels[("poverty", "2016", "good")]
    old_name_months = 0
    for (dept, period, _), names in labels.items():
        if dept == "poverty":
            continue
        assert "巴底镇" in names and "巴底乡" not in names
        if period < "2015-09":
            assert "革什扎乡" in names
        elif period > "2016-06":
            assert "革什扎镇" in names
        else:
            old_name_months += "革什扎乡" in names
    assert 10 <= old_name_months <= 30  # about half of the 40 returns in the window


def test_flawed_files_are_flawed_as_described(
    demo: tuple[Path, list[GeneratedFile]], values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    _, files = demo
    flawed = {(f.department, f.period): f for f in files if f.kind == "flawed"}
    assert set(flawed) == set(FLAWED)

    edu = _read(flawed[("education", "2016-03")].path, DECLS["education"])
    read = _frame_of(edu, DECLS["education"], "2016-03")
    assert edu.total is not None
    total = dict(zip(read.columns[1:], edu.total, strict=True))
    assert _number(total["enrolled_primary_persons"]) - read["enrolled_primary_persons"].sum() == 40
    assert _number(total["enrolled_junior_persons"]) == read["enrolled_junior_persons"].sum()

    health = _read(flawed[("health", "2017-02")].path, DECLS["health"])
    assert "聂嘎乡" in health.labels and "聂呷乡" not in health.labels
    assert _resolve("聂嘎乡", "2017-02") is None

    tour = _frame_of(_read(flawed[("tourism", "2016-08")].path, DECLS["tourism"]), DECLS["tourism"], "2016-08")
    over = tour["overnight_visitors_person_times"] > tour["visitors_person_times"]
    assert list(tour.loc[over, "township_code"]) == ["513323209"]  # 梭坡乡
    good = values[("tourism", "2016-08")]
    for name in DECLS["tourism"].indicator_names:
        if name != "overnight_visitors_person_times":
            assert (tour[name] - good[name]).abs().max() < 1e-9, name

    lab = _read(flawed[("labour", "2017-03")].path, DECLS["labour"])
    assert lab.title == "丹巴县2017年2月就业扶贫工作进展月报表"
    assert flawed[("labour", "2017-03")].path.parent.name == "2017-03"


def test_restatement_changes_one_training_figure_by_five(
    demo: tuple[Path, list[GeneratedFile]], values: dict[tuple[str, str], pd.DataFrame]
) -> None:
    _, files = demo
    first, second = [f for f in files if f.department == "labour" and f.period == RESTATED_PERIOD]
    decl = DECLS["labour"]
    a = _frame_of(_read(first.path, decl), decl, RESTATED_PERIOD)
    b = _frame_of(_read(second.path, decl), decl, RESTATED_PERIOD)
    diff = b.set_index("township_code") - a.set_index("township_code")
    changed = diff[(diff != 0).any(axis=1)]
    assert list(changed.index) == [restated_township()]
    assert changed.loc[restated_township(), "skills_training_person_times"] == RESTATEMENT_DELTA
    assert (changed.drop(columns="skills_training_person_times") == 0).all().all()
    assert (b.set_index("township_code") == values[("labour", RESTATED_PERIOD)].set_index("township_code")).all().all()


def test_generation_is_deterministic(tmp_path: Path, demo: tuple[Path, list[GeneratedFile]]) -> None:
    landing, files = demo
    again = generate_demo(tmp_path / "again")
    assert [f.path.relative_to(tmp_path / "again") for f in again] == [f.path.relative_to(landing) for f in files]
    for f, g in zip(files, again, strict=True):
        assert f.path.read_bytes() == g.path.read_bytes(), f.path.name
        assert os.stat(f.path).st_mtime == os.stat(g.path).st_mtime
        assert (f.kind, f.note, f.fmt) == (g.kind, g.note, g.fmt)
    other = demo_values(seed=7)
    assert not other[("tourism", "2016-05")].equals(demo_values()[("tourism", "2016-05")])
    assert sum(other[("tourism", p)]["tourism_revenue_yuan"].sum() for p in MONTHS if p[:4] == "2016") == (
        pytest.approx(86900.0)
    )


# --------------------------------------------------------------------------------------------
# the writer on its own
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", HEADER_STYLES)
@pytest.mark.parametrize("department", sorted(DECLS))
def test_written_headers_normalise_to_declared_paths(department: str, style: Any) -> None:
    decl = DECLS[department]
    rows = demo_values()[(department, MONTHS[0] if decl.period_type == "month" else "2016")]
    period = MONTHS[0] if decl.period_type == "month" else "2016"
    grid = build_form_grid(decl, period, rows, header_style=style, column_numbers_row=True)
    head = grid.row_kinds.index("header")
    assert normalise_header(grid.cells[head][0]) in decl.key.header_texts
    for col in grid.columns:
        assert col.indicator is not None
        written = tuple(normalise_header(p) for p in col.path)
        assert written in col.indicator.header_paths
        if style != "alias" or not col.indicator.aliases:
            assert written == col.indicator.header_paths[0]


@pytest.mark.parametrize("fmt", ["xlsx", "xls", "csv-gbk", "csv-utf8-bom", "csv-utf8"])
def test_write_form_fixture_options(tmp_path: Path, fmt: Any) -> None:
    decl = DECLS["labour"]
    rows = demo_values()[("labour", "2017-05")].iloc[:3].copy()
    rows = rows.drop(columns=["job_fair_posts"]).astype(object)
    rows.loc[0, "local_employment_person_times"] = "1,234"
    rows.loc[1, "local_employment_person_times"] = "—"
    rows["mystery"] = [1, 2, 3]
    path = write_form(
        tmp_path / f"x.{fmt}",
        decl,
        "2017-05",
        rows,
        fmt=fmt,
        total_position="top",
        column_numbers_row=True,
        title_period="2017-04",
        township_names=["章谷", "巴底乡", "不存在乡"],
        header_paths={"mystery": ["神秘列"]},
    )
    cells = _cells(path)
    assert cells[0][0] == "丹巴县2017年4月就业扶贫工作进展月报表"
    assert str(cells[1][0]).startswith("填报单位：丹巴县人力资源和社会保障局")
    texts = [_clean(v) for r in cells for v in r if v is not None]
    assert "神秘列" in texts and "招聘会提供岗位数" not in texts
    assert "甲" in texts and "不存在乡" in texts and "—" in texts
    total_row = next(r for r in cells if r[0] == "合计")
    first_township = next(i for i, r in enumerate(cells) if r[0] == "章谷")
    assert cells.index(total_row) < first_township
    local = decl.indicator_names.index("local_employment_person_times")  # no posts column before it
    expected = 1234 + int(demo_values()[("labour", "2017-05")].loc[2, "local_employment_person_times"])
    assert _number(total_row[local + 1]) == expected


def test_education_and_health_kpis_are_plausible_for_danba() -> None:
    """No article figure exists for education and health: the demo's values must at least be plausible
    for a county of ~60 000 people — computed by the mart's own methods, each input added up by its kind."""
    rows = []
    for (department, period), frame in demo_values().items():
        if department not in ("education", "health"):
            continue
        for ind in DECLS[department].indicators:
            for code, value in zip(frame["township_code"], frame[ind.name], strict=True):
                rows.append((department, ind.name, code, period, int(period[:4]),
                             None if pd.isna(value) else float(value) * ind.factor))  # fmt: skip
    values = pd.DataFrame(rows, columns=["department", "indicator", "township_code", "period", "year", "value"])
    chosen = [k for k in load_kpis() if k.department in ("education", "health")]
    kpis = compute_county_kpis(values, reference_frames().townships, chosen, DECLS)
    got = {k: kpis[(kpis["kpi"] == k) & (kpis["year"] == 2016)]["value"].item() for k in {k.kpi for k in chosen}}
    plausible = {
        "enrolled_students_persons": (4000, 10000),  # primary + junior pupils, a month-end head count
        "dropouts_persons": (0, 30), "returned_to_school_persons": (0, 50),
        "nutrition_coverage_pct": (90, 100), "teacher_training_person_times": (50, 2000),
        "insurance_coverage_pct": (95, 100), "family_doctor_coverage_pct": (60, 100),
        "inpatient_person_times": (200, 5000), "out_of_pocket_share_pct": (0, 10),
        "serious_illness_treated_persons": (10, 1000),
    }  # fmt: skip
    assert set(got) == set(plausible)
    for kpi, (low, high) in plausible.items():
        assert low <= got[kpi] <= high, (kpi, got[kpi])
