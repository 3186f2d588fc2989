"""accounts and roles: who acts on duikou — department clerks, ops, officials (tasks/accounts/)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06

One model for every "who is acting": the portal's department clerks (their department comes from
the account, never from a form), the ops team reading receipts over HTTP, and the officials who
prepare, review and approve releases. ``account`` (one per person), ``account_role`` (what each
may do), ``sign_in_link`` (one-time links, stored as SHA-256), ``web_session`` (browser sessions,
stored as SHA-256, with their CSRF token) and ``sign_in_attempt`` (the log failed sign-ins are
rate-limited from). None of them is readable by the analyst role (it reads v_*, mart_*, ref_*).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "account",
        sa.Column("account_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("login", sa.String(64), nullable=False,
                  comment="sign-in name: lower-case letters, digits, . _ -"),
        sa.Column("display_name", sa.Text(), nullable=False,
                  comment="the person's name as shown on pages and in audits"),
        sa.Column("department", sa.String(32), sa.ForeignKey("ref_department.department",
                  name="fk_account_department_ref_department"),
                  comment="the department a clerk acts for (the portal never reads it from a form); null for others"),
        sa.Column("password_hash", sa.Text(),
                  comment="scrypt$n$r$p$salt$hash (hex); null: signs in only by a one-time link"),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("disabled_at", _TZ, comment="set when the account may no longer act"),
        sa.CheckConstraint("length(trim(display_name)) > 0", name="display_name_given"),
        sa.PrimaryKeyConstraint("account_id", name="pk_account"),
        sa.UniqueConstraint("login", name="uq_account_login"),
        comment="one row per person (or system) that acts on duikou: department clerks, ops, officials",
    )
    op.create_table(
        "account_role",
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.account_id",
                  name="fk_account_role_account_id_account"), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, comment="clerk, ops, preparer, reviewer or approver"),
        sa.Column("granted_at", _TZ, nullable=False),
        sa.CheckConstraint("role IN ('clerk', 'ops', 'preparer', 'reviewer', 'approver')",
                           name="role_known"),
        sa.PrimaryKeyConstraint("account_id", "role", name="pk_account_role"),
        comment="one row per account × role it holds",
    )
    op.create_table(
        "sign_in_link",
        sa.Column("link_sha256", sa.String(64), nullable=False,
                  comment="SHA-256 of the link's secret (never the secret)"),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.account_id",
                  name="fk_sign_in_link_account_id_account"), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("used_at", _TZ, comment="set on first use: a link signs in once"),
        sa.PrimaryKeyConstraint("link_sha256", name="pk_sign_in_link"),
        comment="one row per one-time sign-in link handed to a person",
    )
    op.create_table(
        "web_session",
        sa.Column("session_sha256", sa.String(64), nullable=False, comment="SHA-256 of the cookie's secret"),
        sa.Column("account_id", sa.Integer(), sa.ForeignKey("account.account_id",
                  name="fk_web_session_account_id_account"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False,
                  comment="the token every POST of the session must carry"),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("expires_at", _TZ, nullable=False),
        sa.Column("ended_at", _TZ, comment="set at sign-out"),
        sa.PrimaryKeyConstraint("session_sha256", name="pk_web_session"),
        comment="one row per signed-in browser session",
    )
    op.create_table(
        "sign_in_attempt",
        sa.Column("attempt_id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("login", sa.Text(), nullable=False, comment="the name given, as typed (capped at 64 characters)"),
        sa.Column("remote", sa.Text(), nullable=False, comment="the client address"),
        sa.Column("attempted_at", _TZ, nullable=False),
        sa.Column("succeeded", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(),
                  comment="why a failed attempt failed (unknown, password, disabled, throttled, link)"),
        sa.PrimaryKeyConstraint("attempt_id", name="pk_sign_in_attempt"),
        comment="one row per sign-in attempt: the log failed sign-ins are counted and rate-limited from",
    )
    op.create_index("ix_sign_in_attempt_login", "sign_in_attempt", ["login", "attempted_at"])
    op.create_index("ix_sign_in_attempt_remote", "sign_in_attempt", ["remote", "attempted_at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_attempt_remote", table_name="sign_in_attempt")
    op.drop_index("ix_sign_in_attempt_login", table_name="sign_in_attempt")
    for table in ("sign_in_attempt", "web_session", "sign_in_link", "account_role", "account"):
        op.drop_table(table)
