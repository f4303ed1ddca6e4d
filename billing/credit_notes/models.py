from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column

REASONS = ("duplicate", "fraudulent", "order_change", "product_unsatisfactory")


class CreditNote(Base):
    """A document that reduces what a finalized invoice charged. Pre-payment (the invoice was open): it takes
    `amount` off what is owed. Post-payment (the invoice was paid): `amount` is split between a refund to the
    payment method, a credit to the customer balance and money given back outside the engine. Immutable once
    issued, except the move to `void` (a trigger enforces it)."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        CheckConstraint("status IN ('issued', 'void')", name="status"),
        CheckConstraint("type IN ('pre_payment', 'post_payment')", name="type"),
        CheckConstraint(
            "reason IS NULL OR reason IN ('duplicate', 'fraudulent', 'order_change', 'product_unsatisfactory')",
            name="reason",
        ),
        CheckConstraint(
            "amount > 0 AND refund_amount >= 0 AND credit_amount >= 0 AND out_of_band_amount >= 0",
            name="amounts_non_negative",
        ),
        # Pre-payment: nothing moved but what the invoice asks for. Post-payment: every minor unit goes somewhere.
        CheckConstraint(
            "(type = 'pre_payment' AND refund_amount + credit_amount + out_of_band_amount = 0) OR "
            "(type = 'post_payment' AND refund_amount + credit_amount + out_of_band_amount = amount)",
            name="amount_split",
        ),
        CheckConstraint("(refund_amount > 0) = (refund_id IS NOT NULL)", name="refund_named"),
        UniqueConstraint("merchant_id", "number", name="uq_credit_notes_merchant_number"),
        Index("ix_credit_notes_merchant_seq", "merchant_id", "seq"),
        Index("ix_credit_notes_customer", "merchant_id", "customer_id", "seq"),
        Index("ix_credit_notes_invoice", "invoice_id", "seq"),
        Index("ix_credit_notes_balance_transaction", "customer_balance_transaction_id"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    # "<invoice number>-CN-01": gap-free per invoice, taken under the invoice row's lock.
    number: Mapped[str] = mapped_column(String(60))
    status: Mapped[str] = mapped_column(String(16))
    type: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    refund_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refund_id: Mapped[str | None] = mapped_column(ForeignKey("refunds.id"), default=None)
    credit_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    customer_balance_transaction_id: Mapped[str | None] = mapped_column(
        ForeignKey("customer_balance_transactions.id"), default=None
    )
    out_of_band_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    # The tax inside `amount`, rate by rate: [{tax_rate, display_name, percentage, inclusive, amount}]
    # (plans.totals.credited_tax), or one entry without a rate when the invoice's tax cannot be split by rate.
    tax_amounts: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    memo: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    voided_at: Mapped[datetime | None] = mapped_column(default=None)


class CreditNoteLine(Base):
    """One line of a credit note: an amount credited, against a line of the invoice or on its own."""

    __tablename__ = "credit_note_lines"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        Index("ix_credit_note_lines_credit_note", "credit_note_id", "seq"),
        Index("ix_credit_note_lines_invoice_line", "invoice_line_id"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    credit_note_id: Mapped[str] = mapped_column(ForeignKey("credit_notes.id"))
    invoice_line_id: Mapped[str | None] = mapped_column(ForeignKey("invoice_lines.id"), default=None)
    description: Mapped[str] = mapped_column(Text)
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
