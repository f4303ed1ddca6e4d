from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class TestClock(Base):
    __tablename__ = "test_clocks"
    __table_args__ = (
        CheckConstraint("status IN ('ready', 'advancing', 'internal_failure')", name="status"),
        Index("ix_test_clocks_merchant_seq", "merchant_id", "seq"),
    )
    __test__ = False  # not a pytest test class

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    name: Mapped[str | None] = mapped_column(String(200))
    frozen_time: Mapped[datetime]
    target_time: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(20), default="ready")
    failure_message: Mapped[str | None] = mapped_column(Text, default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    advance_requested_at: Mapped[datetime | None] = mapped_column(default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
