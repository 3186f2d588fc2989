"""obligations, completeness, cross-return checks, follow-ups (issue 4, parts 2-4)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Written by hand from warehouse/schema.py: ``mart_completeness`` (department × period),
``mart_completeness_township`` (department × period × township) and
``mart_county_kpi_yearly.publishable``. The KPI mart is derived (rebuilt by every
``refresh_marts``), so the new NOT NULL column gets a temporary server default of false for the
rows it may already hold; the schema declares no server defaults and the drift check ignores them.
Cross-return checks and follow-ups write to ``dq_flag`` / ``followup`` (revision 0003).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None



def _count(name: str, comment: str) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.Integer(), nullable=False, comment=comment)


def upgrade() -> None:
    with op.batch_alter_table("mart_county_kpi_yearly", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "publishable",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
                comment="true when coverage is complete (every expected township-period used)",
            )
        )
    with op.batch_alter_table("mart_county_kpi_yearly", schema=None) as batch_op:
        batch_op.alter_column("publishable", existing_type=sa.Boolean(), existing_nullable=False,
                              server_default=None)

    op.create_table(
        "mart_completeness",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False, comment="YYYY-MM or YYYY"),
        sa.Column("due_date", sa.Date(), nullable=False, comment="from the declaration's due_day (county time)"),
        sa.Column("deadline", sa.Date(), nullable=False, comment="due_date + grace_days: the last on-time day"),
        sa.Column(
            "status",
            sa.String(length=12),
            nullable=False,
            comment="on_time / late (a version is loaded), quarantined / rejected (received, none loaded), missing (past its deadline, nothing received), pending (not yet past its deadline)",  # noqa: E501
        ),
        _count("expected", "1: the obligations calendar expects this return"),
        _count("received", "1: at least one file received"),
        _count("on_time", "1: first file received by the deadline"),
        _count("late", "1: first file received after the deadline"),
        _count("missing", "1: past the deadline and nothing received"),
        _count("loaded", "1: a version is loaded (current)"),
        _count("quarantined", "1: none loaded, a file waits in quarantine"),
        _count("rejected", "1: none loaded or quarantined, a file was rejected"),
        _count("files_received", "distinct files in the ledger (every status)"),
        sa.Column("first_received_at", sa.DateTime(timezone=True), nullable=True,
                  comment="the first file's arrival (UTC)"),
        sa.Column("current_submission_id", sa.String(length=16), nullable=True, comment="the loaded version, if any"),
        _count("townships_expected", "townships valid in the period"),
        _count("townships_reported", "of those, with a value in the loaded version"),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "status IN ('on_time', 'late', 'missing', 'quarantined', 'rejected', 'pending')",
            name=op.f("ck_mart_completeness_status_known"),
        ),
        sa.PrimaryKeyConstraint("department", "period", name=op.f("pk_mart_completeness")),
        comment="one row per department × period the obligations calendar expects or the ledger has seen: derived from the ledger (submission.received_at, status) and current facts",  # noqa: E501
    )
    op.create_table(
        "mart_completeness_township",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("township_code", sa.String(length=12), nullable=False),
        sa.Column("reported", sa.Boolean(), nullable=False,
                  comment="the loaded version has a value for this township"),
        sa.Column("values_reported", sa.Integer(), nullable=False, comment="non-blank values in the loaded version"),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(
            "department", "period", "township_code", name=op.f("pk_mart_completeness_township")
        ),
        comment="one row per department × period (as in mart_completeness) × township valid in the period",
    )


def downgrade() -> None:
    op.drop_table("mart_completeness_township")
    op.drop_table("mart_completeness")
    with op.batch_alter_table("mart_county_kpi_yearly", schema=None) as batch_op:
        batch_op.drop_column("publishable")
