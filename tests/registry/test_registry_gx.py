"""GX gates the registry: the declared checks run as a GX suite over every row, chunk by chunk,
and GX's outcomes decide; the registry bench refuses to print a ratio for a run that did not load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tasks.registry import gx_checks
from tasks.registry.checks import KEY_PARTITIONS
from tasks.registry.idcard import check_character
from tests.registry.test_registry import DECL, ID, SEX, SNAPSHOT, ingest, people, write_csv

ID_NAME = DECL.role("person_id").name


def _plant_bad_check_digit(frame: Any, index: int) -> None:
    seq = "513323" + "19800101" + "002"
    good = check_character(seq)
    frame.at[index, ID] = seq + ("0" if good != "0" else "1")
    frame.at[index, SEX] = "女"


def test_a_planted_bad_row_is_found_by_gx_over_every_row_and_gx_decides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 130 rows → chunks of 40, 40, 40, 10 rows (file rows 2–41, 42–81, 82–121, 122–131)
    monkeypatch.setattr(gx_checks, "GX_CHUNK_ROWS", 40)
    frame = people(130)
    _plant_bad_check_digit(frame, 117)  # file row 119 (header is row 1): the third chunk
    validated: list[tuple[int, dict[tuple[str, str], dict[str, Any]]]] = []
    real = gx_checks.validate_frame

    def recording(frame_: Any, suite: Any) -> dict[tuple[str, str], dict[str, Any]]:
        outcomes = real(frame_, suite)  # real GX: get_batch + validate on the process's context
        validated.append((len(frame_), outcomes))
        return outcomes

    monkeypatch.setattr(gx_checks, "validate_frame", recording)
    stream, _ = ingest(None, write_csv(frame, tmp_path / "bad.csv"), tmp_path)

    # GX validated every row: four chunks of the row suite, then the uniqueness suite over all
    # 129 valid keys, one call per key partition (the ID's 17 digits mod KEY_PARTITIONS)
    assert [n for n, _ in validated[:4]] == [40, 40, 40, 10]
    key_calls = [n for n, o in validated[4:]]
    assert sum(key_calls) == 129 and 1 < len(key_calls) <= KEY_PARTITIONS
    assert all(set(o) == {("id_duplicate", ID_NAME)} for _, o in validated[4:])
    found = [(n, o[("id_check_digit", ID_NAME)]) for n, o in validated if ("id_check_digit", ID_NAME) in o]
    assert [int(o["unexpected_count"]) for _, o in found] == [0, 0, 1, 0]  # rows 82–121
    assert list(found[2][1]["unexpected_rows"]) == [119]
    # …and GX's outcome decided: the snapshot is rejected on exactly that row, and dq_result says GX's family
    assert stream.result.status == "rejected"
    critical = [(i.row, i.code) for i in stream.result.issues if i.severity == "critical"]
    assert critical == [(119, "PERSON_ID_CHECK_DIGIT")]
    dq = {r.check_id: r for r in stream.result.dq_results}
    assert dq["registry__id_check_digit"].expectation_type == "ExpectRegistryPersonIdsValid"
    assert (dq["registry__id_check_digit"].unexpected_count, dq["registry__id_check_digit"].element_count) == (1, 130)
    assert dq["registry__id_duplicate"].expectation_type == "ExpectRegistryKeysUnique"


def _repeat_ids(frame: Any, pairs: int) -> list[tuple[int, int]]:
    """Rows ``2k+1`` take the ID (and sex) of rows ``2k`` for k < ``pairs``: ``pairs`` repeated IDs
    whose 17 digits fall in every key partition; returns the (first, second) file rows of each."""
    for k in range(pairs):
        frame.at[2 * k + 1, ID], frame.at[2 * k + 1, SEX] = frame.at[2 * k, ID], frame.at[2 * k, SEX]
    return [(2 * k + 2, 2 * k + 3) for k in range(pairs)]


def test_repeated_ids_across_key_partitions_are_found_and_refused_as_in_one_piece(
    warehouse_engine: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uniqueness suite runs per key partition; what it finds, lists and refuses is what one GX
    call over every key found: 130 repeated IDs (more than the 100 listed) spread over every
    partition, the same issues, counts and dq_result as with a single partition, nothing loaded."""
    import numpy as np
    from sqlalchemy import text

    from tasks.registry import checks

    frame = people(300)
    pairs = _repeat_ids(frame, 130)
    numbers = np.array([int(str(frame.at[2 * k, ID])[:17]) for k in range(130)], dtype=np.int64)
    # the repeats really span every partition
    assert set(checks.key_partition(numbers, KEY_PARTITIONS)) == set(range(KEY_PARTITIONS))
    path = write_csv(frame, tmp_path / "repeats.csv")
    runs = {}
    real = gx_checks.validate_frame
    for partitions in (KEY_PARTITIONS, 1):
        monkeypatch.setattr(checks, "KEY_PARTITIONS", partitions)
        calls: list[int] = []

        def counting(frame_: Any, suite: Any, calls: list[int] = calls) -> Any:
            outcomes = real(frame_, suite)
            if ("id_duplicate", ID_NAME) in outcomes:
                calls.append(len(frame_))
            return outcomes

        monkeypatch.setattr(gx_checks, "validate_frame", counting)
        stream, outcome = ingest(warehouse_engine if partitions == KEY_PARTITIONS else None, path,
                                 tmp_path / f"p{partitions}")
        runs[partitions] = (stream, outcome, calls)
    split, _, split_calls = runs[KEY_PARTITIONS]
    whole, _, whole_calls = runs[1]
    assert len(split_calls) == KEY_PARTITIONS and sum(split_calls) == 300 and whole_calls == [300]
    listed = [i for i in split.result.issues if i.code == "PERSON_DUPLICATE"]
    assert [i.row for i in listed] == [first for first, _ in pairs[:100]]
    assert [i.message.split(":")[0] for i in listed] == [f"第{a}行、第{b}行" for a, b in pairs[:100]]
    summary = next(i for i in split.result.issues if i.code == "ROWS_NOT_ALL_LISTED")
    assert "共130行" in summary.message
    assert split.result.issues == whole.result.issues  # refused exactly as before, message for message
    dq = {r.check_id: r for r in split.result.dq_results}["registry__id_duplicate"]
    assert (dq.success, dq.unexpected_count, dq.expectation_type) == (False, 130, "ExpectRegistryKeysUnique")
    assert split.result.dq_results == whole.result.dq_results
    assert split.result.status == "rejected"
    outcome = runs[KEY_PARTITIONS][1]
    assert outcome is not None and outcome.load.status == "rejected" and outcome.load.facts_loaded == 0
    with warehouse_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM fact_person")).scalar_one() == 0
        codes = conn.execute(text("SELECT code FROM submission_issue WHERE code = 'PERSON_DUPLICATE'")).all()
        assert len(codes) == 100


def test_merged_key_partitions_list_the_first_groups_by_first_row() -> None:
    import numpy as np

    keys = np.array([5, 7, 5, 9, 7, 9, 9, 11], dtype=np.int64)
    rows = np.array([2, 3, 4, 5, 6, 7, 8, 9], dtype=np.int64)
    whole = gx_checks.repeated_groups(keys, rows)
    by_part = [gx_checks.repeated_groups(keys[keys % 4 == r], rows[keys % 4 == r]) for r in (1, 3)]
    assert whole == {"unexpected_count": 3, "groups": [[2, 4], [3, 6], [5, 7, 8]]}
    assert gx_checks.merge_repeats(*by_part) == whole


def test_the_gx_result_itself_names_the_row(tmp_path: Path) -> None:
    """The family expectation's own GX validation result (not our reading of it) fails on the row."""
    import pyarrow as pa

    from tasks.registry.checks import TownshipCodes, text_column
    from tasks.validation.validate import _gx_batch_definition
    from warehouse.refdata import reference_frames

    frame = people(12)
    _plant_bad_check_digit(frame, 4)
    table = pa.Table.from_pandas(frame.rename(columns={c.header: c.name for c in DECL.columns}), preserve_index=False)
    ref = reference_frames()
    from tasks.forms.townships import TownshipResolver

    resolver = TownshipResolver(ref.townships, ref.aliases, ref.helper_units, ref.pairings,
                                SNAPSHOT.replace(day=1), SNAPSHOT)
    codes = TownshipCodes(resolver).codes(text_column(table, DECL.role("township").name))
    rows = pa.array(range(2, 14)).to_numpy()
    row_suite, _ = gx_checks.registry_suite(DECL, SNAPSHOT)
    batch = _gx_batch_definition().get_batch(
        batch_parameters={"dataframe": gx_checks.chunk_frame(table, rows, codes)})
    result = batch.validate(row_suite)
    by_family = {r.expectation_config.type: r for r in result.results}
    ids = by_family["expect_registry_person_ids_valid"]
    assert not ids.success and ids.result["observed_value"]["failed"] == [f"id_check_digit|{ID_NAME}"]
    assert list(ids.result["details"]["checks"][f"id_check_digit|{ID_NAME}"]["unexpected_rows"]) == [6]
    assert by_family["expect_registry_values_valid"].success
    assert by_family["expect_registry_townships_known"].success


def test_the_bench_refuses_a_ratio_for_a_run_that_did_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench import registry as bench

    frame = people(60)
    _plant_bad_check_digit(frame, 10)
    path = write_csv(frame, tmp_path / "bench.csv")
    ours = bench.child_ours(path, None, tmp_path / "data")  # the bench's own run: SQLite, rejected
    floors = bench.child_floors(path, None, None)
    capsys.readouterr()
    assert bench.report(60, ours, floors, postgres=False) == 1
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert (result["status"], result["rows_read"], result["rows_loaded"]) == ("rejected", 60, 0)
    assert "not loaded" in result["refused"] and any(line.startswith("REFUSED") for line in out)
    assert not {"gx_ratio", "end_to_end_ratio", "read_ratio", "load_ratio"} & set(result)
    # what the figures were measured beside: the load as each child ran, the stream's and its
    # person-key helper's peaks (the helper ran and ended: its peak is counted in peak_rss_mb)
    assert set(result["load_avg_1min"]) == {"ours", "floors"} and len(result["load_avg_1min"]["ours"]) == 2
    parts = result["peak_rss_parts_mb"]
    assert parts["key_helper"] > 0
    assert result["peak_rss_mb"] == pytest.approx(parts["stream"] + parts["key_helper"], abs=0.2)
    # a run that loaded fewer rows than generated is refused too; one that loaded every row is not
    assert bench.refusal(60, {**ours, "status": "loaded", "rows_loaded": 59}) == "59 of 60 rows loaded (60 read)"
    assert bench.refusal(60, {**ours, "status": "loaded", "rows_loaded": 60}) is None
