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
