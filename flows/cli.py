"""The ``duikou`` command line.

Every command creates or upgrades the warehouse and loads reference data on first use, so
``duikou ingest`` works on an empty data directory. Exit codes: 0 done (for ``ingest``: loaded or
duplicate), 1 the submission was rejected or quarantined (``quarantine release``: the release was
refused; ``db upgrade``: the warehouse's schema differs and was left as it was), 2 a usage error
(``quarantine release/reject``: an unknown, ambiguous or not-quarantined id), 3 a failure of the
system, not of the submission (the warehouse unreachable after its retries, Prefect's temporary
server not starting, any unexpected error): one line on stderr naming the cause; the traceback goes
to a log file named in that line, or to stderr with ``duikou --debug`` / ``DUIKOU_DEBUG=1``.

A command that runs a flow without ``PREFECT_API_URL`` owns the temporary Prefect server Prefect
starts for it: the server ends when the command ends, however it ends (``flows/prefect_server.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from duikou_settings import get_settings, reset_settings_cache
from flows.operator import who_decides

EXIT_OK, EXIT_NOT_LOADED, EXIT_USAGE, EXIT_SYSTEM = 0, 1, 2, 3


def _demo_prefect_home() -> None:
    """Without a Prefect server the demo's runs go to Prefect's temporary local server, whose
    database lives in ``PREFECT_HOME`` (``~/.prefect``); the demo keeps its own under the data
    directory, so a database another Prefect version migrated there cannot stop it (seen: "Can't
    locate revision" after a newer Prefect had used ``~/.prefect``). A configured server
    (``PREFECT_API_URL``) or an explicit ``PREFECT_HOME`` is left alone."""
    if "prefect" in sys.modules or os.environ.get("PREFECT_API_URL") or os.environ.get("PREFECT_HOME"):
        return
    home = get_settings().resolved_data_dir / "prefect-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PREFECT_HOME"] = str(home)


def _quiet_prefect() -> None:
    """Keep Prefect's own console chatter off stdout: the CLI's output is the receipt/summary."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")


def _own_prefect_server() -> None:
    """Before a command runs a flow: the temporary Prefect server (if one is needed) goes when we go."""
    from flows.prefect_server import own_temporary_server

    own_temporary_server()


def _reach_warehouse(dry_run: bool = False) -> None:
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


def _print_receipt(receipt: dict[str, Any]) -> None:
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


def cmd_ingest(args: argparse.Namespace) -> int:
    from flows.ingest import ingest_submission
    from tasks.registry.checks import MissingPersonKey
    from tasks.submission.journey import SubmissionError, request_period

    path = Path(args.file).resolve()
    _reach_warehouse(dry_run=args.dry_run)
    _own_prefect_server()
    try:
        request_period(args.department, args.period)  # refused here, before a flow run starts
        result = ingest_submission(str(path), args.department, args.period, dry_run=args.dry_run)
    except (SubmissionError, MissingPersonKey) as exc:  # a registry needs DUIKOU_PERSON_KEY
        print(f"duikou ingest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(result.receipt, ensure_ascii=False, default=str))
    else:
        _print_receipt(result.receipt)
        if result.receipt_path:
            print(f"回执 receipt: {result.receipt_path}")
    return EXIT_OK if result.status in ("loaded", "duplicate") else EXIT_NOT_LOADED


def _print_nightly(summary: Any) -> None:
    print(f"nightly: {json.dumps(summary.counts(), ensure_ascii=False)}")
    for result in summary.processed:
        if result.status not in ("loaded", "duplicate"):
            print(f"  {result.status:<11} {result.department:<9} {result.period:<7} {result.original_name}: "
                  f"{_first_problem(result.receipt)}")
    for item in summary.skipped:
        print(f"  skipped {item['path']}: {item['reason']}")


def _first_problem(receipt: dict[str, Any]) -> str:
    for item in receipt.get("issues", []):
        if item["severity"] == "critical":
            return f"{item['code']} {item['message']}"
    return receipt.get("summary_zh", "")


def cmd_nightly(args: argparse.Namespace) -> int:
    from flows.nightly import NightlyIncomplete
    from flows.runners import nightly_flow
    from flows.workpool import WorkPoolRunsFailed, WorkPoolUnavailable

    _reach_warehouse()
    _own_prefect_server()
    try:
        summary = nightly_flow(get_settings())(run_label=args.label or "", build_report=not args.no_report)
    except WorkPoolUnavailable as exc:  # DUIKOU_TASK_RUNNER=workpool without a server, deployment or pool
        print(f"duikou nightly: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except WorkPoolRunsFailed as exc:  # department runs failed, crashed or timed out: each named
        print(f"duikou nightly: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADED
    except NightlyIncomplete as exc:  # files or steps failed; the rest ran: what it did, then what failed
        if getattr(exc, "summary", None) is not None:
            _print_nightly_summary(exc.summary, as_json=args.json)
        print(f"duikou nightly: {' '.join(str(exc).split())[:2000]}", file=sys.stderr)
        return EXIT_NOT_LOADED
    _print_nightly_summary(summary, as_json=args.json)
    return EXIT_OK


def _print_nightly_summary(summary: Any, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps({"counts": summary.counts(), "report": summary.report_path,
                          "processed": [r.receipt for r in summary.processed], "skipped": summary.skipped,
                          "failed": summary.failed, "steps_failed": summary.steps_failed,
                          "marts_skipped": summary.marts_skipped}, ensure_ascii=False, default=str))
    else:
        _print_nightly(summary)
        if summary.report_path:
            print(f"报告 report: {summary.report_path}")


def _headline(year: int | None, data: Any = None) -> None:
    """The headline KPIs of ``year``, from ``data`` (tasks.report.data.ReportData) or loaded here."""
    from flows.warehouse_access import open_warehouse
    from tasks.report.site import headline_rows, load_report_data

    if data is None:
        data = load_report_data(open_warehouse(get_settings()))
    rows = headline_rows(data, year)
    if not rows:
        print("暂无数据 (no KPI data yet)")
        return
    width = max(len(label) for label, _, _ in rows)
    for label, value, coverage in rows:
        print(f"  {label}{'　' * (width - len(label))}  {value:<22} {coverage}")


def cmd_report(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.report.site import build_report
    from warehouse.marts import refresh_marts

    settings = get_settings()
    engine = open_warehouse(settings)
    refresh_marts(engine)
    out = Path(args.out) if args.out else None
    path = build_report(engine, settings.resolved_data_dir, year=args.year, out=out)
    print(f"报告 report: {path}")
    print(f"最新 latest: {path.parent.parent / 'latest' / path.name}")
    _headline(args.year)
    return EXIT_OK


DEMO_KEY_FILE = Path("secrets") / "demo-person-key"


def _demo_person_key() -> None:
    """Without DUIKOU_PERSON_KEY the demo uses its own random key, made once into
    ``<data>/secrets/demo-person-key`` (0600) and kept, so later demo runs key people alike. Only
    ``duikou demo`` does this: ``ingest`` / ``nightly`` keep refusing a registry without the key."""
    settings = get_settings()
    if settings.person_key is not None and settings.person_key.get_secret_value():
        return
    path = settings.resolved_data_dir / DEMO_KEY_FILE
    if path.is_file():
        key = path.read_text(encoding="ascii").strip()
        print(f"演示密钥 demo person key: DUIKOU_PERSON_KEY is not set; using the demo's own key {path}")
    else:
        import secrets

        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key + "\n")
        print(f"演示密钥 demo person key: DUIKOU_PERSON_KEY is not set; generated a random key for the demo only "
              f"into {path} (0600)")
    print("  production sets DUIKOU_PERSON_KEY from its secret store; duikou ingest / nightly refuse registries "
          "without it")
    os.environ["DUIKOU_PERSON_KEY"] = key
    reset_settings_cache()


def _registry_section(data: Any) -> None:
    """The person-level registries' lines, from ``data`` (tasks.report.data.ReportData)."""
    from tasks.report.registry import registry_lines, registry_views

    for view in registry_views(data):
        print("\n".join(registry_lines(view)))


def cmd_demo(args: argparse.Namespace) -> int:
    if args.data_dir:
        os.environ["DUIKOU_DATA_DIR"] = args.data_dir
        reset_settings_cache()
    _demo_prefect_home()  # before anything imports Prefect
    from flows.prefect_home import check_prefect_database

    check_prefect_database()  # the home chosen above, or the one set by the caller
    _own_prefect_server()
    from flows.runners import nightly_flow
    from tasks.demo.data import generate_demo

    if get_settings().as_of is None:  # completeness is judged on the demo's clock, not today
        from tasks.demo.data import DEMO_AS_OF

        os.environ["DUIKOU_AS_OF"] = DEMO_AS_OF.isoformat()
        reset_settings_cache()
    _demo_person_key()  # the registry snapshots are keyed: a demo key when none is set
    settings = get_settings()
    landing = settings.landing_dir
    has_files = landing.exists() and any(p.is_file() for p in landing.rglob("*"))
    if args.fresh or not has_files:
        files = generate_demo(landing, seed=args.seed)
        flawed = [f for f in files if f.kind == "flawed"]
        print(f"生成演示数据 generated {len(files)} demo submissions ({len(flawed)} deliberately flawed) "
              f"in {landing}")
    _reach_warehouse()  # unreachable: one line and exit 3, before the flow run starts
    summary = nightly_flow(get_settings())(run_label="demo")
    _print_nightly(summary)
    print()
    print(f"数据仓库 warehouse: {settings.resolved_warehouse_url}")
    print(f"报告 report:        {summary.report_path}")
    if summary.report_path:
        print(f"仪表板 dashboard:   {Path(summary.report_path).parent.parent / 'latest' / 'index.html'}")
    print(f"回执 receipts:      {settings.receipts_dir}")
    print(f"归档 archive:       {settings.archive_dir}   待核/退回 quarantine: {settings.quarantine_dir}")
    print()
    from flows.followups_cli import completeness_lines
    from flows.warehouse_access import open_warehouse
    from tasks.report.site import load_report_data

    engine = open_warehouse(settings)
    data = load_report_data(engine)  # once, for the headline and the registries
    print("主要指标 headline KPIs (2016):")
    _headline(2016, data)
    print()
    _registry_section(data)
    print()
    print("\n".join(completeness_lines(engine)))
    return EXIT_OK


def cmd_docs(args: argparse.Namespace) -> int:
    from warehouse.dataset_docs import render_datasets_docs  # forms and person-level registries

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_datasets_docs(), encoding="utf-8")
    print(f"wrote {out}")
    return EXIT_OK


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.submission.quarantine import list_quarantined

    items = list_quarantined(open_warehouse(get_settings()))
    if args.json:
        print(json.dumps([item.to_dict() for item in items], ensure_ascii=False))
        return EXIT_OK
    if not items:
        print("没有待核提交 (nothing in quarantine)")
        return EXIT_OK
    for item in items:
        print(f"{item.submission_id}  {item.department:<9} {item.period:<7} "
              f"{item.received_at:%Y-%m-%d %H:%M}Z  {item.original_name}")
        print(f"    {', '.join(item.issue_codes) or '-'}: {item.first_message or ''}")
    return EXIT_OK


def cmd_quarantine_decide(args: argparse.Namespace) -> int:
    from flows.quarantine import quarantine_decision
    from flows.warehouse_access import open_warehouse
    from tasks.submission.quarantine import DecisionError, find_quarantined

    prog = f"duikou quarantine {args.decision}"
    by = who_decides(prog, args.by, args.reason, "--reason")
    if by is None:
        return EXIT_USAGE
    _own_prefect_server()
    try:
        ledger = find_quarantined(open_warehouse(get_settings()), args.id)
        result = quarantine_decision(ledger["submission_id"], ledger["department"], ledger["period"],
                                     args.decision, by.strip(), args.reason.strip())
    except DecisionError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.status == "refused":
        if args.json:
            print(json.dumps({"submission_id": result.submission_id, "status": "refused",
                              "message": result.message, "blockers": list(result.blockers)},
                             ensure_ascii=False, default=str))
        print(f"{prog}: {result.message}", file=sys.stderr)
        return EXIT_NOT_LOADED
    if args.json:
        print(json.dumps(result.receipt, ensure_ascii=False, default=str))
        return EXIT_OK
    if result.receipt is not None:
        _print_receipt(result.receipt)
        block = result.receipt.get("decision", {})
        print(f"决定 decision: {block.get('decision')} by {block.get('decided_by')} at "
              f"{block.get('decided_at')} — {block.get('reason')}")
    if result.supersedes:
        print(f"取代 supersedes: {result.supersedes}")
    if result.receipt_path:
        print(f"回执 receipt: {result.receipt_path}")
    return EXIT_OK


def cmd_history(args: argparse.Namespace) -> int:
    from expectations.declaration import load_declarations
    from flows.warehouse_access import open_warehouse
    from warehouse.load import parse_period
    from warehouse.restatements import history_lines, partition_history

    known = sorted(load_declarations())
    if args.department not in known:
        print(f"duikou history: unknown department {args.department!r} (one of {', '.join(known)})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        parse_period(args.period)
    except ValueError as exc:
        print(f"duikou history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    history = partition_history(open_warehouse(get_settings()), args.department, args.period)
    if args.json:
        print(json.dumps(history.to_dict(), ensure_ascii=False, default=str))
    else:
        print("\n".join(history_lines(history)))
    return EXIT_OK


def cmd_dq_docs(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.registry.dq_docs import build_registry_docs
    from tasks.submission.dq_docs import build_form_docs
    from tasks.submission.journey import is_registry
    from tasks.validation.data_docs import DqDocsError, docs_dir, ledger_row

    settings = get_settings()
    try:
        engine = open_warehouse(settings)
        row = ledger_row(engine, args.submission_id)
        build = build_registry_docs if is_registry(row.department) else build_form_docs  # a registry: its own page
        out = docs_dir(settings, args.submission_id, Path(args.out) if args.out else None)
        docs = build(engine, settings, row, out)
    except DqDocsError as exc:
        print(f"duikou dq docs: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(docs.index_html)
    return EXIT_OK


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.engine import make_url

    from warehouse.bootstrap import ensure_warehouse
    from warehouse.engine import connect_with_retries, make_engine
    from warehouse.migrate import SchemaDriftError

    settings = get_settings()
    settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_warehouse_url
    engine = make_engine(url)
    try:
        connect_with_retries(engine)
        outcome = ensure_warehouse(engine)
    except SchemaDriftError as exc:
        print(f"duikou db upgrade: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADED
    finally:
        engine.dispose()
    print(f"数据仓库 warehouse {make_url(url).render_as_string(hide_password=True)}: {outcome.describe()}")
    return EXIT_OK


def cmd_db_docs(args: argparse.Namespace) -> int:
    from warehouse.dictionary import render_warehouse_markdown

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render_warehouse_markdown(), encoding="utf-8")
    print(f"wrote {out}")
    return EXIT_OK


def add_db_commands(db: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``duikou db ...``: warehouse administration; add further ``db`` sub-commands here."""
    upgrade = db.add_parser("upgrade", help="bring the warehouse to the head migration (views, reference data too)")
    upgrade.set_defaults(func=cmd_db_upgrade)
    docs = db.add_parser("docs", help="regenerate docs/warehouse.md (the data dictionary) from the schema")
    docs.add_argument("--out", default="docs/warehouse.md")
    docs.set_defaults(func=cmd_db_docs)
    roles = db.add_parser("roles", help="PostgreSQL: create the owner, loader and read-only analyst roles")
    roles.add_argument("--owner", default="duikou_owner")
    roles.add_argument("--loader", default="duikou_loader")
    roles.add_argument("--analyst", default="duikou_analyst")
    roles.add_argument("--schema", default="public")
    roles.add_argument("--login", action="store_true", help="give the roles LOGIN (no password: set one yourself)")
    roles.set_defaults(func=cmd_db_roles)


def cmd_db_roles(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from warehouse.roles import create_roles

    engine = open_warehouse(get_settings())
    if engine.dialect.name != "postgresql":
        print("duikou db roles: roles exist on PostgreSQL only; on SQLite give analysts a read-only URL "
              "(sqlite:///file:<data>/warehouse.sqlite?mode=ro&uri=true), see docs/design.md", file=sys.stderr)
        return EXIT_USAGE
    try:
        roles = create_roles(engine, owner=args.owner, loader=args.loader, analyst=args.analyst,
                             schema=args.schema, login=args.login)
    except ValueError as exc:
        print(f"duikou db roles: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"roles ready: {roles}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="duikou", description="对口 paired-assistance data pipeline")
    parser.add_argument("--debug", action="store_true",
                        help="on a failure of the system (exit 3) print the traceback (also DUIKOU_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True)

    ingest = sub.add_parser("ingest", help="ingest one department return")
    ingest.add_argument("file")
    ingest.add_argument("--department", required=True, help="education, health, labour, tourism, poverty")
    ingest.add_argument("--period", required=True, help="YYYY-MM (monthly) or YYYY (annual)")
    ingest.add_argument("--dry-run", action="store_true", help="do everything but write")
    ingest.add_argument("--json", action="store_true", help="print the receipt as one JSON object")
    ingest.set_defaults(func=cmd_ingest)

    nightly = sub.add_parser("nightly", help="reconcile landing area, ingest new files, refresh marts/report")
    nightly.add_argument("--label", help="text appended to the flow run name")
    nightly.add_argument("--no-report", action="store_true")
    nightly.add_argument("--json", action="store_true")
    nightly.set_defaults(func=cmd_nightly)

    report = sub.add_parser("report", help="refresh marts and build the HTML report")
    report.add_argument("--year", type=int)
    report.add_argument("--out", help="reports directory (default <data>/reports)")
    report.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="generate Danba demo submissions and run the nightly flow")
    demo.add_argument("--data-dir", help="data directory (default $DUIKOU_DATA_DIR or ./data)")
    demo.add_argument("--seed", type=int, default=2017)
    demo.add_argument("--fresh", action="store_true", help="regenerate demo files even if landing has files")
    demo.set_defaults(func=cmd_demo)

    history = sub.add_parser("history", help="versions of one department return and what each restatement changed")
    history.add_argument("department")
    history.add_argument("period", help="YYYY-MM (monthly) or YYYY (annual)")
    history.add_argument("--json", action="store_true", help="print one JSON object")
    history.set_defaults(func=cmd_history)

    quarantine = sub.add_parser("quarantine", help="list quarantined submissions; release or reject one")
    qsub = quarantine.add_subparsers(dest="quarantine_command", required=True)
    qlist = qsub.add_parser("list", help="quarantined submissions, newest first")
    qlist.add_argument("--json", action="store_true", help="print one JSON array")
    qlist.set_defaults(func=cmd_quarantine_list)
    for name, text in (("release", "read the kept file again and load it despite its quarantine issues"),
                       ("reject", "reject it: nothing is loaded")):
        decide = qsub.add_parser(name, help=text)
        decide.add_argument("id", help="submission id, or a unique prefix of at least 6 hex digits")
        decide.add_argument("--by", help="who decides (default: the OS user)")
        decide.add_argument("--reason", required=True, help="why; recorded with the decision")
        decide.add_argument("--json", action="store_true", help="print the rewritten receipt as JSON")
        decide.set_defaults(func=cmd_quarantine_decide, decision=name)

    docs = sub.add_parser("docs", help="regenerate docs/datasets.md from the declarations")
    docs.add_argument("--out", default="docs/datasets.md")
    docs.set_defaults(func=cmd_docs)

    dq = sub.add_parser("dq", help="data quality: GX Data Docs for one submission")
    dq_sub = dq.add_subparsers(dest="dq_command", required=True)
    dq_docs = dq_sub.add_parser("docs", help="re-validate a submission's kept file and build its GX Data Docs")
    dq_docs.add_argument("submission_id", help="16 hex digits, as in the receipt")
    dq_docs.add_argument("--out", help="output directory (default <data>/reports/dq-docs/<submission_id>)")
    dq_docs.set_defaults(func=cmd_dq_docs)

    db = sub.add_parser("db", help="warehouse administration: migrations, data dictionary")
    add_db_commands(db.add_subparsers(dest="db_command", required=True))

    from flows.ops_cli import add_ops_commands  # serve, intake-server, submit, intake-token, automations

    add_ops_commands(sub)

    from flows.followups_cli import add_followup_commands  # followups list / accept / dismiss

    add_followup_commands(sub)

    from flows.workpool_cli import add_workpool_commands  # workpool setup

    add_workpool_commands(sub)
    return parser


def _debug_requested(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "debug", False)) or os.environ.get("DUIKOU_DEBUG", "") not in ("", "0")


def _crash_log(text: str) -> Path | None:
    """Write ``text`` (a traceback) to ``<data>/logs/duikou-crash-<time>-<pid>.log``, or to the
    temporary directory when the data directory cannot take it; None when neither can."""
    import contextlib
    import tempfile
    import time

    name = f"duikou-crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    folders: list[Path] = []
    with contextlib.suppress(Exception):  # the settings themselves may be what failed
        folders.append(get_settings().resolved_data_dir / "logs")
    folders.append(Path(tempfile.gettempdir()))
    for folder in folders:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_text(text, encoding="utf-8")
            return path
        except OSError:
            continue
    return None


def _system_failure(exc: BaseException, debug: bool) -> int:
    """Exit 3 for an unexpected error: one line naming it; the traceback in a log file or on stderr."""
    import traceback

    detail = " ".join(str(exc).split())[:300] or "(no message)"
    trace = "".join(traceback.format_exception(exc))
    if debug:
        print(trace, file=sys.stderr, end="")
        where = "traceback above"
    else:
        log = _crash_log(trace)
        where = f"traceback in {log}" if log else "run with --debug for the traceback"
    print(f"duikou: 系统故障 (system failure): {type(exc).__name__}: {detail} — {where}", file=sys.stderr)
    return EXIT_SYSTEM


def main(argv: list[str] | None = None) -> int:
    """Run one command; its exit code: 0 done, 1 not loaded / refused, 2 usage, 3 failure of the system."""
    _quiet_prefect()
    args = build_parser().parse_args(argv)
    from flows.prefect_home import check_prefect_database, explain_prefect_db_error
    debug = _debug_requested(args)
    if debug:  # e.g. each failed attempt to reach the warehouse (warehouse.engine.connect_with_retries)
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("warehouse", "flows", "tasks"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    from flows.prefect_server import TemporaryServerError
    from warehouse.engine import WarehouseUnreachable
    from warehouse.migrate import SchemaDriftError

    try:
        if args.command != "demo":  # the demo checks the Prefect home it chooses (cmd_demo)
            check_prefect_database()
        return int(args.func(args))
    except SchemaDriftError as exc:  # the warehouse does not match this version of duikou
        print(f"duikou: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADED
    except (WarehouseUnreachable, TemporaryServerError) as exc:  # said in one line, with what to do
        if debug:
            import traceback

            traceback.print_exc()
        print(f"duikou: {exc}", file=sys.stderr)
        return EXIT_SYSTEM
    except Exception as exc:  # a crash: not the submission's fault, not to be confused with exit 1
        if (line := explain_prefect_db_error(exc)) is not None:  # Prefect's database of another version
            print(line, file=sys.stderr)
            return EXIT_SYSTEM
        return _system_failure(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
