"""Person keys (tasks/registry/checks.py ``person_keys``): computed from precomputed HMAC states,
they must stay byte for byte ``hmac.new(key, id, "sha256").hexdigest()`` — warehouses already
loaded link the same people across snapshots by these values."""

from __future__ import annotations

import hmac
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sqlalchemy import Engine, text

from tasks.registry import gx_checks, keyworker, stream
from tasks.registry.checks import person_keys
from tasks.registry.idcard import check_character, check_ids
from tasks.registry.keyworker import hmac_states, start_key_worker


def _ids(n: int) -> list[str]:
    out = []
    for i in range(n):
        first17 = f"5133{23 + i % 7:02d}19{60 + i % 40:02d}{1 + i % 12:02d}{1 + i % 28:02d}{i % 1000:03d}"
        out.append(first17 + check_character(first17))
    return out


def _reference(ids: list[str | None], valid: np.ndarray, key: bytes) -> list[str | None]:
    return [hmac.new(key, i.encode("ascii"), "sha256").hexdigest() if ok and i is not None else None
            for i, ok in zip(ids, valid, strict=True)]


@pytest.mark.parametrize("key", [b"k" * 32, b"k" * 40, bytes(range(64)), b"long" * 17, "密钥".encode() * 30])
def test_person_keys_equal_hmac_of_the_id_for_every_key_length(key: bytes) -> None:
    ids = _ids(500)
    valid = np.ones(len(ids), dtype=bool)
    valid[::9] = False  # an invalid row gets no key, the rows around it keep theirs
    assert person_keys(pa.array(ids), valid, key).to_pylist() == _reference(ids, valid, key)


def test_person_keys_from_checked_ids_slices_and_an_x_check_character() -> None:
    ids: list[str | None] = [*_ids(40), None, " 11010519491231002x ", "5.13323E+17", "12345"]
    checked = check_ids(pa.array(ids), date(2017, 5, 31))
    key = b"z" * 48
    keys = person_keys(checked.normalised, checked.valid, key)
    expected = _reference([i.strip().upper() if i else i for i in ids], checked.valid, key)
    assert keys.to_pylist() == expected
    assert keys.null_count == 3 and expected[41] == hmac.new(key, b"11010519491231002X", "sha256").hexdigest()
    # a slice (its offsets do not start at 0) and an empty or all-invalid batch
    sliced = person_keys(checked.normalised.slice(5, 30), checked.valid[5:35], key)
    assert sliced.to_pylist() == expected[5:35]
    assert person_keys(pa.array([], pa.string()), np.zeros(0, dtype=bool), key).to_pylist() == []
    assert person_keys(pa.array(ids[:3]), np.zeros(3, dtype=bool), key).to_pylist() == [None] * 3


def test_person_keys_refuse_an_id_that_is_not_18_bytes() -> None:
    with pytest.raises(ValueError, match="18 bytes"):
        person_keys(pa.array(["12345"]), np.ones(1, dtype=bool), b"k" * 40)


def test_hmac_states_are_the_rfc_2104_inner_and_outer_states() -> None:
    key = b"k" * 40
    inner, outer = hmac_states(key)
    message = b"513323199003070018"
    first = inner.copy()
    first.update(message)
    second = outer.copy()
    second.update(first.digest())
    assert second.digest() == hmac.digest(key, message, "sha256")


def test_the_helper_process_gives_the_same_digests_chunk_after_chunk_and_ends_cleanly() -> None:
    key = b"h" * 44
    worker = start_key_worker(key)
    assert worker is not None
    process = worker._process
    with worker:
        for chunk in (_ids(300), _ids(1), [], _ids(70)):
            worker.submit(b"".join(i.encode("ascii") for i in chunk))
            assert worker.result() == b"".join(hmac.digest(key, i.encode("ascii"), "sha256") for i in chunk)
        with pytest.raises(RuntimeError, match="not collected"):
            worker.submit(b"".join(i.encode("ascii") for i in _ids(2)))
            worker.submit(b"")
    assert process.returncode is not None  # reaped, even with an answer left uncollected
    # its own peak memory, read as it ended: the interpreter and one chunk, not the caller's image
    assert worker.peak_rss_mb is not None and 0 < worker.peak_rss_mb < 200


def test_a_helper_that_died_fails_the_chunk_rather_than_store_a_row_without_its_key() -> None:
    worker = start_key_worker(b"d" * 40)
    assert worker is not None
    with worker:
        worker._process.kill()
        worker._process.wait()
        with pytest.raises(RuntimeError, match="helper process stopped"):
            worker.submit(b"".join(i.encode("ascii") for i in _ids(5000)))
            worker.result()


@pytest.mark.parametrize("key_process", [True, False], ids=["helper", "inline"])
def test_stored_person_keys_are_hmac_of_the_id_with_and_without_the_helper(
    warehouse_engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key_process: bool
) -> None:
    from tests.registry.test_registry import ID, KEY, ingest, people, write_csv

    monkeypatch.setenv("DUIKOU_REGISTRY_KEY_PROCESS", "true" if key_process else "false")
    started: list[bool] = []
    real_start = keyworker.start_key_worker
    monkeypatch.setattr(stream, "start_key_worker", lambda key: started.append(True) or real_start(key))
    monkeypatch.setattr(gx_checks, "GX_CHUNK_ROWS", 70)  # 200 rows: four chunks, four requests to the helper
    frame = people(200, seed=19)
    _, outcome = ingest(warehouse_engine, write_csv(frame, tmp_path / "registry.csv"), tmp_path)
    assert outcome is not None and outcome.load.status == "loaded" and outcome.load.facts_loaded == 200
    with warehouse_engine.connect() as conn:
        keys = conn.execute(text("SELECT person_key FROM fact_person ORDER BY source_row")).scalars().all()
    assert keys == [hmac.new(KEY.encode(), i.encode(), "sha256").hexdigest() for i in frame[ID]]
    assert started == ([True] if key_process else [])


def test_the_stream_hashes_what_the_helper_cannot_finish_in_time() -> None:
    key = b"s" * 40
    chunk = _ids(400)
    expected = b"".join(hmac.digest(key, i.encode("ascii"), "sha256") for i in chunk)
    worker = start_key_worker(key)
    assert worker is not None
    with worker:
        for share in (1.0, 0.3, keyworker.MIN_SHARE):  # the helper's part first, the stream's after
            worker.share = share
            worker.submit(b"".join(i.encode("ascii") for i in chunk))
            assert worker.result() == expected
        assert worker.helper_ids + worker.own_ids == 3 * len(chunk) and worker.own_ids > len(chunk)
    # the share follows the last chunk: a helper that needed twice the time it had gets less of
    # the next chunk, one that finished early gets more, within MIN_SHARE … 1
    assert keyworker.next_share(1.0, available_s=0.5, helper_s=1.0) == 0.75
    assert keyworker.next_share(0.5, available_s=1.0, helper_s=0.5) == 0.75
    assert keyworker.next_share(1.0, available_s=2.0, helper_s=0.5) == 1.0
    assert keyworker.next_share(0.1, available_s=0.0, helper_s=1.0) == keyworker.MIN_SHARE
