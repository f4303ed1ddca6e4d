"""charge shapes: a plan's minimum commitment per period (a true-up line makes up a shortfall), and one
subscription's own prices for its plan (price_overrides)

Revision ID: 0024s
Revises: 0023e
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024s"
down_revision = "0023e"
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


def downgrade() -> None:
    op.drop_column("subscriptions", "price_overrides")
    op.drop_constraint(op.f("ck_plans_minimum_commitment"), "plans", type_="check")
    op.drop_column("plans", "minimum_commitment")
