"""charge shapes: a plan's minimum commitment per period (a true-up line makes up a shortfall), one
subscription's own prices for its plan (price_overrides), and the avg meter aggregation

Revision ID: 0024s
Revises: 0024p
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024s"
down_revision = "0024p"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("plans", sa.Column("minimum_commitment", sa.BigInteger(), nullable=True))
    op.create_check_constraint(
        op.f("ck_plans_minimum_commitment"),
        "plans",
        "minimum_commitment IS NULL OR minimum_commitment > 0",
    )
    op.add_column("subscriptions", sa.Column("price_overrides", postgresql.JSONB(), nullable=True))
    _meter_aggregations("'count', 'sum', 'max', 'last', 'unique_count', 'avg'")


def downgrade() -> None:
    op.execute("DELETE FROM meters WHERE aggregation = 'avg' AND in_use_since IS NULL")
    _meter_aggregations("'count', 'sum', 'max', 'last', 'unique_count'")
    op.drop_column("subscriptions", "price_overrides")
    op.drop_constraint(op.f("ck_plans_minimum_commitment"), "plans", type_="check")
    op.drop_column("plans", "minimum_commitment")


def _meter_aggregations(allowed: str) -> None:
    op.drop_constraint(op.f("ck_meters_aggregation"), "meters", type_="check")
    op.create_check_constraint(op.f("ck_meters_aggregation"), "meters", f"aggregation IN ({allowed})")
