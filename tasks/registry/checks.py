"""The registry's row checks, vectorised over Arrow batches, and the person rows the checked rows yield.

``row_check_masks`` is pure: it takes a batch of canonical string columns and the checks to run
(check kind, column) and returns a boolean mask per check; it is the metric GX's registry
families evaluate (``tasks/registry/gx_checks.py``), so GX decides. ``person_rows`` builds the
typed ``fact_person`` rows (person key instead of ID, no name) of a checked batch; head counts
are the marts' (SQL over fact_person). No Python loop runs per row except the HMAC of each valid
ID (two copied SHA-256 states, ~2.5 µs: ``person_keys``). Findings refer to rows by number; the ID
and the name never enter a message.

``Findings`` accumulates GX's outcomes across chunks (the first ``MAX_LISTED_ROWS`` rows per
check listed, all counted) and the keys of the uniqueness checks validated after the last chunk
(the valid IDs' 17 digits as int64 and their rows as int32: 240 MB for 20 000 000 people, kept
in ``KEY_PARTITIONS`` partitions that GX validates one at a time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Boolean, Float, Integer

from expectations.registry_declaration import RegistryColumn, RegistryDeclaration
from tasks.forms.townships import TownshipResolver
from tasks.registry.idcard import IdChecks, check_ids
from tasks.registry.keyworker import DIGEST_BYTES, ID_BYTES, hmac_states
from tasks.registry.keyworker import digests as hmac_digests
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


_HEX_PAIRS = np.frombuffer(b"".join(f"{b:02x}".encode("ascii") for b in range(256)), dtype=np.uint8).reshape(256, 2)


def valid_id_bytes(normalised_ids: pa.Array, valid: np.ndarray) -> bytes:
    """The valid IDs' bytes, concatenated: 18 ASCII bytes each (``idcard.ID_PATTERN``; checked),
    read straight from the Arrow buffer."""
    values = normalised_ids.filter(pa.array(np.asarray(valid, dtype=bool)))
    values = pa.concat_arrays([pc.cast(values, pa.string())])  # own buffers, offsets from 0
    n = len(values)
    if n == 0:
        return b""
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32, count=n + 1)
    if offsets[0] != 0 or not (np.diff(offsets) == ID_BYTES).all():
        raise ValueError(f"person keys are computed from well-formed IDs of {ID_BYTES} bytes only")
    return values.buffers()[2].to_pybytes()[:ID_BYTES * n]


def keys_from_digests(digests: bytes, valid: np.ndarray) -> pa.Array:
    """The person-key column: each valid row's digest (32 bytes, in order) as 64 lowercase hex
    characters, null on the other rows — one array operation, no per-row Python."""
    valid = np.asarray(valid, dtype=bool)
    n = len(valid)
    width = 2 * DIGEST_BYTES
    if len(digests) != DIGEST_BYTES * int(valid.sum()):
        raise ValueError("one digest per valid ID")
    hexed = _HEX_PAIRS[np.frombuffer(digests, dtype=np.uint8)].tobytes()
    offsets = np.concatenate([np.zeros(1, dtype=np.int32), np.cumsum(np.where(valid, width, 0), dtype=np.int32)])
    validity = None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little").tobytes())
    return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets.tobytes()), pa.py_buffer(hexed)],
                                 null_count=int(n - valid.sum()))


def person_keys(normalised_ids: pa.Array, valid: np.ndarray, key: bytes) -> pa.Array:
    """Hex HMAC-SHA256 of each valid ID under ``key`` (null for invalid rows): byte for byte
    ``hmac.new(key, id, "sha256").hexdigest()`` (tested) — existing warehouses link people across
    snapshots by these values. From the key's two precomputed states (``hmac_states``); the
    stream has the same loop run in a helper process (``tasks/registry/keyworker.py``)."""
    inner, outer = hmac_states(key)
    return keys_from_digests(hmac_digests(valid_id_bytes(normalised_ids, valid), inner, outer), valid)


def text_column(table: pa.Table, name: str) -> pa.Array:
    """A column trimmed, blanks as null (absent: all null)."""
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


#: the check kinds evaluated from the person-id column (one parse of the IDs serves them all)
ID_CHECKS = ("id_excel_mangled", "id_format", "id_check_digit", "id_birth_date", "age_band", "id_sex")
#: the value checks of one column (``_column_checks``)
VALUE_CHECKS = ("value_missing", "value_not_allowed", "value_not_number", "value_not_integer", "value_not_date",
                "value_out_of_range")
#: checks over all rows at once (after the last batch)
UNIQUE_CHECKS = ("id_duplicate", "value_duplicate")


def row_check_masks(
    table: pa.Table, checks: list[tuple[str, RegistryColumn, RegistryColumn | None]], snapshot: date,
    township_codes: pa.Array | None = None,
) -> dict[tuple[str, str], tuple[np.ndarray, pa.Array | None]]:
    """Evaluate row checks on one batch: ``(check_id, column) → (failing rows mask, offending values)``.

    ``checks``: (check kind, the column it runs on, for ``id_sex`` the person-id column / None). The
    offending values are the column's non-personal values, for messages (None for the person id
    and the name). ``township_unknown`` reads ``township_codes`` (the resolved code per row, the
    stream's normalisation, like a form's township column). What runs, where, comes from the
    declaration (``RegistryColumn.checks``); this is GX's metric over a registry batch
    (``tasks.registry.gx_checks``).
    """
    n = table.num_rows
    out: dict[tuple[str, str], tuple[np.ndarray, pa.Array | None]] = {}
    id_checks = [(c, col, sex) for c, col, sex in checks if c in ID_CHECKS or (c == "value_missing"
                                                                               and col.role == "person_id")]
    if id_checks:
        names = [col.name if c != "id_sex" else (partner.name if partner is not None else None)
                 for c, col, partner in id_checks]
        id_name = next((n for n in names if n is not None), None)
        if id_name is None:
            raise ValueError("id_sex needs the person-id column it compares with")
        ids = check_ids(table.column(id_name).combine_chunks(), snapshot)
        for check_id, col, _ in id_checks:
            if check_id == "value_missing":
                out[(check_id, col.name)] = (ids.missing, None)
            elif check_id == "id_excel_mangled":
                out[(check_id, col.name)] = (ids.excel_mangled, None)
            elif check_id == "id_format":
                out[(check_id, col.name)] = (ids.bad_format, None)
            elif check_id == "id_check_digit":
                out[(check_id, col.name)] = (ids.bad_check_digit, None)
            elif check_id == "id_birth_date":
                out[(check_id, col.name)] = (ids.bad_birth_date, None)
            elif check_id == "age_band" and col.age_band is not None:
                band = col.age_band
                max_age = np.where(ids.male, band.max_male, band.max_female)
                out[(check_id, col.name)] = (ids.valid & ((ids.age < band.min_age) | (ids.age > max_age)), None)
        for c, sex_col, _ in id_checks:
            if c != "id_sex":
                continue
            sex = text_column(table, sex_col.name)
            known = _np(pc.is_in(sex, value_set=pa.array([sex_col.male, sex_col.female], type=pa.string())))
            stated_male = _np(pc.equal(sex, sex_col.male))
            well = ids.well_formed & ~ids.bad_birth_date
            out[("id_sex", sex_col.name)] = (well & known & (stated_male != ids.male), None)
    value_columns = {col.name: col for c, col, _ in checks if c in VALUE_CHECKS and col.role != "person_id"}
    for name, col in value_columns.items():
        masks: dict[tuple[str, str], np.ndarray] = {}
        details: dict[tuple[str, str], pa.Array] = {}
        texts = {name: text_column(table, name)}
        _column_checks(col, texts, masks, details, {}, n)
        for c, checked, _ in checks:
            if checked.name == name and c in VALUE_CHECKS:
                personal = col.role == "name"
                mask = masks.get((c, name), np.zeros(n, dtype=bool))
                out[(c, name)] = (mask, None if personal else details.get((c, name)))
    for c, col, _ in checks:
        if c == "township_unknown":
            if township_codes is None:
                raise ValueError("township_unknown needs the resolved township codes")
            names = text_column(table, col.name)
            out[(c, col.name)] = (_np(pc.is_valid(names)) & ~_np(pc.is_valid(township_codes)), names)
    return out


@dataclass
class PersonRows:
    """One batch's ``fact_person`` rows (None unless asked for) and its keys for the uniqueness checks."""

    rows: pa.Table | None
    number17: np.ndarray  # valid IDs' 17 digits (the person id declared unique), else empty
    source_rows: np.ndarray  # of number17's rows
    #: column declared unique (not the ID) → (its present values, their file rows)
    unique_values: dict[str, tuple[pa.Array, np.ndarray]] = field(default_factory=dict)


def person_rows(
    table: pa.Table,
    source_rows: np.ndarray,
    declaration: RegistryDeclaration,
    snapshot: date,
    codes: pa.Array,
    key: bytes,
    warned: np.ndarray | None,
    ids: IdChecks | None = None,
    keys: pa.Array | None = None,
) -> PersonRows:
    """The batch's typed ``fact_person`` rows (person key instead of ID, no name), ``flagged`` where
    ``warned`` (the rows a warning check failed, as GX reported them); with ``warned`` None only the
    uniqueness keys (a batch after a critical finding is not written, but its duplicates are listed).

    Generic over the declaration: where each column is stored comes from its declared role, type
    and keys (``expectations/registry_declaration.py``). ``ids``: the batch's ID column already
    checked (the stream parses it once); ``keys``: the person keys already computed for it
    (``tasks/registry/keyworker.py``); either is computed here when not given.
    """
    n = table.num_rows
    id_col = declaration.role("person_id")
    if ids is None:
        ids = check_ids(table.column(id_col.name).combine_chunks(), snapshot)
    good = ids.valid
    texts = {c.name: text_column(table, c.name) for c in declaration.columns if c.role != "person_id"}
    unique_values: dict[str, tuple[pa.Array, np.ndarray]] = {}
    for col in declaration.columns:
        if col.unique and col.role != "person_id":
            present = _np(pc.is_valid(texts[col.name]))
            unique_values[col.name] = (texts[col.name].filter(pa.array(present)), source_rows[present])
    numbers = ids.number17[good] if id_col.unique else np.zeros(0, dtype=np.int64)
    numbers_rows = source_rows[good] if id_col.unique else numbers
    if warned is None:
        return PersonRows(None, numbers, numbers_rows, unique_values)
    typed: dict[str, pa.Array] = {}
    for col in declaration.columns:
        if col.role not in ("person_id", "name"):
            _column_checks(col, texts, {}, {}, typed, n)
    columns: dict[str, pa.Array] = {
        "source_row": pa.array(source_rows, type=pa.int64()),
        "person_key": keys if keys is not None else person_keys(ids.normalised, good, key),
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
    return PersonRows(rows, numbers, numbers_rows, unique_values)


@dataclass
class Listed:
    """Rows failing one check on one column: the first ``MAX_LISTED_ROWS`` kept, all counted."""

    rows: list[int] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    count: int = 0


#: the ID keys of the uniqueness check are kept in this many partitions (``key_partition``), each
#: validated by its own GX call after the last chunk: a repeated ID has one number, so all its rows
#: fall in one partition, and the end-of-file step holds one partition's sort and frame at a time
#: (20 M people: ~2.5 M keys, ~60 MB of working memory instead of ~560 MB in one piece)
KEY_PARTITIONS = 8
_SPREAD = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio, odd: Fibonacci hashing


def key_partition(numbers: np.ndarray, partitions: int) -> np.ndarray:
    """The partition (0 … ``partitions`` − 1) of each ID's 17 digits: the number times an odd
    64-bit constant, its high bits — even, whatever digits vary (the ID's last three digits alone
    decide ``number mod 8``, and a register's sequence codes need not cover them evenly). Equal
    numbers, equal partitions."""
    if partitions == 1:
        return np.zeros(len(numbers), dtype=np.int64)
    spread = numbers.astype(np.uint64) * _SPREAD  # wraps mod 2**64, as meant
    return (spread >> np.uint64(40)).astype(np.int64) % partitions


@dataclass
class Findings:
    """Everything the checks (GX's outcomes) found in a whole submission so far, and the keys of
    the uniqueness checks: the valid IDs' 17 digits as int64 and their rows as int32 (12 bytes a
    person), in ``KEY_PARTITIONS`` partitions by the number mod ``KEY_PARTITIONS``; other unique
    columns' values."""

    listed: dict[tuple[str, str], Listed] = field(default_factory=dict)
    rows_read: int = 0
    partitions: int = field(default_factory=lambda: KEY_PARTITIONS)
    _numbers: list[list[np.ndarray]] = field(default_factory=list)
    _rows: list[list[np.ndarray]] = field(default_factory=list)
    _unique: dict[str, list[tuple[pa.Array, np.ndarray]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._numbers = [[] for _ in range(self.partitions)]
        self._rows = [[] for _ in range(self.partitions)]

    def add_outcomes(self, outcomes: dict[tuple[str, str], dict[str, Any]], n_rows: int) -> None:
        """One chunk's GX outcomes: per (check, column) the failing rows (all counted, the first
        ``MAX_LISTED_ROWS`` listed with their offending value when the column is not personal)."""
        self.rows_read += n_rows
        for where, outcome in outcomes.items():
            count = int(outcome["unexpected_count"])
            if not count:
                continue
            entry = self.listed.setdefault(where, Listed())
            entry.count += count
            room = MAX_LISTED_ROWS - len(entry.rows)
            if room > 0:
                rows = [int(r) for r in outcome["unexpected_rows"][:room]]
                values = outcome.get("listed_values")
                entry.rows.extend(rows)
                entry.values.extend(values[:len(rows)] if values is not None else [None] * len(rows))

    def add_keys(self, batch: PersonRows) -> None:
        numbers, rows = batch.number17, batch.source_rows.astype(np.int32)
        if len(numbers):
            part = key_partition(numbers, self.partitions)
            order = np.argsort(part, kind="stable")
            bounds = np.cumsum(np.bincount(part, minlength=self.partitions))[:-1]
            for p, (n, r) in enumerate(zip(np.split(numbers[order], bounds), np.split(rows[order], bounds),
                                           strict=True)):
                if len(n):
                    self._numbers[p].append(n)
                    self._rows[p].append(r)
        for name, pair in batch.unique_values.items():
            self._unique.setdefault(name, []).append(pair)

    def key_frames(self, id_column: str) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
        """(column, keys, file rows) of each uniqueness check, freeing the parts as it goes: the
        ID column once per key partition (each repeated ID's rows all in one), other unique
        columns once each."""
        for p in range(self.partitions):
            if not self._numbers[p]:
                continue
            numbers, rows = np.concatenate(self._numbers[p]), np.concatenate(self._rows[p])
            self._numbers[p], self._rows[p] = [], []
            yield id_column, numbers, rows
            del numbers, rows
        for name, parts in list(self._unique.items()):
            values = pa.concat_arrays([v for v, _ in parts]) if parts else pa.array([], pa.string())
            rows = np.concatenate([r for _, r in parts]) if parts else np.zeros(0, dtype=np.int64)
            codes = pc.dictionary_encode(values).indices.to_numpy(zero_copy_only=False).astype(np.int64)
            del self._unique[name]
            yield name, codes, rows

    def add_groups(self, where: tuple[str, str], outcome: dict[str, Any]) -> None:
        """A uniqueness check's GX outcome: one finding per repeated key, its rows listed together."""
        if not outcome["unexpected_count"]:
            return
        entry = self.listed.setdefault(where, Listed())
        entry.count += int(outcome["unexpected_count"])
        for group in outcome["groups"][:MAX_LISTED_ROWS - len(entry.rows)]:
            entry.rows.append(group[0])
            entry.values.append("、".join(f"第{r}行" for r in group))
