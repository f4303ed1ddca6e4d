"""invoices, invoice lines, gap-free numbering, the customer balance ledger, and the triggers that make
finalized invoices and ledger entries immutable

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None


GUARDS = [
    """
CREATE FUNCTION invoices_guard_finalized() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    IF OLD.status <> 'draft' THEN
      RAISE EXCEPTION 'invoice % is % and cannot be deleted', OLD.id, OLD.status USING ERRCODE = 'check_violation';
    END IF;
    RETURN OLD;
  END IF;
  IF OLD.status <> 'draft' AND (
       NEW.number IS DISTINCT FROM OLD.number OR NEW.customer_id <> OLD.customer_id
    OR NEW.subscription_id IS DISTINCT FROM OLD.subscription_id OR NEW.currency <> OLD.currency
    OR NEW.subtotal <> OLD.subtotal OR NEW.discount <> OLD.discount OR NEW.tax <> OLD.tax
    OR NEW.total <> OLD.total OR NEW.starting_balance <> OLD.starting_balance
    OR NEW.balance_applied <> OLD.balance_applied OR NEW.ending_balance IS DISTINCT FROM OLD.ending_balance
    OR NEW.amount_due <> OLD.amount_due OR NEW.period_start IS DISTINCT FROM OLD.period_start
    OR NEW.period_end IS DISTINCT FROM OLD.period_end OR NEW.finalized_at IS DISTINCT FROM OLD.finalized_at
    OR NEW.due_date IS DISTINCT FROM OLD.due_date OR NEW.collection_method <> OLD.collection_method
    OR NEW.created_at <> OLD.created_at) THEN
    RAISE EXCEPTION 'invoice % is finalized: its figures cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.status IN ('paid', 'void') AND NEW.status <> OLD.status THEN
    RAISE EXCEPTION 'invoice % is % and cannot become %', OLD.id, OLD.status, NEW.status
      USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.status <> 'draft' AND NEW.status = 'draft' THEN
    RAISE EXCEPTION 'invoice % cannot return to draft', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
""",
    """
CREATE TRIGGER invoices_guard_finalized BEFORE UPDATE OR DELETE ON invoices
  FOR EACH ROW EXECUTE FUNCTION invoices_guard_finalized();
""",
    """
CREATE FUNCTION invoice_lines_guard_finalized() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  parent_status text;
BEGIN
  SELECT status INTO parent_status FROM invoices
   WHERE id = CASE WHEN TG_OP = 'DELETE' THEN OLD.invoice_id ELSE NEW.invoice_id END;
  IF parent_status IS NOT NULL AND parent_status <> 'draft'
     AND NOT (TG_OP = 'UPDATE' AND NEW IS NOT DISTINCT FROM OLD) THEN
    RAISE EXCEPTION 'the lines of a finalized invoice cannot change' USING ERRCODE = 'check_violation';
  END IF;
  RETURN CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END;
END $$;
""",
    """
CREATE TRIGGER invoice_lines_guard_finalized BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines
  FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard_finalized();
""",
    """
CREATE FUNCTION ledger_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'customer balance transactions are append-only' USING ERRCODE = 'check_violation';
END $$;
""",
    """
CREATE TRIGGER customer_balance_transactions_append_only BEFORE UPDATE OR DELETE
  ON customer_balance_transactions FOR EACH ROW EXECUTE FUNCTION ledger_is_append_only();
""",
]


def upgrade() -> None:
    op.create_table(
        "invoice_number_sequences",
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("next_number", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_invoice_number_sequences_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("merchant_id", name=op.f("pk_invoice_number_sequences")),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=40), nullable=True),
        sa.Column("number", sa.String(length=40), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("collection_method", sa.String(length=24), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("due_date", sa.DateTime(timezone=True), nullable=True),
        sa.Column("days_until_due", sa.Integer(), nullable=True),
        sa.Column("subtotal", sa.BigInteger(), nullable=False),
        sa.Column("discount", sa.BigInteger(), nullable=False),
        sa.Column("tax", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("starting_balance", sa.BigInteger(), nullable=False),
        sa.Column("balance_applied", sa.BigInteger(), nullable=False),
        sa.Column("ending_balance", sa.BigInteger(), nullable=True),
        sa.Column("amount_due", sa.BigInteger(), nullable=False),
        sa.Column("amount_paid", sa.BigInteger(), nullable=False),
        sa.Column("amount_remaining", sa.BigInteger(), nullable=False),
        sa.Column("attempt_count", sa.Integer(), nullable=False),
        sa.Column("next_payment_attempt", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_out_of_band", sa.Boolean(), nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finalized_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("marked_uncollectible_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "collection_method IN ('charge_automatically', 'send_invoice')",
            name=op.f("ck_invoices_collection_method"),
        ),
        sa.CheckConstraint(
            "status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name=op.f("ck_invoices_status")
        ),
        sa.CheckConstraint(
            "amount_due >= 0 AND amount_paid >= 0 AND amount_remaining >= 0",
            name=op.f("ck_invoices_non_negative"),
        ),
        sa.CheckConstraint(
            "amount_paid + amount_remaining = amount_due", name=op.f("ck_invoices_paid_adds_up")
        ),
        sa.CheckConstraint("subtotal - discount + tax = total", name=op.f("ck_invoices_total_adds_up")),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_invoices_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_invoices_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoices")),
        sa.UniqueConstraint("merchant_id", "number", name="uq_invoices_merchant_number"),
        sa.UniqueConstraint("seq", name=op.f("uq_invoices_seq")),
    )
    op.create_index("ix_invoices_customer", "invoices", ["merchant_id", "customer_id", "seq"], unique=False)
    op.create_index("ix_invoices_merchant_seq", "invoices", ["merchant_id", "seq"], unique=False)
    op.create_index(op.f("ix_invoices_subscription_id"), "invoices", ["subscription_id"], unique=False)
    op.create_table(
        "customer_balance_transactions",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ending_balance", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("invoice_id", sa.String(length=40), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_customer_balance_transactions_customer_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_customer_balance_transactions_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"],
            ["merchants.id"],
            name=op.f("fk_customer_balance_transactions_merchant_id_merchants"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_balance_transactions")),
        sa.UniqueConstraint("seq", name=op.f("uq_customer_balance_transactions_seq")),
    )
    op.create_index(
        "ix_cbt_customer_seq", "customer_balance_transactions", ["customer_id", "seq"], unique=False
    )
    op.create_table(
        "invoice_lines",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("quantity", sa.Numeric(precision=38, scale=12), nullable=False),
        sa.Column("unit_amount_decimal", sa.Numeric(precision=38, scale=12), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("discount_amount", sa.BigInteger(), nullable=False),
        sa.Column("tax_amount", sa.BigInteger(), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=True),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=True),
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "type IN ('subscription', 'usage', 'proration', 'adjustment')", name=op.f("ck_invoice_lines_type")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"],
            ["invoices.id"],
            name=op.f("fk_invoice_lines_invoice_id_invoices"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_invoice_lines_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invoice_lines")),
        sa.UniqueConstraint("seq", name=op.f("uq_invoice_lines_seq")),
    )
    op.create_index("ix_invoice_lines_invoice", "invoice_lines", ["invoice_id", "seq"], unique=False)

    # A finalized invoice is a legal document: its figures and lines cannot change, whatever the application
    # does. Only the payment state may move (status along the state machine, amounts paid, attempts).
    for statement in GUARDS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER customer_balance_transactions_append_only ON customer_balance_transactions")
    op.execute("DROP TRIGGER invoice_lines_guard_finalized ON invoice_lines")
    op.execute("DROP TRIGGER invoices_guard_finalized ON invoices")
    op.execute(
        "DROP FUNCTION ledger_is_append_only(), invoice_lines_guard_finalized(), invoices_guard_finalized()"
    )
    op.drop_index("ix_invoice_lines_invoice", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_cbt_customer_seq", table_name="customer_balance_transactions")
    op.drop_table("customer_balance_transactions")
    op.drop_index(op.f("ix_invoices_subscription_id"), table_name="invoices")
    op.drop_index("ix_invoices_merchant_seq", table_name="invoices")
    op.drop_index("ix_invoices_customer", table_name="invoices")
    op.drop_table("invoices")
    op.drop_table("invoice_number_sequences")
