"""Who takes an operator's decision, and why: shared by ``duikou quarantine`` and ``duikou followups``."""

from __future__ import annotations

import getpass
import sys


def operator_name(given: str | None) -> str | None:
    """``--by`` when given, else the login name; None when the environment has none."""
    if given is not None:
        return given
    try:
        return getpass.getuser()
    except Exception:  # no login name in this environment: --by must say who
        return None


def who_decides(prog: str, by: str | None, why: str, why_flag: str) -> str | None:
    """The operator's name for an audited decision, or None after printing the usage error.

    Both who (``--by`` or the login name) and why (``why_flag``'s text) must be non-blank.
    """
    name = operator_name(by)
    if not name or not name.strip():
        print(f"{prog}: say who decides with --by NAME", file=sys.stderr)
        return None
    if not why.strip():
        print(f"{prog}: {why_flag} must say why", file=sys.stderr)
        return None
    return name.strip()
