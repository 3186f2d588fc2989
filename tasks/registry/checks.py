"""The registry's row checks, vectorised over one Arrow batch, and the person rows they yield.

``check_batch`` is pure: it takes a batch of canonical string columns and returns a boolean
mask per declared check (``RegistryCheck.check_id``), the typed rows ready for ``fact_person``
(person key instead of ID, no name); head counts are the marts' (SQL over fact_person). No Python loop runs per row
except the HMAC of each valid ID (``hmac.digest``, C, ~1 µs). Findings refer to rows by number;
the ID and the name never enter a message.

``Findings`` accumulates masks as row numbers across batches (the first ``MAX_LISTED_ROWS`` per
check are listed, all are counted) and the 17-digit ID numbers for the duplicate check at the
end (int64: 16 MB for 2 000 000 people).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Boolean, Float, Integer

from expectations.registry_declaration import RegistryColumn, RegistryDeclaration
from tasks.forms.townships import TownshipResolver
from tasks.registry.idcard import check_ids
from warehouse.schema import fact_person as PERSON_TABLE

MAX_LISTED_ROWS = 100
LIST_SEPARATORS = r"[、,，;；/]"
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
_INTEGER = r"^-?[0-9]+$"
_DATE = r"^(?P<y>[0-9]{4})[-/.年]?(?P<m>[0-9]{1,2})[-/.月]?(?P<d>[0-9]{1,2})日?$"
#: fact_person columns (the ledger adds submission_id) and the Arrow type each is written as
PERSON_COLUMNS = tuple(c.name for c in PERSON_TABLE.columns if c.name != "submission_id")


def _arrow_type(column: Any) -> pa.DataType:
    if isinstance(column.type, Boolean):
        return pa.bool_()
    if isinstance(column.type, Integer):
        return pa.int64()
    if isinstance(column.type, Float):
        return pa.float64()
    return pa.string()


PERSON_TYPES = {c.name: _arrow_type(c) for c in PERSON_TABLE.columns}


class MissingPersonKey(RuntimeError):
    """``DUIKOU_PERSON_KEY`` is not set: registries cannot be ingested without it."""


def person_keys(normalised_ids: pa.Array, valid: np.ndarray, key: bytes) -> pa.Array:
    """Hex HMAC-SHA256 of each valid ID under ``key`` (null for invalid rows)."""
    ids = normalised_ids.to_pylist()
    digest = hmac.digest
    return pa.array(
        [digest(key, i.encode("ascii"), "sha256").hex() if ok else None for i, ok in zip(ids, valid, strict=True)],
        type=pa.string(),
    )


@dataclass
class CheckedBatch:
    masks: dict[tuple[str, str], np.ndarray]  # (check_id, column name) → rows failing
    details: dict[tuple[str, str], pa.Array]  # (check_id, column) → the offending value per row (non-personal)
    rows: pa.Table | None  # fact_person columns (None when the batch has a critical finding)
    number17: np.ndarray  # valid IDs' 17 digits
    source_rows: np.ndarray  # of number17's rows
    #: column declared unique (not the ID) → (its present values, their file rows)
    unique_values: dict[str, tuple[pa.Array, np.ndarray]] = field(default_factory=dict)


def _text(table: pa.Table, name: str) -> pa.Array:
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    column = table.column(name).combine_chunks()
    trimmed = pc.utf8_trim_whitespace(column)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def _np(mask: pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


@dataclass
class TownshipCodes:
    """Township text → code, cached over the batches of one submission."""

    resolver: TownshipResolver
    cache: dict[str, str | None] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def codes(self, names: pa.Array) -> pa.Array:
        uniques = pc.unique(names).drop_null()
        for name in uniques.to_pylist():
            if name not in self.cache:
                found = self.resolver.resolve(name)
                self.cache[name] = found.township_code
                if found.township_code is None:
                    self.problems[name] = found.problem or "乡镇名称无法识别"
        lookup = pa.array([self.cache[n] for n in uniques.to_pylist()], type=pa.string())
        return lookup.take(pc.index_in(names, uniques))


def _canonical(col: RegistryColumn, values: pa.Array) -> pa.Array:
    """An enum's declared aliases read as their values (``value_aliases``); others unchanged."""
    if not col.value_aliases:
        return values
    aliases = pa.array([a for a, _ in col.value_aliases], type=pa.string())
    targets = pa.array([v for _, v in col.value_aliases], type=pa.string())
    found = pc.index_in(values, value_set=aliases)
    return pc.if_else(pc.is_valid(found), targets.take(found), values)


def _dates(values: pa.Array) -> pa.Array:
    """Text → date32 (YYYY-MM-DD, YYYY/MM/DD, YYYY.MM.DD, YYYY年M月D日, YYYYMMDD); null if not a real date."""
    parts = pc.extract_regex(values, _DATE)
    year, month, day = (pc.struct_field(parts, i) for i in range(3))
    iso = pc.binary_join_element_wise(year, pc.utf8_lpad(month, 2, "0"), pc.utf8_lpad(day, 2, "0"), "-")
    parsed = pc.strptime(iso, format="%Y-%m-%d", unit="s", error_is_null=True)
    # strptime rolls 2017-02-30 over to 2017-03-02: a real date is one that formats back to itself
    real = pc.equal(pc.strftime(parsed, format="%Y-%m-%d"), iso)
    return pc.cast(pc.if_else(real, parsed, pa.scalar(None, parsed.type)), pa.date32())


def _range_mask(col: RegistryColumn, typed: pa.Array) -> np.ndarray:
    if col.type == "date":
        low = pa.scalar(col.min_date, pa.date32()) if col.min_date is not None else None
        high = pa.scalar(col.max_date, pa.date32()) if col.max_date is not None else None
    else:
        low = col.min_value if col.min_value is not None else -np.inf
        high = col.max_value if col.max_value is not None else np.inf
        if col.type == "integer":
            typed = pc.cast(typed, pa.float64())
    out = np.zeros(len(typed), dtype=bool)
    if low is not None:
        out |= _np(pc.less(typed, low))
    if high is not None:
        out |= _np(pc.greater(typed, high))
    return out


def _column_checks(col: RegistryColumn, texts: dict[str, pa.Array], masks: dict[tuple[str, str], np.ndarray],
                   details: dict[tuple[str, str], pa.Array], typed: dict[str, pa.Array], n: int) -> None:
    """The value checks one declared column runs (value_missing, its type's check, its range)."""
    values = texts[col.name]
    if col.role == "name":
        masks[("value_missing", col.name)] = ~_np(pc.is_valid(values))
        return
    if col.type == "text" or col.type == "list":  # no value check: only a required one is looked at
        if col.required:
            masks[("value_missing", col.name)] = ~_np(pc.is_valid(values))
        typed[col.name] = values
        return
    present = _np(pc.is_valid(values))
    masks[("value_missing", col.name)] = ~present if col.required else np.zeros(n, dtype=bool)
    if col.type == "enum":
        values = texts[col.name] = _canonical(col, values)
        allowed = pa.array(col.values, type=pa.string())
        masks[("value_not_allowed", col.name)] = present & ~_np(pc.is_in(values, value_set=allowed))
        details[("value_not_allowed", col.name)] = values
        typed[col.name] = values
    elif col.type == "boolean":
        known = pa.array([*col.true_values, *col.false_values], type=pa.string())
        masks[("value_not_allowed", col.name)] = present & ~_np(pc.is_in(values, value_set=known))
        details[("value_not_allowed", col.name)] = values
        truth = pc.is_in(values, value_set=pa.array(list(col.true_values), type=pa.string()))
        # a blank stays unknown (null); a required column's blank rejects the batch before rows are built
        typed[col.name] = truth if col.required else pc.if_else(pc.is_valid(values), truth,
                                                                 pa.scalar(None, pa.bool_()))
    elif col.type in ("decimal", "integer"):
        cleaned = pc.replace_substring(values, ",", "")
        check_id, pattern = ("value_not_number", _NUMBER) if col.type == "decimal" else ("value_not_integer", _INTEGER)
        numeric = _np(pc.match_substring_regex(cleaned, pattern))
        masks[(check_id, col.name)] = present & ~numeric
        details[(check_id, col.name)] = values
        target = pa.float64() if col.type == "decimal" else pa.int64()
        number = pc.cast(pc.if_else(pa.array(numeric), cleaned, pa.scalar(None, pa.string())), target)
        typed[col.name] = number
        if col.has_range:
            masks[("value_out_of_range", col.name)] = _range_mask(col, number)
            details[("value_out_of_range", col.name)] = number
    elif col.type == "date":
        parsed = _dates(values)
        masks[("value_not_date", col.name)] = present & ~_np(pc.is_valid(parsed))
        details[("value_not_date", col.name)] = values
        typed[col.name] = parsed
        if col.has_range:
            masks[("value_out_of_range", col.name)] = _range_mask(col, parsed)
            details[("value_out_of_range", col.name)] = pc.cast(parsed, pa.string())


def _json_text(values: pa.Array) -> pa.Array:
    """Each value as a JSON literal (strings escaped, vectorised); null → ``null``."""
    if pa.types.is_boolean(values.type):
        text = pc.if_else(values, "true", "false")
    elif pa.types.is_string(values.type):
        escaped = pc.replace_substring(values, "\\", "\\\\")
        escaped = pc.replace_substring(escaped, '"', '\\"')
        for raw, code in (("\n", "\\n"), ("\r", "\\r"), ("\t", "\\t")):
            escaped = pc.replace_substring(escaped, raw, code)
        escaped = pc.replace_substring_regex(escaped, "[\\x00-\\x1f]", " ")  # other control characters
        text = pc.binary_join_element_wise('"', escaped, '"', "")
    else:
        if pa.types.is_floating(values.type):
            values = pc.if_else(pc.is_finite(values), values, pa.scalar(None, values.type))
        text = pc.cast(values, pa.string())
    return pc.fill_null(text, "null")


def attributes_json(columns: dict[str, pa.Array], n: int) -> pa.Array:
    """One JSON object per row (column name → value) for the columns ``fact_person`` has no place for."""
    if not columns:
        return pa.nulls(n, pa.string())
    parts: list[Any] = []
    for i, (name, values) in enumerate(columns.items()):
        parts += [("{" if i == 0 else ",") + f'"{name}":', _json_text(values)]
    parts.append("}")
    return pc.binary_join_element_wise(*parts, "")


def _typed_for_store(col: RegistryColumn, values: pa.Array) -> pa.Array:
    if col.type == "date":
        return pc.cast(values, pa.string())  # ISO text: fact_person has no date column of its own
    return values


def check_batch(
    table: pa.Table,
    first_row: int,
    declaration: RegistryDeclaration,
    snapshot: date,
    townships: TownshipCodes,
    key: bytes,
    *,
    build_rows: bool,
) -> CheckedBatch:
    """Every declared check on one batch; ``build_rows`` also computes the fact_person rows.

    Generic over the declaration: which check runs on which column, and where each column is
    stored, come from its declared role, type and keys (``expectations/registry_declaration.py``).
    """
    n = table.num_rows
    source_rows = np.arange(first_row, first_row + n, dtype=np.int64)
    masks: dict[tuple[str, str], np.ndarray] = {}
    details: dict[tuple[str, str], pa.Array] = {}
    id_col = declaration.role("person_id")
    ids = check_ids(table.column(id_col.name).combine_chunks(), snapshot)
    masks[("value_missing", id_col.name)] = ids.missing
    masks[("id_excel_mangled", id_col.name)] = ids.excel_mangled
    masks[("id_format", id_col.name)] = ids.bad_format
    masks[("id_check_digit", id_col.name)] = ids.bad_check_digit
    masks[("id_birth_date", id_col.name)] = ids.bad_birth_date

    texts = {c.name: _text(table, c.name) for c in declaration.columns if c.role != "person_id"}
    typed: dict[str, pa.Array] = {}
    for col in declaration.columns:
        if col.role != "person_id":
            _column_checks(col, texts, masks, details, typed, n)

    township_col = declaration.role("township")
    codes = townships.codes(texts[township_col.name])
    masks[("township_unknown", township_col.name)] = _np(pc.is_valid(texts[township_col.name])) & ~_np(
        pc.is_valid(codes))
    details[("township_unknown", township_col.name)] = texts[township_col.name]

    good = ids.valid
    sex_col = declaration.with_role("sex")
    if sex_col is not None:
        sex = texts[sex_col.name]
        sex_known = _np(pc.is_in(sex, value_set=pa.array([sex_col.male, sex_col.female], type=pa.string())))
        stated_male = _np(pc.equal(sex, sex_col.male))
        well = ids.well_formed & ~ids.bad_birth_date
        masks[("id_sex", sex_col.name)] = well & sex_known & (stated_male != ids.male)
    band = id_col.age_band
    if band is not None:
        max_age = np.where(ids.male, band.max_male, band.max_female)
        masks[("age_band", id_col.name)] = good & ((ids.age < band.min_age) | (ids.age > max_age))

    unique_values: dict[str, tuple[pa.Array, np.ndarray]] = {}
    for col in declaration.columns:
        if col.unique and col.role != "person_id":
            present = _np(pc.is_valid(texts[col.name]))
            unique_values[col.name] = (texts[col.name].filter(pa.array(present)), source_rows[present])

    critical = {c.check_id for c in declaration.checks if c.severity == "critical"}
    any_critical = any(mask.any() for (check_id, _), mask in masks.items() if check_id in critical)
    warned = np.zeros(n, dtype=bool)
    for (check_id, _), mask in masks.items():
        if check_id not in critical:
            warned |= mask

    rows: pa.Table | None = None
    if build_rows and not any_critical:
        columns: dict[str, pa.Array] = {
            "source_row": pa.array(source_rows, type=pa.int64()),
            "person_key": person_keys(ids.normalised, good, key),
            "township_code": codes,
            "birth_year": pa.array(ids.birth_year, type=pa.int64()),
            "age_years": pa.array(ids.age, type=pa.int64()),
            "flagged": pa.array(warned),
        }
        attributes: dict[str, pa.Array] = {}
        for col in declaration.columns:
            if col.role in ("name", "person_id", "township"):
                continue
            value = _typed_for_store(col, typed[col.name])
            if col.name in PERSON_TYPES:
                columns[col.name] = value
            else:
                attributes[col.name] = value
        trainings = declaration.with_role("trainings")
        if trainings is not None:
            items = texts[trainings.name]
            times = pc.if_else(pc.is_valid(items), pc.add(pc.count_substring_regex(items, LIST_SEPARATORS), 1), 0)
            columns["training_person_times"] = pc.cast(times, pa.int64())
        columns["attributes"] = attributes_json(attributes, n)
        rows = pa.table({name: columns[name] if name in columns else pa.nulls(n, PERSON_TYPES[name])
                         for name in PERSON_COLUMNS})
    # duplicates among valid IDs only: an invalid one is already reported for what is wrong with it
    numbers = ids.number17[good] if id_col.unique else np.zeros(0, dtype=np.int64)
    return CheckedBatch(masks, details, rows, numbers, source_rows[good] if id_col.unique else numbers,
                        unique_values)


@dataclass
class Listed:
    """Rows failing one check on one column: the first ``MAX_LISTED_ROWS`` kept, all counted."""

    rows: list[int] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    count: int = 0


@dataclass
class Findings:
    """Everything the checks found in a whole submission so far."""

    listed: dict[tuple[str, str], Listed] = field(default_factory=dict)
    rows_read: int = 0
    _numbers: list[np.ndarray] = field(default_factory=list)
    _rows: list[np.ndarray] = field(default_factory=list)
    _unique: dict[str, list[tuple[pa.Array, np.ndarray]]] = field(default_factory=dict)

    def add(self, batch: CheckedBatch, first_row: int, n_rows: int) -> None:
        self.rows_read += n_rows
        self._numbers.append(batch.number17)
        self._rows.append(batch.source_rows)
        for name, pair in batch.unique_values.items():
            self._unique.setdefault(name, []).append(pair)
        for where, mask in batch.masks.items():
            hits = np.flatnonzero(mask)
            if not len(hits):
                continue
            entry = self.listed.setdefault(where, Listed())
            entry.count += len(hits)
            room = MAX_LISTED_ROWS - len(entry.rows)
            if room > 0:
                take = hits[:room]
                entry.rows.extend(int(first_row + i) for i in take)
                detail = batch.details.get(where)
                entry.values.extend(detail.take(pa.array(take)).to_pylist() if detail is not None
                                    else [None] * len(take))

    def finish_duplicates(self, id_column: str) -> None:
        """The id_duplicate check over all batches: every row of a repeated ID is listed."""
        if not self._numbers:
            return
        numbers = np.concatenate(self._numbers)
        rows = np.concatenate(self._rows)
        self._numbers, self._rows = [], []
        self._list_repeats(numbers, rows, ("id_duplicate", id_column))

    def finish_unique(self) -> None:
        """The value_duplicate check of every other column declared unique, over all batches."""
        for name, parts in self._unique.items():
            values = pa.concat_arrays([v for v, _ in parts]) if parts else pa.array([], pa.string())
            rows = np.concatenate([r for _, r in parts]) if parts else np.zeros(0, dtype=np.int64)
            codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False).astype(np.int64)
            self._list_repeats(codes, rows, ("value_duplicate", name))
        self._unique = {}

    def _list_repeats(self, keys: np.ndarray, rows: np.ndarray, where: tuple[str, str]) -> None:
        """Rows whose key repeats, grouped by key (each group's rows together, groups by first row)."""
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        repeated = np.zeros(len(ordered), dtype=bool)
        if len(ordered) > 1:
            same = ordered[1:] == ordered[:-1]
            repeated[1:] |= same
            repeated[:-1] |= same
        if not repeated.any():
            return
        # rows grouped by key, never the key itself (an ID number must not reach a message)
        dup_rows = rows[order][repeated]
        dup_keys = ordered[repeated]
        starts = np.flatnonzero(np.r_[True, dup_keys[1:] != dup_keys[:-1]])
        groups = sorted((sorted(int(r) for r in g) for g in np.split(dup_rows, starts[1:])), key=lambda g: g[0])
        entry = self.listed.setdefault(where, Listed())
        for group in groups:
            entry.count += 1  # one per repeated key (its rows are listed together)
            if len(entry.rows) < MAX_LISTED_ROWS:
                entry.rows.append(group[0])
                entry.values.append("、".join(f"第{r}行" for r in group))
