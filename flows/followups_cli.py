"""``duikou followups ...`` (list, accept, dismiss, explain) and the completeness table ``duikou demo`` prints.

Exit codes as in ``flows/cli.py``: 0 done, 2 a usage error (unknown or ambiguous id, empty note,
a kind or state that cannot take the decision).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: building the command line must not import pandas or SQLAlchemy
    from sqlalchemy import Engine

from duikou_settings import get_settings
from flows.operator_identity import who_decides

EXIT_OK, EXIT_USAGE = 0, 2
_STATUS_ZH = {"on_time": "按时", "late": "逾期", "missing": "缺报", "quarantined": "待核", "rejected": "退回",
              "pending": "未到期"}


def _fmt_value(value: float | None) -> str:
    return "—" if value is None else f"{value:,.2f}".rstrip("0").rstrip(".")


def cmd_followups_list(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from warehouse.followups import FollowupError, list_followups

    try:
        items = list_followups(open_warehouse(get_settings()), status=args.status, department=args.department)
    except FollowupError as exc:
        print(f"duikou followups list: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps([item.to_dict() for item in items], ensure_ascii=False))
        return EXIT_OK
    if not items:
        print("没有待跟进事项 (no follow-ups" + (f" with status {args.status}" if args.status else "") + ")")
        return EXIT_OK
    for item in items:
        where = " ".join(x for x in (item.township_name or item.township_code or "", item.indicator or "") if x)
        print(f"{item.followup_id}  {item.status:<9} {item.kind:<10} {item.severity:<8} {item.department:<9} "
              f"{item.period:<7} {where}  值 {_fmt_value(item.value)}")
        print(f"    {item.check_id}: {item.reason_zh}")
    return EXIT_OK


def cmd_followups_decide(args: argparse.Namespace) -> int:
    from flows.warehouse_access import open_warehouse
    from warehouse.followups import FollowupError, decide

    prog = f"duikou followups {args.decision}"
    by = who_decides(prog, args.by, args.note, "--note")
    if by is None:
        return EXIT_USAGE
    try:
        item = decide(open_warehouse(get_settings()), args.id, args.decision, by.strip(), args.note.strip())
    except FollowupError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(item.to_dict(), ensure_ascii=False))
        return EXIT_OK
    what = "接受 accepted: the value loads unflagged" if args.decision == "accept" else \
        "不予跟进 dismissed: closed, the value stays flagged"
    print(f"{item.followup_id}  {item.department} {item.period} {item.township_name or ''} {item.indicator or ''} "
          f"值 {_fmt_value(item.value)}")
    print(f"{what} — by {by.strip()}: {args.note.strip()}")
    return EXIT_OK


def cmd_followups_explain(args: argparse.Namespace) -> int:
    """A department's 说明 on its flagged value, by a clerk of that department (``--by LOGIN``)."""
    from flows.warehouse_access import open_warehouse
    from tasks.accounts import find_account, may
    from warehouse.followups import FollowupError, explain, list_followups

    engine = open_warehouse(get_settings())
    account = find_account(engine, args.by)
    prog = "duikou followups explain"
    if account is None:
        print(f"{prog}: 未知账号 {args.by!r} (no such account: duikou accounts add)", file=sys.stderr)
        return EXIT_USAGE
    items = [i for i in list_followups(engine) if i.followup_id.startswith(args.id.strip())]
    department = items[0].department if len(items) == 1 else account.department
    if not may(account, "explain_followup", department):
        print(f"{prog}: {account.display_name}（{account.login}）不能为 {department} 填写说明 "
              "(only a clerk of the follow-up's department explains it)", file=sys.stderr)
        return EXIT_USAGE
    try:
        item = explain(engine, args.id, account.login, str(account.department), args.note)
    except FollowupError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{item.followup_id}  {item.department} {item.period} {item.township_name or ''} {item.indicator or ''} "
          f"值 {_fmt_value(item.value)}")
    print(f"说明 recorded — by {account.login}: {args.note.strip()}")
    return EXIT_OK


def add_followup_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``duikou followups list|accept|dismiss``."""
    followups = sub.add_parser("followups", help="flagged values, cross-return disagreements, quarantined files")
    fsub = followups.add_subparsers(dest="followups_command", required=True)
    flist = fsub.add_parser("list", help="follow-ups by department, period and township")
    flist.add_argument("--status", choices=("open", "accepted", "dismissed", "resolved"))
    flist.add_argument("--department")
    flist.add_argument("--json", action="store_true", help="print one JSON array")
    flist.set_defaults(func=cmd_followups_list)
    for name, text in (
        ("accept", "the value is right as reported: it loads unflagged, now and in later runs, while unchanged"),
        ("dismiss", "not worth pursuing: closed and kept closed, but the value stays flagged"),
    ):
        decide = fsub.add_parser(name, help=text)
        decide.add_argument("id", help="follow-up id (F + 10 hex digits), or a unique prefix of ≥ 5 characters")
        decide.add_argument("--note", required=True, help="why; recorded with the decision")
        decide.add_argument("--by", help="who decides (default: the OS user)")
        decide.add_argument("--json", action="store_true", help="print the follow-up as JSON")
        decide.set_defaults(func=cmd_followups_decide, decision=name)
    explain = fsub.add_parser("explain", help="a department's 说明 on its flagged value (a release publishes it as a "
                              "footnote; approval needs a 说明 or an acceptance for every flagged value)")
    explain.add_argument("id", help="follow-up id (F + 10 hex digits), or a unique prefix of ≥ 5 characters")
    explain.add_argument("--by", required=True, help="login of a clerk of the follow-up's department")
    explain.add_argument("--note", required=True, help="the 说明")
    explain.set_defaults(func=cmd_followups_explain)


# ---------------------------------------------------------------- completeness table


def completeness_lines(engine: Engine, periods: int = 3) -> list[str]:
    """The latest ``periods`` due periods of each department (``mart_completeness``), then totals."""
    import pandas as pd

    from warehouse.completeness import COUNTY_TZ, judgement_date, latest_completeness

    with engine.connect() as conn:
        latest = latest_completeness(conn, periods)
        totals = latest_completeness(conn, 10_000)
    lines = [f"完整性与及时性 completeness as of {judgement_date().isoformat()} "
             f"(mart_completeness, latest {periods} periods per department):"]
    if latest.empty:
        return [*lines, "  暂无 (nothing expected yet)"]
    width = max(10, *(len(str(d)) for d in totals["department"]))  # labour_registry is wider than "department"
    lines.append(f"  {'department':<{width}} {'period':<7} {'status':<12} {'deadline':<10}  "
                 f"{'first received (CST)':<20} {'files':>5}  townships")
    for r in latest.itertuples(index=False):
        received = "—"
        if r.first_received_at is not None and not pd.isna(r.first_received_at):
            moment = pd.Timestamp(r.first_received_at).to_pydatetime()
            received = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(COUNTY_TZ) \
                .strftime("%Y-%m-%d %H:%M")
        status = f"{r.status} {_STATUS_ZH.get(r.status, '')}"
        lines.append(f"  {r.department:<{width}} {r.period:<7} {status:<12} {r.deadline!s:<10}  {received:<20} "
                     f"{int(r.files_received):>5}  {int(r.townships_reported)}/{int(r.townships_expected)}")
    lines.append("  all periods:")
    lines.extend(f"  {dept:<{width}} {_totals(group)}" for dept, group in totals.groupby("department", sort=True))
    return lines


def _totals(group: Any) -> str:
    names = ("expected", "received", "on_time", "late", "missing", "quarantined", "rejected")
    sums = {n: int(group[n].sum()) for n in names}
    return "expected {expected}, received {received} (on time {on_time}, late {late}), missing {missing}, " \
           "quarantined {quarantined}, rejected {rejected}".format(**sums)
