"""dunning cases: one per invoice whose automatic charge failed (smart retries and recovery metrics)

Revision ID: 0010
Revises: 0007, 0008
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = ("0007", "0008")
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dunning_cases",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=True),
        sa.Column("test_clock_id", sa.String(length=40), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("technical_retries", sa.Integer(), nullable=False),
        sa.Column("first_failure_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_decline_class", sa.String(length=16), nullable=False),
        sa.Column("last_decline_code", sa.String(length=64), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("schedule", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("final_action", sa.String(length=16), nullable=True),
        sa.Column("recovered_amount", sa.BigInteger(), nullable=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "state IN ('retrying', 'awaiting_payment_method', 'recovered', 'exhausted', 'voided')",
            name=op.f("ck_dunning_cases_state"),
        ),
        sa.CheckConstraint(
            "final_action IS NULL OR final_action IN ('cancel', 'unpaid', 'past_due')",
            name=op.f("ck_dunning_cases_action"),
        ),
        sa.CheckConstraint("attempts >= 0 AND technical_retries >= 0", name=op.f("ck_dunning_cases_counts")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_dunning_cases_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_dunning_cases_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_dunning_cases_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dunning_cases")),
        sa.UniqueConstraint("invoice_id", name=op.f("uq_dunning_cases_invoice_id")),
        sa.UniqueConstraint("seq", name=op.f("uq_dunning_cases_seq")),
    )
    op.create_index(
        "ix_dunning_cases_open_customer",
        "dunning_cases",
        ["customer_id"],
        postgresql_where=sa.text("state IN ('retrying', 'awaiting_payment_method', 'exhausted')"),
    )
    op.create_index("ix_dunning_cases_merchant_opened", "dunning_cases", ["merchant_id", "first_failure_at"])


def downgrade() -> None:
    op.drop_index("ix_dunning_cases_merchant_opened", table_name="dunning_cases")
    op.drop_index("ix_dunning_cases_open_customer", table_name="dunning_cases")
    op.drop_table("dunning_cases")
