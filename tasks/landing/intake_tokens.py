"""Per-department bearer tokens for the intake server, stored only as SHA-256 hashes.

A token is ``dk_<token id>_<secret>``: 32 random bytes, so a plain SHA-256 is enough (no slow
password hash: nothing to brute-force). The token is shown once when it is created; the store
keeps ``{token_id, department, sha256, created_at}``. The department of a request is the one
stored with the token's hash — it is never read from the request.

Two sources, both optional: the secrets file (``DUIKOU_INTAKE_TOKENS_FILE``, default
``<data>/secrets/intake-tokens.json``, written with mode 0600) and ``DUIKOU_INTAKE_TOKEN_HASHES``
(``department=sha256hex`` pairs, comma-separated) for deployments that inject secrets through
the environment. The server re-reads the file when it changes, so rotating needs no restart.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from tasks.files import write_json_atomically

TOKEN_PREFIX = "dk_"


class TokenStoreError(ValueError):
    """The secrets file or the environment variable is malformed."""


@dataclass(frozen=True)
class StoredToken:
    token_id: str
    department: str
    sha256: str
    created_at: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def read_tokens(path: Path) -> list[StoredToken]:
    if not path.exists():
        return []
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return [StoredToken(**item) for item in raw["tokens"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise TokenStoreError(f"intake token file {path} is not a duikou token store: {exc}") from exc


def _write_tokens(path: Path, tokens: list[StoredToken]) -> None:
    write_json_atomically(path, {"tokens": [asdict(t) for t in tokens]}, indent=2, mode=0o600)  # the owner only


def create_token(path: Path, department: str, *, replace: bool) -> tuple[str, StoredToken]:
    """A new token for ``department`` (returned once, in clear) and its stored record.

    ``replace`` revokes the department's earlier tokens in the same write (rotation).
    """
    token_id = secrets.token_hex(4)
    token = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = StoredToken(token_id=token_id, department=department, sha256=hash_token(token),
                         created_at=datetime.now(UTC).isoformat(timespec="seconds"))
    kept = [t for t in read_tokens(path) if not (replace and t.department == department)]
    _write_tokens(path, [*kept, record])
    return token, record


def revoke_tokens(path: Path, *, department: str | None = None, token_id: str | None = None) -> list[StoredToken]:
    """Remove a department's tokens, or one token by id; returns what was removed."""
    tokens = read_tokens(path)
    removed = [t for t in tokens if (department is not None and t.department == department)
               or (token_id is not None and t.token_id == token_id)]
    if removed:
        _write_tokens(path, [t for t in tokens if t not in removed])
    return removed


def parse_env_hashes(value: str) -> dict[str, str]:
    """``department=sha256hex,...`` → {sha256: department}."""
    out: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        department, sep, digest = item.partition("=")
        digest = digest.strip().lower()
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise TokenStoreError(
                f"DUIKOU_INTAKE_TOKEN_HASHES item {item.split('=')[0]!r}=…: expected department=<64 hex digits>")
        out[digest] = department.strip()
    return out


class TokenRegistry:
    """Hash → department, from the file (re-read when it changes) and the environment."""

    def __init__(self, path: Path, env_hashes: str = "") -> None:
        self._path = path
        self._env = parse_env_hashes(env_hashes)
        self._stamp: tuple[int, int] | None = None
        self._from_file: dict[str, str] = {}

    def _refresh(self) -> None:
        try:
            stat = self._path.stat()
            stamp: tuple[int, int] | None = (stat.st_mtime_ns, stat.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp != self._stamp:
            self._from_file = {t.sha256: t.department for t in read_tokens(self._path)}
            self._stamp = stamp

    def department_for(self, token: str) -> str | None:
        """The department the token belongs to, or None for an unknown token."""
        if not token.startswith(TOKEN_PREFIX):
            return None
        self._refresh()
        digest = hash_token(token)
        return self._from_file.get(digest) or self._env.get(digest)

    def departments(self) -> set[str]:
        self._refresh()
        return set(self._from_file.values()) | set(self._env.values())
