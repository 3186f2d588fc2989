"""Nil returns (无数据申报) filed without a form: the portal's “本期无数据” button.

A department whose return may be nil (``nil_return: allowed`` in its declaration) says "nothing to
report this period" with one click instead of uploading a form that holds only 本月无数据. The
statement is written as the small CSV a clerk would have sent — title with the period, the key
header, the marker line, a note saying who filed it and when — and goes through the same journey
as any file (receive → parse → validate → load → receipt): the ledger gets a ``loaded``
submission with no rows and no facts, completeness counts the return as received, and the
receipt says 无数据申报 (``nil_return: true``, issue ``NIL_RETURN``). Re-reading the kept
statement gives the same nil submission, so a lost receipt is recovered like any other.

Plain functions (no Prefect): the portal calls :func:`record_nil_return` in its request.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from tasks.submission.journey import (
    SubmissionError,
    build_receipt,
    declaration_for,
    is_registry,
    load,
    parse,
    receive,
    request_period,
    storage_paths,
    validate,
    write_receipt_as_ledger,
)
from tasks.submission.result import SubmissionResult
from warehouse.refdata import ReferenceFrames, reference_frames

#: the marker line the statement carries (one of every nil-allowing declaration's markers)
NIL_MARKER = "本期无数据"


def nil_return_allowed(department: str) -> bool:
    """Whether ``department``'s return may be filed as nil (its declaration's ``nil_return.allowed``);
    False for an unknown department or a person-level registry. The portal shows its button only then."""
    if is_registry(department):
        return False
    try:
        return declaration_for(department).nil_return.allowed
    except SubmissionError:
        return False


def nil_statement(department: str, period: str, received_at: datetime, filed_by: str | None = None) -> str:
    """The CSV text of a nil return: what a clerk's own "本月无数据" form would hold."""
    declaration = declaration_for(department)
    label = request_period(department, period).label_zh
    who = f"{filed_by}，" if filed_by else ""
    return "\r\n".join([
        f"丹巴县{label}{declaration.title_zh}",
        declaration.key.header,
        NIL_MARKER,
        f"注：无数据申报，由报送门户“本期无数据”提交（{who}{received_at.isoformat()}）",
        "",
    ])


def record_nil_return(
    engine: Engine,
    department: str,
    period: str,
    *,
    filed_by: str | None = None,
    received_at: datetime | None = None,
    settings: Settings | None = None,
    reference: ReferenceFrames | None = None,
) -> SubmissionResult:
    """Record that ``department`` has nothing to report for ``period`` (``2017-05`` / ``2016``).

    Refused with :class:`~tasks.submission.journey.SubmissionError` (a Chinese message for the
    clerk) for an unknown department, a registry, a return whose declaration does not allow nil
    returns, or a period outside the plausible window. Otherwise the ledger gets a ``loaded``
    submission (no facts; it supersedes a version loaded earlier for the period, as any resubmission
    does), the receipt is written, and the result carries it (``receipt["nil_return"]`` is True,
    ``summary_zh`` says 无数据申报). ``filed_by``: the account's display name, noted in the statement.
    """
    settings = settings or get_settings()
    if is_registry(department):
        raise SubmissionError(f"{department}: 实名登记表不能作无数据申报")
    declaration = declaration_for(department)
    if not declaration.nil_return.allowed:
        raise SubmissionError(f"{department}: {declaration.title_zh}不接受无数据申报(申报定义未允许)；请报送填好的报表")
    request_period(department, period, settings)  # refused before anything is written
    moment = received_at or datetime.now(UTC)
    text = nil_statement(department, period, moment, filed_by)
    with tempfile.TemporaryDirectory(prefix="duikou-nil-") as tmp:
        path = Path(tmp) / f"无数据申报_{department}_{period}.csv"
        path.write_text(text, encoding="utf-8-sig")  # Excel's CSV UTF-8: opens readably for the operator
        received = receive(path, department, period, received_at=moment)
        parsed = parse(received, reference or reference_frames())
        validation = validate(parsed)
        if validation.outcome != "loaded" or parsed.form is None or not parsed.form.nil_return:
            found = "；".join(i.message for i in validation.issues if i.severity == "critical")
            raise SubmissionError(f"{department} {period}: 无数据申报未能记录: {found or validation.outcome}")
        outcome = load(engine, received, parsed, validation, settings)  # keeps the statement before its row
    stored, receipt_path = storage_paths(received, outcome.status, settings)
    receipt = build_receipt(received, parsed, validation, status=outcome.status, load_outcome=outcome,
                            stored=stored.relative_to(settings.resolved_data_dir).as_posix())
    receipt["filed_via"] = "portal_nil_button"
    written = write_receipt_as_ledger(engine, receipt, receipt_path, stored)
    return SubmissionResult(received.submission_id, department, received.period.label, received.original_name,
                            outcome.status, receipt, receipt_path if written else None)
