"""a forced release names the later version it replaced (issue 15 part 1)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-06

``duikou quarantine release`` of an old quarantined file replaced the department's later, loaded
correction without a word. From this revision a release over a later loaded version of the same
partition is refused (``warehouse.decisions.newer_version_guard``) unless the operator forces it;
the forced decision's row names the version it replaced in ``submission_decision.overrode_version``
(NULL for every other decision, and for every row written before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | Sequence[str] | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission_decision", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "overrode_version", sa.String(length=16), nullable=True,
            comment="a forced release (--force): the later loaded version of the partition it replaced"))


def downgrade() -> None:
    with op.batch_alter_table("submission_decision", schema=None) as batch_op:
        batch_op.drop_column("overrode_version")
