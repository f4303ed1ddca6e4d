"""billing profiles: invoices.issuer_details, the seller (the merchant's business profile) as it was when the
invoice was finalized, printed beside the frozen customer details; credit_notes.tax_amounts, the tax inside each
credit note rate by rate

Revision ID: 0024p
Revises: 0023e
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024p"
down_revision = "0023e"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoices", sa.Column("issuer_details", postgresql.JSONB(), nullable=True))
    op.add_column(
        "credit_notes",
        sa.Column("tax_amounts", postgresql.JSONB(), server_default="[]", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("credit_notes", "tax_amounts")
    op.drop_column("invoices", "issuer_details")
