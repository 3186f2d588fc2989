"""``duikou accounts``: the people who act on duikou — department clerks, ops, officials (tasks/accounts/).

    duikou accounts add LOGIN --name 姓名 --role clerk --department education [--password-stdin]
    duikou accounts list
    duikou accounts link LOGIN [--hours 24]     # a one-time sign-in link to hand to the person
    duikou accounts password LOGIN --password-stdin
    duikou accounts disable LOGIN
"""

from __future__ import annotations

import argparse
import sys

from duikou_settings import get_settings

EXIT_OK, EXIT_USAGE = 0, 2


def _read_password(args: argparse.Namespace) -> str | None:
    if not getattr(args, "password_stdin", False):
        return None
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


def _engine():  # type: ignore[no-untyped-def]
    from flows.warehouse_access import open_warehouse

    return open_warehouse(get_settings())


def sign_in_url(secret: str) -> str:
    return f"{get_settings().resolved_public_url}/portal/link/{secret}"


def cmd_accounts_add(args: argparse.Namespace) -> int:
    from tasks.accounts import AccountError, create_account

    try:
        made = create_account(_engine(), args.login, args.name, args.role, department=args.department,
                              password=_read_password(args))
    except AccountError as exc:
        print(f"duikou accounts add: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"账号 {made.login}（{made.display_name}）已创建：{made.roles_zh}"
          + (f"，部门 {made.department}" if made.department else "")
          + ("" if args.password_stdin else "；用 duikou accounts link 生成一次性登录链接"))
    return EXIT_OK


def cmd_accounts_list(args: argparse.Namespace) -> int:
    from tasks.accounts import list_accounts

    for item in list_accounts(_engine()):
        state = "已停用" if item.disabled else "有效"
        print(f"{item.login:<20} {item.display_name:<10} {item.roles_zh:<12} {item.department or '-':<10} {state}")
    return EXIT_OK


def cmd_accounts_link(args: argparse.Namespace) -> int:
    from tasks.accounts import AccountError, issue_sign_in_link

    try:
        secret = issue_sign_in_link(_engine(), args.login, ttl_seconds=int(args.hours * 3600))
    except AccountError as exc:
        print(f"duikou accounts link: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(sign_in_url(secret))  # the only time the link is shown
    print(f"一次性登录链接，{args.hours:g} 小时内有效，只能使用一次 (one-time sign-in link)", file=sys.stderr)
    return EXIT_OK


def cmd_accounts_password(args: argparse.Namespace) -> int:
    from tasks.accounts import AccountError, set_password

    password = _read_password(args)
    if password is None:
        print("duikou accounts password: give the password on standard input with --password-stdin",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        changed = set_password(_engine(), args.login, password)
    except AccountError as exc:
        print(f"duikou accounts password: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"账号 {changed.login} 的密码已更新 (password set)")
    return EXIT_OK


def cmd_accounts_disable(args: argparse.Namespace) -> int:
    from tasks.accounts import AccountError, disable_account

    try:
        changed = disable_account(_engine(), args.login)
    except AccountError as exc:
        print(f"duikou accounts disable: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(f"账号 {changed.login} 已停用，其会话立即失效 (disabled; its sessions end now)")
    return EXIT_OK


def add_accounts_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from tasks.accounts.model import ROLE_LABELS_ZH

    roles_help = ", ".join(f"{role} {label}" for role, label in ROLE_LABELS_ZH.items())
    accounts = sub.add_parser("accounts", help="people who act on duikou: clerks, ops, officials")
    asub = accounts.add_subparsers(dest="accounts_command", required=True)
    add = asub.add_parser("add", help="create an account")
    add.add_argument("login", help="sign-in name: 2–64 of a-z 0-9 . _ -")
    add.add_argument("--name", required=True, help="the person's name, e.g. 张老师")
    add.add_argument("--role", action="append", required=True, help=f"repeatable: {roles_help}")
    add.add_argument("--department", help="the department a clerk acts for (clerks only)")
    add.add_argument("--password-stdin", action="store_true", help="read a password (≥ 10 characters) from stdin")
    add.set_defaults(func=cmd_accounts_add)
    listing = asub.add_parser("list", help="every account with its roles (never passwords)")
    listing.set_defaults(func=cmd_accounts_list)
    link = asub.add_parser("link", help="print a one-time sign-in link for LOGIN")
    link.add_argument("login")
    link.add_argument("--hours", type=float, default=24.0, help="how long the link works (default 24)")
    link.set_defaults(func=cmd_accounts_link)
    password = asub.add_parser("password", help="set LOGIN's password (read from stdin)")
    password.add_argument("login")
    password.add_argument("--password-stdin", action="store_true", required=True)
    password.set_defaults(func=cmd_accounts_password)
    disable = asub.add_parser("disable", help="LOGIN may no longer sign in; its sessions end")
    disable.add_argument("login")
    disable.set_defaults(func=cmd_accounts_disable)
