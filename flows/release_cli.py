"""``duikou release …``: draft, review, approve, return, list, show, verify, restate (issue 20).

``--by LOGIN`` names an account (``duikou accounts add``) holding the role the step declares
(``expectations/releases.yaml``). Exit codes as in ``flows/cli.py``: 0 done; 1 ``verify`` found a
difference; 2 refused (unknown id or account, wrong role, self-approval, unexplained warnings,
missing returns without ``--allow-incomplete``, another official acted first) — one line on stderr
saying why.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from duikou_settings import get_settings

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
STATE_ZH = {"draft": "草稿", "in_review": "审核中", "approved": "已发布"}


def _engine() -> Any:
    from flows.warehouse_access import open_warehouse

    return open_warehouse(get_settings())


def _reports_dir() -> Path:
    return get_settings().resolved_data_dir / "reports"


def _account(engine: Any, login: str) -> Any:
    from tasks.accounts import find_account

    return find_account(engine, login) if login and login.strip() else None


def _print_outcome(outcome: Any, prog: str) -> None:
    print(f"{outcome.release_id}  {STATE_ZH[outcome.state]} ({outcome.state}, {outcome.steps_done} step(s) signed)")
    print(f"报告 report: {outcome.site}")
    if outcome.published is not None:
        print(f"已发布 published: {outcome.published}")
    if outcome.next_step is not None:
        print(f"下一步 next: {outcome.next_step.step_zh} — duikou release {outcome.next_step.action} "
              f"{outcome.release_id} --by <{outcome.next_step.role}>")
    if outcome.unexplained:
        print(f"待说明 {len(outcome.unexplained)} flagged value(s) without a 说明 or an acceptance "
              "(approval is refused "
              "until each has one: duikou followups explain|accept ID):")
        for w in outcome.unexplained:
            print(f"  {w.followup_id}  {w.department} {w.period} {w.township_code} {w.indicator} = {w.value}: "
                  f"{w.reason_zh}")


def cmd_release_draft(args: argparse.Namespace) -> int:
    from tasks.releases.signoff import draft_release
    from warehouse.release_values import ReleaseError

    engine = _engine()
    try:
        outcome = draft_release(engine, _account(engine, args.by), args.kind, args.period,
                                reports_dir=_reports_dir(), allow_incomplete=args.allow_incomplete,
                                note=args.note or "")
    except ReleaseError as exc:
        print(f"duikou release draft: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_outcome(outcome, "draft")
    return EXIT_OK


def cmd_release_act(args: argparse.Namespace) -> int:
    from tasks.releases import signoff
    from warehouse.release_values import ReleaseError

    engine = _engine()
    act = {"review": signoff.review_release, "approve": signoff.approve_release,
           "return": signoff.return_release}[args.action]
    try:
        outcome = act(engine, _account(engine, args.by), args.id, args.note or "", reports_dir=_reports_dir())
    except ReleaseError as exc:
        print(f"duikou release {args.action}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    _print_outcome(outcome, args.action)
    return EXIT_OK


def cmd_release_list(args: argparse.Namespace) -> int:
    from warehouse.releases import list_releases

    rows = list_releases(_engine(), kind=args.kind)
    if args.json:
        print(json.dumps([{"release_id": r.release_id, "kind": r.kind, "period": r.period, "version": r.version,
                           "state": r.state, "steps_done": r.steps_done, "superseded_by": r.superseded_by}
                          for r in rows], ensure_ascii=False))
        return EXIT_OK
    if not rows:
        print("还没有发布版本 (no releases yet: duikou release draft --kind annual --period YYYY --by LOGIN)")
    for r in rows:
        extra = f"  已更正，见 {r.superseded_by}" if r.superseded_by else ""
        print(f"{r.release_id:<24} {STATE_ZH[r.state]:<4} {r.kind:<8} {r.period:<8} 截至 {r.frozen_at:%Y-%m-%d %H:%M}Z"
              f"{'  数据不完整' if r.incomplete else ''}{extra}")
    return EXIT_OK


def cmd_release_show(args: argparse.Namespace) -> int:
    from expectations.signoff import load_signoff
    from tasks.releases.release_site import release_dir
    from tasks.releases.signoff import next_step
    from warehouse.release_values import ReleaseError
    from warehouse.releases import get_release, release_warnings, signoffs_of

    engine = _engine()
    try:
        with engine.connect() as conn:
            release = get_release(conn, args.id)
            trail = signoffs_of(conn, release.release_id)
            warnings = release_warnings(conn, release)
    except ReleaseError as exc:
        print(f"duikou release show: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"{release.release_id}  {STATE_ZH[release.state]} ({release.state})  {release.kind} {release.period} "
          f"v{release.version}")
    print(f"报告 report: {release_dir(_reports_dir(), release.release_id) / 'index.html'}")
    step = next_step(load_signoff(), release)
    if step is not None:
        print(f"下一步 next: {step.step_zh} ({step.action}, role {step.role})")
    for s in trail:
        print(f"  {s['seq']}. {s['acted_at']:%Y-%m-%d %H:%M}Z {s['action']:<7} {s['step_zh']} "
              f"{s['acted_by_name']}（{s['acted_by']}）: {s['note']}")
    open_ones = [w for w in warnings if not w.explained]
    print(f"被标记的数值 flagged values: {len(warnings)}, 无说明 unexplained: {len(open_ones)}")
    for w in open_ones:
        print(f"  {w.followup_id}  {w.department} {w.period} {w.township_code} {w.indicator} = {w.value}: "
              f"{w.reason_zh}")
    if release.restatement:
        moved = [c for c in release.restatement["changes"] if c["value_kind"] == "kpi"]
        print(f"更正说明: {len(release.restatement['changes'])} figure(s) moved against "
              f"{release.restatement['supersedes']}; KPIs: "
              + ", ".join(f"{c['name']} {c['period']} {c['old_value']} → {c['new_value']}" for c in moved))
    return EXIT_OK


def cmd_release_verify(args: argparse.Namespace) -> int:
    from tasks.releases.release_site import release_dir
    from warehouse.release_values import ReleaseError
    from warehouse.releases import verify_release

    engine = _engine()
    try:
        with engine.connect() as conn:
            from warehouse.releases import get_release

            release_id = get_release(conn, args.id).release_id
        values_file = release_dir(_reports_dir(), release_id) / "values.json"
        result = verify_release(engine, release_id, values_file.read_bytes() if values_file.is_file() else None)
    except ReleaseError as exc:
        print(f"duikou release verify: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if result.ok:
        print(f"{result.release_id}: 一致 reproduced exactly — {result.rows} figures, sha256 {result.rebuilt_sha256}")
        return EXIT_OK
    print(f"{result.release_id}: 不一致 NOT reproduced (recorded {result.stored_sha256}, rebuilt "
          f"{result.rebuilt_sha256})", file=sys.stderr)
    for line in result.differences:
        print(f"  {line}", file=sys.stderr)
    return EXIT_DIFFERENT


def cmd_release_restate(args: argparse.Namespace) -> int:
    """Draft the restatements corrections made necessary and raise their events (without the nightly)."""
    from flows.events import emit
    from flows.ingest_cli import own_prefect_server
    from flows.release_alerts import restatement_events
    from tasks.releases.restate import find_restatements

    found = find_restatements(_engine(), _reports_dir())
    if not found:
        print("没有需要更正的已发布数字 (no published figure moved)")
        return EXIT_OK
    for r in found:
        kpis = ", ".join(f"{c['name']} {c['period']}: {c['old_value']} → {c['new_value']}" for c in r.kpi_changes())
        print(f"{r.published_id}: {len(r.changes)} figure(s) moved; {r.action} {r.draft_id} with its 更正说明"
              + (f" (KPIs {kpis})" if kpis else ""))
    own_prefect_server()
    emit(*restatement_events(found))
    print(f"事件 event duikou.release.restatement_needed × {len(found)}")
    return EXIT_OK


def add_release_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``duikou release draft|review|approve|return|list|show|verify|restate``."""
    release = sub.add_parser("release", help="frozen, signed-off releases of the county's figures (issue 20)")
    rsub = release.add_subparsers(dest="release_command", required=True)
    draft = rsub.add_parser("draft", help="freeze a candidate release (or refreeze the open draft)")
    draft.add_argument("--kind", required=True, choices=("monthly", "annual"))
    draft.add_argument("--period", required=True, help="YYYY (annual) or YYYY-MM (monthly)")
    draft.add_argument("--by", required=True, help="account login of the preparer")
    draft.add_argument("--note", help="recorded in the sign-off trail")
    draft.add_argument("--allow-incomplete", action="store_true",
                       help="draft although returns are missing (every page says 数据不完整)")
    draft.set_defaults(func=cmd_release_draft)
    for name, text in (("review", "take the next review step (e.g. 统计审核)"),
                       ("approve", "take the last step (e.g. 分管领导审批): the release is published"),
                       ("return", "send the release back to draft with the reason")):
        act = rsub.add_parser(name, help=text)
        act.add_argument("id", help="release id, e.g. annual-2016-v1")
        act.add_argument("--by", required=True, help="account login holding the step's role")
        act.add_argument("--note", required=name == "return", help="opinion / reason; recorded in the trail")
        act.set_defaults(func=cmd_release_act, action=name)
    listing = rsub.add_parser("list", help="every release version and its state")
    listing.add_argument("--kind", choices=("monthly", "annual"))
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_release_list)
    show = rsub.add_parser("show", help="one release: state, next step, trail, unexplained warnings, 更正说明")
    show.add_argument("id")
    show.set_defaults(func=cmd_release_show)
    verify = rsub.add_parser("verify", help="recompute a release from its pinned versions; exit 1 if not identical")
    verify.add_argument("id")
    verify.set_defaults(func=cmd_release_verify)
    restate = rsub.add_parser("restate", help="draft restatements of published releases that corrections moved")
    restate.set_defaults(func=cmd_release_restate)
