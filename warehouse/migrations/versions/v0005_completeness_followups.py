"""obligations, completeness, cross-return checks, follow-ups (issue 4, parts 2-4)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29

Reserved slot in the chain (empty until its work lands): write its operations by hand, in the
style of v0003, for the tables this work adds to warehouse/schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
