"""The nightly's progress, for whoever watches in this process (``duikou nightly`` on a terminal).

The nightly says how many files it found (:func:`files_found`) and, as each is done, which
department and what became of it (:func:`file_done`); a listener installed with :func:`listening`
hears it. Without a listener both are no-ops. Files ingested in other processes (a Dask cluster,
work-pool runs) are not heard: the terminal then shows the total when the nightly ends.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    kind: str  # "found" (total set) or "done" (one file)
    total: int = 0
    department: str = ""
    name: str = ""
    status: str = ""


_lock = threading.Lock()
_listener: Callable[[Progress], None] | None = None


@contextmanager
def listening(listener: Callable[[Progress], None]) -> Iterator[None]:
    global _listener
    with _lock:
        _listener = listener
    try:
        yield
    finally:
        with _lock:
            _listener = None


def _tell(event: Progress) -> None:
    with _lock:
        listener = _listener
    if listener is not None:
        with contextlib.suppress(Exception):  # a display never breaks a load
            listener(event)


def files_found(total: int) -> None:
    _tell(Progress("found", total=total))


def file_done(department: str, name: str, status: str) -> None:
    _tell(Progress("done", department=department, name=name, status=status))
