"""fact_person holds any declared registry (issue 14 part 4): labour-only columns nullable, ``attributes``

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06

A person-level registry is declared in YAML (``expectations/declarations/*.yaml``,
``kind: person_registry``) and read, checked and loaded with no code of its own. ``fact_person``
keeps its typed columns for the columns that have them (the labour registry's), which become
nullable where another registry may not have them (sex, education, poor household, employment,
training person-times), and gains ``attributes``: a JSON object of the declared columns with no
``fact_person`` column of their name (a student aid registry's school, grade, amount …).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW_NULLABLE: dict[str, tuple[sa.types.TypeEngine[Any], str, str | None]] = {
    "sex": (sa.String(2), "the column with role sex: 男 / 女 (agrees with the ID's 17th digit)",
            "男 / 女 (agrees with the ID's 17th digit)"),
    "education_level": (sa.String(16), "the column with role education", None),
    "poor_household": (sa.Boolean(), "the column with role poor_household (是否建档立卡贫困户)", "是否建档立卡贫困户"),
    "employment_status": (sa.String(16), "the column with role employment", None),
    "training_person_times": (
        sa.Integer(), "items listed in the trainings column: each is one 人次 of training (null: no such column)",
        "trades listed: each is one 人次 of training"),
}
_COMMENTS = {
    "training_trades": ("the column with role trainings, as listed (、-separated)",
                        "参训工种 as listed (、-separated)"),
    "certificate_level": ("the column with role certificate; null or 无 = no certificate",
                          "null or 无 = no certificate"),
}
_ATTRIBUTES_COMMENT = "JSON object of the declared columns with no fact_person column of their name (null: none)"


def upgrade() -> None:
    with op.batch_alter_table("fact_person", schema=None) as batch_op:
        for name, (type_, comment, old) in _NOW_NULLABLE.items():
            batch_op.alter_column(name, existing_type=type_, nullable=True, comment=comment,
                                  existing_comment=old)
        batch_op.alter_column("training_trades", existing_type=sa.Text(), comment=_COMMENTS["training_trades"][0],
                              existing_comment=_COMMENTS["training_trades"][1], existing_nullable=True)
        batch_op.alter_column("certificate_level", existing_type=sa.String(16),
                              comment=_COMMENTS["certificate_level"][0],
                              existing_comment=_COMMENTS["certificate_level"][1], existing_nullable=True)
        batch_op.add_column(sa.Column("attributes", sa.Text(), nullable=True, comment=_ATTRIBUTES_COMMENT))


def downgrade() -> None:
    with op.batch_alter_table("fact_person", schema=None) as batch_op:
        batch_op.drop_column("attributes")
        for name, (type_, comment, old) in _NOW_NULLABLE.items():
            nullable = name in ("education_level",)
            batch_op.alter_column(name, existing_type=type_, nullable=nullable, comment=old, existing_comment=comment)
        for name, (comment, old) in _COMMENTS.items():
            batch_op.alter_column(name, comment=old, existing_comment=comment, existing_nullable=True)
