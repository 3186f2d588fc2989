"""Prefect writer slots (``tasks/writer_slots.py``): polite, never in the way.

Without a configured server no slot is taken (a per-process temporary server's slot service
outlived it and blocked a plain ``duikou ingest`` for minutes); with one, a partition has one
writer at a time, other partitions are not held up, and a slot that cannot be had in time is
given up with a warning — the warehouse lock is the real guard.
"""

from __future__ import annotations

import logging
import threading

import pytest
from prefect.settings import PREFECT_API_URL, temporary_settings

from tasks import writer_slots


def test_without_a_server_no_slot_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("the Prefect API was called")

    monkeypatch.setattr(writer_slots, "_api", refuse)
    with temporary_settings(updates={PREFECT_API_URL: None}):
        assert not writer_slots.server_configured()
        with writer_slots.writer_slot("tourism", "2016-08"):
            ran = True
    assert ran


@pytest.mark.flow
def test_one_writer_per_partition_and_a_timeout_gives_way(
    prefect_harness: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    assert writer_slots.server_configured()
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with writer_slots.writer_slot("tourism", "2016-09"):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    monkeypatch.setattr(writer_slots, "SLOT_WAIT_S", 2.0)
    holder.start()
    try:
        assert holding.wait(60)
        with (
            caplog.at_level(logging.WARNING, logger=writer_slots.__name__),
            writer_slots.writer_slot("health", "2016-09"),  # another partition: its slot is free
        ):
            pass
        assert "no writer slot" not in caplog.text
        with (
            caplog.at_level(logging.WARNING, logger=writer_slots.__name__),
            writer_slots.writer_slot("tourism", "2016-09"),  # same partition: waits, then gives way
        ):
            gave_way = True
        assert gave_way
        assert "no writer slot for tourism 2016-09" in caplog.text
    finally:
        release.set()
        holder.join(30)
    with writer_slots.writer_slot("tourism", "2016-09"):  # released: free again
        pass
