"""The email outbox: customer emails waiting to be sent, sent, or given up on."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class EmailMessage(Base):
    """One email to a customer, written in the transaction of the change it tells about (outbox) and sent later
    by the worker. `dedupe_key` makes queueing idempotent: a task that runs twice queues one email."""

    __tablename__ = "email_messages"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("locale IN ('en', 'zh-CN')", name="locale"),
        Index("ix_email_messages_merchant_seq", "merchant_id", "seq"),
        Index("ix_email_messages_customer_seq", "merchant_id", "customer_id", "seq"),
        # The sender's claim: pending messages by the instant they are next due.
        Index(
            "ix_email_messages_pending_due",
            "next_attempt_at",
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    kind: Mapped[str] = mapped_column(String(32))
    to: Mapped[str] = mapped_column("to", String(320))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    # Clock time of the change the email tells about (a test-clock customer's emails carry its time).
    created_at: Mapped[datetime]
    # Real time: when the sender may take the message next (also the lease of a sender that took it).
    next_attempt_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
