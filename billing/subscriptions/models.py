from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship, selectinload

from billing.db.base import Base, id_column, seq_column


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(
            "status IN ('trialing', 'active', 'past_due', 'unpaid', 'paused', 'canceled', 'incomplete', "
            "'incomplete_expired')",
            name="status",
        ),
        CheckConstraint(
            "collection_method IN ('charge_automatically', 'send_invoice')", name="collection_method"
        ),
        CheckConstraint("quantity >= 1", name="quantity"),
        Index("ix_subscriptions_merchant_seq", "merchant_id", "seq"),
        Index("ix_subscriptions_customer", "merchant_id", "customer_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    collection_method: Mapped[str] = mapped_column(String(24))
    days_until_due: Mapped[int | None] = mapped_column(Integer)
    default_payment_method: Mapped[str | None] = mapped_column(String(40))
    # Periods are computed from the anchor (plans.calendar), never from the previous period.
    billing_cycle_anchor: Mapped[datetime]
    period_index: Mapped[int] = mapped_column(Integer)
    # period_index - period_offset is the calendar's index from billing_cycle_anchor (a resume re-anchors).
    period_offset: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    current_period_start: Mapped[datetime]
    current_period_end: Mapped[datetime]
    trial_start: Mapped[datetime | None]
    trial_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    canceled_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
    coupon_id: Mapped[str | None] = mapped_column(ForeignKey("coupons.id"))
    # The period index at which the coupon was redeemed: its duration counts from there.
    coupon_start_index: Mapped[int | None] = mapped_column(Integer)
    tax_rate_ids: Mapped[list[str]] = mapped_column(JSONB, default=list, server_default="[]")
    # A change scheduled for the end of the current period: {"plan": ..., "quantity": ...}.
    pending_change: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # This subscription's own prices for its plan (billing.catalog.plans.validate_price_overrides), or None.
    price_overrides: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    # Why the customer cancelled, when they said: {"reason": ..., "comment": ...} (cleared by an undo).
    cancellation_details: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    latest_invoice_id: Mapped[str | None] = mapped_column(String(40))
    # The add-on items (billing/subscriptions/items.py); the plan above is the first item. Never loaded on their
    # own: a query whose subscriptions are billed or rendered asks for them with WITH_ITEMS (one more query per
    # load, for any number of subscriptions); a read of them on a subscription loaded without raises.
    addon_items: Mapped[list[SubscriptionItem]] = relationship(
        lazy="raise", order_by="SubscriptionItem.seq", cascade="all, delete-orphan"
    )
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PendingInvoiceItem(Base):
    """A line waiting for the next invoice of a subscription (prorations of a change made with
    proration_behavior=create_prorations). Taken exactly once: the renewal deletes what it invoices."""

    __tablename__ = "pending_invoice_items"
    __table_args__ = (Index("ix_pending_items_subscription", "subscription_id", "seq"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    type: Mapped[str] = mapped_column(String(16))
    description: Mapped[str] = mapped_column(String(500))
    amount: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime]


class SubscriptionItem(Base):
    """An add-on of a subscription: a plan × quantity billed beside the subscription's own plan, on the same
    calendar, currency and invoices (Stripe's subscription items; the first item is the subscription's plan)."""

    __tablename__ = "subscription_items"
    __table_args__ = (
        CheckConstraint("quantity >= 1", name="quantity"),
        # The same plan twice on one subscription would bill it twice: change the item's quantity instead.
        Index("uq_subscription_items_plan", "subscription_id", "plan_id", unique=True),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    quantity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]


# The loader option for a query of subscriptions that are billed or rendered: their add-on items, in one query.
WITH_ITEMS = selectinload(Subscription.addon_items)
