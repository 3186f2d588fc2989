"""When a load announces ``duikou.warehouse.updated`` (which starts ``refresh-reports``).

Outside ``duikou serve``, every load does. In ``duikou serve`` (where uploads' runs execute) a load
inside the window of the last update this process sent is not announced again
(:class:`UpdateCoalescer`): that update's ``refresh-reports`` run has not begun building — it waits
until ``DUIKOU_REPORT_DEBOUNCE_SECONDS`` after its event, and the load committed more than
:data:`COALESCE_MARGIN_S` before that — so its build reads this load too, as a newer event's run
would have (``flows/refresh.py``: newer event wins). One event and one run per window instead of
one per load: each trigger firing cost the Prefect server ~60 ms of CPU, and ``duikou serve`` a run
to claim and end, on the two cores the next clerk's upload needed (issue 19, docs/scaling.md). A
steady stream of loads still never builds mid-stream: each window's event supersedes the last.

What this counts on: the window's ``refresh-reports`` run is built by a process with the same
``DUIKOU_REPORT_DEBOUNCE_SECONDS`` on a clock within the margin (``duikou serve``'s own refresh lane,
or another serve of the same deployment configured alike); an event that could not be handed to
Prefect's events worker is not counted as sent (:func:`update_not_sent`); and a ``duikou serve``
stopped while the run waits out its debounce puts it back to ``Scheduled`` for the next one
(``flows/serve.py``) rather than ending it, so the loads it covers are still built.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

#: a load this close to the end of the last sent update's debounce is announced anew (that run may
#: be about to build; clocks and the run's start may differ by this much)
COALESCE_MARGIN_S = 2.0


class UpdateCoalescer:
    """Whether a load's ``duikou.warehouse.updated`` must be sent (thread-safe; one per ``duikou
    serve``). :meth:`claim` says yes for the first load, then no until ``debounce_seconds -
    COALESCE_MARGIN_S`` after the last update it said yes to; with a debounce no longer than the
    margin, always yes (every load announced, as outside serve)."""

    def __init__(self, debounce_seconds: float, clock: Callable[[], float] = time.time) -> None:
        self._window = debounce_seconds - COALESCE_MARGIN_S
        self._clock = clock
        self._lock = threading.Lock()
        self.last_sent: float | None = None  # epoch seconds of the last update claimed
        self._before: float | None = None

    def claim(self) -> bool:
        with self._lock:
            now = self._clock()
            if self._window > 0 and self.last_sent is not None and now < self.last_sent + self._window:
                return False
            self._before, self.last_sent = self.last_sent, now
            return True

    def withdraw(self) -> None:
        """The update :meth:`claim` said yes to was not sent after all: the one before counts again."""
        with self._lock:
            self.last_sent = self._before


_COALESCER: UpdateCoalescer | None = None


@contextmanager
def coalescing_updates(debounce_seconds: float) -> Iterator[UpdateCoalescer]:
    """While ``duikou serve`` runs: the loads in this process share one :class:`UpdateCoalescer`."""
    global _COALESCER
    saved, _COALESCER = _COALESCER, UpdateCoalescer(debounce_seconds)
    try:
        yield _COALESCER
    finally:
        _COALESCER = saved


def update_needs_event() -> bool:
    """Whether a load in this process announces ``duikou.warehouse.updated``: always, except inside
    ``duikou serve`` while the last update it sent still covers the load (:class:`UpdateCoalescer`)."""
    return _COALESCER is None or _COALESCER.claim()


def update_not_sent() -> None:
    """The load's event could not be sent (``update_needs_event`` said yes): the next load's is."""
    if _COALESCER is not None:
        _COALESCER.withdraw()
