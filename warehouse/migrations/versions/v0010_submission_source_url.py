"""the ledger names the object a file came from (landing area on object storage, issue 8 part 7)

Revision ID: 0010
Revises: 0008
Create Date: 2026-11-29

``submission.source_url``: with ``DUIKOU_LANDING_URL`` set (``s3://bucket/duikou/landing``, …) the
nightly run fetches new objects into ``<data>/staging/`` and loads the staged copy; this column
says which object it was (fsspec URL, no credentials), so an analyst can find the original beside
the kept copy of ``archive_path``. Null for a file read where it lay. ``v_submission`` shows it
(views are re-created from ``warehouse/schema.py`` by ``ensure_warehouse``).

Slot 0009 is reserved for the work-pool change, which needed no schema change when this was
written: this revision follows 0008, the latest on main.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "source_url",
                sa.Text(),
                nullable=True,
                comment="the object this file was fetched from when the landing area is elsewhere "
                "(DUIKOU_LANDING_URL; fsspec URL, no credentials); null for a file read where it lay",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_column("source_url")
