"""PostgreSQL: fact_indicator_value's foreign keys checked per statement by triggers, not per row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

PostgreSQL checks a FOREIGN KEY row by row: for a 1 000 000-row COPY the three keys of
``fact_indicator_value`` cost ~13 s of 18 s. On PostgreSQL this revision drops them and creates
the triggers of ``schema.fact_reference_triggers`` instead: one statement-level AFTER trigger per
INSERT / UPDATE that anti-joins the statement's new rows (its transition table) with each
parent once, and a row-level guard on each parent that refuses to delete or re-key a row facts
still reference. They raise SQLSTATE 23503 naming the constraint, as the keys did. SQLite keeps
its foreign keys (its per-row check is a cheap index probe): nothing changes there.

The trigger DDL is read from ``schema.fact_reference_triggers`` (one declaration). Changing it
there needs a revision that drops the old triggers and creates the new ones; the drift check
(``migrate.schema_differences``) reports a missing trigger by name.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from warehouse.schema import FACT_REFERENCES, fact_reference_triggers

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for ref in FACT_REFERENCES:
        op.drop_constraint(ref.name, "fact_indicator_value", type_="foreignkey")
    for trigger in fact_reference_triggers("postgresql"):
        for statement in trigger.create:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for trigger in fact_reference_triggers("postgresql"):
        for statement in trigger.drop:
            op.execute(statement)
    for ref in FACT_REFERENCES:
        op.create_foreign_key(
            ref.name, "fact_indicator_value", ref.parent, list(ref.columns), list(ref.parent_columns)
        )
