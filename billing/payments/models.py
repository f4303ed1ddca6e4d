from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Payment(Base):
    """One attempt to collect an amount from a payment method. Its id is the gateway idempotency key: whatever
    happens (retries, timeouts, crashes, a second worker), one payment row is at most one charge."""

    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'requires_review')", name="status"),
        CheckConstraint("decline_type IS NULL OR decline_type IN ('soft', 'hard')", name="decline_type"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("amount_refunded >= 0 AND amount_refunded <= amount", name="refund_bounds"),
        # Two workers collecting the same thing (purpose) with the same attempt number meet here: one row.
        Index("uq_payments_attempt_key", "merchant_id", "attempt_key", unique=True),
        # And never two live or successful payments for one purpose, whatever attempt numbers callers use.
        Index(
            "uq_payments_live_purpose",
            "merchant_id",
            "purpose",
            unique=True,
            postgresql_where=text("status IN ('pending', 'succeeded', 'requires_review')"),
        ),
        # The risk review queue (SPEC §9).
        Index(
            "ix_payments_review", "merchant_id", "seq", postgresql_where=text("status = 'requires_review'")
        ),
        Index("ix_payments_merchant_seq", "merchant_id", "seq"),
        Index("ix_payments_customer_seq", "merchant_id", "customer_id", "seq"),
        Index("ix_payments_invoice", "merchant_id", "invoice_id"),
        Index("ix_payments_pending", "settle_after", postgresql_where=text("status = 'pending'")),
        # The smart retry hour: this merchant's successful charges of one card brand in the recent past.
        Index(
            "ix_payments_succeeded_brand",
            "merchant_id",
            "card_brand",
            "created_at",
            postgresql_where=text("status = 'succeeded'"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    payment_method_id: Mapped[str] = mapped_column(ForeignKey("payment_methods.id"))
    # Invoices arrive in a later issue; the column is there so collection can name them from day one.
    invoice_id: Mapped[str | None] = mapped_column(String(40), default=None)
    purpose: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    attempt_key: Mapped[str] = mapped_column(String(220))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    description: Mapped[str | None] = mapped_column(String(500), default=None)
    card_brand: Mapped[str | None] = mapped_column(String(16), default=None)
    card_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    # card, or the channel of the agreement debited (billing.payment_methods.models.AGREEMENT_TYPES).
    payment_method_type: Mapped[str] = mapped_column(String(16), default="card", server_default="card")
    # The connection ids in the order this payment may try them, fixed before the first call, so the janitor
    # knows every gateway that could have received the charge.
    route: Mapped[list[str]] = mapped_column(JSONB, default=list)
    gateway: Mapped[str | None] = mapped_column(String(40), default=None)
    gateway_type: Mapped[str | None] = mapped_column(String(32), default=None)
    gateway_reference: Mapped[str | None] = mapped_column(String(100), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    decline_type: Mapped[str | None] = mapped_column(String(8), default=None)
    failure_message: Mapped[str | None] = mapped_column(Text, default=None)
    next_action: Mapped[str | None] = mapped_column(String(32), default=None)
    # While pending: why (the last technical error code, or "unknown" after a timeout); for the janitor.
    pending_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    test_clock_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None] = mapped_column(default=None)
    # Real time after which the janitor may look at this pending payment: every request to a gateway has
    # ended by then (the sum of the route's timeouts plus a margin), so it never races an in-flight charge.
    settle_after: Mapped[datetime]
    janitor_attempts: Mapped[int] = mapped_column(Integer, default=0)


class Refund(Base):
    """Money given back on a succeeded payment, through the connection that took it. Its id is the gateway
    idempotency key; the client's Idempotency-Key is kept too, so a retried request finds this refund."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="status"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint(
            "reason IS NULL OR reason IN ('duplicate', 'fraudulent', 'requested_by_customer')", name="reason"
        ),
        Index(
            "uq_refunds_idempotency_key",
            "merchant_id",
            "idempotency_key",
            unique=True,
            postgresql_where=text("idempotency_key IS NOT NULL"),
        ),
        Index("ix_refunds_merchant_seq", "merchant_id", "seq"),
        Index("ix_refunds_payment", "payment_id"),
        Index("ix_refunds_pending", "settle_after", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(32), default=None)
    gateway: Mapped[str] = mapped_column(String(40))
    gateway_reference: Mapped[str | None] = mapped_column(String(100), default=None)
    failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    failure_message: Mapped[str | None] = mapped_column(Text, default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    test_clock_id: Mapped[str | None] = mapped_column(String(40), default=None)
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None] = mapped_column(default=None)
    settle_after: Mapped[datetime]
    janitor_attempts: Mapped[int] = mapped_column(Integer, default=0)
