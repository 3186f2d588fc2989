"""Prefect's own local database, migrated by another Prefect version: one line with the fix.

Without ``PREFECT_API_URL`` Prefect starts a temporary server on its local database
(``$PREFECT_HOME/prefect.db``, ``~/.prefect`` by default). When another Prefect version — newer, or
from another checkout's venv — has migrated that database, the installed Prefect does not know its
alembic revision: the server subprocess dies with "Can't locate revision" / "No such revision",
Prefect restarts it until its start-up timeout, and the command ends in a long traceback saying
only "Timed out while attempting to connect to ephemeral Prefect API server".

:func:`prefect_database_problem` reads the revision in that database (read-only, without importing
Prefect when it is not imported yet, so the demo can still choose its own ``PREFECT_HOME``) and
compares it with the installed Prefect's migration scripts; :func:`check_prefect_database` raises
:class:`StalePrefectDatabase` with the one line. :func:`explain_prefect_db_error` turns an
exception that reached the command line into that line (``None`` when it is something else).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import sqlite3
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

_DB_URL_VARS = ("PREFECT_SERVER_DATABASE_CONNECTION_URL", "PREFECT_API_DATABASE_CONNECTION_URL")
_REVISION_ERROR = re.compile(r"(?:Can't locate revision identified by|No such revision or branch) '([^']*)'")
_EPHEMERAL_TIMEOUT = "ephemeral Prefect API server"


class StalePrefectDatabase(RuntimeError):
    """Prefect's local database is at a revision the installed Prefect does not know."""


def _prefect_version() -> str:
    try:
        return version("prefect")
    except PackageNotFoundError:  # pragma: no cover - prefect is a dependency
        return "?"


@functools.lru_cache(maxsize=1)
def known_revisions() -> frozenset[str]:
    """The alembic revisions of the installed Prefect's SQLite migrations (read from the scripts,
    not imported). Empty when they cannot be found: then nothing is judged stale."""
    spec = importlib.util.find_spec("prefect")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    versions = Path(next(iter(spec.submodule_search_locations))) / "server/database/_migrations/versions/sqlite"
    pattern = re.compile(r"""^revision\s*(?::[^=]*)?=\s*["']([0-9A-Za-z_]+)["']""", re.MULTILINE)
    found = set()
    for script in versions.glob("*.py"):
        found.update(pattern.findall(script.read_text(encoding="utf-8", errors="replace")))
    return frozenset(found)


def _active_profile(home: Path) -> dict[str, str]:
    """The settings of Prefect's active profile (``profiles.toml``), read without Prefect."""
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    name = os.environ.get("PREFECT_PROFILE") or data.get("active") or "ephemeral"
    profile = data.get("profiles", {}).get(name, {})
    return {str(k): str(v) for k, v in profile.items()} if isinstance(profile, dict) else {}


def _local_database() -> tuple[str | None, str]:
    """(URL of the database Prefect's temporary server would use — None with ``PREFECT_API_URL`` —,
    the setting that chose it)."""
    if "prefect" in sys.modules:  # Prefect's own view of the environment: profiles, prefect.toml
        from prefect.settings import Settings as PrefectSettings

        # read afresh: the settings context Prefect made at import time (or a test harness's) may
        # predate the PREFECT_HOME this process runs with (the demo chooses its own)
        settings = PrefectSettings()
        if settings.api.url:
            return None, "PREFECT_API_URL"
        configured = settings.server.database.connection_url
        url = configured.get_secret_value() if configured is not None else None
        explicit = any(os.environ.get(var) for var in _DB_URL_VARS)
        return url, ("PREFECT_SERVER_DATABASE_CONNECTION_URL" if explicit else "PREFECT_HOME")
    home = Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()
    profile = _active_profile(home)
    if os.environ.get("PREFECT_API_URL") or profile.get("PREFECT_API_URL"):
        return None, "PREFECT_API_URL"
    for var in _DB_URL_VARS:
        if url := os.environ.get(var) or profile.get(var):
            return url, "PREFECT_SERVER_DATABASE_CONNECTION_URL"
    return f"sqlite:///{home / 'prefect.db'}", "PREFECT_HOME"


def _sqlite_path(url: str) -> Path | None:
    match = re.match(r"sqlite(?:\+\w+)?:///(.+)$", url)
    if not match or match.group(1).startswith(":memory:"):
        return None
    return Path(match.group(1).split("?")[0])


def _stored_revisions(path: Path) -> list[str]:
    """alembic_version of the database, opened read-only (never created); [] when unreadable."""
    if not path.is_file():
        return []
    try:
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=2) as db:
            return [row[0] for row in db.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.Error:
        return []


def _fix(chosen_by: str) -> str:
    if chosen_by == "PREFECT_SERVER_DATABASE_CONNECTION_URL":
        return ("point PREFECT_SERVER_DATABASE_CONNECTION_URL at a fresh database, or set PREFECT_API_URL "
                "to a running Prefect server")
    return ("set PREFECT_HOME to a fresh folder (e.g. PREFECT_HOME=~/.prefect-duikou), or PREFECT_API_URL "
            "to a running Prefect server")


def _line(where: str, revision: str, chosen_by: str) -> str:
    return (f"duikou: Prefect's local database {where} was migrated by another Prefect version "
            f"(revision {revision!r} is unknown to the installed Prefect {_prefect_version()}): "
            f"{_fix(chosen_by)}, then run the command again")


def prefect_database_problem() -> str | None:
    """The one line to print when the local database Prefect would start its temporary server on
    is at a revision the installed Prefect does not know; None when there is nothing to say
    (a server in ``PREFECT_API_URL``, no database yet, a known revision, not SQLite)."""
    url, chosen_by = _local_database()
    path = _sqlite_path(url) if url else None
    known = known_revisions()
    if path is None or not known:
        return None
    unknown = [rev for rev in _stored_revisions(path) if rev not in known]
    return _line(str(path), unknown[0], chosen_by) if unknown else None


def check_prefect_database() -> None:
    """Raise :class:`StalePrefectDatabase` before Prefect tries (and retries) to start its server."""
    if (problem := prefect_database_problem()) is not None:
        raise StalePrefectDatabase(problem)


def explain_prefect_db_error(exc: BaseException) -> str | None:
    """The one line for an exception caused by a Prefect database another Prefect version migrated;
    None for any other exception."""
    seen: set[int] = set()
    chain: BaseException | None = exc
    while chain is not None and id(chain) not in seen:
        seen.add(id(chain))
        if isinstance(chain, StalePrefectDatabase):
            return str(chain)
        text = str(chain)
        if match := _REVISION_ERROR.search(text):
            url, chosen_by = _local_database()
            return prefect_database_problem() or _line(url or "(configured)", match.group(1), chosen_by)
        if _EPHEMERAL_TIMEOUT in text:  # the server died on start-up: was it the database?
            return prefect_database_problem()
        chain = chain.__cause__ or chain.__context__
    return None
