from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, Select, String, select, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class InvoiceItem(Base):
    """A one-off charge waiting for the customer's next renewal invoice in its currency (pending), then on it
    (invoiced, with the invoice's id). Taken exactly once: the renewal locks the pending items it invoices."""

    __tablename__ = "invoice_items"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'invoiced')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        Index(
            "ix_invoice_items_customer_pending",
            "customer_id",
            "currency",
            "seq",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_invoice_items_merchant_seq", "merchant_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[Decimal] = mapped_column(Numeric(38, 12))
    unit_amount_decimal: Mapped[Decimal | None] = mapped_column(Numeric(38, 12))
    status: Mapped[str] = mapped_column(String(16))
    # A deleted draft (a deleted customer's) takes its lines with it: the item keeps status invoiced.
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    invoiced_at: Mapped[datetime | None]

    def line_fields(self) -> dict[str, Any]:
        """The invoice line this item becomes (the fields of `billing.invoices.service.NewLine`)."""
        return {
            "type": "adjustment",
            "description": self.description,
            "amount": self.amount,
            "quantity": self.quantity,
            "unit_amount_decimal": self.unit_amount_decimal,
            "details": {"invoice_item": self.id},
        }

    @staticmethod
    def pending_for(customer_id: str, currency: str) -> Select[InvoiceItem]:
        """The customer's pending items in `currency`, oldest first: what its next renewal bills."""
        return (
            select(InvoiceItem)
            .where(
                InvoiceItem.customer_id == customer_id,
                InvoiceItem.currency == currency,
                InvoiceItem.status == "pending",
            )
            .order_by(InvoiceItem.seq)
        )
