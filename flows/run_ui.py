"""What the ops team sees of an ``ingest-submission`` run in the Prefect UI.

- the run's name: ``ingest tourism 2016-10 (巴旺乡 form v2)`` — department, period and the name the
  department gave its file (from the intake sidecar when the file was stored under its id);
- the run's tags: ``department:<d>``, ``period:<p>``, ``status:<outcome>``;
- a markdown artifact ``ingest-<department>-<period>`` with the outcome, the counts and links to
  the receipt, the correction workbook and the report — over HTTP, on the intake server's
  ``/ops/files`` (``flows/ops_files.py``), which browsers open (they refuse ``file://`` from a page).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.runtime import flow_run

from duikou_settings import Settings
from tasks.landing.landed import read_sidecar
from tasks.submission.result import SubmissionResult


def ingest_run_name() -> str:
    params = flow_run.parameters
    path = Path(str(params.get("path", "")))
    intake = read_sidecar(path)
    original = str(intake["original_name"]) if intake else path.name
    return f"ingest {params.get('department')} {params.get('period')} ({Path(original).stem})"


def tag_current_run(*tags: str) -> None:
    """Add tags to the running flow run (a deployment trigger cannot set per-run tags)."""
    current_id = flow_run.get_id()
    if current_id is None:
        return
    run_id = UUID(current_id)
    with get_client(sync_client=True) as client:
        current = client.read_flow_run(run_id).tags
        client.update_flow_run(run_id, tags=sorted({*current, *tags}))


def _link(path: Path, settings: Settings) -> str:
    """A markdown link over HTTP (the intake server's ``/ops/files``; ops sign in), never ``file://``."""
    from flows.ops_files import ops_file_url

    url = ops_file_url(path, settings)
    return f"[{path.name}]({url})" if url else f"`{path.name}`"


def publish_run_summary(result: SubmissionResult, settings: Settings) -> None:
    receipt: dict[str, Any] = result.receipt
    counts = receipt.get("counts", {})
    issues = counts.get("issues", {})
    report = settings.reports_dir / "latest" / "index.html"
    lines = [
        f"## {result.department} {result.period} — {result.status}",
        "",
        f"- 文件 file: **{result.original_name}** (submission `{result.submission_id}`)",
        f"- 状态 status: `{result.status}` — {receipt.get('summary_zh', '')}",
    ]
    if counts:
        lines.append(f"- 行数 rows: read {counts.get('rows_read', 0)}, loaded {counts.get('rows_loaded', 0)}, "
                     f"rejected {counts.get('rows_rejected', 0)}; facts {counts.get('facts_loaded', 0)}")
        lines.append(f"- 问题 issues: critical {issues.get('critical', 0)}, warning {issues.get('warning', 0)}, "
                     f"info {issues.get('info', 0)}")
    if result.receipt_path is not None:
        lines.append(f"- 回执 receipt: {_link(result.receipt_path, settings)}")
    if receipt.get("correction_workbook"):
        workbook = settings.resolved_data_dir / receipt["correction_workbook"]
        lines.append(f"- 更正表 correction workbook: {_link(workbook, settings)}")
    lines.append(f"- 报告 report: {_link(report, settings)} (rebuilt by `refresh-reports` after each load)")
    create_markdown_artifact(
        key=f"ingest-{result.department}-{result.period}".lower().replace("_", "-"),  # keys: [a-z0-9-]
        markdown="\n".join(lines),
        description=f"{result.department} {result.period}: {result.status}",
    )
