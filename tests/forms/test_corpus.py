"""The fixture corpus: real files a county department could send, and what must become of them.

``tests/fixtures/corpus/manifest.yaml`` lists each file with its department, period, expected
status and every expected issue code (with row and column letters where the issue names them);
``tests/fixtures/make_corpus.py`` generated both and is not run here. Each file goes through
``validate(parse(receive(path, department, period), reference_frames()))``. A case the
pipeline does not yet get right is a strict xfail whose reason says what differs.

Also here: ``docs/departments.md`` lists exactly the issue codes of the catalogue, with the
catalogue's severity and action.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from expectations.issues import ISSUE_CODES, Issue
from tasks.submission.journey import parse, receive, validate
from warehouse.refdata import ReferenceFrames, reference_frames

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "corpus"
MANIFEST: list[dict[str, Any]] = yaml.safe_load((CORPUS / "manifest.yaml").read_text(encoding="utf-8"))["files"]
STATUSES = {"loaded", "rejected", "quarantined"}
#: domain.md §7 and the corpus brief: every class has at least one file
CLASSES = {
    "encoding", "format", "layout", "header", "unit", "rate", "township", "number", "total", "period",
    "department", "empty", "truncated", "unsafe", "nil",
}


@pytest.fixture(scope="module")
def reference() -> ReferenceFrames:
    return reference_frames()


def _letters(column: str | None) -> str | None:
    """``"D列 旅游总收入(万元)；B列 接待游客(万人次)"`` → ``"D;B"``; None stays None."""
    if column is None:
        return None
    return ";".join(re.findall(r"(?<![A-Z])([A-Z]{1,3})列", column)) or column


def _expected_counts(entry: dict[str, Any]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for item in entry["issues"]:
        counts[item["code"]] += int(item.get("count", 1))
    return counts


def _positions(entry: dict[str, Any], code: str) -> tuple[str, ...]:
    """Which of row / column the manifest gives for ``code`` (the same for all its entries)."""
    return tuple(k for k in ("row", "column") if any(k in i for i in entry["issues"] if i["code"] == code))


def _check_positions(entry: dict[str, Any], issues: tuple[Issue, ...]) -> None:
    """Per code: the (row, column letters) the manifest gives are exactly the ones reported."""
    for code in dict.fromkeys(i["code"] for i in entry["issues"]):
        keys = _positions(entry, code)
        if not keys:
            continue
        expected = [i for i in entry["issues"] if i["code"] == code]
        want = sorted(
            (tuple(e[k] for k in keys) for e in expected for _ in range(int(e.get("count", 1)))), key=repr
        )
        got = sorted(
            (tuple(i.row if k == "row" else _letters(i.column) for k in keys) for i in issues if i.code == code),
            key=repr,
        )
        assert got == want, f"{code}: reported at {got}, expected at {want} ({'/'.join(keys)})"


def _case(entry: dict[str, Any]) -> Any:
    marks = [pytest.mark.xfail(strict=True, reason=entry["xfail"])] if entry.get("xfail") else []
    return pytest.param(entry, id=entry["file"], marks=marks)


@pytest.mark.parametrize("entry", [_case(e) for e in MANIFEST])
def test_corpus_file(entry: dict[str, Any], reference: ReferenceFrames) -> None:
    received = receive(CORPUS / entry["file"], entry["department"], str(entry["period"]))
    validation = validate(parse(received, reference))
    reported = Counter(i.code for i in validation.issues)
    summary = [(i.code, i.row, i.column) for i in validation.issues]
    assert validation.outcome == entry["status"], summary
    assert reported == _expected_counts(entry), summary
    _check_positions(entry, validation.issues)
    for item in entry["issues"]:  # one root cause, not a cascade: what follows from it says so
        if "caused_by" in item:
            causes = {i.caused_by for i in validation.issues if i.code == item["code"]}
            assert causes == {item["caused_by"]}, (item["code"], causes)
    roots = [i for i in validation.issues if i.caused_by is None]
    assert all(i.caused_by is None for i in validation.issues[: len(roots)]), "a root cause is listed first"


def test_the_manifest_lists_every_corpus_file_once() -> None:
    listed = [e["file"] for e in MANIFEST]
    assert len(listed) == len(set(listed))
    on_disk = sorted(p.relative_to(CORPUS).as_posix() for p in CORPUS.rglob("*") if p.is_file())
    assert sorted([*listed, "manifest.yaml"]) == on_disk


def test_the_manifest_is_well_formed() -> None:
    for entry in MANIFEST:
        assert entry["status"] in STATUSES, entry["file"]
        assert entry["class"] in CLASSES, entry["file"]
        assert re.fullmatch(r"\d{4}(-\d{2})?", str(entry["period"])), entry["file"]
        for item in entry["issues"]:
            assert item["code"] in ISSUE_CODES, (entry["file"], item["code"])
            assert set(item) <= {"code", "row", "column", "count", "caused_by"}, entry["file"]
            keys = _positions(entry, item["code"])
            assert all(k in item for k in keys), f"{entry['file']}: give {keys} for every {item['code']}"
    assert {e["class"] for e in MANIFEST} == CLASSES


def test_the_corpus_stays_small() -> None:
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    assert total < 2 * 1024 * 1024


# --------------------------------------------------------------------------------------------
# docs/departments.md agrees with the catalogue
# --------------------------------------------------------------------------------------------

_CODE_ROW = re.compile(r"^\|\s*`([A-Z_]+)`\s*\|([^|]*)\|([^|]*)\|")
SEVERITY_ZH = {"critical": "严重", "warning": "警告", "info": "提示"}
ACTION_ZH = {"reject": "退回", "quarantine": "待核", "coerce": "自动转换", "flag": "入库并标记", "report": "仅提示"}


def _documented_codes() -> dict[str, tuple[str, str]]:
    text = (ROOT / "docs" / "departments.md").read_text(encoding="utf-8")
    rows: dict[str, tuple[str, str]] = {}
    for line in text.splitlines():
        match = _CODE_ROW.match(line)
        if match:
            assert match.group(1) not in rows, f"{match.group(1)} listed twice"
            rows[match.group(1)] = (match.group(2).strip(), match.group(3).strip())
    return rows


def test_departments_doc_lists_every_issue_code() -> None:
    documented = _documented_codes()
    assert set(documented) == set(ISSUE_CODES), (
        f"missing: {sorted(set(ISSUE_CODES) - set(documented))}, "
        f"not in the catalogue: {sorted(set(documented) - set(ISSUE_CODES))}"
    )


def test_departments_doc_gives_the_catalogues_severity_and_outcome() -> None:
    for code, (severity, action) in _documented_codes().items():
        want_severity, want_action, _ = ISSUE_CODES[code]
        assert SEVERITY_ZH[want_severity] in severity, (code, severity)
        assert ACTION_ZH[want_action] in action, (code, action)
