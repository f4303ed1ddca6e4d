"""credit notes and their lines, the invoices' credit note sums, and the trigger that makes credit notes
immutable once issued (only the move to void)

Revision ID: 0008
Revises: 0003, 0006
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
# 0007 (invoice documents) is written in parallel from 0006; `billing migrate` upgrades to all heads. 0003
# (payments) is on its own branch and holds `refunds`, which credit notes reference.
down_revision = ("0003", "0006")
branch_labels = None
depends_on = None


GUARDS = [
    """
CREATE FUNCTION credit_notes_guard_issued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'DELETE' THEN
    RAISE EXCEPTION 'credit note % cannot be deleted; void it', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF ROW(NEW.id, NEW.merchant_id, NEW.invoice_id, NEW.customer_id, NEW.number, NEW.type, NEW.currency,
         NEW.amount, NEW.refund_amount, NEW.refund_id, NEW.credit_amount, NEW.customer_balance_transaction_id,
         NEW.out_of_band_amount, NEW.reason, NEW.memo, NEW.metadata, NEW.created_at)
     IS DISTINCT FROM
     ROW(OLD.id, OLD.merchant_id, OLD.invoice_id, OLD.customer_id, OLD.number, OLD.type, OLD.currency,
         OLD.amount, OLD.refund_amount, OLD.refund_id, OLD.credit_amount, OLD.customer_balance_transaction_id,
         OLD.out_of_band_amount, OLD.reason, OLD.memo, OLD.metadata, OLD.created_at) THEN
    RAISE EXCEPTION 'credit note % is issued: its figures cannot change', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  IF OLD.status = 'void' AND NEW.status <> 'void' THEN
    RAISE EXCEPTION 'credit note % is void and cannot be issued again', OLD.id USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
""",
    """
CREATE TRIGGER credit_notes_guard_issued BEFORE UPDATE OR DELETE ON credit_notes
  FOR EACH ROW EXECUTE FUNCTION credit_notes_guard_issued();
""",
    """
CREATE FUNCTION credit_note_lines_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'credit note lines cannot change' USING ERRCODE = 'check_violation';
END $$;
""",
    """
CREATE TRIGGER credit_note_lines_append_only BEFORE UPDATE OR DELETE ON credit_note_lines
  FOR EACH ROW EXECUTE FUNCTION credit_note_lines_append_only();
""",
]


def upgrade() -> None:
    op.add_column(
        "invoices",
        sa.Column("pre_payment_credit_notes_amount", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "invoices",
        sa.Column("post_payment_credit_notes_amount", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_invoices_credit_notes_bounded"),
        "invoices",
        "pre_payment_credit_notes_amount >= 0 AND post_payment_credit_notes_amount >= 0 "
        "AND pre_payment_credit_notes_amount <= amount_paid "
        "AND pre_payment_credit_notes_amount + post_payment_credit_notes_amount <= GREATEST(total, 0)",
    )
    op.create_table(
        "credit_notes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_id", sa.String(length=40), nullable=False),
        sa.Column("customer_id", sa.String(length=40), nullable=False),
        sa.Column("number", sa.String(length=60), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("refund_amount", sa.BigInteger(), nullable=False),
        sa.Column("refund_id", sa.String(length=40), nullable=True),
        sa.Column("credit_amount", sa.BigInteger(), nullable=False),
        sa.Column("customer_balance_transaction_id", sa.String(length=40), nullable=True),
        sa.Column("out_of_band_amount", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("memo", sa.Text(), nullable=True),
        sa.Column("metadata", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('issued', 'void')", name=op.f("ck_credit_notes_status")),
        sa.CheckConstraint("type IN ('pre_payment', 'post_payment')", name=op.f("ck_credit_notes_type")),
        sa.CheckConstraint(
            "reason IS NULL OR reason IN ('duplicate', 'fraudulent', 'order_change', 'product_unsatisfactory')",
            name=op.f("ck_credit_notes_reason"),
        ),
        sa.CheckConstraint(
            "amount > 0 AND refund_amount >= 0 AND credit_amount >= 0 AND out_of_band_amount >= 0",
            name=op.f("ck_credit_notes_amounts_non_negative"),
        ),
        sa.CheckConstraint(
            "(type = 'pre_payment' AND refund_amount + credit_amount + out_of_band_amount = 0) OR "
            "(type = 'post_payment' AND refund_amount + credit_amount + out_of_band_amount = amount)",
            name=op.f("ck_credit_notes_amount_split"),
        ),
        sa.CheckConstraint(
            "(refund_amount > 0) = (refund_id IS NOT NULL)", name=op.f("ck_credit_notes_refund_named")
        ),
        sa.ForeignKeyConstraint(
            ["customer_balance_transaction_id"],
            ["customer_balance_transactions.id"],
            name=op.f("fk_credit_notes_customer_balance_transaction_id_customer_balance_transactions"),
        ),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_credit_notes_customer_id_customers")
        ),
        sa.ForeignKeyConstraint(
            ["invoice_id"], ["invoices.id"], name=op.f("fk_credit_notes_invoice_id_invoices")
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_credit_notes_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(
            ["refund_id"], ["refunds.id"], name=op.f("fk_credit_notes_refund_id_refunds")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_notes")),
        sa.UniqueConstraint("merchant_id", "number", name="uq_credit_notes_merchant_number"),
        sa.UniqueConstraint("seq", name=op.f("uq_credit_notes_seq")),
    )
    op.create_index(
        "ix_credit_notes_balance_transaction",
        "credit_notes",
        ["customer_balance_transaction_id"],
        unique=False,
    )
    op.create_index(
        "ix_credit_notes_customer", "credit_notes", ["merchant_id", "customer_id", "seq"], unique=False
    )
    op.create_index("ix_credit_notes_invoice", "credit_notes", ["invoice_id", "seq"], unique=False)
    op.create_index("ix_credit_notes_merchant_seq", "credit_notes", ["merchant_id", "seq"], unique=False)
    op.create_table(
        "credit_note_lines",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("seq", sa.BigInteger(), sa.Identity(always=True), nullable=False),
        sa.Column("merchant_id", sa.String(length=40), nullable=False),
        sa.Column("credit_note_id", sa.String(length=40), nullable=False),
        sa.Column("invoice_line_id", sa.String(length=40), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_credit_note_lines_amount_positive")),
        sa.ForeignKeyConstraint(
            ["credit_note_id"],
            ["credit_notes.id"],
            name=op.f("fk_credit_note_lines_credit_note_id_credit_notes"),
        ),
        sa.ForeignKeyConstraint(
            ["invoice_line_id"],
            ["invoice_lines.id"],
            name=op.f("fk_credit_note_lines_invoice_line_id_invoice_lines"),
        ),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_credit_note_lines_merchant_id_merchants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credit_note_lines")),
        sa.UniqueConstraint("seq", name=op.f("uq_credit_note_lines_seq")),
    )
    op.create_index(
        "ix_credit_note_lines_credit_note", "credit_note_lines", ["credit_note_id", "seq"], unique=False
    )
    op.create_index(
        "ix_credit_note_lines_invoice_line", "credit_note_lines", ["invoice_line_id"], unique=False
    )
    # An issued credit note is a legal document, like a finalized invoice: only its move to void may change it.
    for statement in GUARDS:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER credit_note_lines_append_only ON credit_note_lines")
    op.execute("DROP TRIGGER credit_notes_guard_issued ON credit_notes")
    op.execute("DROP FUNCTION credit_note_lines_append_only(), credit_notes_guard_issued()")
    op.drop_index("ix_credit_note_lines_invoice_line", table_name="credit_note_lines")
    op.drop_index("ix_credit_note_lines_credit_note", table_name="credit_note_lines")
    op.drop_table("credit_note_lines")
    op.drop_index("ix_credit_notes_merchant_seq", table_name="credit_notes")
    op.drop_index("ix_credit_notes_invoice", table_name="credit_notes")
    op.drop_index("ix_credit_notes_customer", table_name="credit_notes")
    op.drop_index("ix_credit_notes_balance_transaction", table_name="credit_notes")
    op.drop_table("credit_notes")
    op.drop_constraint(op.f("ck_invoices_credit_notes_bounded"), "invoices", type_="check")
    op.drop_column("invoices", "post_payment_credit_notes_amount")
    op.drop_column("invoices", "pre_payment_credit_notes_amount")
