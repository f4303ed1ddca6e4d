"""customer emails (the email outbox) and portal sessions

Revision ID: 0011
Revises: 0007, 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
# Written in parallel with other features; `billing migrate` upgrades to all heads.
down_revision = ("0007", "0008")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "email_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("to", sa.String(length=320), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_email_messages_status")),
        sa.CheckConstraint("locale IN ('en', 'zh-CN')", name=op.f("ck_email_messages_locale")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_email_messages_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_email_messages_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_messages")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_email_messages_dedupe_key")),
        sa.UniqueConstraint("seq", name=op.f("uq_email_messages_seq")),
    )
    op.create_index("ix_email_messages_merchant_seq", "email_messages", ["merchant_id", "seq"])
    op.create_index("ix_email_messages_customer_seq", "email_messages", ["merchant_id", "customer_id", "seq"])
    op.create_index(
        "ix_email_messages_pending_due",
        "email_messages",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )

    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("form_nonce", sa.String(length=64), nullable=False),
        sa.Column("flow", sa.String(length=32), nullable=False),
        sa.Column("return_url", sa.String(length=2048), nullable=True),
        sa.Column("origin", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("flow IN ('payment_method_update')", name=op.f("ck_portal_sessions_flow")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_portal_sessions_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_portal_sessions_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_portal_sessions_token_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_portal_sessions_seq")),
    )
    op.create_index("ix_portal_sessions_merchant_seq", "portal_sessions", ["merchant_id", "seq"])


def downgrade() -> None:
    op.drop_table("portal_sessions")
    op.drop_table("email_messages")
