"""When a load announces ``duikou.warehouse.updated`` (flows/warehouse_updates.py, issue 19 part 1):
every load outside ``duikou serve``; inside it, once per debounce window — the window's run has not
begun building, so its report still includes the loads it was not told about."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from flows.warehouse_updates import COALESCE_MARGIN_S, UpdateCoalescer, coalescing_updates, update_needs_event


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_one_update_per_window_and_a_new_one_near_its_end() -> None:
    clock = Clock()
    coalescer = UpdateCoalescer(30.0, clock=clock)
    assert coalescer.claim()  # the first load is announced
    sent = clock.now
    clock.now = sent + 10
    assert not coalescer.claim()  # its run waits until sent + 30 s: it builds after this load
    clock.now = sent + 30 - COALESCE_MARGIN_S - 0.001
    assert not coalescer.claim()
    clock.now = sent + 30 - COALESCE_MARGIN_S  # that run may be about to build: announce anew
    assert coalescer.claim()
    assert coalescer.last_sent == clock.now
    clock.now += 1
    assert not coalescer.claim()  # the window now runs from the new update


def test_a_debounce_within_the_margin_announces_every_load() -> None:
    clock = Clock()
    coalescer = UpdateCoalescer(COALESCE_MARGIN_S, clock=clock)
    assert [coalescer.claim() for _ in range(3)] == [True, True, True]


def test_concurrent_loads_announce_once() -> None:
    coalescer = UpdateCoalescer(600.0)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: coalescer.claim(), range(8)))
    assert sorted(answers) == [False] * 7 + [True]


def test_outside_serve_every_load_is_announced_and_serve_restores_that() -> None:
    assert [update_needs_event() for _ in range(3)] == [True, True, True]
    with coalescing_updates(600.0):
        assert [update_needs_event() for _ in range(3)] == [True, False, False]
    assert update_needs_event()


def test_an_update_not_sent_is_not_counted() -> None:
    clock = Clock()
    coalescer = UpdateCoalescer(30.0, clock=clock)
    assert coalescer.claim()
    first = clock.now
    clock.now += 28.5  # past the window: a new update is claimed…
    assert coalescer.claim()
    coalescer.withdraw()  # …but could not be sent: the first one counts again
    assert coalescer.last_sent == first
    clock.now += 0.1
    assert coalescer.claim()  # so the next load announces it
