"""history-aware checks and DQ results (issue 4, parts 1 and 5)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29

Written by hand from warehouse/schema.py: ``dq_result`` gains the issue code, action and failing
row numbers of each check; ``mart_dq_scorecard`` (department × reporting month) is new.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("dq_result", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "issue_code",
                sa.String(length=40),
                nullable=True,
                comment="receipt issue code a failure raises, e.g. VALUE_OUTLIER",
            )
        )
        batch_op.add_column(
            sa.Column(
                "action",
                sa.String(length=16),
                nullable=True,
                comment="what a failure does: reject, quarantine, flag or report",
            )
        )
        batch_op.add_column(
            sa.Column(
                "unexpected_rows",
                sa.Text(),
                nullable=True,
                comment="JSON list of the form's row numbers that failed (no values)",
            )
        )
    op.create_table(
        "mart_dq_scorecard",
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column(
            "month",
            sa.String(length=7),
            nullable=False,
            comment="YYYY-MM reporting month: the period of a monthly return; an annual return's YYYY-12",
        ),
        sa.Column(
            "submissions", sa.Integer(), nullable=False, comment="files recorded for the month (every status)"
        ),
        sa.Column("checks_run", sa.Integer(), nullable=False, comment="dq_result rows of those files"),
        sa.Column("checks_failed_critical", sa.Integer(), nullable=False),
        sa.Column("checks_failed_warning", sa.Integer(), nullable=False),
        sa.Column(
            "values_flagged", sa.Integer(), nullable=False, comment="dq_flag rows not covered by an acceptance"
        ),
        sa.Column("followups_open", sa.Integer(), nullable=False),
        sa.Column("followups_closed", sa.Integer(), nullable=False, comment="accepted, dismissed or resolved"),
        sa.Column(
            "median_resolution_hours",
            sa.Float(),
            nullable=True,
            comment="median opened → closed of the closed follow-ups",
        ),
        sa.Column("refreshed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("department", "month", name=op.f("pk_mart_dq_scorecard")),
        comment="one row per department × reporting month: checks run and failed by severity, values flagged, follow-ups open and closed, resolution time (warehouse/scorecard.py)",  # noqa: E501
    )


def downgrade() -> None:
    op.drop_table("mart_dq_scorecard")
    with op.batch_alter_table("dq_result", schema=None) as batch_op:
        batch_op.drop_column("unexpected_rows")
        batch_op.drop_column("action")
        batch_op.drop_column("issue_code")
