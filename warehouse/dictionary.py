"""``docs/warehouse.md``, the data dictionary, rendered from the schema — never written by hand.

Everything in it comes from one declaration: tables, their grain (the table comment), columns
(type, nullability, keys, comment, unit), indexes and CHECK constraints from
``warehouse.schema.metadata``; views from ``schema.VIEWS`` with ``schema.VIEW_COMMENTS``, their
columns reflected from a warehouse created in memory (SQLite) and traced back to the table
column they show where the SELECT list says so; indicators, KPIs and units from the
declarations and the reference CSVs. The prose (units, loading guarantees) and the example
queries are constants here; ``tests/warehouse/test_dictionary.py`` runs every example on SQLite and
PostgreSQL and fails when the committed file differs from this rendering (``duikou db docs``
rewrites it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import pandas as pd
from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    Numeric,
    Table,
    UniqueConstraint,
    create_engine,
    inspect,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import NullType, TypeEngine

from expectations.declaration import Declaration, Kpi, load_declarations, load_kpis
from expectations.markdown import markdown_cell
from warehouse import schema
from warehouse.refdata import REFERENCE_DIR, indicator_rows

NO_DESCRIPTION = "(no description)"
DOCS_PATH = "docs/warehouse.md"

# ---------------------------------------------------------------- constant prose
INTRO = """\
Embedded SQLite by default (`<data>/warehouse.sqlite`), PostgreSQL in production
(`DUIKOU_WAREHOUSE_URL=postgresql+psycopg://…`). The schema is declared once in
`warehouse/schema.py`; every table carries a comment stating its grain, and this page is
generated from it. Migrations (alembic, `warehouse/migrations/`) are generated from the same
declaration: `duikou db upgrade` brings any warehouse to the head revision, and every command
refuses to write to a warehouse whose schema differs from the declaration.

Query the **views**; they show current data only and hide the bookkeeping. Column types are
given as PostgreSQL names; SQLite stores the same values (timestamps as UTC text)."""

FLAGGED_NOTE = """\
`flagged` is true where a **warning** rule failed on that township row (e.g. a dropout, an
out-of-pocket share above 10 %), or where an operator released a quarantined submission past a
critical check on that row (`submission_decision` says who and why); the value is loaded and
counted, but worth a look."""

UNITS_TEXT = """\
Values are stored in base units: 元 (not 万元), 人次 (not 万人次), 人, 户, 个, 张. 人 (distinct
people) and 人次 (person-times) never convert into each other: person-times add across months
and townships, people do not. A form's unit is converted on load with the factor below
(`ref_unit`); `ref_indicator.unit` is the base unit of an indicator's stored values and
`ref_indicator.form_unit` the unit on the county form."""

LOADING_GUARANTEES = """\
- One submission = one transaction: ledger row, facts, issues, DQ results, and the supersession
  of the previous version commit together or not at all.
- A partial unique index on `submission (department, period) WHERE status = 'loaded'` makes the
  database itself refuse two current versions of one partition.
- Writers take a per-partition lock (PostgreSQL advisory lock; SQLite `BEGIN IMMEDIATE`).
- An identical file is a `duplicate`: nothing is written.
- Nothing is written to a warehouse whose schema differs from `warehouse/schema.py`: the
  command stops and names the differences; `duikou db upgrade` brings the warehouse to head."""


SCHEMA_CHANGES = """\
For developers. A table, column, index or constraint is changed in `warehouse/schema.py` and
then in a migration: `python -m warehouse.migrate revision -m "what changed"` autogenerates the
next revision under `warehouse/migrations/versions/` (pass `--url` with a PostgreSQL URL to
compare comments too); review it (autogenerate misses CHECK constraints, partial-index
predicates and renames) and run `tests/warehouse/test_migrations.py`, which upgrades empty SQLite and
PostgreSQL databases to head and compares them with `schema.py`. Views are not migrated:
`ensure_warehouse` re-creates them from `schema.VIEWS` (give each a line in
`schema.VIEW_COMMENTS`). Then `duikou db docs` regenerates this page."""


@dataclass(frozen=True)
class ExampleQuery:
    """An analyst's question and the SQL that answers it (runs on SQLite and PostgreSQL)."""

    question: str
    sql: str
    note: str = ""


_STATIC_EXAMPLES: tuple[ExampleQuery, ...] = (
    ExampleQuery(
        "One township's indicators over time (章谷镇, the county seat), current versions only",
        """\
SELECT v.department, v.indicator, v.label_zh, v.period, v.value, v.unit, v.kind, v.flagged
FROM v_indicator_value v
WHERE v.township_name = '章谷镇'
ORDER BY v.department, v.indicator, v.year, v.month;""",
        "Names as written on old forms (巴底乡, 章谷) are in `ref_township_alias`, with their validity.",
    ),
    ExampleQuery(
        "The township a Chenghua unit is paired with (猛追湾街道), and its 2016 poverty return",
        """\
SELECT p.helper_unit_name, p.township_name, p.source, p.verified,
       v.indicator, v.label_zh, v.value, v.unit
FROM v_township_pairing p
LEFT JOIN v_indicator_value v ON v.township_code = p.township_code
  AND v.department = 'poverty' AND v.period = '2016'
WHERE p.helper_unit_name = '猛追湾街道'
ORDER BY v.indicator;""",
        "Only pairings with `source = 'ART'` (stated in the article) are `verified`; the others are "
        "assumed for the demo.",
    ),
    ExampleQuery(
        "2016 tourism revenue by township, in 万元, in the official order of townships",
        """\
SELECT township_order, township_name, SUM(value) / 10000 AS revenue_wan_yuan
FROM v_indicator_value
WHERE indicator = 'tourism_revenue_yuan' AND year = 2016
GROUP BY township_order, township_name ORDER BY township_order;""",
        "Tourism revenue is a flow (`kind = 'flow'`): its months add up.",
    ),
    ExampleQuery(
        "County KPIs with coverage; only publish what is complete",
        """\
SELECT year, kpi, label_zh, value, unit, coverage_used, coverage_expected
FROM mart_county_kpi_yearly WHERE coverage >= 1 ORDER BY kpi, year;""",
    ),
    ExampleQuery(
        "Submissions that did not load, and why (the critical issues on their receipts)",
        """\
SELECT department_name, period, original_name, status_zh, code, row_number, column_label, message_zh
FROM v_submission_issue
WHERE status IN ('rejected', 'quarantined') AND severity = 'critical'
ORDER BY department, period, submission_id, seq;""",
        "`message_zh` is null for a person-level registry: its messages may quote a person's value.",
    ),
    ExampleQuery(
        "What a restatement changed (old vs new values of one partition)",
        """\
SELECT department, period, township_name, indicator, label_zh, old_value, new_value, difference, unit
FROM v_restatement
ORDER BY department, period, township_order, indicator;""",
    ),
)

#: the wrong and the right way to add up a stock (head counts): docs/warehouse.md shows both
STOCK_WRONG = ExampleQuery(
    "Wrong: a head count summed over months",
    """\
SELECT year, SUM(value) AS enrolled_persons
FROM v_indicator_value
WHERE indicator = 'enrolled_total_persons'
GROUP BY year ORDER BY year;""",
    "This adds twelve month-end head counts of the same pupils: about twelve times too many. "
    "`enrolled_total_persons` is a stock (`over_periods = 'last'`).",
)
STOCK_RIGHT = ExampleQuery(
    "Right: each township's latest month in the year, summed over townships",
    """\
SELECT v.year, SUM(v.value) AS enrolled_persons
FROM v_indicator_value v
WHERE v.indicator = 'enrolled_total_persons' AND v.value IS NOT NULL
  AND v.period = (SELECT MAX(l.period) FROM v_indicator_value l
                  WHERE l.indicator = v.indicator AND l.township_code = v.township_code
                    AND l.year = v.year AND l.value IS NOT NULL)
GROUP BY v.year ORDER BY v.year;""",
    "This is how `mart_county_kpi_yearly` computes 在校学生数 (`enrolled_students_persons`, method "
    "`period_end`); the same holds for 本年累计 indicators (`kind = 'cumulative'`). A rate "
    "(`kind = 'rate'`, e.g. `insurance_rate_pct`) is never summed nor averaged plainly: divide the "
    "sums of its numerator and denominator (`insured_persons` / `poor_population_persons`).",
)

KINDS_TEXT = """\
Every indicator declares its **kind** (`ref_indicator.kind`, also on `v_indicator_value`), and with it
how its values may be added up (`over_townships`, `over_periods`):

| kind | examples | over townships | over the months of a year |
|---|---|---|---|
| `flow` | 人次, 元 per month: visitors, revenue, hospitalisations | sum | sum |
| `stock` | head counts at the period's end: pupils, insured people, population | sum | the last value, never a sum |
| `cumulative` | 本年累计 running totals: transferred workers, returned pupils | sum | the year's last period |
| `rate` | %, per capita: 参保率, net income per capita | weighted mean, or recompute | never summed |

The county KPIs obey the kinds: `expectations/kpis.yaml` refuses a method that goes against one
(`sum` on a stock: use `period_end`), so the marts never sum a head count over months."""

BI_TOOLS = """\
Connect as the read-only **analyst** role (`duikou_analyst`, or a login role granted it: `GRANT
duikou_analyst TO alice`). It reads the views (`v_*`), the marts (`mart_*`) and the reference
tables (`ref_*`) — nothing else — and its sessions run in Beijing time (`timezone =
'Asia/Shanghai'`), so timestamps (timestamptz) show as 北京时间. Every view, mart and column
carries a `COMMENT`, which BI tools show as descriptions.

- **Superset** (Data → Databases → PostgreSQL), SQLAlchemy URI:
  `postgresql+psycopg2://alice@warehouse-host:5432/duikou`
- **Metabase** (Admin → Databases → PostgreSQL): host `warehouse-host`, port 5432, database
  `duikou`, user `alice`, schemas: `public`. Metabase reads the comments into its data model.
- **Excel Power Query** (数据 → 获取数据 → 自数据库 → 从 PostgreSQL 数据库): server
  `warehouse-host:5432`, database `duikou`; choose the `v_*` or `mart_*` tables.
- **psql / DBeaver**: `postgresql://alice@warehouse-host:5432/duikou`.
- **SQLite** (the embedded warehouse): open the file read-only,
  `sqlite:///file:/srv/duikou/data/warehouse.sqlite?mode=ro&uri=true` (SQLAlchemy) or
  `file:/srv/duikou/data/warehouse.sqlite?mode=ro` (DB Browser, DBeaver, Python's `sqlite3` with
  `uri=True`). SQLite has no roles: query the views and marts only, as the analyst role does;
  timestamps are UTC text there."""


# ---------------------------------------------------------------- KPIs and their inputs
def kpi_inputs(kpis: Sequence[Kpi]) -> dict[str, tuple[str, ...]]:
    """kpi → the indicators it is computed from; derived KPIs (``of``) take their base's inputs."""
    out: dict[str, tuple[str, ...]] = {}
    for kpi in kpis:  # load_kpis guarantees that `of` names a KPI declared above
        if kpi.of:
            out[kpi.kpi] = out[kpi.of]
            continue
        names = (kpi.indicator, kpi.weight, kpi.numerator, kpi.denominator)
        out[kpi.kpi] = tuple(dict.fromkeys(n for n in names if n))
    return out


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def correction_kpi_query(kpis: Sequence[Kpi]) -> ExampleQuery:
    """Which county KPIs a correction moved; the KPI → indicator pairs come from kpis.yaml."""
    inputs = kpi_inputs(kpis)
    department = {k.kpi: k.department for k in kpis}
    pairs = ",\n".join(
        f"  ({_sql_text(department[kpi])}, {_sql_text(kpi)}, {_sql_text(indicator)})"
        for kpi, indicators in inputs.items()
        for indicator in indicators
    )
    sql = f"""\
WITH kpi_input(department, kpi, indicator) AS (VALUES
{pairs}
)
SELECT DISTINCT r.department, r.period, r.new_submission_id AS correction,
       r.old_submission_id AS replaced, k.kpi, m.label_zh, m.year, m.value AS value_now, m.unit
FROM v_restatement r
JOIN kpi_input k ON k.department = r.department AND k.indicator = r.indicator
LEFT JOIN mart_county_kpi_yearly m ON m.kpi = k.kpi AND m.year = r.year
ORDER BY r.department, r.period, k.kpi;"""
    return ExampleQuery(
        "Which county KPIs changed after a correction",
        sql,
        "`kpi_input` lists each KPI's input indicators (generated from `expectations/kpis.yaml`); "
        "year-over-year and since-base-year KPIs also move in the years that compare with the "
        "corrected one. `duikou history <department> <period>` computes the KPIs before and after.",
    )


def example_queries(kpis: Sequence[Kpi] | None = None) -> tuple[ExampleQuery, ...]:
    """The documented examples, in order; the tests run each of them."""
    chosen = load_kpis() if kpis is None else kpis
    return (*_STATIC_EXAMPLES[:2], correction_kpi_query(chosen), *_STATIC_EXAMPLES[2:], STOCK_WRONG, STOCK_RIGHT)


# ---------------------------------------------------------------- columns
_NAME_UNITS: tuple[tuple[str, str], ...] = (
    ("_yuan", "元"),
    ("_pct", "%"),
    ("_person_times", "人次"),
    ("_persons", "人"),
    ("_households", "户"),
)


def type_name(sqltype: TypeEngine[object]) -> str:
    """The column type as PostgreSQL spells it ('—' when a view computes it)."""
    if isinstance(sqltype, NullType):
        return "—"
    return str(sqltype.compile(dialect=postgresql.dialect()))


def column_unit(name: str, comment: str | None, sqltype: TypeEngine[object], siblings: Sequence[str]) -> str:
    """The unit of a column, derived from its name, comment and type; '' when it has none.

    Timestamps with a time zone are UTC; numbers take the unit their name ends in (``_yuan``,
    ``_pct`` ...), the row's ``unit`` column when the table has one, or the indicator's base
    unit when the comment says so.
    """
    if isinstance(sqltype, DateTime):
        return "UTC" if sqltype.timezone else ""
    if not isinstance(sqltype, Integer | Float | Numeric | NullType):
        return ""
    for suffix, unit in _NAME_UNITS:
        if name.endswith(suffix):
            return unit
    if name in ("value", "old_value", "new_value", "difference") and "unit" in siblings:
        return "as in `unit`"
    if comment and "base unit" in comment:
        return "the indicator's base unit (`ref_indicator.unit`)"
    return ""


def _keys(table: Table, column: Column[object]) -> str:
    keys: list[str] = []
    if column.primary_key:
        keys.append("PK")
    for fk in table.foreign_key_constraints:
        if column.name not in fk.column_keys:
            continue
        if len(fk.column_keys) == 1:
            keys.append(f"FK → `{fk.elements[0].target_fullname}`")
        else:  # composite: name the referred table and its columns once
            referred = ", ".join(e.column.name for e in fk.elements)
            keys.append(f"FK ({', '.join(fk.column_keys)}) → `{fk.referred_table.name}` ({referred})")
    for uq in table.constraints:
        if isinstance(uq, UniqueConstraint) and [c.name for c in uq.columns] == [column.name]:
            keys.append("unique")
    return ", ".join(keys)


def _index_line(index: Index) -> str:
    columns = ", ".join(str(getattr(e, "name", e)) for e in index.expressions)
    text = f"`{index.name}`{' unique' if index.unique else ''} ({columns})"
    where = next((o.get("where") for o in index.dialect_options.values() if o.get("where") is not None), None)
    if where is not None and index.table is not None:  # partial index: the same predicate on both dialects
        rendered = str(where.compile(compile_kwargs={"literal_binds": True}))
        text += f" WHERE {rendered.replace(f'{index.table.name}.', '')}"
    return text


def _table_section(table: Table) -> list[str]:
    siblings = [c.name for c in table.columns]
    lines = [
        f"### `{table.name}`",
        "",
        f"Grain: {table.comment or NO_DESCRIPTION}.",
        "",
        "| column | type | null | key | unit | description |",
        "|---|---|---|---|---|---|",
    ]
    for column in table.columns:
        lines.append(
            f"| `{column.name}` | {type_name(column.type)} | {'yes' if column.nullable else 'no'} | "
            f"{_keys(table, column)} | {column_unit(column.name, column.comment, column.type, siblings)} | "
            f"{markdown_cell(column.comment or '')} |"
        )
    indexes = sorted(table.indexes, key=lambda i: str(i.name))
    checks = sorted((c for c in table.constraints if isinstance(c, CheckConstraint)), key=lambda c: str(c.name))
    if indexes or checks:
        lines.append("")
    lines += [f"- index {_index_line(ix)}" for ix in indexes]
    lines += [f"- check `{c.name}`: `{markdown_cell(c.sqltext)}`" for c in checks]
    return [*lines, ""]


# ---------------------------------------------------------------- views
@dataclass(frozen=True)
class ViewColumn:
    """One column of a view: reflected name and type, and where its value comes from."""

    name: str
    type: str
    source: str | None  # "table.column" when the SELECT list shows a plain column
    expression: str  # the SELECT list item, whitespace collapsed
    comment: str
    unit: str


def _depth_zero(sql: str) -> str:
    """``sql`` with the insides of parentheses and string literals blanked (same length)."""
    out: list[str] = []
    depth = 0
    quoted = False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
            out.append(" ")
        elif quoted:
            out.append(" ")
        elif ch == "(":
            depth += 1
            out.append(" ")
        elif ch == ")":
            depth -= 1
            out.append(" ")
        else:
            out.append(ch if depth == 0 else " ")
    return "".join(out)


_KEYWORDS = {"on", "left", "right", "inner", "outer", "join", "where", "group", "order", "cross", "full", "union"}


def select_items(sql: str) -> tuple[dict[str, str], dict[str, str]]:
    """(output name → expression, alias → table) of a view's outermost SELECT; best effort.

    Our views are ``SELECT a.col [AS name], ... FROM t a JOIN u b ...`` (a CTE before is fine).
    """
    flat = _depth_zero(sql)
    selects = [m.start() for m in re.finditer(r"(?i)\bselect\b", flat)]
    froms = [m.start() for m in re.finditer(r"(?i)\bfrom\b", flat)]
    if not selects:
        return {}, {}
    start = selects[-1] + len("select")
    end = next((f for f in froms if f > start), len(sql))
    items: dict[str, str] = {}
    cut = start
    for comma in [i for i in range(start, end) if flat[i] == ","] + [end]:
        item = " ".join(sql[cut:comma].split())
        cut = comma + 1
        named = re.fullmatch(r"(?is)(.*?)\s+AS\s+(\w+)", item)
        if named:
            items[named.group(2)] = named.group(1)
        elif re.fullmatch(r"(?:\w+\.)?\w+", item):
            items[item.rsplit(".", 1)[-1]] = item
    aliases: dict[str, str] = {}
    for match in re.finditer(r"(?i)\b(?:from|join)\s+(\w+)(?:\s+(?:as\s+)?(\w+))?", flat[end:]):
        table, alias = match.group(1), match.group(2)
        if alias and alias.lower() not in _KEYWORDS:
            aliases[alias] = table
        aliases.setdefault(table, table)
    return items, aliases


def _reflected_view_types() -> dict[str, list[tuple[str, TypeEngine[object]]]]:
    """Each view's columns (name, declared type), from a warehouse created in memory."""
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as conn:
            schema.metadata.create_all(conn)
            for name, body in schema.VIEWS.items():
                conn.exec_driver_sql(f"CREATE VIEW {name} AS {body}")  # name: our own constant
            inspector = inspect(conn)
            return {
                name: [(str(c["name"]), c["type"]) for c in inspector.get_columns(name)] for name in schema.VIEWS
            }
    finally:
        engine.dispose()


@lru_cache(maxsize=1)
def view_columns() -> dict[str, list[ViewColumn]]:
    """Every view's columns, in order, traced back to a table column where the SQL allows; a
    column it cannot trace takes its comment from ``schema.VIEW_COLUMN_COMMENTS``."""
    out: dict[str, list[ViewColumn]] = {}
    for view, reflected in _reflected_view_types().items():
        items, aliases = select_items(schema.VIEWS[view])
        siblings = [name for name, _ in reflected]
        columns: list[ViewColumn] = []
        for name, sqltype in reflected:
            expression = items.get(name, "")
            source_column: Column[object] | None = None
            plain = re.fullmatch(r"(\w+)\.(\w+)", expression)
            if plain and aliases.get(plain.group(1)) in schema.metadata.tables:
                table = schema.metadata.tables[aliases[plain.group(1)]]
                source_column = table.c.get(plain.group(2))
            explicit = schema.VIEW_COLUMN_COMMENTS.get(view, {}).get(name)
            earlier = {c.name: c for c in out.get(aliases.get(plain.group(1), ""), [])} if plain else {}
            through = earlier.get(plain.group(2)) if plain else None
            if source_column is None and through is not None:  # read through an earlier view
                comment = explicit or through.comment
                columns.append(ViewColumn(name, through.type, through.source, expression, comment,
                                          column_unit(name, comment, sqltype, siblings)))
                continue
            if source_column is not None:
                comment = explicit or source_column.comment or ""
                columns.append(
                    ViewColumn(
                        name=name,
                        type=type_name(source_column.type),
                        source=f"{source_column.table.name}.{source_column.name}",
                        expression=expression,
                        comment=comment,
                        unit=column_unit(name, comment, source_column.type, siblings),
                    )
                )
            else:
                unit = column_unit(name, explicit, sqltype, siblings)
                columns.append(ViewColumn(name, type_name(sqltype), None, expression, explicit or "", unit))
        out[view] = columns
    return out


def view_comment_statements() -> list[str]:
    """``COMMENT ON VIEW`` and ``COMMENT ON COLUMN`` for every view (PostgreSQL), from the same
    text as this page, so a BI tool shows each view's grain and each column's meaning."""
    statements = []
    for view, columns in view_columns().items():
        statements.append(f"COMMENT ON VIEW {view} IS {_sql_text(schema.VIEW_COMMENTS[view])}")
        for col in columns:
            text = col.comment or col.source or col.expression
            statements.append(f"COMMENT ON COLUMN {view}.{col.name} IS {_sql_text(text)}")
    return statements


def _view_section(name: str, columns: Sequence[ViewColumn]) -> list[str]:
    lines = [
        f"### `{name}`",
        "",
        f"{schema.VIEW_COMMENTS.get(name, NO_DESCRIPTION)}.",
        "",
        "| column | type | unit | from | description |",
        "|---|---|---|---|---|",
    ]
    for col in columns:
        origin = f"`{col.source}`" if col.source else (f"`{markdown_cell(col.expression)}`" if col.expression else "")
        lines.append(f"| `{col.name}` | {col.type} | {col.unit} | {origin} | {markdown_cell(col.comment)} |")
    return [*lines, ""]


# ---------------------------------------------------------------- reference data
def _csv(filename: str) -> pd.DataFrame:
    return pd.read_csv(REFERENCE_DIR / filename, dtype=str, keep_default_na=False, encoding="utf-8")


def _units_section() -> list[str]:
    lines = [UNITS_TEXT, "", "| unit on the form | stored as | factor | 量 | note |", "|---|---|---|---|---|"]
    for row in _csv("units.csv").to_dict(orient="records"):
        lines.append(
            f"| {row['unit']} | {row['base_unit']} | ×{float(row['factor']):g} | {row['quantity_zh']} | "
            f"{markdown_cell(row['note'])} |"
        )
    return [*lines, ""]


def _indicator_section(declarations: Mapping[str, Declaration]) -> list[str]:
    names = {row["department"]: row for row in _csv("departments.csv").to_dict(orient="records")}
    rows = indicator_rows(declarations)
    lines = [
        "The rows of `ref_indicator`, from `expectations/declarations/*.yaml` (see "
        "[datasets.md](datasets.md) for the forms and their rules). `unit` is the base unit of "
        "stored values; `kind` says how values add up (see \"How indicators add up\").",
        "",
    ]
    for department, decl in declarations.items():
        dept = names.get(department, {})
        label = f"{dept.get('name_zh', decl.title_zh)} ({dept.get('name_en', department)})"
        lines += [
            f"### `{department}` — {label}",
            "",
            f"{decl.title_zh}; one return per {decl.period_type}.",
            "",
            "| indicator | label_zh | unit | form_unit | value_type | kind | required |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in (r for r in rows if r["department"] == department):
            lines.append(
                f"| `{row['indicator']}` | {markdown_cell(row['label_zh'])} | {row['unit']} | {row['form_unit']} | "
                f"{row['value_type']} | {row['kind']} | {'yes' if row['required'] else 'no'} |"
            )
        lines.append("")
    return lines


def _kpi_section(kpis: Sequence[Kpi]) -> list[str]:
    inputs = kpi_inputs(kpis)
    lines = [
        "The rows of `mart_county_kpi_yearly` (one per year × KPI), from `expectations/kpis.yaml`.",
        "",
        "| kpi | label_zh | unit | department | method | input indicators |",
        "|---|---|---|---|---|---|",
    ]
    for kpi in kpis:
        method = f"{kpi.method} of `{kpi.of}`" if kpi.of else kpi.method
        used = ", ".join(f"`{name}`" for name in inputs[kpi.kpi])
        lines.append(f"| `{kpi.kpi}` | {kpi.label_zh} | {kpi.unit} | {kpi.department} | {method} | {used} |")
    return [*lines, ""]


# ---------------------------------------------------------------- the page
def render_warehouse_markdown(
    declarations: Mapping[str, Declaration] | None = None, kpis: Sequence[Kpi] | None = None
) -> str:
    """The whole of ``docs/warehouse.md``."""
    decls = load_declarations() if declarations is None else declarations
    chosen_kpis = load_kpis() if kpis is None else kpis
    tables = list(schema.metadata.tables.values())  # declaration order: ref, ledger, facts, marts
    lines = [
        "# The warehouse, for analysts",
        "",
        "<!-- Generated by `duikou db docs` from warehouse/schema.py, warehouse/reference/*.csv, "
        "expectations/declarations/*.yaml and expectations/kpis.yaml. Do not edit by hand. -->",
        "",
        INTRO,
        "",
        "## Views",
        "",
        "| view | what it shows |",
        "|---|---|",
        *(f"| `{name}` | {markdown_cell(schema.VIEW_COMMENTS.get(name, NO_DESCRIPTION))} |" for name in schema.VIEWS),
        "",
    ]
    for name, columns in view_columns().items():
        lines += _view_section(name, columns)
    lines += [
        FLAGGED_NOTE,
        "",
        "## Tables",
        "",
        "| table | grain |",
        "|---|---|",
        *(f"| `{t.name}` | {markdown_cell(t.comment or NO_DESCRIPTION)} |" for t in tables),
        "",
    ]
    for table in tables:
        lines += _table_section(table)
    lines += ["## Units", "", *_units_section()]
    lines += ["## Indicators", "", *_indicator_section(decls)]
    lines += ["## County KPIs", "", *_kpi_section(chosen_kpis)]
    lines += ["## How indicators add up", "", KINDS_TEXT, ""]
    lines += ["## Example queries", "", "Each runs as the read-only analyst role (tests/warehouse/test_analyst.py).",
              ""]
    for example in example_queries(chosen_kpis):
        lines += [f"### {example.question}", "", "```sql", example.sql, "```"]
        if example.note:
            lines += ["", example.note]
        lines.append("")
    lines += ["## Connect a BI tool", "", BI_TOOLS, ""]
    lines += ["## Loading guarantees", "", LOADING_GUARANTEES, "", "## Changing the schema", "", SCHEMA_CHANGES]
    return "\n".join(lines) + "\n"
