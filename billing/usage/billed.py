"""`usage_billed`: what each invoice billed for one meter and one period, the ledger that keeps late usage from
being billed twice (billing.usage.billing)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class UsageBilled(Base):
    """One invoice's figure for one (subscription, meter, period): the period's usage line (`kind` usage) or a
    later correction of it (`adjustment`). What a period has been billed is the sum over its rows whose invoice
    is no longer a draft; a draft's rows are rewritten with its lines and disappear with it."""

    __tablename__ = "usage_billed"
    __table_args__ = (
        CheckConstraint("kind IN ('usage', 'adjustment')", name="kind"),
        # An invoice bills a meter's period once.
        Index("uq_usage_billed_invoice_meter_period", "invoice_id", "meter_id", "period_start", unique=True),
        # Recounts look up a subscription's recent periods.
        Index("ix_usage_billed_subscription_period", "subscription_id", "period_end"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"))
    # The plan whose charge priced the period (plans in use are immutable, so this is the price, frozen).
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    meter_id: Mapped[str] = mapped_column(String(40))
    meter_code: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    quantity: Mapped[Decimal] = mapped_column(Numeric(38, 12))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
