"""Data-quality documentation of one person-level registry submission (``duikou dq docs ID``).

``<out>/index.html``: the declared row checks (severity, action, issue code, why) with the counts
the load stored in ``dq_result`` (``registry__<check>``: rows failing of rows read), the GX sample
results stored beside them (``gx_sample__*``), the issue codes of the receipt counted, and the
reconciliation with the aggregate return when this is the current snapshot.

``<out>/gx/index.html`` (loaded snapshots only — GX validates no sample of a rejected one): GX
Data Docs of the de-identified sample. The kept file is streamed again through the same reader
and checks (``tasks.registry.stream.stream_registry``, nothing written), which rebuilds the same
systematic sample; it is validated with the same expectations (``sample_expectations``) by a
checkpoint writing the site, and the re-run's counts are shown beside the stored ones.

Privacy: nothing here reads or writes an ID number or a name. The page is built from the ledger,
``dq_result`` and issue *codes* (not messages); the sample frame has no ID, name or person key
column (``tasks.registry.stream.sample_columns``). Re-reading the kept file needs ``DUIKOU_PERSON_KEY``
like any registry read (the checks compute keys); without it the page is still written, without
the GX site, and says why.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, select

from duikou_settings import Settings
from expectations.registry_declaration import RegistryDeclaration
from tasks.forms.periods import parse_declared_period
from tasks.registry.checks import MissingPersonKey
from tasks.registry.stream import registry_declaration, require_person_key, sample_expectations, stream_registry
from tasks.validation.data_docs import DataDocs, DqDocsError, ledger_row, validate_into_site
from warehouse import schema
from warehouse.load import DqResult
from warehouse.refdata import reference_frames

GX_SITE = "gx"


def _stored_results(engine: Engine, submission_id: str) -> dict[str, DqResult]:
    """The ``dq_result`` rows the load stored, by check id."""
    dq = schema.dq_result
    with engine.connect() as conn:
        rows = conn.execute(select(dq.c.check_id, dq.c.expectation_type, dq.c.severity, dq.c.success,
                                   dq.c.element_count, dq.c.unexpected_count, dq.c.observed, dq.c.issue_code,
                                   dq.c.action)
                            .where(dq.c.submission_id == submission_id).order_by(dq.c.check_id)).all()
    return {r.check_id: DqResult(r.check_id, r.expectation_type, r.severity, bool(r.success), r.element_count,
                                 r.unexpected_count, r.observed, r.issue_code, r.action) for r in rows}


def _issue_counts(engine: Engine, submission_id: str) -> list[tuple[str, str, int]]:
    """(code, severity, issues) of the receipt — codes only: messages are the receipt's business."""
    si = schema.submission_issue
    with engine.connect() as conn:
        rows = conn.execute(select(si.c.code, si.c.severity, func.count()).where(si.c.submission_id == submission_id)
                            .group_by(si.c.code, si.c.severity).order_by(si.c.code)).all()
    return [(str(code), str(severity), int(n)) for code, severity, n in rows]


def _reconciliation(engine: Engine, declaration: RegistryDeclaration, period: str, status: str) -> list[Any]:
    """The partition's reconciliation rows when this submission is its current snapshot."""
    if status != "loaded":
        return []
    rec = schema.mart_registry_reconciliation
    with engine.connect() as conn:
        return list(conn.execute(select(rec.c.township_code, rec.c.check_id, rec.c.registry_value, rec.c.form_value,
                                        rec.c.difference, rec.c.tolerance_relative, rec.c.within_tolerance)
                                 .where(rec.c.department == declaration.department, rec.c.period == period)
                                 .order_by(rec.c.check_id, rec.c.township_code)).all())


@dataclass(frozen=True)
class SampleRun:
    """The GX site of the re-validated sample, or why there is none."""

    index: Path | None
    results: dict[str, DqResult]
    success: bool | None
    note: str


def _sample_site(settings: Settings, declaration: RegistryDeclaration, row: Any, status: str, out: Path) -> SampleRun:
    if status not in ("loaded", "superseded"):
        return SampleRun(None, {}, None, f"状态为 {status}:GX 只校验已入库快照的去标识样本 (GX validates the "
                                         "de-identified sample of loaded snapshots only).")
    if not row.archive_path:
        raise DqDocsError(f"submission {row.submission_id}: the ledger keeps no file for it")
    kept = settings.resolved_data_dir / row.archive_path
    if not kept.is_file():
        raise DqDocsError(f"submission {row.submission_id}: its kept file {kept} is missing")
    try:
        key = require_person_key(settings)
    except MissingPersonKey:
        return SampleRun(None, {}, None, "DUIKOU_PERSON_KEY 未设置:不重新读取原文件，无 GX 样本文档 (the kept "
                                         "file is not read again without the person key).")
    period = parse_declared_period(row.period, declaration.period_type)
    stream = stream_registry(kept, kept.name, declaration, period.start, period.end, reference_frames(), key,
                             settings, writer=None)
    results = {r.check_id: r for r in stream.result.dq_results}
    if stream.sample is None or stream.sample.empty:
        return SampleRun(None, results, None, f"重新读取的结果为 {stream.result.status}，没有样本 (no sample).")
    import great_expectations as gx

    name = f"{row.department}-{row.period}-{row.submission_id}-sample"
    suite = gx.ExpectationSuite(name=name, expectations=[e for _, _, e in sample_expectations(declaration)])
    site = out / GX_SITE
    site.mkdir(parents=True, exist_ok=True)
    result = validate_into_site(stream.sample, suite, name, site, asset="registry_sample")
    index = site / "index.html"
    if not index.is_file():
        raise DqDocsError(f"GX wrote no index.html under {site}")
    note = f"样本 {len(stream.sample)} 行 / 共 {stream.result.rows_read} 行 (sample rows of rows read)."
    return SampleRun(index, results, bool(result.success), note)


# ---------------------------------------------------------------- the page
_STYLE = """body{font-family:"Noto Sans CJK SC",sans-serif;margin:2em;max-width:72em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}
.fail{background:#fde2e1}.ok{background:#e6f4ea}.num{text-align:right}"""


def _e(value: object) -> str:
    return html.escape("—" if value is None else str(value))


def _table(head: tuple[str, ...], rows: Sequence[tuple[object, ...]], classes: list[str] | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in head) + "</tr>"]
    for i, r in enumerate(rows):
        cls = f' class="{classes[i]}"' if classes and classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>")
    return "\n".join([*out, "</table>"])


def _passed(success: bool | None) -> str:
    return "—" if success is None else ("通过 passed" if success else "未通过 failed")


def render_page(declaration: RegistryDeclaration, row: Any, ledger: Any, stored: dict[str, DqResult],
                issues: list[tuple[str, str, int]], reconciliation: list[Any], sample: SampleRun) -> str:
    checks = []
    classes = []
    for chk in declaration.checks:
        got = stored.get(f"registry__{chk.check_id}")
        rerun = sample.results.get(f"registry__{chk.check_id}")
        checks.append((chk.check_id, chk.severity, chk.action or ("flag" if chk.severity == "warning" else "report"),
                       chk.issue_code, None if got is None else got.unexpected_count,
                       None if got is None else got.element_count, _passed(None if got is None else got.success),
                       None if rerun is None else rerun.unexpected_count, chk.reason))
        classes.append("" if got is None else ("ok" if got.success else "fail"))
    gx_rows = []
    gx_classes = []
    for check_id in sorted(set(stored) | set(sample.results)):
        if not check_id.startswith("gx_sample__"):
            continue
        got, rerun = stored.get(check_id), sample.results.get(check_id)
        either = got or rerun
        gx_rows.append((check_id, None if either is None else either.expectation_type,
                        None if either is None else either.severity,
                        _passed(None if got is None else got.success), None if got is None else got.element_count,
                        None if got is None else got.unexpected_count,
                        _passed(None if rerun is None else bool(rerun.success)),
                        None if rerun is None else rerun.unexpected_count))
        gx_classes.append("" if got is None else ("ok" if got.success else "fail"))
    title = f"数据质量文档 {declaration.title_zh} {row.period} ({row.submission_id})"
    parts = [
        "<!doctype html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f"<p>部门 department <code>{_e(row.department)}</code> · 报告期 period {_e(row.period)} · "
        f"状态 status <b>{_e(ledger.status)}</b> · 读取 rows read {_e(ledger.rows_read)} · "
        f"拒收行 rows rejected {_e(ledger.rows_rejected)} · 入库 people loaded {_e(ledger.facts_loaded)}</p>",
        "<p>本页不含任何公民身份号码或姓名；问题行见回执(按行号)。No ID number and no name on this page; "
        "the receipt lists the rows by number.</p>",
        "<h2>逐行检查 Row checks (every row, vectorised)</h2>",
        "<p>Counts stored by the load in <code>dq_result</code> (<code>registry__&lt;check&gt;</code>); "
        "&ldquo;re-run&rdquo;: the same checks on the kept file now.</p>",
        _table(("check", "severity", "on failure", "issue code", "failing rows", "of rows", "stored result",
                "re-run failing rows", "why"), checks, classes),
        "<h2>GX 样本校验 GX on the de-identified sample</h2>",
        f"<p>{_e(sample.note)}</p>",
    ]
    if gx_rows:
        parts.append(_table(("check", "expectation", "severity", "stored result", "sample rows", "unexpected",
                             "re-run result", "re-run unexpected"), gx_rows, gx_classes))
    if sample.index is not None:
        parts.append(f'<p><a href="{GX_SITE}/index.html">GX Data Docs of the sample</a> '
                     f"(re-run: {_e(_passed(sample.success))})</p>")
    parts.append("<h2>回执问题代码 Issue codes in the receipt</h2>")
    parts.append(_table(("code", "severity", "issues"), list(issues)) if issues else "<p>无 (none)</p>")
    if reconciliation:
        parts.append("<h2>与月报表核对 Reconciliation with the aggregate return</h2>")
        parts.append(_table(("township_code", "check", "registry", "form", "difference", "tolerance", "within"),
                            [tuple(r) for r in reconciliation],
                            ["" if r.within_tolerance is None else ("ok" if r.within_tolerance else "fail")
                             for r in reconciliation]))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_registry_docs(engine: Engine, settings: Settings, row: Any, out: Path) -> DataDocs:
    """Write ``out/index.html`` (and ``out/gx/`` for a loaded snapshot); returns where index.html is."""
    declaration = registry_declaration(row.department)
    if declaration is None:
        raise DqDocsError(f"submission {row.submission_id}: {row.department!r} is not a person-level registry")
    ledger = ledger_row(engine, row.submission_id)
    stored = _stored_results(engine, row.submission_id)
    out.mkdir(parents=True, exist_ok=True)
    sample = _sample_site(settings, declaration, row, str(ledger.status), out)
    page = render_page(declaration, row, ledger, stored, _issue_counts(engine, row.submission_id),
                       _reconciliation(engine, declaration, row.period, str(ledger.status)), sample)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    checked = sum(1 for c in stored if c.startswith("registry__")) + sum(1 for c in stored if c.startswith("gx_"))
    return DataDocs(row.submission_id, index, checked, all(r.success for r in stored.values()))
