"""person-level registries (issue 8)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

Reserved slot in the chain (empty until its work lands): write its operations by hand, in the
style of v0003, for the tables this work adds to warehouse/schema.py.
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
