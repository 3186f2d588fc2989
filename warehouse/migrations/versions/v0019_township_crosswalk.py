"""boundaries and definitions that change without losing history (issue 21): ref_township_crosswalk,
dated pairings, mart_township_kpi_yearly (as reported / current boundaries), definition versions

Revision ID: 0019
Revises: 0015
Create Date: 2026-12-06

The December 2019 reform turned Danba's 15 townships into 12 units. Each unit is a row of
``ref_township`` with its own validity interval; ``ref_township_crosswalk`` says which share of
each predecessor went to which successor (weight, basis, source, verified), so earlier periods can
be re-aggregated onto current boundaries while the facts stay on the units they were reported for.
It replaces ``ref_township_successor`` (a successor's name and a free-text list of predecessor
codes, without weights). ``ref_pairing`` gains ``valid_from`` / ``valid_to``.

``mart_county_kpi_yearly.definition_version`` records the dated definition (口径) each value was
computed with; ``mart_township_kpi_yearly`` holds every township's KPIs on both bases.

Reference rows are not written here: ``load_reference`` brings the tables in line with the CSVs.
The downgrade drops the crosswalk and the pairing dates and restores an empty successor table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | Sequence[str] | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TOWNSHIP_BEFORE = "one row per township of Danba (2016–2017 boundaries), the programme's stable key"
_TOWNSHIP_AFTER = (
    "one row per township with its own boundaries and validity interval: the 15 units of 2016–2019 "
    "and the 12 from 2020 (a unit whose boundaries did not change is one row across the reform)"
)
_CODE_BEFORE = "9-digit NBS code as of 2016–2017"
_CODE_AFTER = (
    "9-digit NBS code of a unit as of 2016–2017; 513323Rnn for a unit of the 2019 reform (our key, not an NBS code)"
)
_NAME_BEFORE = "official name 2016–2017"
_NAME_AFTER = "official name during the validity interval"
_TO_BEFORE = "last day of validity (Dec 2019 reorganisation)"
_TO_AFTER = "last day of validity; null while the unit exists"
_PAIRING_BEFORE = "one row per township: its paired Chenghua unit; only ART rows are verified"
_PAIRING_AFTER = (
    "one row per township: its paired Chenghua unit, dated; only ART rows are verified "
    "(a pairing carried to a unit of the 2019 reform is assumed)"
)


def _township_comments(after: bool) -> None:
    if op.get_context().dialect.name != "postgresql":  # SQLite stores no comments
        return
    for column, kind, before, now in (
        ("township_code", sa.String(length=12), _CODE_BEFORE, _CODE_AFTER),
        ("name_zh", sa.Text(), _NAME_BEFORE, _NAME_AFTER),
        ("valid_to", sa.Date(), _TO_BEFORE, _TO_AFTER),
    ):
        op.alter_column("ref_township", column, existing_type=kind, comment=now if after else before,
                        existing_comment=before if after else now)
    op.create_table_comment("ref_township", _TOWNSHIP_AFTER if after else _TOWNSHIP_BEFORE,
                            existing_comment=_TOWNSHIP_BEFORE if after else _TOWNSHIP_AFTER)
    op.create_table_comment("ref_pairing", _PAIRING_AFTER if after else _PAIRING_BEFORE,
                            existing_comment=_PAIRING_BEFORE if after else _PAIRING_AFTER)


def upgrade() -> None:
    op.create_table(
        "ref_township_crosswalk",
        sa.Column("predecessor_code", sa.String(length=12), nullable=False),
        sa.Column("successor_code", sa.String(length=12), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False,
                  comment="first day the successor's boundaries apply"),
        sa.Column("weight", sa.Float(), nullable=False,
                  comment="share of the predecessor that went to the successor (of its population, or another basis)"),
        sa.Column("basis", sa.String(length=16), nullable=False,
                  comment="what the weight measures: population / whole_unit / area"),
        sa.Column("source", sa.String(length=16), nullable=False, comment="NBS / K / assumed"),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint("weight > 0 AND weight <= 1", name=op.f("ck_ref_township_crosswalk_weight_share")),
        sa.ForeignKeyConstraint(["predecessor_code"], ["ref_township.township_code"],
                                name=op.f("fk_ref_township_crosswalk_predecessor_code_ref_township")),
        sa.ForeignKeyConstraint(["successor_code"], ["ref_township.township_code"],
                                name=op.f("fk_ref_township_crosswalk_successor_code_ref_township")),
        sa.PrimaryKeyConstraint("predecessor_code", "successor_code", name=op.f("pk_ref_township_crosswalk")),
        comment="one row per predecessor → successor of a boundary change (the 2019 reform): re-aggregates "
        "earlier periods onto current boundaries; data a county can correct, never a rewrite of history",
    )
    op.drop_table("ref_township_successor")
    with op.batch_alter_table("ref_pairing", schema=None) as batch_op:
        batch_op.add_column(sa.Column("valid_from", sa.Date(), nullable=False, server_default="2000-01-01",
                                      comment="first day of the pairing"))
        batch_op.add_column(sa.Column("valid_to", sa.Date(), nullable=True,
                                      comment="last day of the pairing; null while it lasts"))
    with op.batch_alter_table("ref_pairing", schema=None) as batch_op:
        batch_op.alter_column("valid_from", existing_type=sa.Date(), existing_nullable=False, server_default=None)
    _township_comments(after=True)
    with op.batch_alter_table("mart_county_kpi_yearly", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "definition_version", sa.String(length=200), nullable=False, server_default="v1",
            comment="the dated definition the value was computed with (the KPI's version and each input "
            "indicator's with more than one); years with different tags do not compare",
        ))
    op.create_table(
        "mart_township_kpi_yearly",
        sa.Column("basis", sa.String(length=24), nullable=False,
                  comment="as_reported: each period on the units it was reported for; current_boundaries: earlier "
                  "periods re-aggregated onto today's units through ref_township_crosswalk (warehouse/boundaries.py)"),
        sa.Column("township_code", sa.String(length=12), nullable=False,
                  comment="→ ref_township (a current unit for current_boundaries)"),
        sa.Column("year", sa.Integer(), nullable=False, comment="calendar year"),
        sa.Column("kpi", sa.String(length=64), nullable=False, comment="KPI id in expectations/kpis.yaml"),
        sa.Column("value", sa.Float(), nullable=True, comment="in the KPI's unit; null when it cannot be computed"),
        sa.Column("unit", sa.String(length=16), nullable=False,
                  comment="unit of value (base unit: 元, 人, 人次, %, 倍)"),
        sa.Column("coverage_used", sa.Integer(), nullable=False, comment="township-periods with data"),
        sa.Column("coverage_expected", sa.Integer(), nullable=False, comment="township-periods expected"),
        sa.Column("definition_version", sa.String(length=200), nullable=False, comment="as in mart_county_kpi_yearly"),
        sa.Column("assumed", sa.Boolean(), nullable=False,
                  comment="current_boundaries: the value rests on a crosswalk row that is not verified"),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False,
                  comment="when the mart was last recomputed (timestamptz)"),
        sa.CheckConstraint("basis IN ('as_reported', 'current_boundaries')",
                           name=op.f("ck_mart_township_kpi_yearly_basis_known")),
        sa.PrimaryKeyConstraint("basis", "township_code", "year", "kpi", name=op.f("pk_mart_township_kpi_yearly")),
        comment="one row per basis × township × year × KPI: the county formulas (kpis.yaml) on one township's "
        "facts, as reported and on current boundaries",
    )


def downgrade() -> None:
    op.drop_table("mart_township_kpi_yearly")
    with op.batch_alter_table("mart_county_kpi_yearly", schema=None) as batch_op:
        batch_op.drop_column("definition_version")
    _township_comments(after=False)
    with op.batch_alter_table("ref_pairing", schema=None) as batch_op:
        batch_op.drop_column("valid_to")
        batch_op.drop_column("valid_from")
    op.create_table(
        "ref_township_successor",
        sa.Column("successor_name_zh", sa.Text(), nullable=False),
        sa.Column("effective_date", sa.Date(), nullable=False),
        sa.Column("predecessor_codes", sa.Text(), nullable=True,
                  comment="space-separated township codes, when known"),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("successor_name_zh", name=op.f("pk_ref_township_successor")),
        comment="one row per unit created by the December 2019 reorganisation",
    )
    op.drop_table("ref_township_crosswalk")
