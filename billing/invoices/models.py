from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'open', 'paid', 'void', 'uncollectible')", name="status"),
        CheckConstraint(
            "collection_method IN ('charge_automatically', 'send_invoice')", name="collection_method"
        ),
        # SPEC §5 invariants, checked by the database as well as by plans.totals.
        CheckConstraint("subtotal - discount + tax = total", name="total_adds_up"),
        CheckConstraint("amount_paid + amount_remaining = amount_due", name="paid_adds_up"),
        CheckConstraint(
            "amount_due >= 0 AND amount_paid >= 0 AND amount_remaining >= 0", name="non_negative"
        ),
        CheckConstraint("prepaid_credit_amount >= 0", name="prepaid_credit_non_negative"),
        # Credit notes (billing.credit_notes): what a pre-payment credit note took off the amount due counts as
        # settled (inside amount_paid), and all credit notes together never exceed the total.
        CheckConstraint(
            "pre_payment_credit_notes_amount >= 0 AND post_payment_credit_notes_amount >= 0 "
            "AND pre_payment_credit_notes_amount <= amount_paid "
            "AND pre_payment_credit_notes_amount + post_payment_credit_notes_amount <= GREATEST(total, 0)",
            name="credit_notes_bounded",
        ),
        UniqueConstraint("merchant_id", "number", name="uq_invoices_merchant_number"),
        Index("ix_invoices_merchant_seq", "merchant_id", "seq"),
        # The console's invoice list filters and sorts by these (migration 0018).
        Index("ix_invoices_merchant_created", "merchant_id", "created_at"),
        Index(
            "ix_invoices_merchant_open_due",
            "merchant_id",
            "due_date",
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_invoices_customer", "merchant_id", "customer_id", "seq"),
        Index(
            "uq_invoices_subscription_period",
            "subscription_id",
            "subscription_period_index",
            unique=True,
            postgresql_where=text("subscription_period_index IS NOT NULL"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    subscription_id: Mapped[str | None] = mapped_column(String(40), index=True)
    number: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    collection_method: Mapped[str] = mapped_column(String(24))
    description: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    due_date: Mapped[datetime | None]
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    subtotal: Mapped[int] = mapped_column(BigInteger, default=0)
    discount: Mapped[int] = mapped_column(BigInteger, default=0)
    tax: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    starting_balance: Mapped[int] = mapped_column(BigInteger, default=0)
    balance_applied: Mapped[int] = mapped_column(BigInteger, default=0)
    ending_balance: Mapped[int | None] = mapped_column(BigInteger)
    # Prepaid credits of the customer's wallet (billing.wallets) burned at finalization, after the balance:
    # amount_due = max(0, total + starting_balance) - prepaid_credit_amount.
    prepaid_credit_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    amount_due: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_paid: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_remaining: Mapped[int] = mapped_column(BigInteger, default=0)
    # Sums of the issued credit notes (billing.credit_notes), by kind; not guarded by the finalized-invoice
    # trigger, like the rest of the payment state.
    pre_payment_credit_notes_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    post_payment_credit_notes_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_payment_attempt: Mapped[datetime | None]
    paid_out_of_band: Mapped[bool] = mapped_column(default=False)
    # Why the invoice exists: manual, subscription_create, subscription_cycle, subscription_update,
    # subscription_cancel.
    billing_reason: Mapped[str] = mapped_column(String(32), default="manual", server_default="manual")
    # For cycle invoices, the subscription period they bill: unique per subscription (one invoice a period).
    subscription_period_index: Mapped[int | None] = mapped_column(Integer)
    # The coupon whose discount applies to this invoice, and the tax rates on every line (applied at
    # finalization by plans.totals).
    coupon_id: Mapped[str | None] = mapped_column(String(40))
    tax_rate_ids: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    # Why the latest collection attempt took no money: {code, message, payment, attempt}, for people.
    last_payment_error: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    # The secret of the hosted invoice link (/i/<token>), set at finalization; drafts have none. Found by an
    # exact lookup on this unique index (billing.invoices.hosted).
    hosted_token: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    # The customer's billing details as they were at finalization ({name, email, address, tax_ids}): an issued
    # invoice keeps the address and tax ids it was issued to.
    customer_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    # The seller likewise ({legal_name, address, tax_ids, invoice_footer, payment_instructions}): the merchant's
    # business profile (settings.business) at finalization.
    issuer_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    finalized_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    marked_uncollectible_at: Mapped[datetime | None]


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint("type IN ('subscription', 'usage', 'proration', 'adjustment')", name="type"),
        Index("ix_invoice_lines_invoice", "invoice_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(Text)
    quantity: Mapped[Decimal] = mapped_column(Numeric(38, 12))
    unit_amount_decimal: Mapped[Decimal | None] = mapped_column(Numeric(38, 12))
    amount: Mapped[int] = mapped_column(BigInteger)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    tax_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    # How the amount was reached (pricing tiers, proration fraction), for people reading the invoice.
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]


class InvoiceNumberSequence(Base):
    """The next invoice number of a merchant. Finalization locks this row, so numbers are gap-free and unique
    under any concurrency: a rolled-back finalization rolls back its number too."""

    __tablename__ = "invoice_number_sequences"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    next_number: Mapped[int] = mapped_column(BigInteger, default=1)


class CustomerBalanceTransaction(Base):
    """One immutable entry of a customer's balance ledger (negative = credit the customer holds, as Stripe).
    `customers.balance` is always the sum of its entries; a trigger forbids UPDATE and DELETE."""

    __tablename__ = "customer_balance_transactions"
    __table_args__ = (Index("ix_cbt_customer_seq", "customer_id", "seq"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    ending_balance: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    description: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
