from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, Integer, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class ReconciliationRun(Base):
    """One connection's settlement listing of one day matched against the engine's payments and refunds
    (SPEC §8): the counts, fees and net per currency, and every row with both sides (for the console's CSV).
    One run per connection and day; running it again replaces it."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        Index("uq_reconciliation_runs_day", "merchant_id", "connection_id", "day", unique=True),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    connection_id: Mapped[str] = mapped_column(String(40))
    day: Mapped[date] = mapped_column(Date)
    matched: Mapped[int] = mapped_column(Integer)
    missing_in_engine: Mapped[int] = mapped_column(Integer)
    missing_in_settlement: Mapped[int] = mapped_column(Integer)
    amount_mismatch: Mapped[int] = mapped_column(Integer)
    totals: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    rows: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list)
    created_at: Mapped[datetime]
