"""catalog: meters, plans (charges as JSONB), coupons, tax rates

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def _common_columns() -> list[sa.Column]:
    return [
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
    ]


def _tail_columns(*, in_use: bool) -> list[sa.Column]:
    columns = [
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False)
    ]
    if in_use:
        columns.append(sa.Column("in_use_since", sa.DateTime(timezone=True), nullable=True))
    return [
        *columns,
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def _keys(table: str) -> list[sa.Constraint]:
    return [
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f(f"fk_{table}_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{table}")),
        sa.UniqueConstraint("seq", name=op.f(f"uq_{table}_seq")),
    ]


def upgrade() -> None:
    op.create_table(
        "meters",
        *_common_columns(),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("aggregation", sa.String(length=16), nullable=False),
        sa.Column("property", sa.String(length=256), nullable=True),
        *_tail_columns(in_use=True),
        sa.CheckConstraint(
            "aggregation IN ('count', 'sum', 'max', 'last', 'unique_count')",
            name=op.f("ck_meters_aggregation"),
        ),
        *_keys("meters"),
    )
    op.create_index("ix_meters_merchant_seq", "meters", ["merchant_id", "seq"], unique=False)
    op.create_index("uq_meters_merchant_code", "meters", ["merchant_id", "code"], unique=True)

    op.create_table(
        "plans",
        *_common_columns(),
        sa.Column("code", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("interval", sa.String(length=8), nullable=False),
        sa.Column("interval_count", sa.Integer(), nullable=False),
        sa.Column("amount_decimal", sa.Numeric(precision=27, scale=12), nullable=False),
        sa.Column("trial_period_days", sa.Integer(), nullable=True),
        sa.Column("charges", postgresql.JSONB(astext_type=sa.Text()), server_default="[]", nullable=False),
        *_tail_columns(in_use=True),
        sa.CheckConstraint("interval IN ('day', 'week', 'month', 'year')", name=op.f("ck_plans_interval")),
        sa.CheckConstraint("amount_decimal >= 0", name=op.f("ck_plans_amount_decimal")),
        sa.CheckConstraint("interval_count >= 1", name=op.f("ck_plans_interval_count")),
        *_keys("plans"),
    )
    op.create_index("ix_plans_merchant_seq", "plans", ["merchant_id", "seq"], unique=False)
    op.create_index("uq_plans_merchant_code", "plans", ["merchant_id", "code"], unique=True)

    op.create_table(
        "coupons",
        *_common_columns(),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("percent_off", sa.Numeric(precision=7, scale=4), nullable=True),
        sa.Column("amount_off", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("duration", sa.String(length=16), nullable=False),
        sa.Column("duration_in_periods", sa.Integer(), nullable=True),
        sa.Column("max_redemptions", sa.Integer(), nullable=True),
        sa.Column("redeem_by", sa.DateTime(timezone=True), nullable=True),
        sa.Column("times_redeemed", sa.Integer(), server_default="0", nullable=False),
        *_tail_columns(in_use=False),
        sa.CheckConstraint("duration IN ('once', 'repeating', 'forever')", name=op.f("ck_coupons_duration")),
        sa.CheckConstraint(
            "(percent_off IS NULL) <> (amount_off IS NULL)", name=op.f("ck_coupons_one_discount")
        ),
        sa.CheckConstraint(
            "max_redemptions IS NULL OR times_redeemed <= max_redemptions",
            name=op.f("ck_coupons_max_redemptions"),
        ),
        *_keys("coupons"),
    )
    op.create_index("ix_coupons_merchant_seq", "coupons", ["merchant_id", "seq"], unique=False)

    op.create_table(
        "tax_rates",
        *_common_columns(),
        sa.Column("display_name", sa.String(length=100), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("percentage", sa.Numeric(precision=7, scale=4), nullable=False),
        sa.Column("inclusive", sa.Boolean(), nullable=False),
        *_tail_columns(in_use=True),
        *_keys("tax_rates"),
    )
    op.create_index("ix_tax_rates_merchant_seq", "tax_rates", ["merchant_id", "seq"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_tax_rates_merchant_seq", table_name="tax_rates")
    op.drop_table("tax_rates")
    op.drop_index("ix_coupons_merchant_seq", table_name="coupons")
    op.drop_table("coupons")
    op.drop_index("uq_plans_merchant_code", table_name="plans")
    op.drop_index("ix_plans_merchant_seq", table_name="plans")
    op.drop_table("plans")
    op.drop_index("uq_meters_merchant_code", table_name="meters")
    op.drop_index("ix_meters_merchant_seq", table_name="meters")
    op.drop_table("meters")
