"""One submission's journey as plain functions: receive → parse → validate → load → receipt.

The Prefect tasks in :mod:`tasks.submission.steps` wrap these; tests call them directly.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from duikou_settings import Settings, get_settings
from expectations.declaration import Declaration, load_declarations
from expectations.issues import ROOT_CAUSES, Issue, issue
from expectations.registry_declaration import RegistryDeclaration, load_registry_declarations
from tasks.files import write_text_atomically
from tasks.forms.file_safety import ReadError, truncation_issues
from tasks.forms.normalise import TOWNSHIP_CODE, NormalisedForm, choose_form, normalise_form
from tasks.forms.periods import Period, parse_plausible_period
from tasks.forms.read import read_path
from tasks.forms.template_mark import MARK_SHEET, TemplateMark, find_mark
from tasks.forms.townships import TownshipResolver
from tasks.landing.landed import OVERSIZE_KEPT_BYTES, clean_original_name, oversize_key, read_sidecar
from tasks.validation.validate import Validation, decide_outcome
from warehouse.decisions import NewerVersionLoaded, OperatorDecision, newer_version_guard
from warehouse.history import CheckHistory, read_check_history
from warehouse.keys import submission_key
from warehouse.ledger import ledger_row
from warehouse.load import (
    LoadOutcome,
    SubmissionRecord,
    current_version,
    find_submission,
    record_submission,
)
from warehouse.refdata import ReferenceFrames


class SubmissionError(ValueError):
    """The request itself is wrong (unknown department, malformed period, missing file)."""


@dataclass(frozen=True)
class Received:
    path: Path
    department: str
    period: Period
    original_name: str
    sha256: str
    received_at: datetime
    size_bytes: int
    source_url: str | None = None  # the object a remote landing area held (tasks/landing/store.py)
    #: over its upload limit: refused unread; ``sha256`` is :func:`tasks.landing.landed.oversize_key`, not the
    #: whole file's, and only its first OVERSIZE_KEPT_BYTES are kept (:func:`store_file`)
    oversize: bool = False
    ledger_id: str | None = None  # the id the ledger already gave this file (a row older than migration 0011)

    @property
    def submission_id(self) -> str:
        """Who sent it and what it is (``warehouse.keys.submission_key``), or the ledger's id for it."""
        return self.ledger_id or submission_key(self.department, self.sha256)


@dataclass(frozen=True)
class Parsed:
    """What reading and normalising produced; ``form`` is None when the file could not be read."""

    form: NormalisedForm | None
    fatal: tuple[Issue, ...]


def declaration_for(department: str) -> Declaration:
    declarations = load_declarations()
    if department not in declarations:
        known = ", ".join(sorted({*declarations, *load_registry_declarations()}))
        raise SubmissionError(f"unknown department {department!r}; known: {known}")
    return declarations[department]


def is_registry(department: str) -> bool:
    """A person-level registry (tasks/registry/stream.py streams it) rather than a township form."""
    return department in load_registry_declarations()


def _declared(department: str) -> Declaration | RegistryDeclaration:
    registries = load_registry_declarations()
    return registries[department] if department in registries else declaration_for(department)


def request_period(department: str, period: str, settings: Settings | None = None) -> Period:
    """The declared period of a request for ``department``, parsed and inside the plausible window
    (``tasks.forms.periods.parse_plausible_period``: the programme start, or 1996, to one period after
    ``settings.submission_window_today``); :class:`SubmissionError` naming what is wrong otherwise.
    The check of every door that is not the HTTP intake: the CLI, the landing scan, :func:`receive`."""
    settings = settings or get_settings()
    declaration = _declared(department)
    try:
        return parse_plausible_period(period, declaration.period_type, settings.submission_window_today,
                                      settings.programme_start)
    except ValueError as exc:
        raise SubmissionError(f"{department}: {exc}") from exc


def receive(path: Path, department: str, period: str, received_at: datetime | None = None) -> Received:
    """Hash the file and check the request (the period inside the plausible window: :func:`request_period`);
    the file itself is not interpreted yet. The department's file name (from the intake sidecar, else
    the path) goes through ``clean_original_name``: no control character or NUL reaches the ledger."""
    parsed_period = request_period(department, period)
    if not path.is_file():
        raise SubmissionError(f"no such file: {path}")
    stat = path.stat()
    oversize = stat.st_size > upload_limit(department)  # refused unread: its key reads 128 KiB at most
    if oversize:
        digest = oversize_key(path, stat.st_size)
    else:
        with path.open("rb") as fh:  # streamed, not held in memory
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
    stat_time = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    intake = read_sidecar(path)  # stored under a server-chosen name: the department's name is beside it
    return Received(
        path=path,
        department=department,
        period=parsed_period,
        original_name=clean_original_name(str(intake["original_name"]) if intake else path.name),
        sha256=digest,
        received_at=received_at or (datetime.fromisoformat(intake["received_at"]) if intake else stat_time),
        size_bytes=stat.st_size,
        source_url=str(intake["source_url"]) if intake and intake.get("source_url") else None,
        oversize=oversize,
    )


def upload_limit(department: str, settings: Settings | None = None) -> int:
    """The largest file the reader accepts for ``department`` (registries have their own limit)."""
    settings = settings or get_settings()
    return settings.registry_max_upload_bytes if is_registry(department) else settings.max_upload_bytes


def previous_result(engine: Engine | None, received: Received) -> dict[str, Any] | None:
    """The ledger row of an identical file already received, if any."""
    return find_submission(engine, received.department, received.sha256) if engine is not None else None


def parse(received: Received, reference: ReferenceFrames) -> Parsed:
    declaration = declaration_for(received.department)
    try:
        grids = read_path(received.path, received.original_name)
    except ReadError as exc:
        return Parsed(form=None, fatal=(exc.issue,))
    truncated = truncation_issues(grids, received.original_name)  # cells cut at read time: say so
    mark, grids = find_mark(grids)  # a blank form from the portal: its mark is never the form
    truncated += mark_issues(mark, received)
    try:
        form_table, choice_issues = choose_form(grids, declaration, received.period)
    except ReadError as exc:
        return Parsed(form=None, fatal=(exc.issue, *truncated))
    choice_issues = [*truncated, *choice_issues]
    resolver = TownshipResolver(
        reference.townships, reference.aliases, reference.helper_units, reference.pairings,
        received.period.start, received.period.end, crosswalk=reference.crosswalk,
    )
    form = normalise_form(form_table, declaration, received.period, resolver)
    return Parsed(form=_with_issues(form, choice_issues), fatal=())


def mark_issues(mark: TemplateMark | None, received: Received) -> list[Issue]:
    """A returned blank form made for another department or period is refused, naming the mark's cell."""
    if mark is None:
        return []
    where = {"sheet": MARK_SHEET, "column": "B列 value"}
    found = []
    if mark.department != received.department:
        found.append(issue("TITLE_DEPARTMENT_MISMATCH", f"本表是系统为“{mark.department}”生成的空白报表，"
                           f"不能作为“{received.department}”的报表报送", row=1, **where))
    if mark.period != received.period.label:
        found.append(issue("PERIOD_MISMATCH", f"本表是系统为报告期{mark.period}生成的空白报表，报送时选择的报告期是"
                           f"{received.period.label}；请下载本期的空白报表或选择正确的报告期", row=2, **where))
    return found


def _with_issues(form: NormalisedForm, extra: list[Issue]) -> NormalisedForm:
    return replace(form, issues=(*extra, *form.issues))


def history_for(engine: Engine | None, received: Received) -> CheckHistory | None:
    """Earlier current values and accepted values of this partition (None without a warehouse)."""
    if engine is None:
        return None
    return read_check_history(engine, received.department, received.period.label)


def validate(parsed: Parsed, history: CheckHistory | None = None) -> Validation:
    from tasks.validation.validate import validate_form

    if parsed.form is None:
        return Validation(outcome=decide_outcome(parsed.fatal), issues=parsed.fatal, results=(),
                          flagged_rows=frozenset(), rejected_rows=frozenset())
    return validate_form(parsed.form, declaration_for(parsed.form.department),
                         history.values if history is not None else None,
                         history.accepted if history is not None else None)


def hold_if_overtaken(engine: Engine, received: Received, previous: dict[str, Any] | None,
                      validation: Validation) -> Validation:
    """A file the ledger already holds (quarantined or rejected) that would now load, while a version
    of its period received after it is loaded: quarantined with ``NEWER_VERSION_LOADED`` instead —
    older data never replaces newer unasked (``warehouse.decisions.newer_version_guard``, the rule an
    operator's release obeys too). Any other validation is returned as it is."""
    if previous is None or validation.outcome != "loaded":
        return validation
    try:
        newer_version_guard(engine, str(previous["submission_id"]))
    except NewerVersionLoaded as exc:
        held = issue("NEWER_VERSION_LOADED",
                     f"本期已有更晚收到的版本 {exc.later.describe()} 入库；此文件较早，不自动覆盖，需人工核准")
        return replace(validation, outcome="quarantined", issues=(*validation.issues, held))
    return validation


def long_facts(form: NormalisedForm, validation: Validation) -> pd.DataFrame:
    """Wide township rows → one row per township × indicator (values in base units)."""
    indicators = [c for c in form.wide.columns if c not in (TOWNSHIP_CODE, "township_text")]
    wide = form.wide.reset_index()
    facts = wide.melt(id_vars=["source_row", TOWNSHIP_CODE], value_vars=indicators,
                      var_name="indicator", value_name="value")
    pairs = zip(facts["source_row"], facts["indicator"], strict=True)
    cells = pd.Series([pair in validation.flagged_cells for pair in pairs], index=facts.index, dtype=bool)
    facts["flagged"] = facts["source_row"].isin(validation.flagged_rows) | cells  # rule rows | history values
    return facts[["indicator", TOWNSHIP_CODE, "value", "flagged", "source_row"]]


def _safe_name(name: str) -> str:
    """The original name as one path component: no separators, Chinese kept, suffix kept, ≤150 UTF-8 bytes."""
    cleaned = re.sub(r"[^\w.\-\u4e00-\u9fff]+", "_", name) or "submission"
    stem, suffix = os.path.splitext(cleaned)
    if len(suffix) > 10:  # not an extension
        stem, suffix = cleaned, ""
    stem = stem.encode("utf-8")[: 150 - len(suffix)].decode("utf-8", "ignore")
    return (stem + suffix) or "submission"


def storage_paths(received: Received, outcome: str, settings: Settings) -> tuple[Path, Path]:
    """(where the file is kept, where its receipt goes), by outcome."""
    root = settings.archive_dir if outcome == "loaded" else settings.quarantine_dir
    folder = root / received.department / received.period.label
    stored = folder / f"{received.submission_id}__{_safe_name(received.original_name)}"
    if received.oversize:  # only its head is kept: not a workbook any more, and named so
        stored = stored.with_name(stored.name + OVERSIZE_SUFFIX)
    return stored, settings.receipts_dir / f"{received.submission_id}.json"


def relative(path: Path, settings: Settings) -> str:
    return path.resolve().relative_to(settings.resolved_data_dir).as_posix()


#: appended to the kept name of a file over its upload limit, of which only the head is kept
OVERSIZE_SUFFIX = f".first{OVERSIZE_KEPT_BYTES // 1024}KiB"


def store_file(received: Received, stored: Path) -> bool:
    """Keep the file at ``stored``: written to a ``.part`` file beside it, then linked into place.

    Returns True when this call created ``stored``, False when it was already there (kept by an
    earlier or a concurrent run: never this run's to remove, never overwritten). A file over its
    upload limit is kept as its first :data:`~tasks.landing.landed.OVERSIZE_KEPT_BYTES` only — enough to
    see what it was, not 300 MB of quarantine. A failed write (disk full, a file-size limit)
    leaves no ``.part`` file behind.
    """
    stored.parent.mkdir(parents=True, exist_ok=True)
    if stored.exists():
        return False
    fd, name = tempfile.mkstemp(dir=stored.parent, prefix=f".{received.submission_id}.", suffix=".part")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as dst, received.path.open("rb") as src:
            if received.oversize:
                dst.write(src.read(OVERSIZE_KEPT_BYTES))
            else:
                shutil.copyfileobj(src, dst, 1 << 20)
        return _claim(tmp, stored)
    finally:
        tmp.unlink(missing_ok=True)


def _claim(tmp: Path, stored: Path) -> bool:
    """Put the complete ``tmp`` at ``stored`` unless something is there already (True: this run put it)."""
    try:
        os.link(tmp, stored)  # atomic and exclusive: a concurrent run's copy is never taken for ours
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links
        if stored.exists():
            return False
        os.replace(tmp, stored)
    return True


def load(
    engine: Engine,
    received: Received,
    parsed: Parsed,
    validation: Validation,
    settings: Settings,
    decision: OperatorDecision | None = None,
) -> LoadOutcome:
    """Keep the file, then record the submission (ledger + facts) in one transaction.

    ``decision``: an operator's release of a quarantined submission, recorded in the same
    transaction (see ``warehouse.decisions``).
    """
    stored, receipt = storage_paths(received, validation.outcome, settings)
    created = store_file(received, stored)
    try:
        return _record(engine, received, parsed, validation, settings, stored, receipt, decision)
    except BaseException:
        if created:  # the ledger does not know this copy: a later run would find a file without a row
            stored.unlink(missing_ok=True)
        raise


def _record(
    engine: Engine,
    received: Received,
    parsed: Parsed,
    validation: Validation,
    settings: Settings,
    stored: Path,
    receipt: Path,
    decision: OperatorDecision | None,
) -> LoadOutcome:
    form = parsed.form
    rows_read = form.rows_read if form is not None else 0
    loaded = validation.outcome == "loaded"
    record = SubmissionRecord(
        submission_id=received.submission_id,
        sha256=received.sha256,
        department=received.department,
        period=received.period.label,
        original_name=received.original_name,
        received_at=received.received_at,
        status=validation.outcome,
        rows_read=rows_read,
        rows_loaded=rows_read if loaded else 0,
        rows_rejected=len(validation.rejected_rows),
        archive_path=relative(stored, settings),
        receipt_path=relative(receipt, settings),
        source_url=received.source_url,
    )
    facts = long_facts(form, validation) if (loaded and form is not None) else _empty_facts()
    total_rows = (
        [{"indicator": k, "value": v, "label_zh": form.total_label or "合计"} for k, v in form.totals.items()]
        if form is not None else []
    )
    totals = pd.DataFrame(total_rows, columns=["indicator", "value", "label_zh"])
    return record_submission(engine, record, facts, totals, validation.issues,
                             validation.results, decision=decision, dq_flags=validation.flags)


def preview_load(engine: Engine | None, received: Received, parsed: Parsed, validation: Validation) -> LoadOutcome:
    """What :func:`load` would do, without writing: for dry runs, so their receipt is the real one's."""
    loaded = validation.outcome == "loaded" and parsed.form is not None
    current = current_version(engine, received.department, received.period.label) if engine is not None else None
    return LoadOutcome(
        submission_id=received.submission_id,
        status=validation.outcome,
        supersedes=current if loaded and current != received.submission_id else None,
        duplicate_of=None,
        facts_loaded=len(long_facts(parsed.form, validation)) if loaded and parsed.form is not None else 0,
    )


def _empty_facts() -> pd.DataFrame:
    return pd.DataFrame(columns=["indicator", TOWNSHIP_CODE, "value", "flagged", "source_row"])


def build_receipt(
    received: Received,
    parsed: Parsed | None,
    validation: Validation | None,
    *,
    status: str,
    dry_run: bool = False,
    duplicate_of: dict[str, Any] | None = None,
    load_outcome: LoadOutcome | None = None,
    stored: str | None = None,
) -> dict[str, Any]:
    """The department's import summary (JSON-able). Never contains personal data."""
    form = parsed.form if parsed else None
    issues = list(validation.issues) if validation else []
    counts_by_severity = {s: sum(1 for i in issues if i.severity == s) for s in ("critical", "warning", "info")}
    rows_read = form.rows_read if form else 0
    rows_rejected = len(validation.rejected_rows) if validation else 0
    receipt: dict[str, Any] = {
        "submission_id": received.submission_id,
        "sha256": received.sha256,
        "department": received.department,
        "title_zh": _declared(received.department).title_zh,
        "period": received.period.label,
        "original_name": received.original_name,
        "received_at": received.received_at.isoformat(),
        "processed_at": datetime.now(UTC).isoformat(),
        "status": status,
        "dry_run": dry_run,
        "sheet": form.sheet if form else None,
        "encoding": form.encoding if form else None,
        "counts": {
            "rows_read": rows_read,
            "rows_loaded": rows_read if status in ("loaded",) else 0,
            "rows_rejected": rows_rejected,
            "facts_loaded": load_outcome.facts_loaded if load_outcome else 0,
            "issues": counts_by_severity,
            "checks_evaluated": len(validation.results) if validation else 0,
            "checks_failed": sum(1 for r in validation.results if not r.success) if validation else 0,
        },
        "issues": [i.to_dict() for i in issues],
        "summary_zh": _summary_zh(status, counts_by_severity, duplicate_of),
    }
    root = next((i for i in issues if i.code in ROOT_CAUSES and i.caused_by is None), None)
    if root is not None:  # one root cause, not a cascade: what follows from it is counted under it
        dependent = [i for i in issues if i.caused_by == root.code]
        receipt["root_cause"] = {"code": root.code, "message": root.message, "dependent_issues": len(dependent)}
        if dependent:
            receipt["summary_zh"] += f"；根本原因: {root.message}(另有{len(dependent)}项由此引起)"
    if form is not None and form.nil_return:
        receipt["nil_return"] = True
        if status == "loaded":
            receipt["summary_zh"] = (f"已收到无数据申报: {received.period.label_zh}{receipt['title_zh']}本期无数据，"
                                     "按已报送记录，无数据入库")
    if duplicate_of:
        receipt["duplicate_of"] = duplicate_of
    if load_outcome and load_outcome.supersedes:
        receipt["supersedes"] = load_outcome.supersedes
    if stored:
        receipt["stored_as"] = stored
    if received.source_url:
        receipt["source_url"] = received.source_url
    if received.oversize:
        receipt["size_bytes"] = received.size_bytes
        receipt["sha256_of"] = (f"size, first and last {OVERSIZE_KEPT_BYTES // 1024} KiB "
                                "(tasks.landing.landed.oversize_key): the file is over its limit "
                                "and was not read whole")
        receipt["stored_bytes"] = min(received.size_bytes, OVERSIZE_KEPT_BYTES)
        kib = OVERSIZE_KEPT_BYTES // 1024
        receipt["stored_note_zh"] = (f"文件超过大小上限，未读取全文；只保留了文件开头{kib}KB以供核查，"
                                     f"文件指纹按文件大小及首尾各{kib}KB计算")
    return receipt


def _summary_zh(status: str, counts: dict[str, int], duplicate_of: dict[str, Any] | None) -> str:
    if status == "duplicate" and duplicate_of:
        return (f"重复提交: 与{duplicate_of.get('received_at', '')}收到的文件"
                f"{duplicate_of.get('submission_id')}完全相同，未重复入库")
    text = {
        "loaded": "已入库",
        "rejected": "已退回: 存在必须修改的错误，数据未入库",
        "quarantined": "已暂存待核: 数据可疑，需人工核实后处理，未入库",
    }.get(status, status)
    return f"{text}(严重{counts['critical']}项，警告{counts['warning']}项，提示{counts['info']}项)"


def attach_correction_workbook(
    received: Received, receipt: dict[str, Any], issues: tuple[Issue, ...], settings: Settings
) -> dict[str, Any]:
    """Write the department's own sheet back with the problems marked; note it in the receipt.

    Only when there is something to show (any issue). A file that cannot be rebuilt (corrupt,
    empty) gets no workbook and the receipt says why — the JSON receipt remains complete.
    """
    from tasks.submission.correction_workbook import write_correction_workbook

    if not issues or any(i.code in ("FILE_UNSAFE", "FILE_TOO_LARGE") for i in issues):
        return receipt  # never open a file the reader refused as unsafe
    out = settings.receipts_dir / f"{received.submission_id}.correction.xlsx"
    try:
        write_correction_workbook(received.path.read_bytes(), received.original_name, receipt.get("sheet"),
                                  issues, out, summary=receipt)
    except ValueError as exc:
        return {**receipt, "correction_workbook": None, "correction_workbook_note": str(exc)}
    return {**receipt, "correction_workbook": relative(out, settings)}


def receipt_agrees(ledger_status: str, receipt_status: str) -> bool:
    """Whether a receipt saying ``receipt_status`` tells the truth about a row now ``ledger_status``:
    the same status, or a load that a later version has since superseded."""
    return receipt_status == ledger_status or (receipt_status == "loaded" and ledger_status == "superseded")


@contextmanager
def receipts_lock(receipts_dir: Path) -> Iterator[None]:
    """One receipt writer at a time across processes (``flock`` on ``<receipts>/.receipts.lock``):
    checking the ledger and writing the receipt happen together, so the last receipt written is
    the one of the last status committed."""
    receipts_dir.mkdir(parents=True, exist_ok=True)
    with (receipts_dir / ".receipts.lock").open("a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def write_receipt_as_ledger(
    engine: Engine, receipt: dict[str, Any], receipt_path: Path, stored_path: Path | None, *,
    only_if_missing: bool = False,
) -> bool:
    """Write the receipt (as :func:`write_receipt`) only while the ledger row agrees with it.

    The winner's receipt only: a run that lost a race for the same file (its load came back
    ``duplicate``) or whose row has since been re-recorded with another status writes nothing
    here. ``only_if_missing``: a recovered receipt never replaces one written meanwhile.
    Returns whether it wrote.
    """
    with receipts_lock(receipt_path.parent):
        if only_if_missing and receipt_path.exists():
            return False
        row = ledger_row(engine, str(receipt["submission_id"]))
        if row is None or not receipt_agrees(str(row["status"]), str(receipt["status"])):
            return False
        write_receipt(receipt, receipt_path, stored_path)
        return True


def write_receipt(receipt: dict[str, Any], receipt_path: Path, stored_path: Path | None) -> None:
    """Write the receipt atomically under receipts/ and next to the kept file."""
    text = json.dumps(receipt, ensure_ascii=False, indent=2, default=str)
    targets = [receipt_path]
    if stored_path is not None:
        targets.append(stored_path.with_name(stored_path.name + ".receipt.json"))
    for target in targets:
        write_text_atomically(target, text, mode=0o600)
