"""person-level registries (issue 8)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Written by hand from warehouse/schema.py: ``fact_person`` (person × registry snapshot, keyed by
the HMAC person key, no ID numbers or names), and the registry marts ``mart_registry_township``,
``mart_registry_county``, ``mart_registry_category`` and ``mart_registry_reconciliation``.
No ``restricted_person_identity`` table: raw ID numbers are not kept in the warehouse at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "fact_person",
        sa.Column(
            "submission_id",
            sa.String(length=16),
            nullable=False,
            comment="→ submission (written first, same transaction)",
        ),
        sa.Column("source_row", sa.Integer(), nullable=False, comment="1-based row in the file the person came from"),
        sa.Column(
            "person_key",
            sa.String(length=64),
            nullable=False,
            comment="hex HMAC-SHA256 of the normalised ID number under DUIKOU_PERSON_KEY; never the ID itself",
        ),
        sa.Column(
            "township_code", sa.String(length=12), nullable=False, comment="→ ref_township, resolved at the snapshot"
        ),
        sa.Column("village", sa.Text(), nullable=True),
        sa.Column("sex", sa.String(length=2), nullable=False, comment="男 / 女 (agrees with the ID's 17th digit)"),
        sa.Column("birth_year", sa.Integer(), nullable=False, comment="from the ID; the full birth date is not kept"),
        sa.Column(
            "age_years", sa.Integer(), nullable=False, comment="completed years at the end of the snapshot period"
        ),
        sa.Column("ethnicity", sa.Text(), nullable=True),
        sa.Column("education_level", sa.String(length=16), nullable=True),
        sa.Column("poor_household", sa.Boolean(), nullable=False, comment="是否建档立卡贫困户"),
        sa.Column("employment_status", sa.String(length=16), nullable=False),
        sa.Column("monthly_income_yuan", sa.Float(), nullable=True),
        sa.Column("training_trades", sa.Text(), nullable=True, comment="参训工种 as listed (、-separated)"),
        sa.Column(
            "training_person_times", sa.Integer(), nullable=False, comment="trades listed: each is one 人次 of training"
        ),
        sa.Column("certificate_level", sa.String(length=16), nullable=True, comment="null or 无 = no certificate"),
        sa.Column(
            "flagged",
            sa.Boolean(),
            nullable=False,
            comment="a warning check (age band, income range) failed on the row",
        ),
        sa.PrimaryKeyConstraint("submission_id", "source_row", name=op.f("pk_fact_person")),
        comment="one row per person × registry snapshot (submission); every version is kept; no personal identifiers",
    )
    op.create_table(
        "mart_registry_township",
        sa.Column(
            "department", sa.String(length=32), nullable=False, comment="registry department, e.g. labour_registry"
        ),
        sa.Column("period", sa.String(length=7), nullable=False, comment="snapshot month"),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("submission_id", sa.String(length=16), nullable=False, comment="the loaded snapshot counted"),
        sa.Column("persons", sa.Integer(), nullable=False, comment="distinct people (人)"),
        sa.Column("poor_persons", sa.Integer(), nullable=False, comment="people of 建档立卡 households (人)"),
        sa.Column("persons_trained", sa.Integer(), nullable=False, comment="distinct people with any training (人)"),
        sa.Column(
            "training_person_times", sa.Integer(), nullable=False, comment="trainings (人次): never equal to people"
        ),
        sa.Column("certified_persons", sa.Integer(), nullable=False, comment="people holding any certificate (人)"),
        sa.Column("certified_mid_senior_persons", sa.Integer(), nullable=False, comment="中级工 and above (人)"),
        sa.Column("employed_persons", sa.Integer(), nullable=False, comment="就业状态 other than 未就业 (人)"),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department", "period", "township_code", name=op.f("pk_mart_registry_township")),
        comment="one row per registry × snapshot month × township: head counts from the current loaded snapshot",
    )
    op.create_table(
        "mart_registry_county",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False, comment="snapshot month"),
        sa.Column("submission_id", sa.String(length=16), nullable=False, comment="the loaded snapshot counted"),
        sa.Column("townships", sa.Integer(), nullable=False, comment="townships with at least one person"),
        sa.Column("persons", sa.Integer(), nullable=False, comment="distinct people (人)"),
        sa.Column("poor_persons", sa.Integer(), nullable=False),
        sa.Column("persons_trained", sa.Integer(), nullable=False, comment="distinct people trained (人)"),
        sa.Column("training_person_times", sa.Integer(), nullable=False, comment="trainings (人次)"),
        sa.Column("certified_persons", sa.Integer(), nullable=False),
        sa.Column("certified_mid_senior_persons", sa.Integer(), nullable=False),
        sa.Column("employed_persons", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department", "period", name=op.f("pk_mart_registry_county")),
        comment="one row per registry × snapshot month: county head counts — distinct people trained beside training person-times (人 vs 人次); people add across townships within a snapshot, never across months",  # noqa: E501
    )
    op.create_table(
        "mart_registry_category",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column(
            "dimension",
            sa.String(length=24),
            nullable=False,
            comment="employment_status / certificate_level / education_level / sex_age_band",
        ),
        sa.Column(
            "category", sa.String(length=24), nullable=False, comment="the value, e.g. 省外就业, 中级工, 女35-44"
        ),
        sa.Column("persons", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "department", "period", "township_code", "dimension", "category", name=op.f("pk_mart_registry_category")
        ),
        comment="one row per registry × snapshot month × township × dimension × category: people counted",
    )
    op.create_table(
        "mart_registry_reconciliation",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column(
            "check_id", sa.String(length=64), nullable=False, comment="reconciliation id in the registry declaration"
        ),
        sa.Column("registry_value", sa.Integer(), nullable=False, comment="head count from the registry"),
        sa.Column("form_department", sa.String(length=32), nullable=False),
        sa.Column("form_indicator", sa.String(length=64), nullable=False),
        sa.Column(
            "form_value",
            sa.Float(),
            nullable=True,
            comment="the aggregate return's current value; null when not reported",
        ),
        sa.Column("difference", sa.Float(), nullable=True, comment="registry_value − form_value"),
        sa.Column(
            "tolerance_relative", sa.Float(), nullable=False, comment="declared tolerance, fraction of the form value"
        ),
        sa.Column(
            "within_tolerance", sa.Boolean(), nullable=True, comment="null when the form has no value to compare"
        ),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "department", "period", "township_code", "check_id", name=op.f("pk_mart_registry_reconciliation")
        ),
        comment="one row per registry × snapshot month × township × reconciliation: registry counts vs the monthly aggregate return",  # noqa: E501
    )


def downgrade() -> None:
    op.drop_table("mart_registry_reconciliation")
    op.drop_table("mart_registry_category")
    op.drop_table("mart_registry_county")
    op.drop_table("mart_registry_township")
    op.drop_table("fact_person")
