"""What one submission's run returns, form or registry: below both pipelines (flows/pipeline.py,
flows/registry_pipeline.py) and everything that reports on a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class SubmissionResult:
    submission_id: str
    department: str
    period: str
    original_name: str
    status: str
    receipt: dict[str, Any]
    receipt_path: Path | None


def issue_causes(receipt: dict[str, Any]) -> list[dict[str, Any]]:
    """The receipt's issues as causes: one per code (critical first, then warning, then info), with
    its first message, where it first occurs and how often it occurs."""
    rank = {"critical": 0, "warning": 1, "info": 2}
    causes: dict[str, dict[str, Any]] = {}
    for item in receipt.get("issues", []):
        cause = causes.get(item["code"])
        if cause is None:
            where = " ".join(str(x) for x in (f"[{item['sheet']}]" if item.get("sheet") else "",
                                              f"第{item['row']}行" if item.get("row") else "",
                                              item.get("column") or "") if x)
            causes[item["code"]] = {"code": item["code"], "severity": item["severity"],
                                    "message": item["message"], "where": where, "count": 1}
        else:
            cause["count"] += 1
    return sorted(causes.values(), key=lambda c: rank.get(str(c["severity"]), 3))


def problem_of(receipt: dict[str, Any]) -> str:
    """The first reason a submission was not loaded as it came: ``CODE message`` (or the summary)."""
    for cause in issue_causes(receipt):
        if cause["severity"] == "critical":
            more = f" (+{cause['count'] - 1})" if cause["count"] > 1 else ""
            return f"{cause['code']} {cause['message']}{more}"
    return str(receipt.get("summary_zh", ""))
