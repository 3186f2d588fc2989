"""releases: signed-off, frozen bulletins and the department's 说明 on follow-ups (issue 20)

Revision ID: 0015
Revises: 0013
Create Date: 2026-12-06

Written by hand from warehouse/schema.py: ``release`` (one row per release version and its state
in the sign-off chain), ``release_input`` (the ledger versions it pins), ``release_value`` (the
frozen figures), ``release_signoff`` (the append-only audit trail) and ``followup_explanation``
(a department's 说明 on a flagged value). New tables only: nothing existing changes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _when(name: str, nullable: bool = False, comment: str | None = None) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable, comment=comment)


def upgrade() -> None:
    op.create_table(
        "followup_explanation",
        sa.Column("followup_id", sa.String(length=12), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, comment="1, 2, ... per follow-up, in the order given"),
        sa.Column("explained_by", sa.Text(), nullable=False, comment="login of the department's clerk who wrote it"),
        sa.Column("department", sa.String(length=32), nullable=False,
                  comment="the department the clerk reports for"),
        _when("explained_at"),
        sa.Column("note", sa.Text(), nullable=False,
                  comment="说明: why the flagged value is what it is, in the department's words"),
        sa.Column("value_at_explanation", sa.Float(), nullable=True, comment="the value the 说明 was written for"),
        sa.CheckConstraint("length(trim(explained_by)) > 0", name=op.f("ck_followup_explanation_explained_by_given")),
        sa.CheckConstraint("length(trim(note)) > 0", name=op.f("ck_followup_explanation_note_given")),
        sa.ForeignKeyConstraint(["followup_id"], ["followup.followup_id"],
                                name=op.f("fk_followup_explanation_followup_id_followup")),
        sa.PrimaryKeyConstraint("followup_id", "seq", name=op.f("pk_followup_explanation")),
        comment="one row per department 说明 on a follow-up (a flagged value); append-only: a release needs a 说明 "
        "or an operator's acceptance for every flagged value it publishes",
    )
    op.create_table(
        "release",
        sa.Column("release_id", sa.String(length=40), nullable=False,
                  comment="<kind>-<period>-v<version>, e.g. annual-2016-v1"),
        sa.Column("kind", sa.String(length=8), nullable=False,
                  comment="monthly or annual (expectations/releases.yaml)"),
        sa.Column("period", sa.String(length=7), nullable=False, comment="YYYY (annual) or YYYY-MM (monthly)"),
        sa.Column("version", sa.Integer(), nullable=False,
                  comment="1, 2, ... per kind and period; a restatement is the next"),
        sa.Column("state", sa.String(length=10), nullable=False,
                  comment="draft / in_review (some steps signed) / approved (published)"),
        sa.Column("steps_done", sa.Integer(), nullable=False, comment="sign-off steps completed (0 for a draft)"),
        sa.Column("prepared_by", sa.Text(), nullable=False, comment="login of the preparer (who drafted it last)"),
        _when("frozen_at", comment="as-of time: when its values were frozen"),
        sa.Column("incomplete", sa.Boolean(), nullable=False,
                  comment="drafted with --allow-incomplete: returns were missing"),
        sa.Column("values_sha256", sa.String(length=64), nullable=False,
                  comment="of the canonical values file (values.json)"),
        sa.Column("provenance", sa.Text(), nullable=False,
                  comment="JSON: code version and commit, declaration and KPI-definition hashes, coverage, missing "
                  "returns, open follow-ups at freezing"),
        sa.Column("supersedes", sa.String(length=40), nullable=True,
                  comment="the approved version this one restates"),
        sa.Column("restatement", sa.Text(), nullable=True,
                  comment="JSON: the released figures this version moves against the one it supersedes"),
        _when("approved_at", nullable=True),
        sa.Column("superseded_by", sa.String(length=40), nullable=True,
                  comment="the approved version that restated this one (set when that one is approved)"),
        sa.CheckConstraint("kind IN ('monthly', 'annual')", name=op.f("ck_release_kind_known")),
        sa.CheckConstraint("state IN ('draft', 'in_review', 'approved')", name=op.f("ck_release_state_known")),
        sa.CheckConstraint("version >= 1", name=op.f("ck_release_version_positive")),
        sa.ForeignKeyConstraint(["supersedes"], ["release.release_id"], name=op.f("fk_release_supersedes_release")),
        sa.ForeignKeyConstraint(["superseded_by"], ["release.release_id"],
                                name=op.f("fk_release_superseded_by_release")),
        sa.PrimaryKeyConstraint("release_id", name=op.f("pk_release")),
        sa.UniqueConstraint("kind", "period", "version", name="uq_release_kind_period_version"),
        comment="one row per release version (a frozen candidate of a bulletin): its state in the sign-off chain "
        "and its provenance; an approved row is published and its values never change",
    )
    op.create_table(
        "release_input",
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("submission_id", sa.String(length=16), nullable=False,
                  comment="the version pinned: the ledger keeps it when a correction supersedes it"),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=7), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False, comment="of the file's bytes"),
        sa.Column("original_name", sa.Text(), nullable=False),
        _when("received_at"),
        sa.ForeignKeyConstraint(["release_id"], ["release.release_id"],
                                name=op.f("fk_release_input_release_id_release")),
        sa.ForeignKeyConstraint(["submission_id"], ["submission.submission_id"],
                                name=op.f("fk_release_input_submission_id_submission")),
        sa.PrimaryKeyConstraint("release_id", "submission_id", name=op.f("pk_release_input")),
        comment="one row per release × submission it was computed from (the versions current when it was frozen)",
    )
    op.create_table(
        "release_value",
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("value_kind", sa.String(length=10), nullable=False,
                  comment="kpi (a county KPI) or indicator (a township value)"),
        sa.Column("name", sa.String(length=64), nullable=False, comment="KPI or indicator id"),
        sa.Column("period", sa.String(length=7), nullable=False, comment="the KPI's year, or the value's period"),
        sa.Column("township_code", sa.String(length=12), nullable=False, comment="513323 (the county) for KPIs"),
        sa.Column("department", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=True,
                  comment="unrounded, in the base unit; null when it cannot be computed"),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column("submission_id", sa.String(length=16), nullable=True,
                  comment="indicator values: the version the value came from"),
        sa.Column("flagged", sa.Boolean(), nullable=False, comment="indicator values: a warning check flagged it"),
        sa.Column("coverage_used", sa.Integer(), nullable=True, comment="KPIs: township-periods with data"),
        sa.Column("coverage_expected", sa.Integer(), nullable=True, comment="KPIs: township-periods expected"),
        sa.CheckConstraint("value_kind IN ('kpi', 'indicator')", name=op.f("ck_release_value_value_kind_known")),
        sa.ForeignKeyConstraint(["release_id"], ["release.release_id"],
                                name=op.f("fk_release_value_release_id_release")),
        sa.PrimaryKeyConstraint("release_id", "value_kind", "name", "period", "township_code",
                                name=op.f("pk_release_value")),
        comment="one row per release × figure: the county KPIs of every year up to the period and the township "
        "values of the period behind them, as frozen (never updated)",
    )
    op.create_table(
        "release_signoff",
        sa.Column("release_id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, comment="1, 2, ... per release"),
        sa.Column("action", sa.String(length=8), nullable=False,
                  comment="draft, redraft, review, approve or return"),
        sa.Column("step_zh", sa.Text(), nullable=False, comment="the declared step, e.g. 统计审核, 分管领导审批, 编制"),
        sa.Column("role", sa.String(length=16), nullable=False, comment="the role the account acted in"),
        sa.Column("acted_by", sa.Text(), nullable=False, comment="account login"),
        sa.Column("acted_by_name", sa.Text(), nullable=False, comment="account display name at the time"),
        _when("acted_at"),
        sa.Column("note", sa.Text(), nullable=False),
        sa.CheckConstraint("action IN ('draft', 'redraft', 'review', 'approve', 'return')",
                           name=op.f("ck_release_signoff_action_known")),
        sa.CheckConstraint("length(trim(acted_by)) > 0", name=op.f("ck_release_signoff_acted_by_given")),
        sa.ForeignKeyConstraint(["release_id"], ["release.release_id"],
                                name=op.f("fk_release_signoff_release_id_release")),
        sa.PrimaryKeyConstraint("release_id", "seq", name=op.f("pk_release_signoff")),
        comment="one row per sign-off action on a release; append-only audit trail (who, when, note)",
    )


def downgrade() -> None:
    for name in ("release_signoff", "release_value", "release_input", "release", "followup_explanation"):
        op.drop_table(name)
