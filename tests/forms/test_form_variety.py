"""Generated form variants through the reader: loaded with exactly the true values, or refused
with an issue naming where — never an exception, never silently wrong values, never a dropped
township.

``tests/helpers/form_variants.py`` builds each variant from a department's declared form (the demo's
writer) and combines the perturbations real clerks make (its ``PERTURBATIONS``); every variant
knows its truth. Each file goes through the pipeline's own path for one file without Prefect:
``validate(parse(receive(path, department, period), reference_frames()))``. With LibreOffice
(``soffice``) installed, variants with formulas are recalculated and saved by it first, so their
cached values are a real spreadsheet's; without it they must be refused (no cached value).

``DUIKOU_FORM_VARIANTS`` (default 240) and ``DUIKOU_FORM_VARIANTS_SEED`` (default 2017) widen
the search; a failing variant's id names its number, department and format, and the assertion
lists its perturbations, so it can be rebuilt with ``form_variants.make_variant(i, seed)``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from expectations.issues import ROOT_CAUSES, Issue
from tasks.submission.journey import parse, receive, validate
from tests.helpers import form_variants as fv
from warehouse.refdata import ReferenceFrames, reference_frames

ROOT = Path(__file__).resolve().parents[2]
N = int(os.environ.get("DUIKOU_FORM_VARIANTS", "240"))
SEED = int(os.environ.get("DUIKOU_FORM_VARIANTS_SEED", "2017"))
VARIANTS = fv.variants(N, SEED)


@dataclass(frozen=True)
class Written:
    variant: fv.Variant
    path: Path
    laid: fv.Laid


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    base = tmp_path_factory.mktemp("variants")
    out: dict[str, Written] = {}
    to_recalc: list[tuple[fv.Variant, Path]] = []
    pre = base / "formulas"
    pre.mkdir()
    for v in VARIANTS:
        if (v.formulas or v.resave) and fv.soffice() is not None:
            # written as .xlsx with formulas and no cached values; LibreOffice computes and saves them
            source = replace(v, fmt="xlsx")
            path, laid = fv.write_variant(source, pre)
            to_recalc.append((v, path))
        else:
            path, laid = fv.write_variant(v, base)
        out[v.ident] = Written(v, path, laid)
    for ident, path in fv.recalculate(to_recalc, base).items():
        out[ident] = replace(out[ident], path=path)
    return out


def _letters(column: str | None) -> list[str]:
    return re.findall(r"(?<![A-Z])([A-Z]{1,3})列", column or "")


def _matches(want: fv.Want, found: Issue, laid: fv.Laid) -> bool:
    if found.code != want.code:
        return False
    if want.row is not None and found.row != laid.row_of.get(want.row):
        return False
    return not (want.column is not None and laid.letter_of[want.column] not in _letters(found.column))


def _describe(v: fv.Variant, issues: tuple[Issue, ...]) -> str:
    listed = "\n".join(f"  {i.severity:8} {i.code} sheet={i.sheet} row={i.row} col={i.column}: {i.message}"
                       for i in issues)
    return f"{v.ident} {v.period} expect={v.expect} perturbations={v.perturbations}\n{listed}"


@pytest.mark.parametrize("ident", [v.ident for v in VARIANTS])
def test_variant(ident: str, written: dict[str, Written], reference: ReferenceFrames) -> None:
    w = written[ident]
    v, laid = w.variant, w.laid
    parsed = parse(receive(w.path, v.department, v.period), reference)
    validation = validate(parsed)
    issues = validation.issues
    why = _describe(v, issues)
    assert validation.outcome == v.expect, why
    for want in v.wants:
        assert any(_matches(want, i, laid) for i in issues), f"missing {want}\n{why}"
    sheet = None if v.fmt.startswith("csv") else v.sheet_name
    for found in issues:
        if found.row is not None or found.column is not None:
            assert found.sheet == sheet, f"{found.code} names sheet {found.sheet!r}, not {sheet!r}\n{why}"
    for banned in v.forbid:
        assert not any(_matches(banned, i, laid) for i in issues), f"reported {banned}\n{why}"
    roots = [p for p in v.perturbations if p in fv.ROOT_CAUSE_FAULTS]
    if roots:  # one root cause, not a cascade: listed first, everything that follows from it folded
        root = issues[0]
        assert root.code in ROOT_CAUSES and root.caused_by is None, why
        for found in issues[1:]:
            assert found.caused_by == root.code or found.code in ("SHEET_CHOSEN", "ENCODING_DETECTED"), (
                f"{found.code} not folded under {root.code}\n{why}")
    if v.expect == "loaded":
        assert not [i for i in issues if i.severity == "critical"], why
        assert parsed.form is not None
        _assert_truth(v, parsed.form.wide, why)
    else:
        for found in (i for i in issues if i.severity == "critical" and not (roots and i.caused_by)):
            expected = any(_matches(w_, found, laid) for w_ in (*v.wants, *v.tolerated))
            assert expected, f"unexpected {found.code} at row {found.row} {found.column}\n{why}"


def _assert_truth(v: fv.Variant, wide: Any, why: str) -> None:
    """Every true township once, with every true value; nothing else."""
    codes = list(wide["township_code"])
    assert sorted(codes) == sorted(v.truth), f"townships read {sorted(map(str, codes))}\n{why}"
    by_code = wide.set_index("township_code")
    for code, values in v.truth.items():
        for name, expected in values.items():
            assert name in by_code.columns, f"{name} not read\n{why}"
            got = by_code.at[code, name]
            if expected is None:
                assert got != got, f"{code} {name}: read {got}, expected no value\n{why}"
            else:
                assert got == pytest.approx(expected, rel=1e-9, abs=1e-6), (
                    f"{code} {name}: read {got}, true {expected}\n{why}"
                )


def test_every_perturbation_is_exercised() -> None:
    """The seeded run covers each perturbation the generator knows (accepted ones and faults)."""
    seen = {p.split(":")[0] for v in VARIANTS for p in v.perturbations}
    applied = {name for name in fv.PERTURBATIONS if name != "formats"}
    if fv.soffice() is None:
        applied -= {"formulas", "resaved"}
    assert applied <= seen, sorted(applied - seen)
    assert {v.fmt for v in VARIANTS} == set(fv.FORMATS)


def test_departments_guide_lists_every_perturbation() -> None:
    """docs/departments.md §2a names each perturbation of the generator, and no other."""
    text = (ROOT / "docs" / "departments.md").read_text(encoding="utf-8")
    section = text.split("## 2a.", 1)[1].split("\n## ", 1)[0]
    listed = re.findall(r"^\|\s*`([a-z_]+)`\s*\|", section, flags=re.MULTILINE)
    assert sorted(listed) == sorted(fv.PERTURBATIONS), (
        sorted(set(fv.PERTURBATIONS) - set(listed)), sorted(set(listed) - set(fv.PERTURBATIONS))
    )
    for name, (kind, _) in fv.PERTURBATIONS.items():
        row = next(line for line in section.splitlines() if line.startswith(f"| `{name}`"))
        assert ("退回" in row or "待核" in row) == (kind != "accept"), name
