"""What a mart refresh leaves out, said once: a row or department it cannot place (a ledger row
written before every door checked periods, a KPI whose inputs fail) is logged as a warning and,
when the caller keeps a list, named in it (the nightly's summary shows them)."""

from __future__ import annotations

import logging

log = logging.getLogger("duikou.marts")


def note_skipped(skipped: list[str] | None, what: str) -> None:
    """Name what the marts left out: a warning in the log, and in ``skipped`` when kept."""
    log.warning("%s", what)
    if skipped is not None:
        skipped.append(what)
