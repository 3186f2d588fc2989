"""Operators' decisions on quarantined submissions, as plain functions plus thin Prefect tasks.

A release reads the kept file again (receive → parse → history → validate, the same steps as
any submission; nothing is taken from the old receipt), refuses when any issue's action is
``reject``, and otherwise loads it through the ordinary loader with the decision attached: the
decision row, the supersession and the facts are one transaction. The released file moves from
``quarantine/`` to ``archive/`` like any loaded file (the ledger's ``archive_path`` follows);
its receipt is rewritten with status ``loaded`` and a ``decision`` block.

A rejection changes the ledger status and records the decision (one transaction); the file
stays in ``quarantine/`` and its receipt gains the decision.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from duikou_settings import Settings
from expectations.issues import Issue
from tasks.submission.journey import (
    Parsed,
    Received,
    SubmissionError,
    load,
    receive,
    relative,
    storage_paths,
)
from tasks.validation.validate import Validation
from warehouse.decisions import DecisionError as DecisionError  # re-exported for flows/
from warehouse.decisions import (
    LaterVersion,
    OperatorDecision,
    QuarantinedSubmission,
    quarantined_submissions,
    reject_submission,
    require_quarantined,
    resolve_submission,
)
from warehouse.decisions import NewerVersionLoaded as NewerVersionLoaded
from warehouse.decisions import newer_version_guard as newer_version_guard  # THE rule, for every door
from warehouse.load import LoadOutcome


class KeptFileError(SubmissionError):
    """The kept file is missing or is no longer the file the ledger recorded (sha256 differs)."""


def list_quarantined(engine: Engine, *, include_overtaken: bool = False) -> list[QuarantinedSubmission]:
    """Quarantined submissions, newest received first, with their critical issues and the later loaded
    version of their period, if any — those left out unless ``include_overtaken`` (releasing one
    would put older data over newer; it needs ``--force``)."""
    return quarantined_submissions(engine, include_overtaken=include_overtaken)


def find_quarantined(engine: Engine, id_or_prefix: str) -> dict[str, Any]:
    """The ledger row of the quarantined submission ``id_or_prefix`` names (≥ 6 hex digits).

    DecisionError when the id is malformed, unknown, ambiguous or not quarantined.
    """
    row = resolve_submission(engine, id_or_prefix)
    require_quarantined(row["status"], row["submission_id"])
    return row


def kept_file(ledger: dict[str, Any], settings: Settings) -> Path:
    """Where the ledger says the submission's file is kept (absolute)."""
    if not ledger.get("archive_path"):
        raise KeptFileError(f"submission {ledger['submission_id']} has no kept file in the ledger")
    return settings.resolved_data_dir / str(ledger["archive_path"])


def receive_kept(ledger: dict[str, Any], settings: Settings) -> Received:
    """Receive the kept file again, as the file the department sent (name, time of receipt).

    KeptFileError when the file is gone or its bytes are not the ones the ledger recorded.
    """
    path = kept_file(ledger, settings)
    if not path.is_file():
        raise KeptFileError(f"the kept file of submission {ledger['submission_id']} is missing: {path}")
    received_at = ledger["received_at"]
    if received_at.tzinfo is None:  # SQLite keeps naive UTC
        received_at = received_at.replace(tzinfo=UTC)
    received = receive(path, ledger["department"], ledger["period"], received_at=received_at)
    if received.sha256 != ledger["sha256"]:
        raise KeptFileError(
            f"the kept file {path} is not the file received as {ledger['submission_id']} (sha256 differs)"
        )
    # the kept copy is named <id>__<name>; reading and the receipt want the department's own name
    return replace(received, original_name=str(ledger["original_name"]), ledger_id=str(ledger["submission_id"]))


def release_blockers(validation: Validation) -> tuple[Issue, ...]:
    """Issues no operator may release past: those whose action is ``reject``."""
    return tuple(i for i in validation.issues if i.action == "reject")


def refusal_message(submission_id: str, blockers: tuple[Issue, ...]) -> str:
    listed = "; ".join(f"{i.code}: {i.message}" for i in blockers[:5])
    more = f" (+{len(blockers) - 5} more)" if len(blockers) > 5 else ""
    return (f"submission {submission_id} cannot be released: read again, it has {len(blockers)} issue(s) "
            f"that reject it — {listed}{more}")


def released(validation: Validation) -> Validation:
    """The validation as an operator's release sees it: loaded, with the quarantined rows flagged.

    The issues stay as they are (the receipt still lists them); rows that carried a critical
    issue are loaded, flagged, instead of being counted as rejected.
    """
    if release_blockers(validation):
        raise ValueError("a validation with reject-level issues cannot be released")
    return replace(
        validation,
        outcome="loaded",
        flagged_rows=validation.flagged_rows | validation.rejected_rows,
        rejected_rows=frozenset(),
    )


def release(
    engine: Engine,
    received: Received,
    parsed: Parsed,
    validation: Validation,
    decision: OperatorDecision,
    settings: Settings,
) -> LoadOutcome:
    """Keep the file in the archive and load it with the decision, in one transaction."""
    return load(engine, received, parsed, released(validation), settings, decision=decision)


def with_decision(
    receipt: dict[str, Any], decision: OperatorDecision, overridden: tuple[Issue, ...] = (),
    overrode: LaterVersion | None = None,
) -> dict[str, Any]:
    """A copy of ``receipt`` carrying the decision block and a summary that names it.

    ``overrode``: the later loaded version a forced release replaced."""
    out = dict(receipt)
    block: dict[str, Any] = {**decision.to_dict(), "previous_status": "quarantined"}
    if overridden:
        block["overridden_issues"] = sorted({i.code for i in overridden})
    if overrode is not None:
        block["overrode_version"] = overrode.to_dict()
    out["status"] = decision.resulting_status
    out["decision"] = block
    counts = (out.get("counts") or {}).get("issues") or {}
    tally = (f"(严重{counts.get('critical', 0)}项，警告{counts.get('warning', 0)}项，"
             f"提示{counts.get('info', 0)}项)") if counts else ""
    if decision.decision == "release":
        forced = f"，取代了更晚收到的版本{overrode.submission_id}" if overrode is not None else ""
        out["summary_zh"] = f"经人工核准放行({decision.decided_by}){forced}，已入库{tally}"
    else:
        out["summary_zh"] = f"经人工核查退回({decision.decided_by})：数据未入库{tally}"
        out["counts"] = {**(out.get("counts") or {}), "rows_loaded": 0, "facts_loaded": 0}
    out["processed_at"] = datetime.now(UTC).isoformat()
    return out


def read_receipt(ledger: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """The submission's receipt as written, or a minimal one from the ledger if it is gone."""
    path = settings.resolved_data_dir / str(ledger.get("receipt_path") or "")
    if ledger.get("receipt_path") and path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            loaded = None
        if isinstance(loaded, dict):
            return loaded
    keep = ("submission_id", "sha256", "department", "period", "original_name", "received_at", "status")
    return {k: (str(ledger[k]) if ledger.get(k) is not None else None) for k in keep} | {
        "receipt_rebuilt_from_ledger": True
    }


def receipt_paths(ledger: dict[str, Any], settings: Settings) -> tuple[Path, Path | None]:
    """(the receipt under receipts/, the kept file it sits next to) for an unmoved submission."""
    root = settings.resolved_data_dir
    receipt = root / str(ledger["receipt_path"]) if ledger.get("receipt_path") else (
        settings.receipts_dir / f"{ledger['submission_id']}.json")
    kept = root / str(ledger["archive_path"]) if ledger.get("archive_path") else None
    return receipt, kept


def released_paths(received: Received, settings: Settings) -> tuple[Path, Path, str]:
    """(where the released file is kept, its receipt, the kept path relative to the data dir)."""
    stored, receipt = storage_paths(received, "loaded", settings)
    return stored, receipt, relative(stored, settings)


def discard_quarantine_copy(ledger: dict[str, Any], settings: Settings, kept_now: Path) -> None:
    """After a release moved the file to the archive: remove the quarantine copy and its receipt."""
    old = kept_file(ledger, settings)
    if old.resolve() == kept_now.resolve():
        return
    for path in (old, old.with_name(old.name + ".receipt.json")):
        path.unlink(missing_ok=True)


def reject(engine: Engine, ledger: dict[str, Any], decision: OperatorDecision) -> int:
    """Record the rejection (status + decision row, one transaction); the decision's seq."""
    return reject_submission(engine, str(ledger["submission_id"]), decision)


def decided_receipt(ledger: dict[str, Any], decision: OperatorDecision, settings: Settings) -> dict[str, Any]:
    """The rejected submission's receipt: as written at quarantine, plus the decision."""
    return with_decision(read_receipt(ledger, settings), decision)
