"""the submission key includes who sent it: the ledger is unique on (department, sha256) (issue 13 fault 8)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01

The same bytes sent by two departments used to collapse into one ledger row (``sha256`` was
unique and ``submission_id`` its first 16 hex digits): the second department's file became the
first's submission, and an empty file from one department could rewrite another's rejected row.
From this revision a submission is keyed by (department, sha256): ``submission_id`` is the first
16 hex digits of ``sha256(department ":" sha256)`` (``warehouse/keys.py``) and the unique
constraint ``uq_submission_sha256`` becomes ``uq_submission_department_sha256``.

Existing rows keep their ids. An id is a foreign key of every detail table, the name of the
receipt (``receipts/<id>.json``), of the kept file (``archive/…/<id>__<name>``) and of the
department's link to the intake API, so rewriting it would break those; and an old row is still
unique under the new constraint (its sha256 was unique on its own). The loader reads a row's id
from the ledger (``warehouse.load.keyed_as_ledger``) and never recomputes it, so a file seen
before this revision keeps being recognised under its old id; only new rows get the new key.

The downgrade restores the old constraint; it fails if two departments have since sent the
same bytes (the ledger then holds two rows the old schema cannot express).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID_BEFORE = "first 16 hex digits of sha256"
_ID_AFTER = ("first 16 hex digits of sha256(department ':' sha256) (warehouse/keys.py); "
             "rows from before migration 0012: of sha256")
_SHA_AFTER = "of the file's bytes; unique together with department"
_TABLE_BEFORE = "the ledger: one row per distinct file received; status 'loaded' marks the current version"
_TABLE_AFTER = ("the ledger: one row per distinct file received from one department; "
                "status 'loaded' marks the current version")


def _comments(after: bool) -> None:
    if op.get_context().dialect.name != "postgresql":  # SQLite stores no comments
        return
    op.alter_column("submission", "submission_id", existing_type=sa.String(length=16), existing_nullable=False,
                    comment=_ID_AFTER if after else _ID_BEFORE, existing_comment=_ID_BEFORE if after else _ID_AFTER)
    op.alter_column("submission", "sha256", existing_type=sa.String(length=64), existing_nullable=False,
                    comment=_SHA_AFTER if after else None, existing_comment=None if after else _SHA_AFTER)
    op.create_table_comment("submission", _TABLE_AFTER if after else _TABLE_BEFORE,
                            existing_comment=_TABLE_BEFORE if after else _TABLE_AFTER)


def upgrade() -> None:
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_constraint("uq_submission_sha256", type_="unique")
        batch_op.create_unique_constraint("uq_submission_department_sha256", ["department", "sha256"])
    _comments(after=True)


def downgrade() -> None:
    _comments(after=False)
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_constraint("uq_submission_department_sha256", type_="unique")
        batch_op.create_unique_constraint("uq_submission_sha256", ["sha256"])
