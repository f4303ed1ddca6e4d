"""entitlements: features (boolean, limit or enum), their values on plans, and on each customer the effective
set last announced (customer.entitlements_updated fires when it changes)

Revision ID: 0023e
Revises: 0022r
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0023e"
down_revision = "0022r"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "features",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("options", postgresql.JSONB(), server_default="[]", nullable=False),
        sa.Column("metadata", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("type IN ('boolean', 'limit', 'enum')", name=op.f("ck_features_type")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_features_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_features")),
        sa.UniqueConstraint("seq", name=op.f("uq_features_seq")),
    )
    op.create_index("uq_features_merchant_code", "features", ["merchant_id", "code"], unique=True)
    op.create_index("ix_features_merchant_seq", "features", ["merchant_id", "seq"])
    op.create_table(
        "plan_entitlements",
        sa.Column("plan_id", sa.String(length=40), nullable=False),
        sa.Column("feature_id", sa.String(length=40), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("value", postgresql.JSONB(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["plan_id"], ["plans.id"], name=op.f("fk_plan_entitlements_plan_id_plans")),
        sa.ForeignKeyConstraint(
            ["feature_id"], ["features.id"], name=op.f("fk_plan_entitlements_feature_id_features")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_plan_entitlements_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("plan_id", "feature_id", name=op.f("pk_plan_entitlements")),
    )
    op.create_index("ix_plan_entitlements_feature", "plan_entitlements", ["feature_id"])
    op.add_column(
        "customers",
        sa.Column("entitlements", postgresql.JSONB(), server_default="[]", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("customers", "entitlements")
    op.drop_index("ix_plan_entitlements_feature", table_name="plan_entitlements")
    op.drop_table("plan_entitlements")
    op.drop_index("ix_features_merchant_seq", table_name="features")
    op.drop_index("uq_features_merchant_code", table_name="features")
    op.drop_table("features")
