"""Per-submission validation time: duikou's GX path beside the same checks in plain pandas.

Usage: ``.venv/bin/python bench/validate.py [--repeats N]``

Workload: the demo's 15-township monthly returns (education, health, labour, tourism) for
2017-03 … 2017-08, each validated with its full suite — the declaration's checks plus the
history-aware ones against every earlier demo month (the history frame the warehouse would give,
built in memory so that only validation is timed). Warm: GX is imported and its context built
before timing (both once per process; the script checks that the context is built once).

- GX path: ``tasks.validation.validate.validate_form`` — suite generation, derived columns, one GX
  ``validate()`` call, issues, flags and DQ results. GX validates one family expectation per kind
  of check and severity (~9 for a return's ~59 checks); each family's metric evaluates its checks
  on the batch and reports every check's failing rows, split back per check by ``validate_form``.
- pandas floor: the same ``prepare_suite`` (checks + derived columns), then every check
  evaluated with plain pandas, giving the failing rows per check. The run asserts that both find
  the same failing rows for every check, so the two do the same work.

Prints medians (ms) and the ratio; the last line is one JSON object. Measured 2026-11-29 (2
shared cores): GX 107 ms, pandas 79 ms per submission, ratio 1.35 with 8.5 expectations (before
the families: 424 ms against 82 ms, 5.2; 59 expectations at ~6 ms of GX planning each).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from expectations.declaration import Declaration, load_declarations
from expectations.suite import CheckSpec
from tasks.demo.figures import MONTHS
from tasks.demo.form_writer import write_form
from tasks.demo.values import demo_values
from tasks.forms.normalise import NormalisedForm
from tasks.submission.journey import parse, receive
from warehouse.history import HISTORY_COLUMNS
from warehouse.refdata import reference_frames

DEPARTMENTS = ("education", "health", "labour", "tourism")
PERIODS = ("2017-03", "2017-04", "2017-05", "2017-06", "2017-07", "2017-08")


def _history(department: str, period: str, decl: Declaration) -> pd.DataFrame:
    frames = []
    values = demo_values()
    for earlier in (p for p in MONTHS if p < period):
        wide = values[(department, earlier)]
        long = wide.melt(id_vars="township_code", var_name="indicator", value_name="value")
        factors = {i.name: i.factor for i in decl.indicators}
        long["value"] = long["value"].astype("float64") * long["indicator"].map(factors)
        long["period"], long["year"], long["month"] = earlier, int(earlier[:4]), float(earlier[5:])
        frames.append(long)
    return pd.concat(frames, ignore_index=True).loc[:, list(HISTORY_COLUMNS)]


def _forms(workdir: Path) -> list[tuple[NormalisedForm, Declaration, pd.DataFrame]]:
    reference = reference_frames()
    out = []
    for department in DEPARTMENTS:
        decl = load_declarations()[department]
        for period in PERIODS:
            rows = demo_values()[(department, period)]
            path = write_form(workdir / f"{department}-{period}.xlsx", decl, period, rows)
            parsed = parse(receive(path, department, period), reference)
            assert parsed.form is not None
            out.append((parsed.form, decl, _history(department, period, decl)))
    return out


def _between(series: pd.Series, kw: dict[str, Any]) -> pd.Series:
    ok = pd.Series(True, index=series.index)
    lo, hi = kw.get("min_value"), kw.get("max_value")
    if lo is not None:
        ok &= series > lo if kw.get("strict_min") else series >= lo
    if hi is not None:
        ok &= series < hi if kw.get("strict_max") else series <= hi
    return ~ok & series.notna()


def pandas_failing_rows(frame: pd.DataFrame, check: CheckSpec) -> list[int] | bool:
    """The failing rows of a row check, or pass/fail of a table check, in plain pandas."""
    kw = dict(check.kwargs)
    kind = check.expectation_type
    if kind == "expect_column_values_to_be_unique":
        col = frame[kw["column"]]
        bad = col.duplicated(keep=False) & col.notna()
    elif kind == "expect_column_distinct_values_to_contain_set":
        return set(kw["value_set"]) <= set(frame[kw["column"]].dropna())
    elif kind == "expect_column_values_to_not_be_null":
        bad = frame[kw["column"]].isna()
    elif kind == "expect_column_values_to_be_between":
        bad = _between(frame[kw["column"]].astype("float64"), kw)
    elif kind == "expect_column_sum_to_be_between":
        total = frame[kw["column"]].sum()
        return bool(kw["min_value"] <= total <= kw["max_value"])
    elif kind in ("expect_column_pair_values_to_be_equal", "expect_column_pair_values_a_to_be_greater_than_b"):
        a, b = frame[kw["column_A"]].astype("float64"), frame[kw["column_B"]].astype("float64")
        holds = (a == b) if kind.endswith("equal") else (a >= b) if kw.get("or_equal") else (a > b)
        bad = ~holds & a.notna() & b.notna()
    elif kind == "expect_values_within_modified_z_score_of_history":
        value, centre, scale = (frame[c].astype("float64") for c in kw["column_list"])
        bad = ~((value - centre).abs() <= kw["threshold"] * scale) & value.notna() & centre.notna() & scale.notna()
    elif kind == "expect_increment_to_equal_cumulative_difference":
        month, ytd, previous = (frame[c].astype("float64") for c in kw["column_list"])
        bad = ~((month - (ytd - previous)).abs() <= kw["tolerance"]) & month.notna() & ytd.notna() & previous.notna()
    else:
        raise ValueError(f"no pandas equivalent for {kind}")
    return [int(i) for i in frame.index[bad]]


def pandas_validate(form: NormalisedForm, decl: Declaration, history: pd.DataFrame) -> dict[str, Any]:
    from tasks.validation.validate import prepare_suite

    frame, checks = prepare_suite(form, decl, history)
    return {c.check_id: pandas_failing_rows(frame, c) for c in checks}


def _gx_outcomes(validation: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for r in validation.results:
        out[r.check_id] = list(r.unexpected_rows) if r.unexpected_count is not None else bool(r.success)
    return out


def _time(fn: Any, *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn(*args)
    return (time.perf_counter() - start) * 1000, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    import tempfile

    start = time.perf_counter()
    import great_expectations  # noqa: F401

    import_ms = (time.perf_counter() - start) * 1000
    from expectations.suite import to_gx_expectations
    from tasks.validation.validate import _gx_batch_definition, prepare_suite, validate_form

    start = time.perf_counter()
    _gx_batch_definition()
    context_ms = (time.perf_counter() - start) * 1000
    with tempfile.TemporaryDirectory() as tmp:
        forms = _forms(Path(tmp))
    checks_per_form: list[int] = []
    expectations_per_form: list[int] = []
    for form, decl, history in forms[:2]:  # warm both paths (first custom-expectation use, caches)
        validate_form(form, decl, history)
        pandas_validate(form, decl, history)
    gx_ms: list[float] = []
    pandas_ms: list[float] = []
    for _ in range(args.repeats):
        for form, decl, history in forms:
            g_ms, validation = _time(validate_form, form, decl, history)
            p_ms, floor = _time(pandas_validate, form, decl, history)
            gx_ms.append(g_ms)
            pandas_ms.append(p_ms)
            checks_per_form.append(len(validation.results))
            expectations_per_form.append(len(to_gx_expectations(prepare_suite(form, decl, history)[1])))
            assert _gx_outcomes(validation) == floor, f"{form.department} {form.period.label}: GX and pandas disagree"
    contexts_built = _gx_batch_definition.cache_info().misses
    assert contexts_built == 1, f"the GX context was built {contexts_built} times"
    gx_median, pandas_median = statistics.median(gx_ms), statistics.median(pandas_ms)
    ratio = gx_median / pandas_median
    checks = statistics.median(checks_per_form)
    expectations = statistics.median(expectations_per_form)
    per_expectation = (gx_median - pandas_median) / expectations  # GX's cost per expectation
    print(f"submissions validated: {len(gx_ms)} ({len(forms)} returns × {args.repeats}), "
          f"checks per submission: median {checks:g} in {expectations:g} GX expectations (families)")
    print(f"once per process: import great_expectations {import_ms:.0f} ms, GX context {context_ms:.0f} ms "
          f"(built {contexts_built}×)")
    print(f"GX path (validate_form):       median {gx_median:.1f} ms per submission")
    print(f"plain pandas, same checks:     median {pandas_median:.1f} ms per submission")
    print(f"ratio GX / pandas:             {ratio:.1f}× (target ≤ 3)")
    print(f"GX overhead per expectation:   {per_expectation:.1f} ms × {expectations:g} expectations: planning "
          "each expectation's metric graph, validator and result, independent of the 15 rows")
    print(json.dumps({
        "gx_ms_median": round(gx_median, 1),
        "pandas_ms_median": round(pandas_median, 1),
        "gx_ratio": round(ratio, 2),
        "checks_per_submission": checks,
        "gx_expectations_per_submission": expectations,
        "gx_overhead_ms_per_expectation": round(per_expectation, 1),
        "submissions": len(gx_ms),
        "gx_import_ms": round(import_ms),
        "gx_context_ms": round(context_ms),
        "gx_contexts_built": contexts_built,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
