"""Operations commands of the ``duikou`` CLI: serve, intake-server, submit, intake-token, automations.

See docs/operations.md for how they fit together.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from duikou_settings import get_settings

EXIT_OK, EXIT_NOT_LOADED, EXIT_USAGE = 0, 1, 2


def _api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    value = PREFECT_API_URL.value()
    return str(value) if value else None


def ui_url_warning() -> str | None:
    """The line ``duikou serve`` prints when ``PREFECT_UI_URL`` is not set (None when it is)."""
    from prefect.settings import get_current_settings

    if "ui_url" in get_current_settings().model_fields_set:
        return None
    return ("duikou serve: 警告 PREFECT_UI_URL 未设置：告警中的运行链接会显示为 None (warning: PREFECT_UI_URL is not "
            "set — set it, for the Prefect server too, e.g. http://prefect-host:4200, or the failed-run alert's link "
            "reads None; see docs/operations.md)")


def cmd_serve(args: argparse.Namespace) -> int:
    from flows.serve import serve_in_process, serve_process_per_run

    if not _api_url():
        print("duikou serve: set PREFECT_API_URL to the Prefect server's API (e.g. http://127.0.0.1:4200/api); "
              "see docs/operations.md", file=sys.stderr)
        return EXIT_USAGE
    settings = get_settings()
    if (line := ui_url_warning()) is not None:  # once, at start: every alert's link depends on it
        print(line, file=sys.stderr, flush=True)

    def ready(ids: dict[str, Any], notes: list[str]) -> None:
        print(f"duikou serve: {', '.join(sorted(ids))} registered on {_api_url()}", flush=True)
        for note in notes:
            print(f"  {note}", flush=True)
        print("duikou serve: ready", flush=True)

    if args.process_per_run:
        serve_process_per_run(settings, on_ready=ready)
    else:
        serve_in_process(settings, grace_seconds=args.grace, on_ready=ready)
    return EXIT_OK


def cmd_intake_server(args: argparse.Namespace) -> int:
    from flows.intake import run_server

    settings = get_settings()
    if not _api_url():
        print("duikou intake-server: PREFECT_API_URL is not set: uploads are stored but no event is sent; "
              "the nightly run will load them", file=sys.stderr)
    run_server(args.host or settings.intake_host, args.port or settings.intake_port)
    return EXIT_OK


def cmd_submit(args: argparse.Namespace) -> int:
    """Land the file as the intake server would, then emit the event — or ingest here without a server."""
    from flows import events
    from tasks.landing.landed import UploadRefused, land_file
    from tasks.submission.journey import SubmissionError, declaration_for, request_period

    settings = get_settings()
    source = Path(args.file)
    if not source.is_file():
        print(f"duikou submit: no such file: {source}", file=sys.stderr)
        return EXIT_USAGE
    try:
        declaration_for(args.department)  # a township form (a registry goes through `duikou ingest`)
        period = request_period(args.department, args.period, settings).label  # the plausible window too
        landed = land_file(source, settings.landing_dir, settings.max_upload_bytes, args.department, period,
                           via="cli")
    except (SubmissionError, ValueError, UploadRefused) as exc:
        print(f"duikou submit: {exc}", file=sys.stderr)
        return EXIT_USAGE
    answer = {"submission_id": landed.submission_id, "department": landed.department, "period": landed.period,
              "original_name": landed.original_name, "stored": str(landed.path)}
    sent_at = time.time()
    if _api_url() and not args.local:
        try:
            events.emit(events.submission_received(
                submission_id=landed.submission_id, path=str(landed.path), department=landed.department,
                period=landed.period, original_name=landed.original_name, via="cli"))
        except Exception as exc:  # the file is in landing/: the nightly run loads it
            print(f"duikou submit: {landed.submission_id} stored in {landed.path}, but {events.SUBMISSION_RECEIVED} "
                  f"could not be sent ({type(exc).__name__}: {exc}); the nightly run will load it", file=sys.stderr)
            return EXIT_NOT_LOADED
        answer["status"] = "received"
        if args.wait:
            return _wait_for_receipt(landed.submission_id, settings.receipts_dir, args, answer, sent_at)
        print(json.dumps(answer, ensure_ascii=False) if args.json else
              f"提交 {landed.submission_id} received: {events.SUBMISSION_RECEIVED} sent to {_api_url()}; "
              f"the receipt follows in {settings.receipts_dir / (landed.submission_id + '.json')}")
        return EXIT_OK
    from flows.ingest import ingest_submission  # no server: the same flow, here and now
    from flows.prefect_server import own_temporary_server

    own_temporary_server()  # Prefect's temporary server (without PREFECT_API_URL) goes when we go
    result = ingest_submission(str(landed.path), landed.department, landed.period)
    answer["status"] = result.status
    print(json.dumps({**answer, "receipt": result.receipt}, ensure_ascii=False, default=str) if args.json else
          f"提交 {landed.submission_id} {result.status} (ingested locally: no PREFECT_API_URL) — "
          f"{result.receipt.get('summary_zh', '')}")
    return EXIT_OK if result.status in ("loaded", "duplicate") else EXIT_NOT_LOADED


def _wait_for_receipt(submission_id: str, receipts: Path, args: argparse.Namespace, answer: dict[str, Any],
                      sent_at: float) -> int:
    """``submit --wait``: the receipt the run writes for this upload (its own, or ``.duplicate.json``
    for a file the ledger had), printed as ``ingest`` prints it; the exit code as ``ingest``'s."""
    from flows.ingest_cli import print_receipt

    deadline = time.monotonic() + args.wait_timeout
    candidates = (receipts / f"{submission_id}.json", receipts / f"{submission_id}.duplicate.json")
    while time.monotonic() < deadline:
        for path in candidates:
            try:
                if path.stat().st_mtime >= sent_at - 1:  # written by this upload's run, not an earlier one
                    receipt = json.loads(path.read_text(encoding="utf-8"))
                    break
            except (OSError, ValueError):  # not there yet, or being replaced this instant
                continue
        else:
            time.sleep(0.5)
            continue
        if args.json:
            print(json.dumps(receipt, ensure_ascii=False, default=str))
        else:
            print_receipt(receipt)
            print(f"回执 receipt: {path}")
        return EXIT_OK if receipt.get("status") in ("loaded", "duplicate") else EXIT_NOT_LOADED
    print(f"duikou submit: 提交 {submission_id} 已收到，但{args.wait_timeout:.0f}秒内未见回执 "
          f"(received, but no receipt within {args.wait_timeout:.0f} s: is `duikou serve` running? it will appear in "
          f"{candidates[0]})", file=sys.stderr)
    if args.json:
        print(json.dumps(answer, ensure_ascii=False))
    return EXIT_NOT_LOADED


def cmd_token_create(args: argparse.Namespace) -> int:
    from expectations.declaration import load_declarations
    from tasks.landing.intake_tokens import create_token

    known = sorted(load_declarations())
    if args.department not in known:
        print(f"duikou intake-token: unknown department {args.department!r} (one of {', '.join(known)})",
              file=sys.stderr)
        return EXIT_USAGE
    path = get_settings().resolved_intake_tokens_file
    token, record = create_token(path, args.department, replace=args.rotate)
    print(token)  # the only time the token is shown: stdout alone, for piping into a secret store
    print(f"token {record.token_id} for {record.department} stored (hashed) in {path}"
          + ("; the department's earlier tokens are revoked" if args.rotate else ""), file=sys.stderr)
    return EXIT_OK


def cmd_token_list(args: argparse.Namespace) -> int:
    from tasks.landing.intake_tokens import read_tokens

    path = get_settings().resolved_intake_tokens_file
    for record in read_tokens(path):
        print(f"{record.token_id}  {record.department:<10} created {record.created_at}")
    return EXIT_OK


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from tasks.landing.intake_tokens import revoke_tokens

    if not args.department and not args.token_id:
        print("duikou intake-token revoke: give --department or --token-id", file=sys.stderr)
        return EXIT_USAGE
    removed = revoke_tokens(get_settings().resolved_intake_tokens_file, department=args.department,
                            token_id=args.token_id)
    print(f"revoked {len(removed)} token(s): {', '.join(t.token_id for t in removed) or '-'}")
    return EXIT_OK if removed else EXIT_USAGE


def cmd_automations(args: argparse.Namespace) -> int:
    from flows.automations import (
        NotificationBlockMissing,
        ensure_automations,
        notification_block_id,
        save_webhook_block,
    )

    if not _api_url():
        print("duikou automations: set PREFECT_API_URL to the Prefect server's API", file=sys.stderr)
        return EXIT_USAGE
    slug = get_settings().notify_block
    try:
        if args.webhook_url:
            save_webhook_block(slug, args.webhook_url)
            print(f"notification block {slug} -> {args.webhook_url}")
        for line in ensure_automations(notification_block_id(slug)):
            print(f"automation {line}")
    except (NotificationBlockMissing, ValueError) as exc:
        print(f"duikou automations: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK


def add_ops_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="register the deployments on PREFECT_API_URL and run their runs")
    serve.add_argument("--process-per-run", action="store_true",
                       help="Prefect's stock runner: a new process per run (slower start, full isolation)")
    serve.add_argument("--grace", type=float, default=60.0,
                       help="seconds to let running flows finish after SIGTERM/SIGINT (default 60)")
    serve.set_defaults(func=cmd_serve)

    intake = sub.add_parser("intake-server", help="the HTTP intake for departments (POST /submissions)")
    intake.add_argument("--host", help="default $DUIKOU_INTAKE_HOST or 127.0.0.1")
    intake.add_argument("--port", type=int, help="default $DUIKOU_INTAKE_PORT or 8765")
    intake.set_defaults(func=cmd_intake_server)

    submit = sub.add_parser("submit", help="land a file and emit duikou.submission.received (operators)")
    submit.add_argument("file")
    submit.add_argument("--department", required=True)
    submit.add_argument("--period", required=True, help="YYYY-MM (monthly) or YYYY (annual)")
    submit.add_argument("--local", action="store_true", help="ingest here even when PREFECT_API_URL is set")
    submit.add_argument("--json", action="store_true")
    submit.add_argument("--wait", action="store_true",
                        help="wait for the receipt and exit as `ingest` does (0 loaded/duplicate, 1 not loaded)")
    submit.add_argument("--wait-timeout", type=float, default=300.0, help="seconds (default 300)")
    submit.set_defaults(func=cmd_submit)

    token = sub.add_parser("intake-token", help="issue, rotate, list and revoke departments' intake tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="print a new token for DEPARTMENT (shown once)")
    create.add_argument("department")
    create.add_argument("--rotate", action="store_true", help="revoke the department's earlier tokens")
    create.set_defaults(func=cmd_token_create)
    listing = tsub.add_parser("list", help="token ids and departments (never the tokens)")
    listing.set_defaults(func=cmd_token_list)
    revoke = tsub.add_parser("revoke", help="revoke a department's tokens or one token")
    revoke.add_argument("--department")
    revoke.add_argument("--token-id")
    revoke.set_defaults(func=cmd_token_revoke)

    automations = sub.add_parser("automations", help="create/update the failed-run and missing-returns automations")
    automations.add_argument("--webhook-url", help="save a custom-webhook notification block at DUIKOU_NOTIFY_BLOCK")
    automations.set_defaults(func=cmd_automations)
