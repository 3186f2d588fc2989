"""The landing area wherever it lies: a local folder or any fsspec URL (``DUIKOU_LANDING_URL``).

``<landing>/<department>/<period>/<file>`` is listed through fsspec, so the same scan reads
``<data>/landing``, ``file:///mnt/nfs/landing``, ``s3://bucket/duikou/landing``, ``gcs://…`` or
``memory://…``. A file under the data directory is read where it lies. Anything else (an object,
or a file of a ``file://`` landing area outside the data directory) is fetched into a staging
copy under ``<data>/staging/<submission id>/<name>`` (complete or not at all, no larger than the
upload limit) with a sidecar naming its source URL, and hashed as it is written: the readers, GX
and the loader only ever open local paths, and the receipt says where the original is. An object
the ETag index already knows is not fetched to be hashed; it is fetched only if the ledger lacks it.

The intake server's :class:`tasks.landing.landed.LandingWriter` keeps writing to ``<data>/landing``: its
event path hands the ingest flow a local path, and the nightly run scans that folder as well.

Credentials come from the environment or fsspec's own configuration, or from
``DUIKOU_LANDING_STORAGE_OPTIONS`` (a JSON object of storage options, a secret: never logged,
never shown in an error). URLs are shown and recorded without user information or query.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fsspec import AbstractFileSystem
from fsspec.core import split_protocol, url_to_fs
from fsspec.implementations.local import LocalFileSystem
from fsspec.registry import available_protocols, known_implementations

from duikou_settings import Settings
from tasks.files import write_json_atomically
from tasks.landing.landed import ACCEPTED_SUFFIXES, SIDECAR_SUFFIX, oversize_key, sidecar_path
from warehouse.keys import submission_key

log = logging.getLogger("duikou.landing")

URL_SETTING = "DUIKOU_LANDING_URL"
OPTIONS_SETTING = "DUIKOU_LANDING_STORAGE_OPTIONS"
LAYOUT_REASON = "不在 landing/<部门>/<报告期>/ 目录结构下"
CHANGED_REASON = "读取时文件被替换或删除，下次运行再读 (changed or removed while being read; the next run reads it)"
CHUNK_BYTES = 1 << 20
MAX_SIDECAR_BYTES = 64 * 1024
#: listing fields that change whenever an object's content does (S3/Azure ETag, GCS md5/generation)
CONTENT_TAGS = ("ETag", "etag", "md5Hash", "generation", "VersionId", "version_id")
#: listing fields holding an object's modification time, by file system
MODIFIED_FIELDS = ("mtime", "LastModified", "last_modified", "updated", "modified", "created", "time")
#: staged copies older than this, and not pending now, are removed by the next scan
STAGING_KEEP_SECONDS = 24 * 3600
INDEX_NAME = "landing-index.json"


class LandingStoreError(RuntimeError):
    """The landing area cannot be opened or listed; the message names the setting to fix."""


class ObjectTooLarge(ValueError):
    """An object is larger than the upload limit of its department: it is not fetched."""


@dataclass(frozen=True)
class LandingStore:
    """One landing area: a file system and the root path in it."""

    fs: AbstractFileSystem
    root: str  # the file system's own path of the landing area, no trailing slash
    url: str  # as shown and recorded: no credentials, no query
    in_place: bool  # files are read where they lie (local, under the data directory): no staging copy

    def relative_parts(self, path: str) -> tuple[str, ...]:
        return tuple(part for part in path[len(self.root):].split("/") if part)

    def url_of(self, path: str) -> str:
        return "/".join([self.url.rstrip("/"), *self.relative_parts(path)])


@dataclass(frozen=True)
class LandingEntry:
    """One candidate file found in a landing area."""

    store: LandingStore
    path: str  # in store.fs
    department: str
    period: str
    name: str
    size: int | None
    modified: float | None  # seconds since the epoch; None when the store gives no time
    sha256: str
    staged: Path | None = None  # the local copy the scan fetched to hash it (its bytes have ``sha256``)

    @property
    def url(self) -> str:
        return self.store.url_of(self.path)


# ----------------------------------------------------------------- opening


def public_url(url: str) -> str:
    """The URL without user information (``key:secret@``), query or fragment: safe to log and record."""
    protocol, _ = split_protocol(url)
    if protocol is None or len(protocol) == 1:  # a plain path (or a Windows drive letter)
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def storage_options(settings: Settings) -> dict[str, Any]:
    """``DUIKOU_LANDING_STORAGE_OPTIONS`` as a dict; its value never appears in an error."""
    if settings.landing_storage_options is None:
        return {}
    raw = settings.landing_storage_options.get_secret_value().strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LandingStoreError(
            f"{OPTIONS_SETTING} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); "
            "the value is not shown because it may hold credentials") from None
    if not isinstance(value, dict):
        raise LandingStoreError(f"{OPTIONS_SETTING} must be a JSON object of fsspec storage options "
                                f"(got a JSON {type(value).__name__})")
    return value


def store_for(url: str | Path, options: dict[str, Any] | None = None, *, data_dir: Path | None = None) -> LandingStore:
    """Open a landing area by local path or fsspec URL; a clear error for unknown or uninstalled protocols.

    Files are read in place when the store is the local file system and (given ``data_dir``) lies
    under it — every process that ingests sees the data directory, so the readers (and work-pool
    runs, which are handed paths relative to it) can open them; anything else is staged.
    """
    text = str(url)
    shown = public_url(text)
    protocol = split_protocol(text)[0] or "file"
    try:
        fs, root = url_to_fs(text, **(options or {}))
    except ImportError as exc:
        package = _package_of(protocol)
        raise LandingStoreError(
            f"{URL_SETTING}={shown}: the {protocol}:// file system needs the package {package}, which is not "
            f"installed (pip install {package}); fsspec: {exc}") from None
    except ValueError as exc:
        if protocol not in available_protocols():
            known = ", ".join(p for p in sorted(available_protocols()) if len(p) > 1)
            raise LandingStoreError(
                f"{URL_SETTING}={shown}: unknown protocol {protocol!r}; fsspec knows {known}") from None
        raise LandingStoreError(f"{URL_SETTING}={shown}: {str(exc).replace(text, shown)}") from None
    except TypeError as exc:  # an option the file system does not take (the message names it, not its value)
        raise LandingStoreError(f"{OPTIONS_SETTING}: not accepted by the {protocol}:// file system: {exc}") from None
    root = str(root).rstrip("/") or str(root)
    in_place = isinstance(fs, LocalFileSystem) and (data_dir is None or Path(root).resolve().is_relative_to(data_dir))
    return LandingStore(fs, root, shown, in_place)


def _package_of(protocol: str) -> str:
    spec = known_implementations.get(protocol)
    return spec["class"].split(".", 1)[0] if spec else f"the fsspec driver of {protocol}://"


def landing_stores(settings: Settings) -> list[LandingStore]:
    """The landing areas the nightly run reconciles.

    ``DUIKOU_LANDING_URL`` when set, and ``<data>/landing`` always: the intake server and ``duikou
    submit`` land uploads there (their event path reads local files), so a file whose event was
    lost is still found. One store when the URL is that same folder.
    """
    data_dir = settings.resolved_data_dir
    local = store_for(settings.landing_dir, data_dir=data_dir)
    if not settings.landing_url:
        return [local]
    configured = store_for(settings.landing_url, storage_options(settings), data_dir=data_dir)
    if isinstance(configured.fs, LocalFileSystem) and Path(configured.root).resolve() == Path(local.root).resolve():
        return [configured]
    return [configured, local]


# ----------------------------------------------------------------- scanning


def _modified(info: dict[str, Any]) -> float | None:
    for key in MODIFIED_FIELDS:
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return None


def _content_tag(info: dict[str, Any]) -> str | None:
    tags = [f"{key}={info[key]}" for key in CONTENT_TAGS if info.get(key) not in (None, "")]
    return ";".join(tags) if tags else None


def changed_while_read(exc: OSError) -> bool:
    """The object was deleted, or replaced (s3fs ``FileExpired``: its ETag changed), while being read."""
    return isinstance(exc, FileNotFoundError) or exc.errno == errno.EBUSY


def is_ignored(name: str) -> bool:
    """Files never considered: hidden (sidecars included), Office lock files, uploads in progress."""
    return name.startswith((".", "~$")) or name.lower().endswith(".part")


def hash_object(fs: AbstractFileSystem, path: str) -> str:
    digest = hashlib.sha256()
    with fs.open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def scan_store(
    store: LandingStore,
    departments: Iterable[str],
    *,
    max_bytes: Callable[[str], int] | None = None,
    index_dir: Path | None = None,
    staging: Path | None = None,
    period_problem: Callable[[str, str], str | None] | None = None,
) -> tuple[list[LandingEntry], list[dict[str, str]]]:
    """Every candidate file under ``<department>/<period>/``, in arrival order (modified time, else name).

    ``max_bytes(department)``: objects that would be staged and are larger than this are skipped
    with a reason instead of being read (a file read in place is rejected by the reader, with a receipt;
    its key is :func:`tasks.landing.landed.oversize_key`, as :func:`tasks.submission.journey.receive` gives it, so it is
    not read whole here either).
    ``index_dir``: remember each remote object's SHA-256 by its content tag (ETag, md5, generation)
    there, so an object that did not change is not downloaded again to be hashed.
    ``staging`` (needs ``max_bytes``): an object that must be hashed is fetched there instead
    (:func:`stage_entry`, hashing as it writes) and the entry carries the staged copy, so a new
    object is downloaded once; :func:`discard_staged` removes the copy if it is not needed.
    ``period_problem(department, period folder)``: why the folder is not a period this door takes
    (malformed, or outside the plausible window: ``tasks.submission.journey.request_period``), or None; its
    files are skipped with that reason before they are read or fetched.
    """
    if staging is not None and max_bytes is None:
        raise ValueError("scan_store: staging needs max_bytes (the upload limit of each department)")
    known = set(departments)
    entries: list[LandingEntry] = []
    skipped: list[dict[str, str]] = []
    store.fs.invalidate_cache()  # a long-lived process must see objects changed in place (all levels)
    try:
        listing: dict[str, dict[str, Any]] = store.fs.find(store.root, detail=True)
    except PermissionError as exc:
        raise LandingStoreError(f"{URL_SETTING}={store.url}: access denied listing the landing area "
                                f"(credentials from the environment or {OPTIONS_SETTING}): {exc}") from None
    except OSError as exc:  # a missing bucket, an unreachable endpoint; a missing folder or prefix lists as empty
        raise LandingStoreError(f"{URL_SETTING}={store.url}: cannot list the landing area: {exc}") from None
    index = _Index(index_dir, store) if index_dir is not None and not store.in_place else None
    for path in sorted(listing):
        info = listing[path]
        if info.get("type", "file") != "file":
            continue
        name = path.rsplit("/", 1)[-1]
        if is_ignored(name):
            continue
        shown = path if store.in_place else store.url_of(path)
        rel = store.relative_parts(path)
        if len(rel) != 3 or rel[0] not in known:
            skipped.append({"path": shown, "reason": LAYOUT_REASON})
            continue
        suffix = os.path.splitext(name)[1]
        if suffix.lower() not in ACCEPTED_SUFFIXES:
            skipped.append({"path": shown, "reason": f"不支持的文件类型 {suffix}"})
            continue
        problem = period_problem(rel[0], rel[1]) if period_problem is not None else None
        if problem is not None:
            skipped.append({"path": shown, "reason": problem})
            continue
        size = info.get("size")
        limit = max_bytes(rel[0]) if max_bytes is not None and not store.in_place else None
        if limit is not None and isinstance(size, int) and size > limit:
            skipped.append({"path": shown, "reason": f"文件超过上限 {limit} 字节 ({size} bytes): not fetched"})
            continue
        tag = _content_tag(info)
        entry = LandingEntry(store, path, rel[0], rel[1], name, size if isinstance(size, int) else None,
                             _modified(info), "")
        digest = index.get(path, size, tag) if index is not None else None
        staged: Path | None = None
        if store.in_place and max_bytes is not None and isinstance(size, int) and size > max_bytes(rel[0]):
            digest = oversize_key(Path(path), size)  # refused unread: the key receive() gives it
        if digest is None:
            try:
                if staging is not None and limit is not None:
                    staged, digest = stage_entry(entry, staging, limit)
                else:
                    digest = hash_object(store.fs, path)
            except ObjectTooLarge as exc:  # larger than its listed size said
                skipped.append({"path": shown, "reason": str(exc)})
                continue
            except OSError as exc:
                if not changed_while_read(exc):
                    raise
                skipped.append({"path": shown, "reason": CHANGED_REASON})
                continue
        if index is not None:
            index.put(path, size, tag, digest)
        entries.append(replace(entry, sha256=digest, staged=staged))
    if index is not None:
        index.save()
    entries.sort(key=arrival_key)
    return entries, skipped


def arrival_key(entry: LandingEntry) -> tuple[float, str]:
    return (entry.modified if entry.modified is not None else 0.0, entry.path if entry.store.in_place else entry.url)


class _Index:
    """SHA-256 of remote objects by URL, size and content tag; only objects that have a tag are kept."""

    def __init__(self, folder: Path, store: LandingStore) -> None:
        self._file = folder / INDEX_NAME
        self._store = store
        try:
            loaded = json.loads(self._file.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            loaded = {}
        self._old: dict[str, Any] = loaded if isinstance(loaded, dict) else {}
        self._new: dict[str, Any] = {}

    def get(self, path: str, size: Any, tag: str | None) -> str | None:
        known = self._old.get(self._store.url_of(path))
        if tag is None or not isinstance(known, dict) or known.get("tag") != tag or known.get("size") != size:
            return None
        digest = known.get("sha256")
        return digest if isinstance(digest, str) and len(digest) == 64 else None

    def put(self, path: str, size: Any, tag: str | None, digest: str) -> None:
        if tag is not None:
            self._new[self._store.url_of(path)] = {"size": size, "tag": tag, "sha256": digest}

    def save(self) -> None:
        prefix = self._store.url.rstrip("/") + "/"
        kept = {url: v for url, v in self._old.items() if not url.startswith(prefix)}  # other stores' entries
        self._file.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomically(self._file, {**kept, **self._new})


# ----------------------------------------------------------------- staging


def stage_entry(entry: LandingEntry, staging: Path, max_bytes: int) -> tuple[Path, str]:
    """Fetch a remote object to ``staging/<id>/<name>`` (+ intake sidecar); (local path, its SHA-256).

    Streamed into ``staging/.incoming/`` and counted: more than ``max_bytes`` raises
    :class:`ObjectTooLarge` and leaves nothing behind. The SHA-256 is of the bytes fetched — if the
    object changed since the scan, the staged copy is the newer one under its own id.
    """
    incoming = staging / ".incoming"
    incoming.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=incoming, suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    size = 0
    try:
        with os.fdopen(fd, "wb") as out, entry.store.fs.open(entry.path, "rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                size += len(chunk)
                if size > max_bytes:
                    raise ObjectTooLarge(f"文件超过上限 {max_bytes} 字节 (more than {max_bytes} bytes): not fetched")
                digest.update(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        sha = digest.hexdigest()
        folder = staging / submission_key(entry.department, sha)  # one department's copy per folder
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / entry.name
        sidecar = _staged_sidecar(entry, sha, size)
        write_json_atomically(sidecar_path(target), sidecar)
        os.replace(tmp, target)  # sidecar first, as the intake does
        if entry.modified is not None:
            os.utime(target, (entry.modified, entry.modified))
        os.utime(folder)  # the staged copy's age (clean_staging) starts now
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target, sha


def _staged_sidecar(entry: LandingEntry, sha: str, size: int) -> dict[str, Any]:
    """What the receipt will say about the file: the department's name and arrival from the object's
    own intake sidecar when it has one, else its name and modified time; always its source URL."""
    remote = _remote_sidecar(entry)
    arrived = datetime.fromtimestamp(entry.modified, UTC) if entry.modified is not None else datetime.now(UTC)
    return {
        "original_name": str(remote.get("original_name") or entry.name),
        "received_at": str(remote.get("received_at") or arrived.isoformat()),
        "via": str(remote.get("via") or "landing"),
        "source_url": entry.url,
        "sha256": sha,
        "size_bytes": size,
    }


def _remote_sidecar(entry: LandingEntry) -> dict[str, Any]:
    directory, _, name = entry.path.rpartition("/")
    path = f"{directory}/.{name}{SIDECAR_SUFFIX}"
    try:
        info = entry.store.fs.info(path)
        if int(info.get("size") or 0) > MAX_SIDECAR_BYTES:
            return {}
        data = json.loads(entry.store.fs.cat_file(path))
    except (FileNotFoundError, ValueError, OSError):
        return {}
    return data if isinstance(data, dict) else {}


def discard_staged(staged: Path) -> None:
    """Remove a staged copy the run does not need (the ledger has its bytes): the file, its sidecar,
    and its folder when nothing else is staged there."""
    staged.unlink(missing_ok=True)
    sidecar_path(staged).unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # not empty: another name with the same bytes is staged there
        staged.parent.rmdir()


def clean_staging(staging: Path, keep: Iterable[str] = (), *, older_than: float = STAGING_KEEP_SECONDS) -> int:
    """Remove staged copies not in ``keep`` (submission ids) that are older than ``older_than`` seconds.

    A copy is needed only while its run reads it (the kept file goes to archive/ or quarantine/);
    the age guard leaves another run's fresh copies alone. Returns how many were removed.
    """
    if not staging.is_dir():
        return 0
    wanted, cutoff, removed = set(keep), time.time() - older_than, 0
    for folder in staging.iterdir():
        if not folder.is_dir() or folder.name.startswith(".") or folder.name in wanted:
            continue
        if folder.stat().st_mtime < cutoff:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    incoming = staging / ".incoming"
    if incoming.is_dir():  # fetches a killed run left half-written
        for part in incoming.glob("*.part"):
            if part.stat().st_mtime < cutoff:
                part.unlink(missing_ok=True)
    return removed
