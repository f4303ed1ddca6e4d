"""finance console: users, login sessions, the append-only audit log, and API keys that expire after a roll

Revision ID: 0018
Revises: 0014
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0014"
branch_labels = None
depends_on = None

_APPEND_ONLY = [
    """
CREATE FUNCTION console_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the audit log is append-only' USING ERRCODE = 'check_violation';
END $$;
""",
    """
CREATE TRIGGER console_audit_log_append_only BEFORE UPDATE OR DELETE ON console_audit_log
  FOR EACH ROW EXECUTE FUNCTION console_audit_log_append_only();
""",
]


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("rolled_from", sa.String(length=40), nullable=True))
    op.create_table(
        "console_users",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("failed_logins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('finance', 'admin')", name=op.f("ck_console_users_role")),
        sa.CheckConstraint("failed_logins >= 0", name=op.f("ck_console_users_failed_logins")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_console_users_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("seq", name=op.f("uq_console_users_seq")),
    )
    op.create_index("uq_console_users_merchant_email", "console_users", ["merchant_id", "email"], unique=True)
    op.create_index("ix_console_users_email", "console_users", ["email"])
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["console_users.id"], name=op.f("fk_console_sessions_user_id_console_users")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_console_sessions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_console_sessions_token_hash")),
    )
    op.create_index("ix_console_sessions_user", "console_sessions", ["user_id"])
    op.create_table(
        "console_audit_log",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("user_id", sa.String(length=40), nullable=True),
        sa.Column("actor", sa.String(length=320), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("object_type", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=60), nullable=True),
        sa.Column("before", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("after", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_console_audit_log_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["console_users.id"], name=op.f("fk_console_audit_log_user_id_console_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_audit_log")),
        sa.UniqueConstraint("seq", name=op.f("uq_console_audit_log_seq")),
    )
    op.create_index("ix_console_audit_log_merchant_seq", "console_audit_log", ["merchant_id", "seq"])
    op.create_index("ix_console_audit_log_object", "console_audit_log", ["merchant_id", "object_id"])
    for statement in _APPEND_ONLY:
        op.execute(statement)
    # The console's invoice list filters and sorts by these within a merchant.
    op.create_index("ix_invoices_merchant_created", "invoices", ["merchant_id", "created_at"])
    op.create_index(
        "ix_invoices_merchant_open_due",
        "invoices",
        ["merchant_id", "due_date"],
        postgresql_where=sa.text("status = 'open'"),
    )


def downgrade() -> None:
    op.drop_index("ix_invoices_merchant_open_due", table_name="invoices")
    op.drop_index("ix_invoices_merchant_created", table_name="invoices")
    op.execute("DROP TRIGGER console_audit_log_append_only ON console_audit_log")
    op.execute("DROP FUNCTION console_audit_log_append_only()")
    op.drop_table("console_audit_log")
    op.drop_table("console_sessions")
    op.drop_table("console_users")
    op.drop_column("api_keys", "rolled_from")
    op.drop_column("api_keys", "expires_at")
