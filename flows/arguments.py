"""The CLI's argument checks: a mistake is refused before any flow starts, in one line.

``duikou ingest`` / ``submit`` / ``history`` / ``intake-token create`` name a department, a period
and (ingest, submit) a file. A wrong one — an unknown department, a file that is not there, a
period that is malformed, impossible (month 13) or of the wrong kind (a year for a monthly
return), or outside the plausible window — is said in one Chinese-and-English line and the command
exits 2: no traceback, no Prefect flow run, and neither Prefect nor Great Expectations is imported
(this module imports neither: the declarations are YAML, periods are plain text).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

from duikou_settings import get_settings
from expectations.declaration import load_declarations
from expectations.registry_declaration import load_registry_declarations
from tasks.forms.periods import PeriodError, check_plausible, parse_declared_period

#: command → (takes a registry as its department, takes a file)
_CHECKED: dict[str, tuple[bool, bool]] = {"ingest": (True, True), "submit": (False, True),
                                          "history": (False, False)}
_YEAR_MONTH = re.compile(r"^\d{4}-\d{2}$")


class ArgumentMistake(ValueError):
    """One line, Chinese first, then English: what is wrong with the command's arguments."""


def check_department(department: str, *, registries: bool) -> str:
    """The department's period type ("month" / "year"); ArgumentMistake listing the valid ones."""
    forms = load_declarations()
    known: dict[str, Any] = dict(forms)
    if registries:
        known |= load_registry_declarations()
    if department not in known:
        listed = ", ".join(f"{name}({decl.title_zh})" for name, decl in sorted(known.items()))
        plain = ", ".join(sorted(known))
        raise ArgumentMistake(f"未知部门“{department}”，可选: {listed} "
                              f"(unknown department {department!r}; one of {plain})")
    return str(known[department].period_type)


def check_period(department: str, period: str, period_type: str) -> None:
    """ArgumentMistake unless ``period`` is a well-formed, possible, plausible period of this kind."""
    text = period.strip()
    kind_en = "monthly: YYYY-MM" if period_type == "month" else "annual: YYYY"
    try:
        parsed = parse_declared_period(text, period_type)
    except PeriodError as exc:
        if period_type == "month" and text.isdigit() and len(text) == 4:
            english = f"{department} is monthly: give YYYY-MM, e.g. {text}-05, not a year"
        elif period_type == "year" and _YEAR_MONTH.match(text):
            english = f"{department} is annual: give the year alone, e.g. {text[:4]}"
        elif _YEAR_MONTH.match(text):
            english = f"period {text!r} is impossible: the month must be 01–12"
        else:
            english = f"period {text!r} is malformed; {department} is {kind_en}"
        raise ArgumentMistake(f"{exc} ({english})") from exc
    settings = get_settings()
    try:
        check_plausible(parsed, period_type, settings.submission_window_today, settings.programme_start)
    except PeriodError as exc:  # already Chinese (English)
        raise ArgumentMistake(str(exc)) from exc


def check_file(file: str) -> None:
    path = Path(file)
    if not path.is_file():
        what = "不是文件" if path.exists() else "找不到文件"
        english = "is not a file" if path.exists() else "no such file"
        raise ArgumentMistake(f"{what}: {file} ({english}: {file})")


def check_arguments(args: argparse.Namespace) -> None:
    """ArgumentMistake for the first mistake in the command's department, period and file."""
    command = str(args.command)
    if command == "intake-token" and getattr(args, "token_command", None) == "create":
        check_department(args.department, registries=False)
        return
    if command not in _CHECKED:
        return
    registries, takes_file = _CHECKED[command]
    period_type = check_department(args.department, registries=registries)
    check_period(args.department, args.period, period_type)
    if takes_file:
        check_file(args.file)
