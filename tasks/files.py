"""Writing a file whole or not at all: through a temporary file in its folder, renamed into place.

A reader sees the old file or the complete new one, never half of one; a failed write leaves the
old file (or none) and no temporary behind. The temporary is ``.<name>.<random>.tmp`` beside the
target (a dot file: the landing scans skip it). Folders are created as needed.

``mode`` is the new file's permission bits as for :func:`os.open` (the umask applies). The
default, 0600, is what :func:`tempfile.mkstemp` gave every writer before this module (sidecars,
receipts, intake tokens, exports, correction workbooks); ``0o666`` gives what :func:`open` would.

Room ``tasks.files`` in docs/design.md: imports nothing of ours, so every room that writes a file
may use it.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

PRIVATE = 0o600

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
_NAME_KEPT = 64  # of the target's name in the temporary's: far below any file system's limit


def _create_temporary(path: Path, mode: int) -> tuple[int, Path]:
    """A new, empty file beside ``path`` (its descriptor, its path), created exclusively."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = path.with_name(f".{path.name[:_NAME_KEPT]}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:  # 48 random bits taken already: draw again
            continue


def write_atomically(path: Path, write: Callable[[Path], None], *, mode: int = PRIVATE) -> None:
    """``write(tmp)`` fills a new temporary file beside ``path`` (by its path: for writers such as
    openpyxl and pyarrow that open the file themselves), which then replaces ``path``."""
    fd, tmp = _create_temporary(path, mode)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: Path, data: bytes, *, mode: int = PRIVATE) -> None:
    """``data`` as the whole of ``path``."""
    fd, tmp = _create_temporary(path, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomically(path: Path, text: str, *, encoding: str = "utf-8", mode: int = PRIVATE) -> None:
    """``text`` as the whole of ``path``, written in text mode (line ends as :func:`open` writes them)."""
    fd, tmp = _create_temporary(path, mode)
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomically(
    path: Path,
    data: Any,
    *,
    indent: int | None = None,
    default: Callable[[Any], Any] | None = None,
    mode: int = PRIVATE,
) -> None:
    """``data`` as UTF-8 JSON, non-ASCII kept as is (Chinese names stay readable)."""
    text = json.dumps(data, ensure_ascii=False, indent=indent, default=default)
    write_text_atomically(path, text, mode=mode)
