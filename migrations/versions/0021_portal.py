"""the hosted customer portal: signed single-customer links with flows, browser logins, form submissions and
card attempts; plans visible in the portal, customer addresses and tax ids (frozen on finalized invoices), and
the customer's reason for cancelling

Revision ID: 0021
Revises: 0014
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0021"
down_revision = "0018"
branch_labels = None
depends_on = None

FLOWS = "('payment_method_update', 'subscription_cancel', 'subscription_update', 'invoice_pay')"


def upgrade() -> None:
    op.add_column(
        "plans", sa.Column("portal_visible", sa.Boolean(), nullable=False, server_default=sa.text("false"))
    )
    op.add_column("customers", sa.Column("address", postgresql.JSONB(), nullable=True))
    op.add_column(
        "customers", sa.Column("tax_ids", postgresql.JSONB(), nullable=False, server_default=sa.text("'[]'"))
    )
    op.add_column("subscriptions", sa.Column("cancellation_details", postgresql.JSONB(), nullable=True))
    op.add_column("invoices", sa.Column("customer_details", postgresql.JSONB(), nullable=True))

    # Links: a signed token (no form nonce any more: each browser login has its own CSRF token), an optional
    # flow with its target, the locale asked for, single use for links made over the API.
    op.drop_constraint(op.f("ck_portal_sessions_flow"), "portal_sessions", type_="check")
    op.alter_column("portal_sessions", "flow", existing_type=sa.String(length=32), nullable=True)
    op.drop_column("portal_sessions", "form_nonce")
    op.add_column("portal_sessions", sa.Column("flow_target", sa.String(length=40), nullable=True))
    op.add_column("portal_sessions", sa.Column("locale", sa.String(length=8), nullable=True))
    op.add_column(
        "portal_sessions",
        sa.Column("single_use", sa.Boolean(), nullable=False, server_default=sa.text("false")),
    )
    op.add_column(
        "portal_sessions",
        sa.Column("scope", sa.String(length=16), nullable=False, server_default=sa.text("'customer'")),
    )
    op.add_column("portal_sessions", sa.Column("opened_at", sa.DateTime(timezone=True), nullable=True))
    op.create_check_constraint(op.f("ck_portal_sessions_flow"), "portal_sessions", f"flow IS NULL OR flow IN {FLOWS}")
    op.create_check_constraint(op.f("ck_portal_sessions_scope"), "portal_sessions", "scope IN ('customer', 'invoice')")
    op.create_check_constraint(
        op.f("ck_portal_sessions_locale"), "portal_sessions", "locale IS NULL OR locale IN ('en', 'zh-CN', 'auto')"
    )

    op.create_table(
        "portal_logins",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("portal_session_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("secret_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("locale IS NULL OR locale IN ('en', 'zh-CN')", name=op.f("ck_portal_logins_locale")),
        sa.ForeignKeyConstraint(
            ["portal_session_id"],
            ["portal_sessions.id"],
            name=op.f("fk_portal_logins_portal_session_id_portal_sessions"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_portal_logins_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_portal_logins_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_logins")),
        sa.UniqueConstraint("secret_hash", name=op.f("uq_portal_logins_secret_hash")),
        sa.UniqueConstraint("seq", name=op.f("uq_portal_logins_seq")),
    )
    op.create_index("ix_portal_logins_portal_session_id", "portal_logins", ["portal_session_id"])

    op.create_table(
        "portal_form_submissions",
        sa.Column("login_id", sa.String(length=40), nullable=False),
        sa.Column("form_key", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=2048), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["login_id"], ["portal_logins.id"], name=op.f("fk_portal_form_submissions_login_id_portal_logins")
        ),
        sa.PrimaryKeyConstraint("login_id", "form_key", name=op.f("pk_portal_form_submissions")),
    )

    op.create_table(
        "portal_card_attempts",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("portal_session_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["portal_session_id"],
            ["portal_sessions.id"],
            name=op.f("fk_portal_card_attempts_portal_session_id_portal_sessions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_portal_card_attempts")),
    )
    op.create_index(
        "ix_portal_card_attempts_session_time", "portal_card_attempts", ["portal_session_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("portal_card_attempts")
    op.drop_table("portal_form_submissions")
    op.drop_table("portal_logins")
    op.drop_constraint(op.f("ck_portal_sessions_locale"), "portal_sessions", type_="check")
    op.drop_constraint(op.f("ck_portal_sessions_scope"), "portal_sessions", type_="check")
    op.drop_constraint(op.f("ck_portal_sessions_flow"), "portal_sessions", type_="check")
    for column in ("opened_at", "scope", "single_use", "locale", "flow_target"):
        op.drop_column("portal_sessions", column)
    op.add_column(
        "portal_sessions",
        sa.Column("form_nonce", sa.String(length=64), nullable=False, server_default=sa.text("''")),
    )
    op.execute("UPDATE portal_sessions SET flow = 'payment_method_update' WHERE flow IS NULL")
    op.alter_column("portal_sessions", "flow", existing_type=sa.String(length=32), nullable=False)
    op.create_check_constraint(
        op.f("ck_portal_sessions_flow"), "portal_sessions", "flow IN ('payment_method_update')"
    )
    op.drop_column("invoices", "customer_details")
    op.drop_column("subscriptions", "cancellation_details")
    op.drop_column("customers", "tax_ids")
    op.drop_column("customers", "address")
    op.drop_column("plans", "portal_visible")
