"""``duikou ingest`` and ``duikou nightly``, and how a command prepares and reports a flow run.

Before a flow runs, :func:`reach_warehouse` connects (so an unreachable warehouse is one line and
exit 3, not a failed flow run) and :func:`own_prefect_server` ties Prefect's temporary server to
the command; after, :func:`print_receipt` and :func:`print_nightly` print what happened. ``duikou
demo`` and ``duikou quarantine release/reject`` use them too. Exit codes as in ``flows/cli.py``:
0 loaded or duplicate, 1 not loaded (rejected, quarantined; the nightly: files or steps failed),
2 a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from duikou_settings import get_settings

EXIT_OK, EXIT_NOT_LOADED, EXIT_USAGE = 0, 1, 2


def own_prefect_server() -> None:
    """Before a command runs a flow: the temporary Prefect server (if one is needed) goes when we go."""
    from flows.prefect_server import own_temporary_server

    own_temporary_server()


def reach_warehouse(dry_run: bool = False) -> None:
    """Connect to the warehouse (with its retries) before any flow starts, so an unreachable one
    ends the command with one line instead of a failed flow run. A dry run creates nothing: only a
    server database is tried (a SQLite file that does not exist yet is the dry run's own business)."""
    from sqlalchemy.engine import make_url

    from flows.warehouse_access import open_warehouse
    from warehouse.engine import connect_with_retries, make_engine

    settings = get_settings()
    if not dry_run:
        open_warehouse(settings)  # cached: the flow's open_warehouse gets this engine
    elif make_url(settings.resolved_warehouse_url).get_backend_name() != "sqlite":
        engine = make_engine(settings.resolved_warehouse_url)
        try:
            connect_with_retries(engine)
        finally:
            engine.dispose()


def print_receipt(receipt: dict[str, Any]) -> None:
    print(f"提交 {receipt['submission_id']}  {receipt['department']} {receipt['period']}  "
          f"{receipt['original_name']}")
    print(f"状态 status: {receipt['status']}  — {receipt['summary_zh']}")
    counts = receipt.get("counts", {})
    if counts:
        print(f"行数 rows: read {counts['rows_read']}, loaded {counts['rows_loaded']}, "
              f"rejected {counts['rows_rejected']}")
    for item in receipt.get("issues", []):
        if item["severity"] == "info":
            continue
        where = " ".join(
            str(x) for x in (
                f"[{item['sheet']}]" if item.get("sheet") else "",
                f"第{item['row']}行" if item.get("row") else "",
                item.get("column") or "",
            ) if x
        )
        print(f"  {item['severity']:<8} {item['code']:<24} {where}  {item['message']}")


def handed_over(args: argparse.Namespace) -> int | None:
    """``duikou ingest`` through the running ``duikou serve`` of this data directory
    (``flows/handoff.py``): the exit code, or None to run in this process (no service, a dead one,
    ``DUIKOU_HANDOFF=0``, a registry). A stale service is refused (exit 2)."""
    import os

    from expectations.registry_declaration import load_registry_declarations
    from flows.handoff import HandoffFailed, ServiceStale, find_service, hand_over

    if os.environ.get("DUIKOU_HANDOFF", "1").strip() == "0" or args.department in load_registry_declarations():
        return None
    settings = get_settings()
    try:
        service = find_service(settings.resolved_data_dir, settings.resolved_warehouse_url,
                               warn=lambda line: print(line, file=sys.stderr))
    except ServiceStale as exc:
        print(f"duikou ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if service is None:
        return None
    try:
        answer = hand_over(service, {"file": str(Path(args.file).resolve()), "department": args.department,
                                     "period": args.period, "dry_run": bool(args.dry_run)})
    except (OSError, ValueError, HandoffFailed) as exc:
        raise HandoffFailed(f"duikou serve (pid {service.get('pid')}) did not finish the hand-over: {exc} — "
                            "the ledger says whether the file loaded (duikou ingest again answers duplicate "
                            "if it did)") from exc
    if "receipt" not in answer:
        print(f"duikou ingest: {answer.get('error', answer)}", file=sys.stderr)
        return int(answer.get("exit", 3))
    _print_ingest(answer["receipt"], answer.get("receipt_path"), as_json=args.json)
    return int(answer["exit"])


def _print_ingest(receipt: dict[str, Any], receipt_path: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(receipt, ensure_ascii=False, default=str))
    else:
        print_receipt(receipt)
        if receipt_path:
            print(f"回执 receipt: {receipt_path}")


def cmd_ingest(args: argparse.Namespace) -> int:
    if (code := handed_over(args)) is not None:
        return code
    from flows.ingest import ingest_submission
    from tasks.registry.checks import MissingPersonKey
    from tasks.submission.journey import SubmissionError, request_period

    path = Path(args.file).resolve()
    reach_warehouse(dry_run=args.dry_run)
    own_prefect_server()
    try:
        request_period(args.department, args.period)  # refused here, before a flow run starts
        result = ingest_submission(str(path), args.department, args.period, dry_run=args.dry_run)
    except (SubmissionError, MissingPersonKey) as exc:  # a registry needs DUIKOU_PERSON_KEY
        print(f"duikou ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_ingest(result.receipt, result.receipt_path, as_json=args.json)
    return EXIT_OK if result.status in ("loaded", "duplicate") else EXIT_NOT_LOADED


def print_nightly(summary: Any) -> None:
    print(f"nightly: {json.dumps(summary.counts(), ensure_ascii=False)}")
    for result in summary.processed:
        if result.status not in ("loaded", "duplicate"):
            print(f"  {result.status:<11} {result.department:<9} {result.period:<7} {result.original_name}: "
                  f"{_first_problem(result.receipt)}")
    for item in summary.skipped:
        print(f"  skipped {item['path']}: {item['reason']}")
    for item in summary.restatements:
        print(f"  更正 restatement needed: {item['published_id']} — {item['changed_figures']} published figure(s) "
              f"moved; {item['action']} {item['draft_id']} (duikou release show {item['draft_id']})")


def _first_problem(receipt: dict[str, Any]) -> str:
    from tasks.submission.result import problem_of

    return problem_of(receipt)


@contextmanager
def nightly_progress(enabled: bool) -> Iterator[None]:
    """On a terminal (and without ``--json``): a ``rich`` progress bar — files done / total and the
    department being loaded — fed by ``flows/progress.py``. Otherwise (cron, pipes, ``--json``) silent."""
    if not enabled:
        yield
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flows import progress

    problems = {"rejected", "quarantined", "skipped", "failed"}
    with Progress(TextColumn("夜间运行 nightly"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                  TimeElapsedColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("对账 reconciling the landing area…", total=None)
        seen = {"problems": 0}

        def show(event: progress.Progress) -> None:
            if event.kind == "found":
                bar.update(task, total=event.total, description=f"{event.total} 个新文件 new files")
                return
            seen["problems"] += event.status in problems
            flagged = f"  问题 problems {seen['problems']}" if seen["problems"] else ""
            bar.update(task, advance=1, description=f"{event.department}: {event.name} {event.status}{flagged}")

        with progress.listening(show):
            yield


def cmd_nightly(args: argparse.Namespace) -> int:
    from flows.nightly import NightlyIncomplete
    from flows.runners import nightly_flow
    from flows.workpool import WorkPoolRunsFailed, WorkPoolUnavailable, require_server

    settings = get_settings()
    if settings.task_runner == "workpool":  # refused before anything runs: no warehouse, no temporary server
        try:
            require_server(settings)
        except WorkPoolUnavailable as exc:
            print(f"duikou nightly: {exc}", file=sys.stderr)
            return EXIT_USAGE
    reach_warehouse()
    own_prefect_server()
    try:
        with nightly_progress(sys.stderr.isatty() and not args.json):
            summary = nightly_flow(get_settings())(run_label=args.label or "", build_report=not args.no_report)
    except WorkPoolUnavailable as exc:  # DUIKOU_TASK_RUNNER=workpool without a server, deployment or pool
        print(f"duikou nightly: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WorkPoolRunsFailed as exc:  # department runs failed, crashed or timed out: each named
        print(f"duikou nightly: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADED
    except NightlyIncomplete as exc:  # files or steps failed; the rest ran: what it did, then what failed
        if getattr(exc, "summary", None) is not None:
            print_nightly_summary(exc.summary, as_json=args.json)
        print(f"duikou nightly: {' '.join(str(exc).split())[:2000]}", file=sys.stderr)
        return EXIT_NOT_LOADED
    print_nightly_summary(summary, as_json=args.json)
    return EXIT_OK


def print_nightly_summary(summary: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"counts": summary.counts(), "report": summary.report_path,
                          "processed": [r.receipt for r in summary.processed], "skipped": summary.skipped,
                          "failed": summary.failed, "steps_failed": summary.steps_failed,
                          "marts_skipped": summary.marts_skipped,
                          "restatements": summary.restatements}, ensure_ascii=False, default=str))
    else:
        print_nightly(summary)
        if summary.report_path:
            print(f"报告 report: {summary.report_path}")
