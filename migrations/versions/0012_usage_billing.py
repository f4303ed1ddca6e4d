"""usage_billed: what each invoice billed per (subscription, meter, period), so that usage arriving after its
period's invoice was final is billed once, as an adjustment on the next invoice

Revision ID: 0012
Revises: 0009
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_billed",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("meter_id", sa.String(length=40), nullable=False),
        sa.Column("meter_code", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=12), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('usage', 'adjustment')", name=op.f("ck_usage_billed_kind")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_usage_billed_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_usage_billed_subscription_id_subscriptions"),
        ),
        # A deleted draft takes its rows with it: what it would have billed was never billed.
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_usage_billed_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_usage_billed_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_billed")),
        sa.UniqueConstraint("seq", name=op.f("uq_usage_billed_seq")),
    )
    op.create_index(
        "uq_usage_billed_invoice_meter_period",
        "usage_billed",
        ["invoice_id", "meter_id", "period_start"],
        unique=True,
    )
    op.create_index(
        "ix_usage_billed_subscription_period", "usage_billed", ["subscription_id", "period_end"], unique=False
    )


def downgrade() -> None:
    op.drop_table("usage_billed")
