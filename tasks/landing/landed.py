"""Putting a submitted file into the landing area under a name the server chooses.

``landing/<department>/<period>/<submission id><suffix>``, where the submission id is
``warehouse.keys.submission_key(department, sha256)`` (as everywhere in duikou) and the suffix is one of the
readable types. The name the department gave is kept beside it in a hidden sidecar
``.<stored name>.intake.json`` ({original_name, received_at, via}); :func:`tasks.submission.journey.receive`
reads it, so the receipt and the run name show the department's file name whichever path (event
or nightly) ingests the file. Bytes are written to ``landing/.incoming/`` first and renamed
into place only when complete, so the nightly scan never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from tasks.files import write_json_atomically
from warehouse.keys import submission_key

ACCEPTED_SUFFIXES = (".xlsx", ".xls", ".csv")
SIDECAR_SUFFIX = ".intake.json"


class UploadRefused(ValueError):
    """The upload cannot be accepted; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class LandedFile:
    path: Path
    submission_id: str
    sha256: str
    size_bytes: int
    department: str
    period: str
    original_name: str
    received_at: datetime


#: bytes of a file over its upload limit that are kept (in quarantine/) and hashed from each end
OVERSIZE_KEPT_BYTES = 64 * 1024


def oversize_key(path: Path, size: int) -> str:
    """The ledger key (the ``sha256`` column) of a file over its upload limit, reading at most
    2 × :data:`OVERSIZE_KEPT_BYTES`: SHA-256 of a domain tag, the size, the first and the last 64 KiB.

    Why not the SHA-256 of the whole file: the file is refused unread (``FILE_TOO_LARGE``), so
    hashing it whole would read hundreds of MB for nothing but a name. Why this is enough: the key
    only has to make the same file land on the same ledger row (idempotence: the same oversize
    file twice is one submission) — the same bytes always give the same key. Two different
    oversize files with equal size, head and tail would share a row; both are refused alike, so
    nothing is lost but a second receipt. The tag keeps such a key from ever equalling the
    SHA-256 of a real file. :func:`tasks.submission.journey.receive` and the landing scan
    (:func:`tasks.landing.store.scan_store`) both use it, so the nightly sees the file as known.
    """
    digest = hashlib.sha256(b"duikou:oversize:v1\x00" + size.to_bytes(8, "big"))
    with path.open("rb") as fh:
        digest.update(fh.read(OVERSIZE_KEPT_BYTES))
        if size > 2 * OVERSIZE_KEPT_BYTES:
            fh.seek(size - OVERSIZE_KEPT_BYTES)
        digest.update(fh.read(OVERSIZE_KEPT_BYTES))
    return digest.hexdigest()


#: C0 and C1 control characters (NUL included) and the Unicode line/paragraph separators: never part of a
#: name a department meant, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_NAME_CHARS = 255


def clean_original_name(name: str) -> str:
    """The department's file name as it may be stored and shown: its last path component, control
    characters removed, at most :data:`MAX_NAME_CHARS` characters (the suffix kept); ``"upload"``
    when nothing is left."""
    base = _CONTROL.sub("", name).replace("\\", "/").rsplit("/", 1)[-1].strip()
    if len(base) > MAX_NAME_CHARS:
        stem, dot, suffix = base.rpartition(".")
        base = (stem[: MAX_NAME_CHARS - len(suffix) - 1] + "." + suffix) if dot and len(suffix) <= 10 \
            else base[:MAX_NAME_CHARS]
    return base or "upload"


def suffix_for(original_name: str) -> str:
    suffix = Path(original_name).suffix.lower()
    if suffix not in ACCEPTED_SUFFIXES:
        raise UploadRefused(415, f"文件类型 {suffix or '(无)'} 不受理: 只接受 {' / '.join(ACCEPTED_SUFFIXES)} "
                                 f"(file type not accepted: {original_name!r})")
    return suffix


def sidecar_path(stored: Path) -> Path:
    return stored.with_name(f".{stored.name}{SIDECAR_SUFFIX}")


def read_sidecar(stored: Path) -> dict[str, Any] | None:
    """What the intake recorded about a landed file, or None for a file dropped in by hand."""
    try:
        data: dict[str, Any] = json.loads(sidecar_path(stored).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data


class LandingWriter:
    """Streams one upload into ``landing/.incoming/``, hashing and counting as it goes.

    ``write`` raises :class:`UploadRefused` (413) as soon as more than ``max_bytes`` arrive, so an
    oversized body is never read to its end. ``commit`` moves the file into place.
    """

    def __init__(self, landing: Path, max_bytes: int) -> None:
        self._landing = landing
        self._max_bytes = max_bytes
        incoming = landing / ".incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=incoming, suffix=".part")
        self._tmp = Path(tmp)
        self._fh: BinaryIO | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.size_bytes = 0

    def write(self, chunk: bytes) -> None:
        if self._fh is None:
            raise RuntimeError("upload already committed or discarded")
        self.size_bytes += len(chunk)
        if self.size_bytes > self._max_bytes:
            self.discard()
            raise UploadRefused(413, f"文件超过上限 {self._max_bytes} 字节 (file larger than {self._max_bytes} bytes)")
        self._hash.update(chunk)
        self._fh.write(chunk)

    def copy_from(self, source: BinaryIO, chunk_size: int = 1 << 16) -> None:
        while chunk := source.read(chunk_size):
            self.write(chunk)

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._tmp.unlink(missing_ok=True)

    def commit(self, department: str, period: str, original_name: str, via: str) -> LandedFile:
        """Move the complete file to ``landing/<department>/<period>/<id><suffix>`` with its sidecar."""
        original_name = clean_original_name(original_name)  # no NUL or control character is ever stored
        if self._fh is None:
            raise RuntimeError("upload already committed or discarded")
        suffix = suffix_for(original_name)
        if self.size_bytes == 0:
            self.discard()
            raise UploadRefused(422, "文件为空 (empty file)")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self._fh = None
        digest = self._hash.hexdigest()
        folder = self._landing / department / period
        folder.mkdir(parents=True, exist_ok=True)
        key = submission_key(department, digest)
        stored = folder / f"{key}{suffix}"
        received_at = datetime.now(UTC)
        meta = {"original_name": Path(original_name).name, "received_at": received_at.isoformat(), "via": via,
                "sha256": digest, "size_bytes": self.size_bytes}
        existing = read_sidecar(stored) if stored.exists() else None
        if existing is not None:  # the same bytes again: keep the first arrival's record
            received_at = datetime.fromisoformat(existing["received_at"])
            meta = existing
        else:
            write_json_atomically(sidecar_path(stored), meta)
        os.replace(self._tmp, stored)  # sidecar first: whoever sees the file sees its name too
        return LandedFile(stored, key, digest, self.size_bytes, department, period,
                          str(meta["original_name"]), received_at)


def land_file(source: Path, landing: Path, max_bytes: int, department: str, period: str, via: str) -> LandedFile:
    """Copy a local file into the landing area the way the intake server stores uploads."""
    writer = LandingWriter(landing, max_bytes)
    try:
        with source.open("rb") as fh:
            writer.copy_from(fh)
        return writer.commit(department, period, source.name, via)
    except BaseException:
        writer.discard()
        raise


def find_landed(landing: Path, department: str, submission_id: str) -> Path | None:
    """A file of this department waiting in the landing area under this submission id."""
    folder = landing / department
    if not folder.is_dir():
        return None
    for suffix in ACCEPTED_SUFFIXES:
        for path in folder.glob(f"*/{submission_id}{suffix}"):
            return path
    return None
