"""indicator kinds, Chinese status labels, commented marts (issue 17 parts 2 and 6)

Revision ID: 0016
Revises: 0019
Create Date: 2026-12-06

* ``ref_indicator`` gains ``kind`` (flow / stock / cumulative / rate: how its values add up),
  ``over_townships`` and ``over_periods`` (what may be done to them across townships and across
  the periods of a year). Existing rows get a provisional kind from ``cumulative`` and
  ``value_type``; ``ensure_warehouse`` rewrites every row from the declarations right after.
* ``mart_completeness`` gains ``status_zh``, the status in Chinese beside its code.
* Every mart column gets a comment (PostgreSQL: ``COMMENT ON COLUMN``), so a BI tool shows a
  description for each; SQLite stores no comments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | Sequence[str] | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KIND = ("how values add up: flow (sum over periods and townships), stock (last value over time, sum "
         "over townships), cumulative (本年累计: the year's last period), rate (never summed)")
_OVER_TOWNSHIPS = "sum, weighted_mean (by the declared weight) or none"
_OVER_PERIODS = "sum (a flow) or last (a stock, 本年累计: each township's latest period) or none (a rate)"
_STATUS_ZH = "the status in Chinese: 按时 / 逾期 / 隔离待查 / 拒收 / 缺报 / 未到期"
_STATUS_LABELS = {"on_time": "按时", "late": "逾期", "missing": "缺报", "quarantined": "隔离待查",
                  "rejected": "拒收", "pending": "未到期"}

#: (table, column, type, nullable, comment before, comment after)
_COMMENTS: tuple[tuple[str, str, Any, bool, str | None, str], ...] = (
    ('mart_county_kpi_yearly', 'year', sa.Integer(), False, None,
     'calendar year'),
    ('mart_county_kpi_yearly', 'kpi', sa.String(length=64), False, None,
     'KPI id in expectations/kpis.yaml'),
    ('mart_county_kpi_yearly', 'label_zh', sa.Text(), False, None,
     "the KPI's name in Chinese"),
    ('mart_county_kpi_yearly', 'value', sa.Float(), True, None,
     'unrounded, in unit; null when it cannot be computed (zero denominator)'),
    ('mart_county_kpi_yearly', 'unit', sa.String(length=16), False, None,
     'unit of value (base unit: 元, 人, 人次, %, 倍)'),
    ('mart_county_kpi_yearly', 'department', sa.String(length=32), False, None,
     'source department'),
    ('mart_county_kpi_yearly', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_completeness', 'department', sa.String(length=32), False, None,
     'department id (ref_department)'),
    ('mart_completeness', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_completeness_township', 'department', sa.String(length=32), False, None,
     'department id (ref_department)'),
    ('mart_completeness_township', 'period', sa.String(length=7), False, None,
     'YYYY-MM or YYYY'),
    ('mart_completeness_township', 'township_code', sa.String(length=12), False, None,
     'township (ref_township)'),
    ('mart_completeness_township', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_registry_township', 'township_code', sa.String(length=12), False, None,
     'township (ref_township)'),
    ('mart_registry_township', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_registry_county', 'department', sa.String(length=32), False, None,
     'registry department, e.g. labour_registry'),
    ('mart_registry_county', 'poor_persons', sa.Integer(), False, None,
     'people of 建档立卡 households (人)'),
    ('mart_registry_county', 'certified_persons', sa.Integer(), False, None,
     'people holding any certificate (人)'),
    ('mart_registry_county', 'certified_mid_senior_persons', sa.Integer(), False, None,
     '中级工 and above (人)'),
    ('mart_registry_county', 'employed_persons', sa.Integer(), False, None,
     '就业状态 other than 未就业 (人)'),
    ('mart_registry_county', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_registry_category', 'department', sa.String(length=32), False, None,
     'registry department'),
    ('mart_registry_category', 'period', sa.String(length=7), False, None,
     'snapshot month'),
    ('mart_registry_category', 'township_code', sa.String(length=12), False, None,
     'township (ref_township)'),
    ('mart_registry_category', 'persons', sa.Integer(), False, None,
     'distinct people in the category (人)'),
    ('mart_registry_category', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_registry_reconciliation', 'department', sa.String(length=32), False, None,
     'registry department'),
    ('mart_registry_reconciliation', 'period', sa.String(length=7), False, None,
     'snapshot month'),
    ('mart_registry_reconciliation', 'township_code', sa.String(length=12), False, None,
     'township (ref_township)'),
    ('mart_registry_reconciliation', 'form_department', sa.String(length=32), False, None,
     'department of the aggregate return compared'),
    ('mart_registry_reconciliation', 'form_indicator', sa.String(length=64), False, None,
     'indicator of that return compared'),
    ('mart_registry_reconciliation', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
    ('mart_dq_scorecard', 'department', sa.String(length=32), False, None,
     'department id (ref_department)'),
    ('mart_dq_scorecard', 'checks_failed_critical', sa.Integer(), False, None,
     'checks of severity critical that failed'),
    ('mart_dq_scorecard', 'checks_failed_warning', sa.Integer(), False, None,
     'checks of severity warning that failed'),
    ('mart_dq_scorecard', 'followups_open', sa.Integer(), False, None,
     'follow-ups still open'),
    ('mart_dq_scorecard', 'refreshed_at', sa.DateTime(timezone=True), False, None,
     'when the mart was last recomputed (timestamptz)'),
)


def _comments(after: bool) -> None:
    if op.get_context().dialect.name != "postgresql":  # SQLite stores no comments
        return
    for table, column, type_, nullable, before, now in _COMMENTS:
        op.alter_column(table, column, existing_type=type_, existing_nullable=nullable,
                        comment=now if after else before, existing_comment=before if after else now)


def upgrade() -> None:
    with op.batch_alter_table("ref_indicator", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=12), nullable=True, comment=_KIND))
        batch_op.add_column(sa.Column("over_townships", sa.String(length=16), nullable=True, comment=_OVER_TOWNSHIPS))
        batch_op.add_column(sa.Column("over_periods", sa.String(length=8), nullable=True, comment=_OVER_PERIODS))
    # provisional: ensure_warehouse rewrites ref_indicator from the declarations after migrating
    op.execute(
        "UPDATE ref_indicator SET "
        "kind = CASE WHEN cumulative THEN 'cumulative' WHEN value_type = 'rate' THEN 'rate' ELSE 'flow' END, "
        "over_townships = CASE WHEN value_type = 'rate' THEN 'none' ELSE 'sum' END, "
        "over_periods = CASE WHEN cumulative THEN 'last' WHEN value_type = 'rate' THEN 'none' ELSE 'sum' END"
    )
    with op.batch_alter_table("ref_indicator", schema=None) as batch_op:
        batch_op.alter_column("kind", existing_type=sa.String(length=12), nullable=False)
        batch_op.alter_column("over_townships", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column("over_periods", existing_type=sa.String(length=8), nullable=False)
        batch_op.create_check_constraint(
            op.f("ck_ref_indicator_kind_known"), "kind IN ('flow', 'stock', 'cumulative', 'rate')"
        )
    with op.batch_alter_table("mart_completeness", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status_zh", sa.Text(), nullable=True, comment=_STATUS_ZH))
    whens = " ".join(f"WHEN '{code}' THEN '{label}'" for code, label in _STATUS_LABELS.items())
    op.execute(f"UPDATE mart_completeness SET status_zh = CASE status {whens} ELSE status END")
    with op.batch_alter_table("mart_completeness", schema=None) as batch_op:
        batch_op.alter_column("status_zh", existing_type=sa.Text(), nullable=False)
    _comments(after=True)


def downgrade() -> None:
    _comments(after=False)
    with op.batch_alter_table("mart_completeness", schema=None) as batch_op:
        batch_op.drop_column("status_zh")
    with op.batch_alter_table("ref_indicator", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_ref_indicator_kind_known"), type_="check")
        batch_op.drop_column("over_periods")
        batch_op.drop_column("over_townships")
        batch_op.drop_column("kind")
