"""wallets: prepaid credit wallets and their ledger of movements; invoices.prepaid_credit_amount (the credits
burned at finalization, guarded like the other figures once the invoice is finalized); invoice_items (one-off
pending items of a customer, billed on its next renewal)

Revision ID: 0024w
Revises: 0024s
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0024w"
down_revision = "0024s"
branch_labels = None
depends_on = None

GUARD = """
CREATE FUNCTION invoices_guard_prepaid_credit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status <> 'draft' AND NEW.prepaid_credit_amount <> OLD.prepaid_credit_amount THEN
    RAISE EXCEPTION 'invoice % is finalized: its figures cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
"""
GUARD_TRIGGER = """
CREATE TRIGGER invoices_guard_prepaid_credit BEFORE UPDATE ON invoices
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_prepaid_credit();
"""


def upgrade() -> None:
    op.add_column(
        "invoices", sa.Column("prepaid_credit_amount", sa.BigInteger(), server_default="0", nullable=False)
    )
    op.create_check_constraint(
        op.f("ck_invoices_prepaid_credit_non_negative"), "invoices", "prepaid_credit_amount >= 0"
    )
    op.execute(GUARD)
    op.execute(GUARD_TRIGGER)
    op.create_table(
        "wallets",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate_amount", sa.Numeric(38, 12), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("auto_top_up", postgresql.JSONB(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("terminated_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('active', 'terminated')", name=op.f("ck_wallets_status")),
        sa.CheckConstraint("balance >= 0", name=op.f("ck_wallets_balance_non_negative")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_wallets_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_wallets_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallets")),
        sa.UniqueConstraint("seq", name=op.f("uq_wallets_seq")),
    )
    op.create_index(
        "uq_wallets_customer_currency_active",
        "wallets",
        ["customer_id", "currency"],
        unique=True,
        postgresql_where=sa.text("status = 'active'"),
    )
    op.create_index("ix_wallets_customer_seq", "wallets", ["customer_id", "seq"])
    op.create_table(
        "wallet_transactions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("wallet_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("trigger_id", sa.String(length=40), nullable=True),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("details", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "kind IN ('granted', 'purchased', 'restored', 'burned', 'expired', 'voided')",
            name=op.f("ck_wallet_transactions_kind"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'settled', 'failed')", name=op.f("ck_wallet_transactions_status")
        ),
        sa.CheckConstraint(
            "(kind IN ('granted', 'purchased', 'restored') AND amount > 0 AND remaining BETWEEN 0 AND amount) "
            "OR (kind NOT IN ('granted', 'purchased', 'restored') AND amount < 0 AND remaining IS NULL)",
            name=op.f("ck_wallet_transactions_amount_sign"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_wallet_transactions_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["wallet_id"], ["wallets.id"], name=op.f("fk_wallet_transactions_wallet_id_wallets")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_wallet_transactions_invoice_id_invoices")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_wallet_transactions")),
        sa.UniqueConstraint("seq", name=op.f("uq_wallet_transactions_seq")),
    )
    op.create_index("ix_wallet_transactions_wallet_seq", "wallet_transactions", ["wallet_id", "seq"])
    op.create_index(
        "uq_wallet_transactions_burn_invoice",
        "wallet_transactions",
        ["wallet_id", "invoice_id"],
        unique=True,
        postgresql_where=sa.text("kind = 'burned'"),
    )
    op.create_index("uq_wallet_transactions_trigger", "wallet_transactions", ["trigger_id"], unique=True)
    op.create_table(
        "invoice_items",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("quantity", sa.Numeric(38, 12), nullable=False),
        sa.Column("unit_amount_decimal", sa.Numeric(38, 12), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("metadata", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("invoiced_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('pending', 'invoiced')", name=op.f("ck_invoice_items_status")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_invoice_items_amount_positive")),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_invoice_items_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_invoice_items_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_items_invoice_id_invoices"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_items")),
        sa.UniqueConstraint("seq", name=op.f("uq_invoice_items_seq")),
    )
    op.create_index(
        "ix_invoice_items_customer_pending",
        "invoice_items",
        ["customer_id", "currency", "seq"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("ix_invoice_items_merchant_seq", "invoice_items", ["merchant_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_invoice_items_merchant_seq", table_name="invoice_items")
    op.drop_index("ix_invoice_items_customer_pending", table_name="invoice_items")
    op.drop_table("invoice_items")
    op.drop_index("uq_wallet_transactions_trigger", table_name="wallet_transactions")
    op.drop_index("uq_wallet_transactions_burn_invoice", table_name="wallet_transactions")
    op.drop_index("ix_wallet_transactions_wallet_seq", table_name="wallet_transactions")
    op.drop_table("wallet_transactions")
    op.drop_index("ix_wallets_customer_seq", table_name="wallets")
    op.drop_index("uq_wallets_customer_currency_active", table_name="wallets")
    op.drop_table("wallets")
    op.execute("DROP TRIGGER invoices_guard_prepaid_credit ON invoices")
    op.execute("DROP FUNCTION invoices_guard_prepaid_credit()")
    op.drop_constraint(op.f("ck_invoices_prepaid_credit_non_negative"), "invoices", type_="check")
    op.drop_column("invoices", "prepaid_credit_amount")
