from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Identity, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base

OUTCOMES = ("succeeded", "declined", "technical_error", "unknown", "not_found")


class GatewayAttempt(Base):
    """One call to one gateway connection (charge, refund, retrieve), with its outcome and latency: the raw
    material of success rates and latency by connection (and, later, of the finance console)."""

    __tablename__ = "gateway_attempts"
    __table_args__ = (
        CheckConstraint(
            "outcome IN ('succeeded', 'declined', 'technical_error', 'unknown', 'not_found')", name="outcome"
        ),
        CheckConstraint("operation IN ('charge', 'retrieve', 'refund', 'retrieve_refund')", name="operation"),
        Index("ix_gateway_attempts_connection_time", "merchant_id", "connection_id", "created_at"),
        Index("ix_gateway_attempts_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    connection_id: Mapped[str] = mapped_column(String(40))
    gateway_type: Mapped[str] = mapped_column(String(32))
    operation: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(64), default=None)
    latency_ms: Mapped[int] = mapped_column(Integer)
    payment_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    refund_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # Real time: health and latency are about the gateway, never about a test clock.
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class GatewayHealth(Base):
    """The circuit breaker of one connection, shared by every process: consecutive failures (technical errors
    and unknown outcomes) since the last healthy answer. Updated only when it changes, so a healthy connection
    costs no write per charge."""

    __tablename__ = "gateway_health"

    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), primary_key=True)
    connection_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime | None] = mapped_column(default=None)
    last_failure_code: Mapped[str | None] = mapped_column(String(64), default=None)
    # When the last run of failures ended with a healthy answer.
    recovered_at: Mapped[datetime | None] = mapped_column(default=None)
