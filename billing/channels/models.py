from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Identity, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base


class ChannelNotification(Base):
    """Every verified notification a channel sent to a connection, once: the unique key is what makes a repeated
    notification change nothing (it is answered as the channel expects, and skipped)."""

    __tablename__ = "channel_notifications"
    __table_args__ = (
        Index("uq_channel_notifications_notify_id", "merchant_id", "connection_id", "notify_id", unique=True),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(always=True), primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    connection_id: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(16))
    notify_id: Mapped[str] = mapped_column(String(100))
    # What it was about (agreement_signed, agreement_ended, charge, refund, ignored) and what it changed.
    kind: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(40), default=None)
    outcome: Mapped[str] = mapped_column(String(200))
    # Real time: when the engine received it.
    received_at: Mapped[datetime] = mapped_column(server_default=func.now())
