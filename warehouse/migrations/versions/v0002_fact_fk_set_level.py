"""fact_indicator_value: references checked per statement by triggers, not per row by FOREIGN KEYs

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

PostgreSQL checks a FOREIGN KEY row by row: for a 1 000 000-row COPY the three keys of
``fact_indicator_value`` cost ~13 s of 18 s. This revision drops them and creates the triggers
of ``schema.fact_reference_triggers`` instead: on PostgreSQL one statement-level AFTER trigger
per INSERT / UPDATE that anti-joins the statement's new rows (its transition table) with each
parent once, and a row-level guard on each parent that refuses to delete or re-key a row facts
still reference; on SQLite, row-level triggers with the same effect. Both raise integrity
errors (SQLSTATE 23503 / SQLITE_CONSTRAINT) naming the reference, as the keys did.

The trigger DDL is read from ``schema.fact_reference_triggers`` (one declaration). Changing it
there needs a revision that drops the old triggers and creates the new ones; the drift check
(``migrate.schema_differences``) reports a trigger that is missing by name.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from warehouse.schema import fact_reference_triggers

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FOREIGN_KEYS = (  # (name, local columns, parent, parent columns) as revision 0001 created them
    ("fk_fact_indicator_value_submission_id_submission", ["submission_id"], "submission", ["submission_id"]),
    ("fk_fact_indicator_value_township_code_ref_township", ["township_code"], "ref_township", ["township_code"]),
    (
        "fk_fact_indicator_value_department_ref_indicator",
        ["department", "indicator"],
        "ref_indicator",
        ["department", "indicator"],
    ),
)


_COMMENTS = (  # (column, length, comment) added by this revision
    ("submission_id", 16, "→ submission (checked by trigger)"),
    ("indicator", 64, "→ ref_indicator with department (trigger)"),
    ("township_code", 12, "→ ref_township (checked by trigger)"),
)


def upgrade() -> None:
    with op.batch_alter_table("fact_indicator_value") as batch_op:
        for name, _, _, _ in _FOREIGN_KEYS:
            batch_op.drop_constraint(name, type_="foreignkey")
        for column, length, comment in _COMMENTS:
            batch_op.alter_column(
                column, existing_type=sa.String(length=length), existing_nullable=False, comment=comment
            )
    for trigger in fact_reference_triggers(op.get_bind().dialect.name):
        for statement in trigger.create:
            op.execute(statement)


def downgrade() -> None:
    for trigger in fact_reference_triggers(op.get_bind().dialect.name):
        for statement in trigger.drop:
            op.execute(statement)
    with op.batch_alter_table("fact_indicator_value") as batch_op:
        for column, length, _ in _COMMENTS:
            batch_op.alter_column(
                column, existing_type=sa.String(length=length), existing_nullable=False, comment=None
            )
        for name, columns, parent, parent_columns in _FOREIGN_KEYS:
            batch_op.create_foreign_key(name, parent, columns, parent_columns)
