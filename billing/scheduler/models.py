from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class ScheduledTask(Base):
    """One piece of work due at `due_at` (Kill Bill's notification queue). PostgreSQL, not Redis, is where due
    work lives, so losing the queue loses nothing: the tick finds every due row again."""

    __tablename__ = "scheduled_tasks"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'done', 'failed', 'canceled')", name="status"),
        Index(
            "ix_scheduled_tasks_due_real",
            "due_at",
            postgresql_where=text("status = 'pending' AND test_clock_id IS NULL"),
        ),
        Index(
            "ix_scheduled_tasks_due_clock",
            "test_clock_id",
            "due_at",
            "seq",
            postgresql_where=text("status = 'pending' AND test_clock_id IS NOT NULL"),
        ),
        # Pending work is found again by what it is about (to cancel it, or to see if it is scheduled); done
        # tasks stay in the table, so these lookups must not scan it.
        Index(
            "ix_scheduled_tasks_pending_invoice",
            text("(payload ->> 'invoice')"),
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_scheduled_tasks_pending_subscription",
            text("(payload ->> 'subscription')"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    test_clock_id: Mapped[str | None] = mapped_column(ForeignKey("test_clocks.id"))
    kind: Mapped[str] = mapped_column(String(64))
    due_at: Mapped[datetime]
    # Scheduling twice under the same key is a no-op: that is what makes the schedulers themselves idempotent.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Real time before which a failed task is not retried (backoff); due_at stays the logical due instant.
    available_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime]
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
