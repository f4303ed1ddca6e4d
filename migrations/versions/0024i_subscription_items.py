"""subscription items: the add-ons of a subscription (a plan x quantity beside its own plan, which stays its
first item), one row each, a plan at most once per subscription

Revision ID: 0024i
Revises: 0024w
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024i"
down_revision = "0024w"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=False),
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity >= 1", name=op.f("ck_subscription_items_quantity")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_subscription_items_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_items_subscription_id_subscriptions"),
        ),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_subscription_items_plan_id_plans")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_items")),
        sa.UniqueConstraint("seq", name=op.f("uq_subscription_items_seq")),
    )
    op.create_index(
        "uq_subscription_items_plan", "subscription_items", ["subscription_id", "plan_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_subscription_items_plan", table_name="subscription_items")
    op.drop_table("subscription_items")
