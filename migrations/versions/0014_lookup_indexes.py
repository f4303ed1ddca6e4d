"""indexes for pending tasks found by what they are about (invoice, subscription) and for the smart retry hour's
successful charges by card brand

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_scheduled_tasks_pending_invoice",
        "scheduled_tasks",
        [sa.text("(payload ->> 'invoice')")],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_scheduled_tasks_pending_subscription",
        "scheduled_tasks",
        [sa.text("(payload ->> 'subscription')")],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_payments_succeeded_brand",
        "payments",
        ["merchant_id", "card_brand", "created_at"],
        postgresql_where=sa.text("status = 'succeeded'"),
    )


def downgrade() -> None:
    op.drop_index("ix_payments_succeeded_brand", table_name="payments")
    op.drop_index("ix_scheduled_tasks_pending_subscription", table_name="scheduled_tasks")
    op.drop_index("ix_scheduled_tasks_pending_invoice", table_name="scheduled_tasks")
