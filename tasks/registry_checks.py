"""The registry's row checks, vectorised over one Arrow batch, and the person rows they yield.

``check_batch`` is pure: it takes a batch of canonical string columns and returns a boolean
mask per declared check (``RegistryCheck.check_id``), the typed rows ready for ``fact_person``
(person key instead of ID, no name) and per-township head counts. No Python loop runs per row
except the HMAC of each valid ID (``hmac.digest``, C, ~1 µs). Findings refer to rows by number;
the ID and the name never enter a message.

``Findings`` accumulates masks as row numbers across batches (the first ``MAX_LISTED_ROWS`` per
check are listed, all are counted) and the 17-digit ID numbers for the duplicate check at the
end (int64: 16 MB for 2 000 000 people).
"""

from __future__ import annotations

import hmac
from collections import Counter
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from expectations.registry_declaration import RegistryColumn, RegistryDeclaration
from tasks.idcard import check_ids
from tasks.townships import TownshipResolver

MAX_LISTED_ROWS = 100
TRADE_SEPARATORS = r"[、,，;；/]"
_NUMBER = r"^-?[0-9]+(\.[0-9]+)?$"
#: fact_person columns filled from a batch (the ledger adds submission_id)
PERSON_COLUMNS = (
    "source_row", "person_key", "township_code", "village", "sex", "birth_year", "age_years", "ethnicity",
    "education_level", "poor_household", "employment_status", "monthly_income_yuan", "training_trades",
    "training_person_times", "certificate_level", "flagged",
)


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
    township_counts: Counter[tuple[str, str]]  # (township_code, count name) → people
    number17: np.ndarray  # valid IDs' 17 digits
    source_rows: np.ndarray  # of number17's rows


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


def _enum_masks(col: RegistryColumn, values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(missing required, not an allowed value)."""
    present = _np(pc.is_valid(values))
    missing = ~present if col.required else np.zeros(len(values), dtype=bool)
    allowed = pa.array(col.values, type=pa.string())
    not_allowed = present & ~_np(pc.is_in(values, value_set=allowed))
    return missing, not_allowed


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
    """Every declared check on one batch; ``build_rows`` also computes the fact_person rows."""
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

    texts = {c.name: _text(table, c.name) for c in declaration.columns if c.role not in ("person_id",)}
    for col in declaration.columns:
        if col.role == "name":
            masks[("value_missing", col.name)] = ~_np(pc.is_valid(texts[col.name]))
        elif col.type == "enum":
            missing, not_allowed = _enum_masks(col, texts[col.name])
            masks[("value_missing", col.name)] = missing
            masks[("value_not_allowed", col.name)] = not_allowed
            details[("value_not_allowed", col.name)] = texts[col.name]
        elif col.type == "boolean":
            values = texts[col.name]
            known = pa.array([*col.true_values, *col.false_values], type=pa.string())
            present = _np(pc.is_valid(values))
            masks[("value_missing", col.name)] = ~present
            masks[("value_not_allowed", col.name)] = present & ~_np(pc.is_in(values, value_set=known))
            details[("value_not_allowed", col.name)] = values
        elif col.type == "decimal":
            values = pc.replace_substring(texts[col.name], ",", "")
            present = _np(pc.is_valid(values))
            numeric = _np(pc.match_substring_regex(values, _NUMBER))
            masks[("value_missing", col.name)] = ~present if col.required else np.zeros(n, dtype=bool)
            masks[("value_not_number", col.name)] = present & ~numeric
            details[("value_not_number", col.name)] = texts[col.name]
            number = pc.cast(pc.if_else(pa.array(numeric), values, pa.scalar(None, pa.string())), pa.float64())
            texts[col.name] = number
            low = col.min_value if col.min_value is not None else -np.inf
            high = col.max_value if col.max_value is not None else np.inf
            masks[("value_out_of_range", col.name)] = _np(pc.or_(pc.less(number, low), pc.greater(number, high)))
            details[("value_out_of_range", col.name)] = texts[col.name]
        elif col.role in ("township", "data") and col.required:
            masks[("value_missing", col.name)] = ~_np(pc.is_valid(texts[col.name]))

    township_col = declaration.role("township")
    codes = townships.codes(texts[township_col.name])
    masks[("township_unknown", township_col.name)] = _np(pc.is_valid(texts[township_col.name])) & ~_np(
        pc.is_valid(codes))
    details[("township_unknown", township_col.name)] = texts[township_col.name]

    sex = texts["sex"]
    sex_known = _np(pc.is_in(sex, value_set=pa.array(["男", "女"])))
    stated_male = _np(pc.equal(sex, "男"))
    well = ids.well_formed & ~ids.bad_birth_date
    masks[("id_sex", "sex")] = well & sex_known & (stated_male != ids.male)
    age_check = declaration.check("age_band").params
    max_age = np.where(ids.male, age_check["max_age_male"], age_check["max_age_female"])
    good = ids.valid
    masks[("age_band", id_col.name)] = good & ((ids.age < age_check["min_age"]) | (ids.age > max_age))

    critical = {c.check_id for c in declaration.checks if c.severity == "critical"}
    any_critical = any(mask.any() for (check_id, _), mask in masks.items() if check_id in critical)
    warned = np.zeros(n, dtype=bool)
    for (check_id, _), mask in masks.items():
        if check_id not in critical:
            warned |= mask

    counts: Counter[tuple[str, str]] = Counter()
    rows: pa.Table | None = None
    if build_rows and not any_critical:
        poor_col = declaration.column("poor_household")
        poor = pc.is_in(texts["poor_household"], value_set=pa.array(list(poor_col.true_values), type=pa.string()))
        trades = texts.get("training_trades", pa.nulls(n, pa.string()))
        times = pc.if_else(pc.is_valid(trades),
                           pc.add(pc.count_substring_regex(trades, TRADE_SEPARATORS), 1), 0)
        rows = pa.table({
            "source_row": pa.array(source_rows, type=pa.int64()),
            "person_key": person_keys(ids.normalised, good, key),
            "township_code": codes,
            "village": texts["village"],
            "sex": sex,
            "birth_year": pa.array(ids.birth_year, type=pa.int64()),
            "age_years": pa.array(ids.age, type=pa.int64()),
            "ethnicity": texts.get("ethnicity", pa.nulls(n, pa.string())),
            "education_level": texts["education_level"],
            "poor_household": pc.fill_null(poor, False),
            "employment_status": texts["employment_status"],
            "monthly_income_yuan": texts["monthly_income_yuan"],
            "training_trades": trades,
            "training_person_times": pc.cast(times, pa.int64()),
            "certificate_level": texts.get("certificate_level", pa.nulls(n, pa.string())),
            "flagged": pa.array(warned),
        })
        grouped = pa.table({"t": codes, "poor": pc.cast(pc.fill_null(poor, False), pa.int64())}).group_by(
            "t").aggregate([("poor", "count"), ("poor", "sum")])
        for code, persons, poor_n in zip(grouped["t"].to_pylist(), grouped["poor_count"].to_pylist(),
                                         grouped["poor_sum"].to_pylist(), strict=True):
            counts[(code, "persons")] += persons
            counts[(code, "poor_persons")] += poor_n
    # duplicates among valid IDs only: an invalid one is already reported for what is wrong with it
    return CheckedBatch(masks, details, rows, counts, ids.number17[good], source_rows[good])


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
    township_counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    _numbers: list[np.ndarray] = field(default_factory=list)
    _rows: list[np.ndarray] = field(default_factory=list)

    def add(self, batch: CheckedBatch, first_row: int, n_rows: int) -> None:
        self.rows_read += n_rows
        self.township_counts.update(batch.township_counts)
        self._numbers.append(batch.number17)
        self._rows.append(batch.source_rows)
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
        order = np.argsort(numbers, kind="stable")
        ordered = numbers[order]
        repeated = np.zeros(len(ordered), dtype=bool)
        if len(ordered) > 1:
            same = ordered[1:] == ordered[:-1]
            repeated[1:] |= same
            repeated[:-1] |= same
        if not repeated.any():
            return
        # rows grouped by ID (each group's rows together, groups by first row), never the ID itself
        dup_rows = rows[order][repeated]
        dup_ids = ordered[repeated]
        starts = np.flatnonzero(np.r_[True, dup_ids[1:] != dup_ids[:-1]])
        groups = sorted((sorted(int(r) for r in g) for g in np.split(dup_rows, starts[1:])), key=lambda g: g[0])
        entry = self.listed.setdefault(("id_duplicate", id_column), Listed())
        for group in groups:
            entry.count += 1  # one per repeated ID (its rows are listed together)
            if len(entry.rows) < MAX_LISTED_ROWS:
                entry.rows.append(group[0])
                entry.values.append("、".join(f"第{r}行" for r in group))
