"""The ``duikou`` command line.

Every command creates or upgrades the warehouse and loads reference data on first use, so
``duikou ingest`` works on an empty data directory. Exit codes: 0 done (for ``ingest``: loaded or
duplicate), 1 the submission was rejected or quarantined (``quarantine release``: the release was
refused; ``db upgrade``: the warehouse's schema differs and was left as it was), 2 a usage error
(``quarantine release/reject``: an unknown, ambiguous or not-quarantined id; any command: a
mistaken argument — unknown department, missing file, malformed or impossible period — refused in
one line by ``flows/arguments.py`` before any flow starts), 3 a failure of the
system, not of the submission (the warehouse unreachable after its retries, Prefect's temporary
server not starting, any unexpected error): one line on stderr naming the cause; the traceback goes
to a log file named in that line, or to stderr with ``duikou --debug`` / ``DUIKOU_DEBUG=1``.

A command that runs a flow without ``PREFECT_API_URL`` owns the temporary Prefect server Prefect
starts for it: the server ends when the command ends, however it ends (``flows/prefect_server.py``).

This module is the parser's root, the exit codes and :func:`main` (with ``quarantine`` and ``db``);
the other commands live by group: ``flows/ingest_cli.py`` (ingest, nightly), ``flows/report_cli.py``
(report, history, docs, dq docs), ``flows/demo_cli.py``, ``flows/ops_cli.py``,
``flows/followups_cli.py``, ``flows/release_cli.py`` and ``flows/workpool_cli.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from duikou_settings import get_settings
from flows.demo_cli import cmd_demo
from flows.ingest_cli import cmd_ingest, cmd_nightly, own_prefect_server, print_receipt
from flows.operator_identity import who_decides
from flows.report_cli import cmd_docs, cmd_dq_docs, cmd_history, cmd_report

EXIT_OK, EXIT_NOT_LOADED, EXIT_USAGE, EXIT_SYSTEM = 0, 1, 2, 3


def _quiet_prefect() -> None:
    """Keep Prefect's own console chatter off stdout: the CLI's output is the receipt/summary."""
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
    # a fresh PREFECT_HOME (every first `make demo`) migrates Prefect's database before the temporary
    # server answers: 20-60 s on a busy two-core host, where Prefect's default 20 s gave up (seen)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def cmd_quarantine_list(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from tasks.submission.quarantine import list_quarantined

    engine = open_warehouse(get_settings())
    items = list_quarantined(engine, include_overtaken=True)
    shown = items if args.all else [item for item in items if item.later_version is None]
    hidden = len(items) - len(shown)
    if args.json:
        print(json.dumps([item.to_dict() for item in shown], ensure_ascii=False))
        return EXIT_OK
    if not shown:
        print("没有待核提交 (nothing in quarantine)")
    for item in shown:
        print(f"{item.submission_id}  {item.department:<9} {item.period:<7} "
              f"{item.received_at:%Y-%m-%d %H:%M}Z  {item.original_name}")
        print(f"    {', '.join(item.issue_codes) or '-'}: {item.first_message or ''}")
        if item.later_version is not None:
            print(f"    已有更晚收到的版本入库 (a later version is loaded): {item.later_version.describe()} "
                  "— 放行需 --force (release needs --force)")
    if hidden:
        print(f"另有{hidden}份待核提交的本期已有更晚收到的版本入库，未列出 "
              f"({hidden} more whose period has a later loaded version: --all shows them)")
    return EXIT_OK


def cmd_quarantine_decide(args: argparse.Namespace) -> int:
    from flows.quarantine import quarantine_decision
    from flows.warehouse_access import open_warehouse
    from tasks.submission.quarantine import DecisionError, find_quarantined

    prog = f"duikou quarantine {args.decision}"
    by = who_decides(prog, args.by, args.reason, "--reason")
    if by is None:
        return EXIT_USAGE
    own_prefect_server()
    try:
        ledger = find_quarantined(open_warehouse(get_settings()), args.id)
        result = quarantine_decision(ledger["submission_id"], ledger["department"], ledger["period"],
                                     args.decision, by.strip(), args.reason.strip(),
                                     force=bool(getattr(args, "force", False)))
    except DecisionError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.status == "refused":
        if args.json:
            print(json.dumps({"submission_id": result.submission_id, "status": "refused",
                              "message": result.message, "blockers": list(result.blockers),
                              "later_version": result.later_version},
                             ensure_ascii=False, default=str))
        print(f"{prog}: {result.message}", file=sys.stderr)
        return EXIT_NOT_LOADED
    if args.json:
        print(json.dumps(result.receipt, ensure_ascii=False, default=str))
        return EXIT_OK
    if result.receipt is not None:
        print_receipt(result.receipt)
        block = result.receipt.get("decision", {})
        print(f"决定 decision: {block.get('decision')} by {block.get('decided_by')} at "
              f"{block.get('decided_at')} — {block.get('reason')}")
    if result.supersedes:
        print(f"取代 supersedes: {result.supersedes}")
    if result.later_version is not None:
        print(f"强制放行 forced: 取代了更晚收到的版本 (replaced the later version) "
              f"{result.later_version['submission_id']} ({result.later_version['original_name']})")
    if result.receipt_path:
        print(f"回执 receipt: {result.receipt_path}")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("duikou")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


#: commands whose parser needs none of the command groups below (their modules import SQLAlchemy, pandas):
#: ``duikou ingest`` handed to the service (flows/handoff.py) stays a thin client
_LIGHT_COMMANDS = frozenset({"ingest"})


def _command_of(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser(light: bool = False) -> argparse.ArgumentParser:
    """The whole command line; ``light``: without the command groups of other modules (serve, followups,
    release, workpool, accounts) — for a command of ``_LIGHT_COMMANDS``, which parses the same."""
    parser = argparse.ArgumentParser(prog="duikou", description="对口 paired-assistance data pipeline")
    parser.add_argument("--version", action="version", version=f"duikou {_version()}")
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
    demo.add_argument("--through", default="2020-12", metavar="YYYY-MM",
                      help="the demo's last month: 2020-12 (default: across the 2019 township reform) "
                           "down to 2017-11 (the article's story alone, about half the time)")
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
    qlist.add_argument("--all", action="store_true",
                       help="also those whose period already has a later loaded version (hidden by default)")
    qlist.set_defaults(func=cmd_quarantine_list)
    for name, text in (("release", "read the kept file again and load it despite its quarantine issues"),
                       ("reject", "reject it: nothing is loaded")):
        decide = qsub.add_parser(name, help=text)
        decide.add_argument("id", help="submission id, or a unique prefix of at least 6 hex digits")
        decide.add_argument("--by", help="who decides (default: the OS user)")
        decide.add_argument("--reason", required=True, help="why; recorded with the decision")
        decide.add_argument("--json", action="store_true", help="print the rewritten receipt as JSON")
        if name == "release":
            decide.add_argument("--force", action="store_true",
                                help="release even over a later loaded version of the period (the --reason "
                                     "says why; recorded in the decision audit)")
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
    if light:
        return parser

    from flows.ops_cli import add_ops_commands  # serve, intake-server, submit, intake-token, automations

    add_ops_commands(sub)

    from flows.followups_cli import add_followup_commands  # followups list / accept / dismiss

    add_followup_commands(sub)

    from flows.release_cli import add_release_commands  # release draft / review / approve / return / verify …

    add_release_commands(sub)

    from flows.workpool_cli import add_workpool_commands  # workpool setup

    add_workpool_commands(sub)

    from flows.accounts_cli import add_accounts_commands  # accounts add / list / link / password / disable

    add_accounts_commands(sub)
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
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser(light=_command_of(argv) in _LIGHT_COMMANDS).parse_args(argv)
    from flows.arguments import ArgumentMistake, check_arguments

    try:  # before anything starts: no flow run, no Prefect, no GX for a mistyped argument
        check_arguments(args)
    except ArgumentMistake as exc:
        print(f"duikou {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    from flows.prefect_home import check_prefect_database
    debug = _debug_requested(args)
    if debug:  # e.g. each failed attempt to reach the warehouse (warehouse.engine.connect_with_retries)
        import logging

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        for name in ("warehouse", "flows", "tasks"):
            logging.getLogger(name).addHandler(handler)
            logging.getLogger(name).setLevel(logging.INFO)
    try:
        if args.command != "demo":  # the demo checks the Prefect home it chooses (cmd_demo)
            check_prefect_database()
        return int(args.func(args))
    except Exception as exc:
        return _failure(exc, debug)


def _raised(exc: BaseException, module: str, name: str) -> bool:
    """``exc`` is ``module.name`` — checked without importing the module (an exception of a module
    never imported was never raised: ``duikou ingest`` handed to the service imports no SQLAlchemy)."""
    loaded = sys.modules.get(module)
    return loaded is not None and isinstance(exc, getattr(loaded, name))


def _failure(exc: Exception, debug: bool) -> int:
    """The exit code and the one line for an exception that reached the command line."""
    if _raised(exc, "warehouse.migrate", "SchemaDriftError"):  # the warehouse does not match this version
        print(f"duikou: {exc}", file=sys.stderr)
        return EXIT_NOT_LOADED
    if any(_raised(exc, module, name) for module, name in (
            ("warehouse.engine", "WarehouseUnreachable"), ("flows.prefect_server", "TemporaryServerError"),
            ("flows.handoff", "HandoffFailed"))):  # said in one line, with what to do
        if debug:
            import traceback

            traceback.print_exception(exc)
        print(f"duikou: {exc}", file=sys.stderr)
        return EXIT_SYSTEM
    from flows.prefect_home import explain_prefect_db_error

    # a crash: not the submission's fault, not to be confused with exit 1
    if (line := explain_prefect_db_error(exc)) is not None:  # Prefect's database of another version
        print(line, file=sys.stderr)
        return EXIT_SYSTEM
    return _system_failure(exc, debug)


if __name__ == "__main__":
    sys.exit(main())
