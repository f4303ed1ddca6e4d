"""channels: debit agreements as payment methods (status, connection, agreement numbers, limits, next action),
the payment method type on payments, and the log of channel notifications (their unique key makes a repeated
notification change nothing)

Revision ID: 0019
Revises: 0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0021"
branch_labels = None
depends_on = None

CARD_COLUMNS = ("card_brand", "card_last4", "card_exp_month", "card_exp_year", "card_fingerprint")


def upgrade() -> None:
    op.add_column(
        "payment_methods", sa.Column("status", sa.String(length=16), server_default="active", nullable=False)
    )
    op.add_column("payment_methods", sa.Column("connection_id", sa.String(length=40), nullable=True))
    op.add_column("payment_methods", sa.Column("external_agreement_no", sa.String(length=32), nullable=True))
    op.add_column("payment_methods", sa.Column("agreement_no", sa.String(length=64), nullable=True))
    op.add_column("payment_methods", sa.Column("agreement", postgresql.JSONB(), nullable=True))
    op.add_column("payment_methods", sa.Column("next_action", postgresql.JSONB(), nullable=True))
    for column in CARD_COLUMNS:
        op.alter_column("payment_methods", column, nullable=True)
    op.drop_constraint(op.f("ck_payment_methods_type"), "payment_methods", type_="check")
    op.create_check_constraint(
        op.f("ck_payment_methods_type"), "payment_methods", "type IN ('card', 'alipay', 'wechat_pay', 'unionpay', 'ecny')"
    )
    op.create_check_constraint(
        op.f("ck_payment_methods_status"), "payment_methods", "status IN ('pending', 'active', 'revoked', 'expired')"
    )
    op.create_check_constraint(
        op.f("ck_payment_methods_card_fields"),
        "payment_methods",
        "type <> 'card' OR (card_brand IS NOT NULL AND card_last4 IS NOT NULL AND card_exp_month IS NOT NULL "
        "AND card_exp_year IS NOT NULL AND card_fingerprint IS NOT NULL AND status = 'active')",
    )
    op.create_check_constraint(
        op.f("ck_payment_methods_agreement_fields"),
        "payment_methods",
        "type = 'card' OR (connection_id IS NOT NULL AND external_agreement_no IS NOT NULL AND agreement IS NOT NULL)",
    )
    op.create_index(
        "uq_payment_methods_external_agreement_no",
        "payment_methods",
        ["merchant_id", "connection_id", "external_agreement_no"],
        unique=True,
        postgresql_where=sa.text("external_agreement_no IS NOT NULL"),
    )
    op.create_index(
        "ix_payment_methods_agreement_no",
        "payment_methods",
        ["merchant_id", "connection_id", "agreement_no"],
        postgresql_where=sa.text("agreement_no IS NOT NULL"),
    )
    op.create_index(
        "ix_payment_methods_pending", "payment_methods", ["created_at"], postgresql_where=sa.text("status = 'pending'")
    )
    op.add_column(
        "payments",
        sa.Column("payment_method_type", sa.String(length=16), server_default="card", nullable=False),
    )
    op.create_table(
        "channel_notifications",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("connection_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("notify_id", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("object_id", sa.String(length=40), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_channel_notifications_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_channel_notifications")),
    )
    op.create_index(
        "uq_channel_notifications_notify_id",
        "channel_notifications",
        ["merchant_id", "connection_id", "notify_id"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_index("uq_channel_notifications_notify_id", table_name="channel_notifications")
    op.drop_table("channel_notifications")
    op.drop_column("payments", "payment_method_type")
    op.execute("DELETE FROM payment_methods WHERE type <> 'card'")
    op.drop_index("ix_payment_methods_pending", table_name="payment_methods")
    op.drop_index("ix_payment_methods_agreement_no", table_name="payment_methods")
    op.drop_index("uq_payment_methods_external_agreement_no", table_name="payment_methods")
    op.drop_constraint(op.f("ck_payment_methods_agreement_fields"), "payment_methods", type_="check")
    op.drop_constraint(op.f("ck_payment_methods_card_fields"), "payment_methods", type_="check")
    op.drop_constraint(op.f("ck_payment_methods_status"), "payment_methods", type_="check")
    op.drop_constraint(op.f("ck_payment_methods_type"), "payment_methods", type_="check")
    op.create_check_constraint(
        op.f("ck_payment_methods_type"), "payment_methods", "type IN ('card')")
    for column in CARD_COLUMNS:
        op.alter_column("payment_methods", column, nullable=False)
    for column in ("next_action", "agreement", "agreement_no", "external_agreement_no", "connection_id", "status"):
        op.drop_column("payment_methods", column)
