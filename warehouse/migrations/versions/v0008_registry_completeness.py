"""registry completeness (issue 8): what the township columns of the completeness marts mean for a
person-level registry

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29

Comments only (PostgreSQL; SQLite keeps none): the labour registry now owes returns on the
obligations calendar, so its snapshots have rows in ``mart_completeness`` and
``mart_completeness_township``, where a township counts as reported when the loaded snapshot lists
at least one person there and ``values_reported`` is the number of people listed.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: (table, column, type, nullable, comment before, comment after)
_COMMENTS = (
    ("mart_completeness", "townships_reported", sa.Integer(), False,
     "of those, with a value in the loaded version",
     "of those, with a value in the loaded version (a registry: with at least one person)"),
    ("mart_completeness_township", "reported", sa.Boolean(), False,
     "the loaded version has a value for this township",
     "the loaded version has a value for this township (a registry: at least one person)"),
    ("mart_completeness_township", "values_reported", sa.Integer(), False,
     "non-blank values in the loaded version",
     "non-blank values in the loaded version (a registry: people listed)"),
)


def _set(after: bool) -> None:
    if op.get_context().dialect.name != "postgresql":  # SQLite stores no comments
        return
    for table, column, type_, nullable, before, later in _COMMENTS:
        op.alter_column(table, column, existing_type=type_, existing_nullable=nullable,
                        comment=later if after else before, existing_comment=before if after else later)


def upgrade() -> None:
    _set(after=True)


def downgrade() -> None:
    _set(after=False)
