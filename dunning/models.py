from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class DunningCase(Base):
    """One invoice's recovery after its first failed automatic charge: the state of the dunning machine
    (dunning.recovery), the counted attempts and the next one, and how it ended. The source of the recovery
    metrics. One case per invoice (unique), so two workers can never open two."""

    __tablename__ = "dunning_cases"
    __table_args__ = (
        CheckConstraint(
            "state IN ('retrying', 'awaiting_payment_method', 'recovered', 'exhausted', 'voided')",
            name="state",
        ),
        CheckConstraint(
            "final_action IS NULL OR final_action IN ('cancel', 'unpaid', 'past_due')", name="action"
        ),
        CheckConstraint("attempts >= 0 AND technical_retries >= 0", name="counts"),
        # Open cases of a customer (a new payment method retries them at once).
        Index(
            "ix_dunning_cases_open_customer",
            "customer_id",
            postgresql_where=text("state IN ('retrying', 'awaiting_payment_method', 'exhausted')"),
        ),
        Index("ix_dunning_cases_merchant_opened", "merchant_id", "first_failure_at"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"), unique=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    subscription_id: Mapped[str | None] = mapped_column(String(40))
    test_clock_id: Mapped[str | None] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(32))
    # Counted dunning attempts (the first failure included). Technical errors and off-schedule attempts (a new
    # card, a manual payment) do not count.
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Consecutive technical failures on the current slot (bounded: see dunning.schedule).
    technical_retries: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime]
    last_decline_class: Mapped[str] = mapped_column(String(16))
    last_decline_code: Mapped[str] = mapped_column(String(64))
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    # The settings in force when the case opened: a later settings change applies to new cases only.
    schedule: Mapped[list[int]] = mapped_column(JSONB, default=list)
    final_action: Mapped[str | None] = mapped_column(String(16), default=None)
    recovered_amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    closed_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
