"""The registry's declared checks as a GX Core suite, validated over every row, batch by batch.

A registry is too large for one pandas frame and GX pays a fixed cost per ``validate()`` call, so
the stream (``tasks/registry/stream.py``) hands GX one chunk of rows at a time (≥
``GX_CHUNK_ROWS``, Arrow-backed pandas columns: no copy of the text) and validates the chunk's
suite in ONE call; after the last chunk one more call validates the uniqueness checks over the
keys of every row. GX's results decide the outcome, as they do for forms
(``tasks/validation/validate.py``): the counts and rows in them become the receipt's issues, the
rows flagged, ``dq_result`` and the reject.

As for the forms, the checks of one kind go to GX as one *family* expectation whose one metric
evaluates all of them vectorised (``tasks.registry.checks.row_check_masks``, ``pyarrow.compute``
and numpy over the chunk's Arrow buffers):

* ``ExpectRegistryPersonIdsValid`` — the person-id column's checks (missing, Excel damage,
  GB 11643 shape, check digit, birth date, age band) and ``id_sex`` (one parse of the IDs);
* ``ExpectRegistryValuesValid`` — every other column's value checks (missing, not in the
  enumeration, not a number / integer / date, out of range);
* ``ExpectRegistryTownshipsKnown`` — ``township_unknown``: a township name given but not resolved
  at the snapshot (the resolution is the stream's normalisation, like a form's township column);
* ``ExpectRegistryKeysUnique`` — ``id_duplicate`` / ``value_duplicate`` over every row's key.

Each check in a family is a dict: ``check_id`` (the declared check kind), ``column`` (the column
as declared: ``column_spec``) and for ``id_sex`` ``person_id`` (the ID column's name); the
suite is built from the declaration (``registry_suite``), so a second registry needs no code.

Privacy: the frame GX validates holds the chunk as read — ID numbers and names included — in this
process's memory only (the GX context is ephemeral and writes nothing). What GX reports is row
numbers, counts and, for non-personal columns, the offending values: never an ID or a name (the
metric returns None as the value of a person-id or name check; the key frame of the uniqueness
check holds the 17 digits as integers and reports rows only).
"""

from __future__ import annotations

from datetime import date
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pyarrow as pa
from great_expectations.compatibility import pydantic
from great_expectations.core.metric_domain_types import MetricDomainTypes
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

from expectations.registry_declaration import AgeBand, RegistryColumn, RegistryDeclaration
from tasks.registry.checks import ID_CHECKS, MAX_LISTED_ROWS, UNIQUE_CHECKS, VALUE_CHECKS, row_check_masks

#: rows per GX validate() call: GX's fixed cost per call (tens of ms) against the memory of a chunk
GX_CHUNK_ROWS = 250_000
#: the derived column of resolved township codes in a chunk's frame
TOWNSHIP_CODE_COLUMN = "__township_code"
KEY_COLUMN = "key"


def column_spec(col: RegistryColumn) -> dict[str, Any]:
    """What a check needs of its column, as JSON (GX keeps and renders expectation kwargs)."""
    return {
        "name": col.name, "role": col.role, "type": col.type, "required": col.required,
        "values": list(col.values), "value_aliases": [list(p) for p in col.value_aliases],
        "true_values": list(col.true_values), "false_values": list(col.false_values),
        "male": col.male, "female": col.female, "min_value": col.min_value, "max_value": col.max_value,
        "min_date": col.min_date.isoformat() if col.min_date else None,
        "max_date": col.max_date.isoformat() if col.max_date else None,
        "age_band": [col.age_band.min_age, col.age_band.max_male, col.age_band.max_female] if col.age_band else None,
    }


def column_of(spec: dict[str, Any]) -> RegistryColumn:
    band = spec.get("age_band")
    return RegistryColumn(
        name=spec["name"], header=spec["name"], aliases=(), role=spec["role"], type=spec["type"],
        required=bool(spec["required"]), values=tuple(spec["values"]),
        value_aliases=tuple((str(a), str(v)) for a, v in spec["value_aliases"]),
        true_values=tuple(spec["true_values"]), false_values=tuple(spec["false_values"]),
        male=spec["male"], female=spec["female"], min_value=spec["min_value"], max_value=spec["max_value"],
        min_date=date.fromisoformat(spec["min_date"]) if spec["min_date"] else None,
        max_date=date.fromisoformat(spec["max_date"]) if spec["max_date"] else None,
        age_band=AgeBand(*band) if band else None,
    )


def _arrow(frame: pd.DataFrame, name: str) -> pa.ChunkedArray | pa.Array:
    if name not in frame.columns:
        return pa.nulls(len(frame), pa.string())
    return pa.array(frame[name])  # Arrow-backed column: the buffers themselves


class RegistryRowCheckOutcomes(TableMetricProvider):
    """Every row check of a family on the chunk: ``{"check|column": outcome}``.

    An outcome: ``unexpected_count``; ``unexpected_rows`` (every failing row's file row number,
    as a numpy array: warnings flag each of them); ``listed_values`` (the first
    ``MAX_LISTED_ROWS`` offending values of a non-personal column, else None)."""

    metric_name = "duikou.registry_row_check_outcomes"
    value_keys = ("checks", "snapshot")

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls, execution_engine: PandasExecutionEngine, metric_domain_kwargs: dict[str, Any],
        metric_value_kwargs: dict[str, Any], metrics: dict[str, Any], runtime_configuration: dict[str, Any],
    ) -> dict[str, dict[str, Any]]:
        frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        checks = metric_value_kwargs["checks"]
        parsed = [(c["check_id"], column_of(c["column"]),
                   column_of(c["person_id"]) if c.get("person_id") else None) for c in checks]
        names = {col.name for _, col, _ in parsed} | {p.name for _, _, p in parsed if p is not None}
        table = pa.table({n: _arrow(frame, n) for n in sorted(names)})
        codes = (pa.array(frame[TOWNSHIP_CODE_COLUMN]) if TOWNSHIP_CODE_COLUMN in frame.columns else None)
        masks = row_check_masks(table, parsed, date.fromisoformat(metric_value_kwargs["snapshot"]), codes)
        index = frame.index.to_numpy()
        outcomes: dict[str, dict[str, Any]] = {}
        for (check_id, column), (mask, values) in masks.items():
            hits = np.flatnonzero(mask)
            listed = None
            if values is not None and len(hits):
                listed = values.take(pa.array(hits[:MAX_LISTED_ROWS])).to_pylist()
            outcomes[f"{check_id}|{column}"] = {"unexpected_count": len(hits), "unexpected_rows": index[hits],
                                                "listed_values": listed}
        return outcomes


class RegistryKeyRepeats(TableMetricProvider):
    """Rows whose key repeats (``KEY_COLUMN``; the frame's index is the file row), grouped by key:
    ``{"unexpected_count": keys repeated, "groups": the first MAX_LISTED_ROWS groups of rows,
    each sorted, groups by their first row}`` — never the key itself."""

    metric_name = "duikou.registry_key_repeats"
    value_keys = ("checks",)

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls, execution_engine: PandasExecutionEngine, metric_domain_kwargs: dict[str, Any],
        metric_value_kwargs: dict[str, Any], metrics: dict[str, Any], runtime_configuration: dict[str, Any],
    ) -> dict[str, dict[str, Any]]:
        frame, _, _ = execution_engine.get_compute_domain(metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE)
        outcomes: dict[str, dict[str, Any]] = {}
        for check in metric_value_kwargs["checks"]:
            keys = frame[KEY_COLUMN].to_numpy()
            rows = frame.index.to_numpy()
            outcomes[f"{check['check_id']}|{check['column']['name']}"] = repeated_groups(keys, rows)
        return outcomes


def repeated_groups(keys: np.ndarray, rows: np.ndarray) -> dict[str, Any]:
    """Rows of repeated keys, grouped (see :class:`RegistryKeyRepeats`)."""
    order = np.argsort(keys, kind="stable")
    ordered = keys[order]
    repeated = np.zeros(len(ordered), dtype=bool)
    if len(ordered) > 1:
        same = ordered[1:] == ordered[:-1]
        repeated[1:] |= same
        repeated[:-1] |= same
    del ordered
    if not repeated.any():
        return {"unexpected_count": 0, "groups": []}
    picked = order[repeated]
    dup_keys, dup_rows = keys[picked], rows[picked]
    starts = np.flatnonzero(np.r_[True, dup_keys[1:] != dup_keys[:-1]])
    groups = sorted((sorted(int(r) for r in g) for g in np.split(dup_rows, starts[1:])), key=lambda g: g[0])
    return {"unexpected_count": len(groups), "groups": groups[:MAX_LISTED_ROWS]}


def merge_repeats(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Two :func:`repeated_groups` outcomes over disjoint key sets (two key partitions) as one:
    the repeated keys counted together, the first ``MAX_LISTED_ROWS`` groups by first row — each
    outcome lists its own first ones, so the merged listing is the one a single call would give."""
    groups = sorted([*first["groups"], *second["groups"]], key=lambda g: g[0])
    return {"unexpected_count": int(first["unexpected_count"]) + int(second["unexpected_count"]),
            "groups": groups[:MAX_LISTED_ROWS]}


class RegistryCheckFamily(BatchExpectation):
    """Base of the registry's family expectations: succeeds when no check of the family fails;
    ``result.details.checks`` gives each check's outcome (key ``check_id|column``)."""

    checks: list[dict[str, Any]]
    snapshot: str = ""

    member_kinds: ClassVar[tuple[str, ...]] = ()
    metric_dependencies = ("duikou.registry_row_check_outcomes",)
    domain_keys: ClassVar[tuple[str, ...]] = ("batch_id", "row_condition", "condition_parser")
    success_keys: ClassVar[tuple[str, ...]] = ("checks", "snapshot")
    args_keys = ("checks",)
    library_metadata: ClassVar[dict[str, Any]] = {"maturity": "production", "tags": ["duikou", "registry"]}

    @pydantic.validator("checks")
    @classmethod
    def _checks_of_this_family(cls, checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
        wrong = [c.get("check_id") for c in checks if c.get("check_id") not in cls.member_kinds]
        if wrong or not checks:
            raise ValueError(f"{cls.__name__} holds {', '.join(cls.member_kinds)} checks only "
                             f"(got {wrong or 'none'})")
        return checks

    def _validate(
        self, metrics: dict[str, Any], runtime_configuration: dict[str, Any] | None = None,
        execution_engine: Any = None,
    ) -> dict[str, Any]:
        outcomes = metrics[self.metric_dependencies[0]]
        failed = sorted(k for k, o in outcomes.items() if o["unexpected_count"])
        return {"success": not failed, "result": {"observed_value": {"checks": len(outcomes), "failed": failed},
                                                  "details": {"checks": outcomes}}}


class ExpectRegistryPersonIdsValid(RegistryCheckFamily):
    member_kinds: ClassVar[tuple[str, ...]] = ("value_missing", *ID_CHECKS)


class ExpectRegistryValuesValid(RegistryCheckFamily):
    member_kinds: ClassVar[tuple[str, ...]] = VALUE_CHECKS


class ExpectRegistryTownshipsKnown(RegistryCheckFamily):
    member_kinds: ClassVar[tuple[str, ...]] = ("township_unknown",)


class ExpectRegistryKeysUnique(RegistryCheckFamily):
    member_kinds: ClassVar[tuple[str, ...]] = UNIQUE_CHECKS
    metric_dependencies = ("duikou.registry_key_repeats",)


def _family_of(check_id: str, col: RegistryColumn) -> type[RegistryCheckFamily]:
    if check_id in UNIQUE_CHECKS:
        return ExpectRegistryKeysUnique
    if check_id == "township_unknown":
        return ExpectRegistryTownshipsKnown
    if check_id in ID_CHECKS or col.role == "person_id":
        return ExpectRegistryPersonIdsValid
    return ExpectRegistryValuesValid


def family_name(declaration: RegistryDeclaration, check_id: str) -> str:
    """The GX family (or families) that validate a declared check kind, for ``dq_result``."""
    names = sorted({_family_of(check_id, col).__name__ for col in declaration.columns_checked_by(check_id)})
    return " + ".join(names) or "—"


def checked_columns(declaration: RegistryDeclaration) -> tuple[str, ...]:
    """The columns the row suite reads: those a declared check runs on (``RegistryColumn.checks``;
    ``id_sex`` runs on the sex column and reads the person id, which has checks of its own)."""
    return tuple(c.name for c in declaration.columns if c.checks())


def chunk_frame(table: pa.Table, source_rows: np.ndarray, codes: pa.Array,
                columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The frame GX validates for one chunk: its columns as read (Arrow-backed, not copied) —
    with ``columns``, only those of them the chunk has (GX fingerprints every column of a batch it
    loads: a column no check reads would cost that for nothing) — the resolved township codes,
    indexed by file row."""
    if columns is not None:
        table = table.select([c for c in columns if c in table.column_names])
    frame = table.append_column(TOWNSHIP_CODE_COLUMN, codes).to_pandas(types_mapper=pd.ArrowDtype)
    frame.index = pd.Index(source_rows)
    return frame


def registry_suite(declaration: RegistryDeclaration, snapshot: date) -> tuple[Any, dict[str, Any]]:
    """(the row-check suite for every chunk, column → the uniqueness suite of its keys) of the
    declaration: every check each declared column runs (``RegistryColumn.checks``), in families."""
    import great_expectations as gx

    id_col = declaration.role("person_id")
    families: dict[type[RegistryCheckFamily], list[dict[str, Any]]] = {}
    for col in declaration.columns:
        for check_id in col.checks():
            check: dict[str, Any] = {"check_id": check_id, "column": column_spec(col)}
            if check_id == "id_sex":
                check["person_id"] = column_spec(id_col)
            families.setdefault(_family_of(check_id, col), []).append(check)
    rows = [kind(checks=checks, snapshot=snapshot.isoformat(), meta={"family": kind.__name__})
            for kind, checks in families.items() if kind is not ExpectRegistryKeysUnique]
    unique = [ExpectRegistryKeysUnique(checks=[c], meta={"family": "ExpectRegistryKeysUnique"})
              for c in families.get(ExpectRegistryKeysUnique, [])]
    return (gx.ExpectationSuite(name=f"{declaration.dataset}_rows", expectations=rows),
            {c.checks[0]["column"]["name"]: gx.ExpectationSuite(
                name=f"{declaration.dataset}_unique_{c.checks[0]['column']['name']}", expectations=[c])
             for c in unique})


def validate_frame(frame: pd.DataFrame, suite: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """ONE GX validate() of ``frame`` against ``suite``: each check's outcome by (check id, column).

    A family GX could not evaluate raises :class:`RegistryGxError` (the snapshot is not judged on
    a check that did not run)."""
    from great_expectations.validator.v1_validator import Validator

    from tasks.validation.validate import GX_LOCK, _gx_batch_definition  # the process's one GX context

    batch_definition = _gx_batch_definition()
    with GX_LOCK:
        # the validator ``Batch.validate`` builds, built directly: ``get_batch`` and then
        # ``Batch.validate`` load the frame twice, and each load fingerprints it (GX hashes every
        # pandas batch under 1 GB: at 250 000 rows × 13 text columns that hash costs about as much
        # as the checks themselves)
        validator = Validator(batch_definition, batch_parameters={"dataframe": frame},
                              result_format={"result_format": "BASIC", "partial_unexpected_count": 0})
        result = validator.validate_expectation_suite(suite)
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for family in result.results:
        info = family.exception_info or {}
        if isinstance(info, dict) and info.get("raised_exception"):
            raise RegistryGxError(f"GX could not evaluate {getattr(family.expectation_config, 'type', '?')}: "
                                  f"{info.get('exception_message')}")
        for key, outcome in family.result["details"]["checks"].items():
            check_id, _, column = key.partition("|")
            out[(check_id, column)] = outcome
    return out


class RegistryGxError(RuntimeError):
    """A registry check family raised inside GX."""
