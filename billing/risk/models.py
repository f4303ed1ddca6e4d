from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class RiskDecision(Base):
    """One risk check (SPEC §9) of a charge or a new payment method, with its reasons. The rows are also the
    velocity counters: attempts per card, customer and IP in the last hour are counted here (indexes below)."""

    __tablename__ = "risk_decisions"
    __table_args__ = (
        CheckConstraint("outcome IN ('allow', 'review', 'block')", name="outcome"),
        CheckConstraint("subject_type IN ('payment', 'payment_method', 'token')", name="subject_type"),
        Index("ix_risk_decisions_fingerprint", "merchant_id", "fingerprint", "created_at"),
        Index("ix_risk_decisions_customer", "merchant_id", "customer_id", "created_at"),
        Index("ix_risk_decisions_ip", "merchant_id", "ip", "created_at"),
        Index("ix_risk_decisions_subject", "merchant_id", "subject_id"),
        Index("ix_risk_decisions_merchant_seq", "merchant_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    subject_type: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[str] = mapped_column(String(40))
    customer_id: Mapped[str | None] = mapped_column(String(40), default=None)
    fingerprint: Mapped[str | None] = mapped_column(String(100), default=None)
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    ip: Mapped[str | None] = mapped_column(String(64), default=None)
    amount: Mapped[int | None] = mapped_column(BigInteger, default=None)
    currency: Mapped[str | None] = mapped_column(String(3), default=None)
    outcome: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime]
    # A held payment's review: approved or refused, by whom (an API key or a console user), when.
    review: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
