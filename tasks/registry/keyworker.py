"""Person keys computed in a helper process while the stream's own process validates the chunk.

The HMAC of each valid ID is a Python loop (``tasks.registry.checks.person_keys``, ~2.5 µs an
ID) that no thread can take off the stream: ``hashlib`` holds the GIL for messages this short.
So the stream hands a chunk's valid IDs to this helper as soon as they are parsed and collects
the keys after GX has validated the chunk (GX takes longer than the hashing): on a machine with a
second core the keys cost the stream only the hand-over. On a machine whose cores are all busy
the helper cannot finish before the stream needs the keys, so the two share each chunk: the
helper gets ``share`` of the IDs, the stream hashes the rest itself after GX, and ``share`` follows
how the last chunk went (``next_share``: the helper's own seconds against the time it had). The
values are those of ``person_keys`` (the same ``hmac_states``; tested against ``hmac``).

The helper is this file run as a script by the same interpreter (``python -I keyworker.py``,
standard library only: no package import, no pickling, nothing of the caller's ``__main__``), so
it also starts inside a daemonic Dask worker, where ``multiprocessing`` may not. Its stdin and
stdout are pipes: first the key (4-byte length, then the bytes), then per chunk a 4-byte count
``m`` and ``18 × m`` ID bytes, answered by the seconds the helper spent (8 bytes) and ``32 × m``
digest bytes. The ID numbers and the key
pass through the pipes only: the helper writes nothing anywhere else, keeps nothing between
chunks, and exits at the end of its stdin (``close``). When it cannot start, the stream computes
the keys itself (``start_key_worker`` returns None); when it dies mid-stream, the stream fails
(and its savepoint is rolled back) rather than store a row without its key.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import sys
import time
from typing import IO, Any

ID_BYTES = 18
DIGEST_BYTES = 32
_BLOCK = 64
_COUNT = struct.Struct("<I")
_SECONDS = struct.Struct("<d")
#: the smallest share of a chunk the helper keeps (so its speed stays measured)
MIN_SHARE = 0.1


def hmac_states(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA256's two keyed states (RFC 2104): SHA-256 after ``key ⊕ ipad`` and after
    ``key ⊕ opad``, each one compression in. ``HMAC(key, m) = H(outer ‖ H(inner ‖ m))``, so a copy
    of each state per message gives the same bytes as ``hmac.digest`` without OpenSSL keying a
    fresh HMAC context for every ID (its cost here: ~2.5 of ~5 µs per ID). One definition for the
    stream's inline path and the helper."""
    if len(key) > _BLOCK:
        key = hashlib.sha256(key).digest()
    padded = key.ljust(_BLOCK, b"\0")
    return hashlib.sha256(bytes(b ^ 0x36 for b in padded)), hashlib.sha256(bytes(b ^ 0x5C for b in padded))


def digests(ids: bytes, inner: Any, outer: Any) -> bytes:
    """The HMAC-SHA256 digests (32 bytes each, concatenated) of ``ids``: 18-byte messages, concatenated."""
    new_inner, new_outer = inner.copy, outer.copy
    out: list[bytes] = []
    append = out.append
    view = memoryview(ids)
    for start in range(0, len(ids), ID_BYTES):
        h = new_inner()
        h.update(view[start:start + ID_BYTES])
        o = new_outer()
        o.update(h.digest())
        append(o.digest())
    return b"".join(out)


def _read(stream: IO[bytes], n: int) -> bytes | None:
    data = stream.read(n)
    return data if data is not None and len(data) == n else None


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The helper's loop: the key, then one answer per request until stdin ends."""
    head = _read(stdin, _COUNT.size)
    if head is None:
        return 0
    key = _read(stdin, _COUNT.unpack(head)[0])
    if key is None:
        return 2
    inner, outer = hmac_states(key)
    del key
    while (head := _read(stdin, _COUNT.size)) is not None:
        ids = _read(stdin, _COUNT.unpack(head)[0] * ID_BYTES)
        if ids is None:
            return 2
        start = time.perf_counter()
        answer = digests(ids, inner, outer)
        stdout.write(_SECONDS.pack(time.perf_counter() - start) + answer)
        stdout.flush()
    return 0


def next_share(share: float, available_s: float, helper_s: float) -> float:
    """The helper's share of the next chunk: this chunk's share scaled by the time the helper had
    (from the hand-over until the stream asked for the keys, GX and the stream's own share
    included) over the time it took, averaged with the old share (one slow chunk does not swing
    it), between ``MIN_SHARE`` and 1."""
    if helper_s <= 0:
        return 1.0
    wanted = share * available_s / helper_s
    return min(1.0, max(MIN_SHARE, (share + wanted) / 2))


class KeyWorker:
    """The stream's side of the helper: ``submit`` a chunk's IDs, later ``result`` their digests
    (the helper's share from the helper, the rest computed here)."""

    def __init__(self, process: Any, key: bytes) -> None:
        self._process = process
        self._states = hmac_states(key)
        self._pending: int | None = None
        self._own = b""
        self._submitted_at = 0.0
        #: the fraction of each chunk's IDs the helper hashes (``next_share``)
        self.share = 1.0
        #: IDs hashed by the helper and by the stream itself, and the seconds the stream waited
        self.helper_ids = 0
        self.own_ids = 0
        self.waited_s = 0.0
        #: the helper's own peak resident memory (``VmHWM`` read as it ends; Linux), in MiB: the
        #: parent's ``RUSAGE_CHILDREN`` would count the stream's image the fork copied before exec
        self.peak_rss_mb: float | None = None

    def submit(self, ids: bytes) -> None:
        """Hand over ``len(ids) // 18`` IDs, the helper's share of them to the helper (one request
        at a time: the previous result collected)."""
        if self._pending is not None:
            raise RuntimeError("the previous chunk's person keys were not collected")
        total = len(ids) // ID_BYTES
        count = min(total, round(total * self.share))
        try:
            self._process.stdin.write(_COUNT.pack(count) + ids[:count * ID_BYTES])
            self._process.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise self._died() from exc
        self._own = ids[count * ID_BYTES:]
        self._pending = count
        self._submitted_at = time.perf_counter()

    def result(self) -> bytes:
        """The submitted IDs' digests, 32 bytes each, in order: the stream's share computed here,
        then the helper's answer read (waiting for it if need be); the next share set from both."""
        if self._pending is None:
            raise RuntimeError("no person keys were submitted")
        count, self._pending = self._pending, None
        own, self._own = digests(self._own, *self._states), b""
        asked = time.perf_counter()
        head = _read(self._process.stdout, _SECONDS.size)
        data = _read(self._process.stdout, count * DIGEST_BYTES) if count else b""
        if head is None or data is None:
            raise self._died()
        self.waited_s += time.perf_counter() - asked
        self.share = next_share(self.share, asked - self._submitted_at, _SECONDS.unpack(head)[0])
        self.helper_ids += count
        self.own_ids += len(own) // DIGEST_BYTES
        return data + own

    def _died(self) -> RuntimeError:
        code = self._process.poll()
        return RuntimeError(f"the person-key helper process stopped (exit {code}): no row is stored without its key")

    def close(self) -> None:
        """End the helper and reap it; idempotent. Our end of its stdout is closed first: a helper
        still writing an uncollected answer (a stream that failed mid-chunk) stops on the broken
        pipe instead of waiting for a reader."""
        process, self._process = self._process, None
        if process is None:
            return
        self.peak_rss_mb = _peak_rss_mb(process.pid)
        for pipe in (process.stdout, process.stdin):
            with contextlib.suppress(OSError):
                pipe.close()
        try:
            process.wait(timeout=10)
        except Exception:  # never leave it running
            process.kill()
            process.wait()

    def __enter__(self) -> KeyWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _peak_rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def start_key_worker(key: bytes) -> KeyWorker | None:
    """Start the helper with ``key``; None when it cannot start (the stream then hashes inline)."""
    import subprocess

    try:
        process = subprocess.Popen(  # this file, by the running interpreter
            [sys.executable, "-I", __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, close_fds=True,
            env={k: v for k, v in os.environ.items() if k != "DUIKOU_PERSON_KEY"},  # the key: the pipe only
        )
    except OSError:
        return None
    worker = KeyWorker(process, key)
    try:
        assert process.stdin is not None  # stdin=PIPE
        process.stdin.write(_COUNT.pack(len(key)) + key)
        process.stdin.flush()
    except OSError:
        worker.close()
        return None
    return worker


if __name__ == "__main__":
    raise SystemExit(serve(sys.stdin.buffer, sys.stdout.buffer))
