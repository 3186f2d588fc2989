"""A person-level registry submission, streamed: open → chunks (GX checks, key, write) → outcome.

Memory stays bounded whatever the file size: one chunk (≥ ``GX_CHUNK_ROWS`` rows) is in flight,
plus the keys of the uniqueness checks (the 17-digit ID numbers as int64 and their rows as int32:
240 MB per 20 000 000 people, in ``KEY_PARTITIONS`` partitions validated one at a time), a
de-identified sample of at most ``GX_SAMPLE_ROWS`` rows for the
Data Docs and per-check listings.

Checks: the declaration's checks run as a GX Core suite over every row
(``tasks/registry/gx_checks.py``): each chunk is validated in ONE ``validate()`` call of the row
suite (family expectations whose metrics are the vectorised checks of ``tasks.registry.checks``),
and after the last chunk the uniqueness suite validates every row's key, one key partition (the
ID's 17 digits mod ``KEY_PARTITIONS``) per call — every row of a repeated ID is in the same one. GX's outcomes decide:
its failing rows become the receipt's issues and the rows flagged, its counts ``dq_result``
(``registry__<check>``), and a critical one rejects the snapshot. Rows of a chunk are written only
while no critical finding has been seen (the savepoint is rolled back on a reject anyway). GX also
validates a systematic sample of the *checked, de-identified* rows (≤ ``GX_SAMPLE_ROWS``) with
its built-in expectations (``gx_sample__*``): that is what ``duikou dq docs`` renders as GX Data
Docs, a page that must show no ID.

Privacy: the ID is replaced by ``HMAC-SHA256(DUIKOU_PERSON_KEY, ID)`` before anything is
written (computed in a helper process of this one, ``tasks/registry/keyworker.py``: the key and
the IDs pass through its pipes only); the name is only checked for presence. GX reports rows,
counts and non-personal values only. Messages refer to rows by number.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from duikou_settings import Settings
from expectations.issues import Issue, issue
from expectations.registry_declaration import ISSUE_CODE_OF_CHECK, RegistryDeclaration, load_registry_declarations
from tasks.forms.file_safety import ReadError, ReadLimits
from tasks.forms.townships import TownshipResolver
from tasks.registry.checks import (
    MAX_LISTED_ROWS,
    PERSON_COLUMNS,
    Findings,
    MissingPersonKey,
    TownshipCodes,
    keys_from_digests,
    person_rows,
    text_column,
    valid_id_bytes,
)
from tasks.registry.idcard import check_ids
from tasks.registry.keyworker import KeyWorker, start_key_worker
from tasks.registry.read import RegistrySource, open_registry
from warehouse.load import DqResult
from warehouse.refdata import ReferenceFrames
from warehouse.registry import PersonWriter, StreamResult

GX_SAMPLE_ROWS = 50_000
GX_SAMPLE_PER_BATCH = 2_500
MIN_PERSON_KEY_CHARS = 32


def registry_declaration(department: str) -> RegistryDeclaration | None:
    return load_registry_declarations().get(department)


def require_person_key(settings: Settings) -> bytes:
    """The HMAC key, or MissingPersonKey: without it no registry is read at all."""
    secret = settings.person_key.get_secret_value() if settings.person_key is not None else ""
    if len(secret) < MIN_PERSON_KEY_CHARS:
        raise MissingPersonKey(
            "DUIKOU_PERSON_KEY is not set (or shorter than 32 characters): person-level registries are stored "
            "under a keyed hash of the ID number and cannot be ingested without the key. Set it from the "
            "secret store, e.g. `export DUIKOU_PERSON_KEY=$(python -c 'import secrets; print(secrets.token_hex(32))')`"
            " — and keep it: a new key gives every person a new key, breaking comparisons across snapshots."
        )
    return secret.encode("utf-8")


@dataclass
class StageTimes:
    """Seconds spent per stage of one stream (bench/registry.py): ``read`` inside the batch
    iterator; ``gx`` the GX validate() calls over every row (row suite per chunk, uniqueness suite);
    ``rows`` township codes, typed rows and HMAC person keys, issue building; ``sample`` GX on the
    Data Docs sample; ``load`` the writes, the wait for the last queued rows included; ``extra``:
    ``gx_unique`` the part of ``gx`` spent on the uniqueness suite after the last chunk,
    ``key_helper_peak_rss_mb`` the person-key helper process's peak memory (not seconds),
    ``key_helper_share`` the fraction of the IDs it hashed (not seconds), ``key_helper_wait`` the
    seconds the stream waited for it (part of ``rows``)."""

    read: float = 0.0
    gx: float = 0.0
    rows: float = 0.0
    sample: float = 0.0
    load: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)


def _timed_batches(source: RegistrySource, times: StageTimes) -> Iterator[tuple[int, pa.Table]]:
    iterator = source.batches()
    while True:
        start = time.perf_counter()
        try:
            item = next(iterator)
        except StopIteration:
            times.read += time.perf_counter() - start
            return
        times.read += time.perf_counter() - start
        yield item


def _chunks(batches: Iterator[tuple[int, pa.Table]], size: int) -> Iterator[list[tuple[int, pa.Table]]]:
    """The batches regrouped into chunks of ``size`` rows (the last one shorter), slices not copies."""
    pending: list[tuple[int, pa.Table]] = []
    pending_rows = 0
    for first_row, table in batches:
        while table.num_rows:
            take = min(size - pending_rows, table.num_rows)
            pending.append((first_row, table.slice(0, take)))
            pending_rows += take
            first_row, table = first_row + take, table.slice(take)
            if pending_rows == size:
                yield pending
                pending, pending_rows = [], 0
    if pending:
        yield pending


def sample_columns(declaration: RegistryDeclaration) -> tuple[str, ...]:
    """The de-identified fact_person columns GX sees: ``township_code``, ``age_years`` and the typed
    columns the declaration stores under their own name (never the ID, the name, the person key
    or ``attributes``)."""
    stored = [c.name for c in declaration.columns if c.role not in ("name", "person_id", "township")
              and c.name in PERSON_COLUMNS and c.type in ("enum", "decimal", "integer")]
    derived = ["training_person_times"] if declaration.with_role("trainings") is not None else []
    return ("township_code", "age_years", *stored, *derived)


def _sample(rows: pa.Table, columns: tuple[str, ...]) -> pa.Table:
    step = max(1, rows.num_rows // GX_SAMPLE_PER_BATCH)
    return rows.select(list(columns)).take(pa.array(range(0, rows.num_rows, step)))


def _row_issues(findings: Findings, declaration: RegistryDeclaration, source: RegistrySource,
                townships: TownshipCodes) -> list[Issue]:
    personal = {c.name for c in declaration.columns if c.role in ("name", "person_id")}
    out: list[Issue] = []
    for (check_id, column), listed in sorted(findings.listed.items(), key=lambda kv: kv[1].rows[:1]):
        check = declaration.check(check_id)
        code = ISSUE_CODE_OF_CHECK[check_id]
        action = check.action or ("flag" if check.severity == "warning" else "report")
        label = source.column_labels.get(column, declaration.column(column).header)
        header = declaration.column(column).header
        for row, value in zip(listed.rows, listed.values, strict=True):
            if check_id in ("id_duplicate", "value_duplicate"):
                message = f"{value}: {check.message_zh}"
            elif check_id == "township_unknown" and value is not None:
                message = f"第{row}行: {townships.problems.get(value, check.message_zh)}"
            elif value is not None and column not in personal:
                message = f"第{row}行: {header}“{value}”{check.message_zh}"
            else:
                message = f"第{row}行: {header}{check.message_zh}" if check_id == "value_missing" else \
                    f"第{row}行: {check.message_zh}"
            out.append(issue(code, message, severity=check.severity, action=action, sheet=source.sheet,
                             row=row, column=label, rule_id=check_id))
        if listed.count > len(listed.rows):
            out.append(issue("ROWS_NOT_ALL_LISTED",
                             f"{header}: 共{listed.count}行{check.message_zh}，此处列出前{len(listed.rows)}行",
                             sheet=source.sheet, column=label, rule_id=check_id))
    return out


def _gx_dq_results(findings: Findings, declaration: RegistryDeclaration) -> list[DqResult]:
    """One ``dq_result`` per declared check, from GX's outcomes over every row."""
    from tasks.registry.gx_checks import family_name

    totals: dict[str, int] = {}
    rows: dict[str, list[int]] = {}
    for (check_id, _), listed in findings.listed.items():
        totals[check_id] = totals.get(check_id, 0) + listed.count
        rows.setdefault(check_id, []).extend(listed.rows)
    return [
        DqResult(check_id=f"registry__{c.check_id}", expectation_type=family_name(declaration, c.check_id),
                 severity=c.severity, success=totals.get(c.check_id, 0) == 0, element_count=findings.rows_read,
                 unexpected_count=totals.get(c.check_id, 0), observed=json.dumps({"rows": findings.rows_read}),
                 issue_code=c.issue_code,
                 action=c.action or ("flag" if c.severity == "warning" else "report"),
                 unexpected_rows=tuple(sorted(set(rows.get(c.check_id, ())))[:MAX_LISTED_ROWS]))
        for c in declaration.checks
    ]


def sample_expectations(declaration: RegistryDeclaration) -> list[tuple[str, str, Any]]:
    """(check id, severity, GX expectation) of the sample suite; ``duikou dq docs`` runs the same.

    From the declaration: each enumeration stored in fact_person in its set, the township and the
    required enumerations not null, the person id's age band, each declared number range.
    """
    import great_expectations.expectations as gxe

    columns = set(sample_columns(declaration))
    expectations: list[tuple[str, str, Any]] = []

    def add(check_id: str, severity: str, kind: Any, **kwargs: Any) -> None:
        expectations.append((check_id, severity, kind(**kwargs, meta={"check_id": check_id})))

    enums = [c for c in declaration.columns if c.type == "enum" and c.name in columns]
    for col in enums:
        add(f"gx_sample__{col.name}__in_set", declaration.check("value_not_allowed").severity,
            gxe.ExpectColumnValuesToBeInSet, column=col.name, value_set=list(col.values))
    for name in ("township_code", *(c.name for c in enums if c.required)):
        add(f"gx_sample__{name}__not_null", "critical", gxe.ExpectColumnValuesToNotBeNull, column=name)
    band = declaration.role("person_id").age_band
    if band is not None:
        add("gx_sample__age_years__band", declaration.check("age_band").severity, gxe.ExpectColumnValuesToBeBetween,
            column="age_years", min_value=band.min_age, max_value=max(band.max_male, band.max_female))
    for col in declaration.columns:
        if col.name in columns and col.type in ("decimal", "integer") and col.has_range:
            add(f"gx_sample__{col.name}__range", declaration.check("value_out_of_range").severity,
                gxe.ExpectColumnValuesToBeBetween, column=col.name, min_value=col.min_value,
                max_value=col.max_value)
    return expectations


def _gx_results(sample: pd.DataFrame, declaration: RegistryDeclaration, rows_read: int) -> list[DqResult]:
    """GX Core on the de-identified sample, in ONE validate() call (no ID or name in the frame)."""
    if sample.empty:
        return []
    import great_expectations as gx

    from tasks.validation.validate import GX_LOCK, _gx_batch_definition  # the process's one GX context

    batch_definition = _gx_batch_definition()  # creates the process's GX context first
    expectations = sample_expectations(declaration)
    suite = gx.ExpectationSuite(name=f"{declaration.dataset}_sample")
    for _, _, expectation in expectations:
        suite.add_expectation(expectation)
    with GX_LOCK:
        batch = batch_definition.get_batch(batch_parameters={"dataframe": sample})
        result = batch.validate(suite, result_format={"result_format": "BASIC", "partial_unexpected_count": 0})
    by_id = {r.expectation_config.meta["check_id"]: r for r in result.results}
    out = []
    for check_id, severity, expectation in expectations:
        r = by_id[check_id]
        out.append(DqResult(
            check_id=check_id, expectation_type=type(expectation).__name__, severity=severity,
            success=bool(r.success), element_count=int(r.result.get("element_count", len(sample))),
            unexpected_count=r.result.get("unexpected_count"),
            observed=json.dumps({"sample_rows": len(sample), "of_rows": rows_read}),
        ))
    return out


def outcome_of(issues: list[Issue]) -> str:
    critical = [i for i in issues if i.severity == "critical"]
    if any(i.action == "reject" for i in critical):
        return "rejected"
    return "quarantined" if critical else "loaded"


@dataclass
class RegistryStream:
    """Everything one stream produced (the ledger's StreamResult plus what the receipt shows)."""

    result: StreamResult
    sheet: str | None
    encoding: str | None
    times: StageTimes
    #: the de-identified rows GX validated (no ID, no name, no person key); None unless loaded
    sample: pd.DataFrame | None = None


def stream_registry(
    path: Any,
    original_name: str,
    declaration: RegistryDeclaration,
    snapshot_start: date,
    snapshot_end: date,
    reference: ReferenceFrames,
    key: bytes,
    settings: Settings,
    writer: PersonWriter | None,
) -> RegistryStream:
    """Read, check and (with a writer) write the registry; the outcome is decided at the end."""
    times = StageTimes()
    limits = ReadLimits(max_bytes=settings.registry_max_upload_bytes,
                        max_uncompressed_bytes=settings.registry_max_uncompressed_bytes,
                        max_compression_ratio=settings.max_compression_ratio, max_cells=2**62)
    try:
        source = open_registry(path, original_name, declaration, limits)
    except ReadError as exc:
        return RegistryStream(StreamResult("rejected", 0, 0, (exc.issue,), ()), None, None, times)
    header_issues = list(source.issues)
    if outcome_of(header_issues) != "loaded":
        return RegistryStream(StreamResult(outcome_of(header_issues), 0, 0, tuple(header_issues), ()),
                              source.sheet, source.encoding, times)
    from tasks.registry.gx_checks import (
        GX_CHUNK_ROWS,
        checked_columns,
        chunk_frame,
        merge_repeats,
        registry_suite,
        validate_frame,
    )

    resolver = TownshipResolver(reference.townships, reference.aliases, reference.helper_units,
                                reference.pairings, snapshot_start, snapshot_end, crosswalk=reference.crosswalk)
    townships = TownshipCodes(resolver)
    findings = Findings()
    critical_ids = {c.check_id for c in declaration.checks if c.severity == "critical"}
    critical_seen = False
    samples: list[pa.Table] = []
    sampled = 0
    gx_columns = sample_columns(declaration)
    row_suite, unique_suites = registry_suite(declaration, snapshot_end)
    gx_frame_columns = checked_columns(declaration)
    township_name = declaration.role("township").name
    id_name = declaration.role("person_id").name

    def chunk_done(parts: list[tuple[int, pa.Table]]) -> None:
        nonlocal critical_seen, sampled
        start = time.perf_counter()
        table = pa.concat_tables([t for _, t in parts]) if len(parts) > 1 else parts[0][1]
        source_rows = np.concatenate([np.arange(first, first + t.num_rows, dtype=np.int64) for first, t in parts])
        codes = townships.codes(text_column(table, township_name))
        ids = check_ids(table.column(id_name).combine_chunks(), snapshot_end)  # parsed once for the rows
        if worker is not None:  # the helper hashes this chunk's IDs while GX validates it
            worker.submit(valid_id_bytes(ids.normalised, ids.valid))
        times.rows += time.perf_counter() - start
        start = time.perf_counter()
        outcomes = validate_frame(chunk_frame(table, source_rows, codes, gx_frame_columns), row_suite)
        times.gx += time.perf_counter() - start
        start = time.perf_counter()
        findings.add_outcomes(outcomes, table.num_rows)
        critical_seen = critical_seen or any(o["unexpected_count"] for (cid, _), o in outcomes.items()
                                             if cid in critical_ids)
        warned = None
        if not critical_seen:
            failing = [o["unexpected_rows"] for (cid, _), o in outcomes.items()
                       if cid not in critical_ids and o["unexpected_count"]]
            warned = np.zeros(table.num_rows, dtype=bool)
            if failing:
                warned[np.searchsorted(source_rows, np.concatenate(failing))] = True
        keys = keys_from_digests(worker.result(), ids.valid) if worker is not None else None
        checked = person_rows(table, source_rows, declaration, snapshot_end, codes, key, warned, ids, keys)
        findings.add_keys(checked)
        if checked.rows is not None and sampled < GX_SAMPLE_ROWS:
            part = _sample(checked.rows, gx_columns)
            samples.append(part)
            sampled += part.num_rows
        times.rows += time.perf_counter() - start
        if writer is not None and checked.rows is not None:
            start = time.perf_counter()
            writer.write(checked.rows)
            times.load += time.perf_counter() - start

    worker: KeyWorker | None = start_key_worker(key) if settings.registry_key_process else None
    try:
        for chunk in _chunks(_timed_batches(source, times), GX_CHUNK_ROWS):
            chunk_done(chunk)
    finally:
        if worker is not None:
            worker.close()
            if worker.peak_rss_mb is not None:
                times.extra["key_helper_peak_rss_mb"] = worker.peak_rss_mb
            hashed = worker.helper_ids + worker.own_ids
            times.extra["key_helper_share"] = worker.helper_ids / hashed if hashed else 1.0
            times.extra["key_helper_wait"] = worker.waited_s
    if writer is not None:  # the last rows through: the COPY's queue drained, its errors raised here
        start = time.perf_counter()
        writer.close()
        times.load += time.perf_counter() - start
    repeats: dict[tuple[str, str], dict[str, Any]] = {}
    for column, keys, rows in findings.key_frames(id_name):  # the ID: one GX call per key partition
        suite = unique_suites.get(column)
        if suite is None:
            continue
        start = time.perf_counter()
        outcomes = validate_frame(pd.DataFrame({"key": keys}, index=pd.Index(rows), copy=False), suite)
        del keys, rows
        times.gx += time.perf_counter() - start
        times.extra["gx_unique"] = times.extra.get("gx_unique", 0.0) + time.perf_counter() - start
        for where, outcome in outcomes.items():
            repeats[where] = merge_repeats(repeats[where], outcome) if where in repeats else outcome
    for where, outcome in repeats.items():
        findings.add_groups(where, outcome)
    start = time.perf_counter()
    issues = [*header_issues, *_row_issues(findings, declaration, source, townships)]
    for row in source.short_rows:
        issues.append(issue("ROW_TRUNCATED", f"第{row}行的字段数与表头不符，整行未读取", row=row))
    dq_results = _gx_dq_results(findings, declaration)
    times.rows += time.perf_counter() - start
    status = outcome_of(issues)
    sample: pd.DataFrame | None = None
    if status == "loaded" and samples:
        start = time.perf_counter()
        sample = pa.concat_tables(samples).to_pandas()
        dq_results.extend(_gx_results(sample, declaration, findings.rows_read))
        times.sample += time.perf_counter() - start
    rejected_rows = len({i.row for i in issues if i.severity == "critical" and i.row is not None})
    result = StreamResult(status, findings.rows_read, rejected_rows, tuple(issues), tuple(dq_results))
    return RegistryStream(result, source.sheet, source.encoding, times, sample)
