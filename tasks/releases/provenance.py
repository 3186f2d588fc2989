"""What a release records about where its figures come from, besides the pinned ledger versions:
the code (package version and git commit when the code runs from a checkout), the content hashes of
the declarations, KPI definitions and sign-off chain it was computed under, the KPI definitions
themselves (口径, frozen), coverage and missing returns, and the follow-ups open at that moment.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Sequence
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select

from duikou_settings import get_settings
from expectations.declaration import DECLARATIONS_DIR, KPIS_FILE, load_declarations, load_kpis
from expectations.signoff import RELEASES_FILE
from warehouse import schema
from warehouse.completeness import compute_completeness, read_ledger, reporting_declarations
from warehouse.release_values import Scope, definitions_of

REPO = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def code_version() -> dict[str, str | None]:
    """The package version, and the git commit when the code runs from a git checkout (else None)."""
    try:
        package = version("duikou")
    except PackageNotFoundError:
        package = "unknown"
    commit: str | None = None
    if (REPO / ".git").exists():
        try:
            done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10, check=False)
            commit = done.stdout.strip() or None if done.returncode == 0 else None
            dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, text=True, timeout=10, check=False)
            if commit and dirty.returncode == 0 and dirty.stdout.strip():
                commit += "+modified"
        except (OSError, subprocess.SubprocessError):
            commit = None
    return {"package_version": package, "git_commit": commit}


def definition_hashes() -> dict[str, str]:
    """sha256 of every declaration file, the KPI definitions and the sign-off chain."""
    out = {f"declarations/{p.name}": _sha(p) for p in sorted(DECLARATIONS_DIR.glob("*.yaml"))}
    out["kpis.yaml"] = _sha(KPIS_FILE)
    out["releases.yaml"] = _sha(RELEASES_FILE)
    return out


def missing_returns_in(conn: Connection, scope: Scope) -> list[dict[str, str]]:
    """Every return a form declaration owes for the release's own period(s) with no loaded version,
    judged as if every deadline had passed (a release cannot wait for a late return silently)."""
    forms = load_declarations()
    declarations = {k: v for k, v in reporting_declarations().items() if k in forms}
    judged = date(scope.year + 1, 12, 31)
    no_values = pd.DataFrame({"department": [], "period": [], "township_code": [], "value": []})
    no_towns = pd.DataFrame(columns=["township_code", "valid_from", "valid_to"])
    rows, _ = compute_completeness(declarations, read_ledger(conn), no_values, no_towns, judged,
                                   get_settings().programme_start)
    out = []
    for r in rows.to_dict("records"):
        if scope.shows(str(r["period"])) and int(r["expected"]) == 1 and int(r["loaded"]) == 0:
            out.append({"department": str(r["department"]), "period": str(r["period"]), "status": str(r["status"])})
    return out


def open_followups(conn: Connection) -> list[dict[str, Any]]:
    f = schema.followup
    rows = conn.execute(select(f.c.followup_id, f.c.kind, f.c.department, f.c.period, f.c.township_code,
                               f.c.indicator, f.c.check_id, f.c.reason_zh).where(f.c.status == "open")
                        .order_by(f.c.department, f.c.period, f.c.followup_id)).mappings()
    return [dict(r) for r in rows]


def kpi_coverage(rows: Sequence[dict[str, Any]], scope: Scope) -> list[dict[str, Any]]:
    return [{"kpi": r["name"], "year": r["period"], "used": r["coverage_used"], "expected": r["coverage_expected"]}
            for r in rows if r["value_kind"] == "kpi" and r["period"] == str(scope.year)]


def provenance_record(conn: Connection, scope: Scope, rows: Sequence[dict[str, Any]],
                      definitions: Sequence[dict[str, Any]] | None, missing: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "code": code_version(),
        "definition_hashes": definition_hashes(),
        "kpi_definitions": list(definitions) if definitions is not None else definitions_of(load_kpis()),
        "coverage": kpi_coverage(rows, scope),
        "missing_returns": missing,
        "open_followups": open_followups(conn),
    }
