"""Reference data: the CSVs under ``warehouse/reference`` and the indicators of the declarations.

Three entry points:

* ``reference_frames()`` — pure reader of the CSVs into pandas frames, for code that needs
  townships, aliases, helper units, pairings and the boundary crosswalk without a database
  (the normaliser, tests).
* ``read_reference(engine)`` — the same frames read back from the ``ref_*`` tables.
* ``load_reference(conn)`` — brings the ``ref_*`` tables in line with the CSVs and the
  declarations inside the caller's transaction (``ensure_warehouse`` calls it).

Loading compares wanted rows with stored rows by primary key and writes only the difference:
new rows are inserted and changed rows updated in place, so a township referenced by
``fact_indicator_value`` is never deleted and re-inserted, and a second call writes nothing.
Rows that disappeared from a source are deleted only from tables nothing else references
(aliases, crosswalk, pairings, helper units); departments, townships and indicators are kept,
because the ledger and the facts may point at them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, RowMapping, Table, and_, select

from expectations.declaration import Declaration, load_declarations
from warehouse import schema

REFERENCE_DIR = Path(str(resources.files("warehouse") / "reference"))

_DATE_COLUMNS = ("valid_from", "valid_to", "effective_date")
_BOOL_COLUMNS = ("verified",)
_FLOAT_COLUMNS = ("factor", "weight")

#: table → CSV file, in foreign-key order (parents first)
CSV_TABLES: tuple[tuple[Table, str], ...] = (
    (schema.ref_department, "departments.csv"),
    (schema.ref_unit, "units.csv"),
    (schema.ref_township, "townships.csv"),
    (schema.ref_township_alias, "township_aliases.csv"),
    (schema.ref_township_crosswalk, "township_crosswalk.csv"),
    (schema.ref_helper_unit, "helper_units.csv"),
    (schema.ref_pairing, "pairings.csv"),
)
#: tables whose vanished rows are deleted (nothing references them, or only pruned tables do)
_PRUNED: tuple[Table, ...] = (
    schema.ref_pairing,
    schema.ref_township_alias,
    schema.ref_township_crosswalk,
    schema.ref_helper_unit,
)


@dataclass(frozen=True)
class ReferenceFrames:
    """Reference data as frames; columns are the ``ref_*`` table's columns, rows sorted by key.

    Codes are strings, dates ``datetime.date`` (``None`` when open-ended), flags ``bool``.
    """

    townships: pd.DataFrame  # ref_township: one row per township
    aliases: pd.DataFrame  # ref_township_alias: one row per (alias, valid_from)
    helper_units: pd.DataFrame  # ref_helper_unit: one row per Chenghua helper unit
    pairings: pd.DataFrame  # ref_pairing: one row per township, dated
    crosswalk: pd.DataFrame  # ref_township_crosswalk: one row per predecessor → successor


def _parse_bool(text: str) -> bool:
    folded = text.strip().lower()
    if folded in ("true", "1", "yes"):
        return True
    if folded in ("false", "0", "no"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _convert(column: str, text: str) -> Any:
    if text == "":
        return None
    if column in _DATE_COLUMNS:
        return date.fromisoformat(text)
    if column in _BOOL_COLUMNS:
        return _parse_bool(text)
    if column in _FLOAT_COLUMNS:
        return float(text)
    return text


def _csv_rows(table: Table, filename: str, directory: Path) -> list[dict[str, Any]]:
    """The CSV's rows typed for ``table``; the CSV must carry exactly the table's columns."""
    raw = pd.read_csv(directory / filename, dtype=str, keep_default_na=False, encoding="utf-8")
    expected = set(_column_names(table))
    if set(raw.columns) != expected:
        raise ValueError(
            f"{filename}: columns {sorted(raw.columns)} differ from {table.name} {sorted(expected)}"
        )
    return [
        {col: _convert(col, str(rec[col]).strip()) for col in _column_names(table)}
        for rec in raw.to_dict(orient="records")
    ]


def indicator_rows(declarations: Mapping[str, Declaration]) -> list[dict[str, Any]]:
    """``ref_indicator`` rows: one per declared indicator (unit = base unit, form_unit = declared)."""
    return [
        {
            "department": decl.department,
            "indicator": ind.name,
            "label_zh": ind.label_zh,
            "unit": ind.base_unit,
            "form_unit": ind.unit,
            "value_type": ind.value_type,
            "cumulative": ind.cumulative,
            "required": ind.required,
            "header_path": "/".join(ind.header),
            "kind": ind.kind,
            "over_townships": ind.over_townships,
            "over_periods": ind.over_periods,
        }
        for decl in declarations.values()
        for ind in decl.indicators
    ]


def _column_names(table: Table) -> list[str]:
    return [c.name for c in table.columns]


def _key_columns(table: Table) -> list[str]:
    return [c.name for c in table.primary_key.columns]


def _frame(table: Table, rows: Sequence[Mapping[str, Any]] | Sequence[RowMapping]) -> pd.DataFrame:
    columns = _column_names(table)
    frame = pd.DataFrame([dict(r) for r in rows], columns=columns).astype(object)
    frame = frame.where(frame.notna(), None)
    return frame.sort_values(_key_columns(table), kind="stable").reset_index(drop=True)


def reference_frames(directory: Path = REFERENCE_DIR) -> ReferenceFrames:
    """Townships, aliases, helper units and pairings read from the CSVs (no database)."""
    files = {table.name: name for table, name in CSV_TABLES}

    def read(table: Table) -> pd.DataFrame:
        return _frame(table, _csv_rows(table, files[table.name], directory))

    frames = ReferenceFrames(
        townships=read(schema.ref_township),
        aliases=read(schema.ref_township_alias),
        helper_units=read(schema.ref_helper_unit),
        pairings=read(schema.ref_pairing),
        crosswalk=read(schema.ref_township_crosswalk),
    )
    problems = crosswalk_problems(frames.townships, frames.crosswalk)
    if problems:
        raise ValueError("; ".join(problems))
    return frames


def read_reference(engine: Engine) -> ReferenceFrames:
    """The same frames as ``reference_frames()``, read from the ``ref_*`` tables."""
    with engine.connect() as conn:

        def read(table: Table) -> pd.DataFrame:
            rows = conn.execute(select(table)).mappings().all()
            return _frame(table, rows)

        return ReferenceFrames(
            townships=read(schema.ref_township),
            aliases=read(schema.ref_township_alias),
            helper_units=read(schema.ref_helper_unit),
            pairings=read(schema.ref_pairing),
            crosswalk=read(schema.ref_township_crosswalk),
        )


def _sync_table(conn: Connection, table: Table, wanted: Sequence[Mapping[str, Any]]) -> int:
    """Insert new rows, update changed rows by key; returns the number of rows written."""
    keys = _key_columns(table)
    stored = {tuple(row[k] for k in keys): dict(row) for row in conn.execute(select(table)).mappings()}
    new: list[dict[str, Any]] = []
    written = 0
    for row in wanted:
        key = tuple(row[k] for k in keys)
        old = stored.get(key)
        if old is None:
            new.append(dict(row))
        elif any(old[c] != row[c] for c in row):
            where = and_(*(table.c[k] == row[k] for k in keys))
            conn.execute(table.update().where(where).values(**row))
            written += 1
    if new:
        conn.execute(table.insert(), new)
    return written + len(new)


def _prune_table(conn: Connection, table: Table, wanted: Sequence[Mapping[str, Any]]) -> int:
    keys = _key_columns(table)
    wanted_keys = {tuple(row[k] for k in keys) for row in wanted}
    stale = [
        key
        for key in conn.execute(select(*(table.c[k] for k in keys)))
        if tuple(key) not in wanted_keys
    ]
    for key in stale:
        conn.execute(table.delete().where(and_(*(table.c[k] == v for k, v in zip(keys, key, strict=True)))))
    return len(stale)


def load_reference(
    conn: Connection,
    directory: Path = REFERENCE_DIR,
    declarations: Mapping[str, Declaration] | None = None,
) -> int:
    """Bring every ``ref_*`` table in line with the CSVs and declarations; rows written.

    Runs in the caller's transaction. Cheap when nothing changed: one SELECT per table.
    """
    decls = load_declarations() if declarations is None else declarations
    wanted: list[tuple[Table, list[dict[str, Any]]]] = [
        (table, _csv_rows(table, filename, directory)) for table, filename in CSV_TABLES
    ]
    wanted.append((schema.ref_indicator, indicator_rows(decls)))
    by_table = {table.name: rows for table, rows in wanted}
    problems = crosswalk_problems(
        _frame(schema.ref_township, by_table["ref_township"]),
        _frame(schema.ref_township_crosswalk, by_table["ref_township_crosswalk"]),
    )
    if problems:
        raise ValueError("; ".join(problems))
    by_table = {table.name: rows for table, rows in wanted}
    written = 0
    for table in _PRUNED:  # children before parents
        written += _prune_table(conn, table, by_table[table.name])
    for table, rows in wanted:  # parents before children
        written += _sync_table(conn, table, rows)
    return written


def crosswalk_problems(townships: pd.DataFrame, crosswalk: pd.DataFrame) -> list[str]:
    """What is wrong with the boundary crosswalk against the townships' validity intervals.

    Each predecessor must end the day before the change takes effect, each successor begin on
    it, and a predecessor's weights must add up to 1 (its whole area or population goes somewhere).
    """
    spans = {
        str(row.township_code): (row.valid_from, row.valid_to)
        for row in townships.itertuples(index=False)
    }
    problems: list[str] = []
    for row in crosswalk.itertuples(index=False):
        before, after = str(row.predecessor_code), str(row.successor_code)
        if before not in spans or after not in spans:
            problems.append(f"township_crosswalk.csv: {before} → {after} names a township not in townships.csv")
            continue
        effective = row.effective_date
        ended = spans[before][1]
        if ended is None or (effective - ended).days != 1:
            problems.append(
                f"township_crosswalk.csv: {before} should end the day before {effective} (valid_to {ended})"
            )
        if spans[after][0] != effective:
            problems.append(
                f"township_crosswalk.csv: {after} should begin on {effective} (valid_from {spans[after][0]})"
            )
    for code, shares in crosswalk.groupby("predecessor_code")["weight"]:
        if abs(float(shares.sum()) - 1.0) > 1e-9:
            problems.append(f"township_crosswalk.csv: the weights of {code} add up to {shares.sum():g}, not 1")
    return problems


def townships_on(townships: pd.DataFrame, day: date) -> pd.DataFrame:
    """The rows of ``townships`` valid on ``day`` (a name is unique among them; across the 2019
    reform it is not: the 巴旺乡 of 2020 is another unit than the 巴旺乡 of 2017)."""
    valid = [
        row.valid_from <= day and (row.valid_to is None or pd.isna(row.valid_to) or row.valid_to >= day)
        for row in townships.itertuples(index=False)
    ]
    return townships[valid].reset_index(drop=True)
