from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        # A deleted customer frees its external_id, so the SaaS app can re-create it.
        Index(
            "uq_customers_merchant_external_id",
            "merchant_id",
            "external_id",
            unique=True,
            postgresql_where=text("deleted_at IS NULL AND external_id IS NOT NULL"),
        ),
        Index("ix_customers_merchant_seq", "merchant_id", "seq"),
        CheckConstraint("locale IN ('en', 'zh-CN')", name="locale"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    email: Mapped[str | None] = mapped_column(String(320))
    name: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str | None] = mapped_column(String(3))
    timezone: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str] = mapped_column(String(8))
    external_id: Mapped[str | None] = mapped_column(String(256))
    balance: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    default_payment_method: Mapped[str | None] = mapped_column(String(40), default=None)
    # Billing details printed on invoices: {line1, line2, city, state, postal_code, country} and
    # [{type, value}, ...] (frozen onto each invoice when it is finalized).
    address: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    tax_ids: Mapped[list[dict[str, str]]] = mapped_column(JSONB, default=list, server_default="[]")
    test_clock_id: Mapped[str | None] = mapped_column(ForeignKey("test_clocks.id"), index=True)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    # The effective entitlements last announced in `customer.entitlements_updated` (billing.entitlements):
    # a change of subscriptions is compared with it, so the event fires only when they change.
    entitlements: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, server_default="[]")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    deleted_at: Mapped[datetime | None] = mapped_column(default=None)
