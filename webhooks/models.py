from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Event(Base):
    """One state change, written in the same transaction as the change itself (the transactional outbox)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_merchant_seq", "merchant_id", "seq"),
        Index("ix_events_merchant_type_seq", "merchant_id", "type", "seq"),
        Index("ix_events_object", "merchant_id", "object_id"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    type: Mapped[str] = mapped_column(String(64))
    object_id: Mapped[str] = mapped_column(String(40))
    # The object exactly as the API rendered it at that moment (SPEC §7).
    data: Mapped[dict[str, Any]]
    # For `*.updated`: the changed fields' values before the change, as Stripe sends them.
    previous_attributes: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    # Clock time of the change: real time, or the test clock's time for a test-clock customer.
    created_at: Mapped[datetime]
    test_clock_id: Mapped[str | None] = mapped_column(String(40), default=None)
    # Real time the row was committed-ish; delivery latency is measured from here.
    recorded_at: Mapped[datetime] = mapped_column(server_default=func.now())
