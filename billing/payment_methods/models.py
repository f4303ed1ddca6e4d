from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class PaymentMethod(Base):
    """A card attached to a customer. Only what may be shown is stored in clear (brand, last four, expiry,
    fingerprint); the number is in `vault_entries`, destroyed when the payment method is detached."""

    __tablename__ = "payment_methods"
    __table_args__ = (
        CheckConstraint("type IN ('card')", name="type"),
        Index("ix_payment_methods_merchant_seq", "merchant_id", "seq"),
        Index("ix_payment_methods_customer_seq", "merchant_id", "customer_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(16), default="card")
    card_brand: Mapped[str] = mapped_column(String(16))
    card_last4: Mapped[str] = mapped_column(String(4))
    card_exp_month: Mapped[int] = mapped_column(SmallInteger)
    card_exp_year: Mapped[int] = mapped_column(SmallInteger)
    card_fingerprint: Mapped[str] = mapped_column(String(32))
    vault_entry_id: Mapped[str | None] = mapped_column(
        ForeignKey("vault_entries.id", ondelete="SET NULL"), default=None, unique=True
    )
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    detached_at: Mapped[datetime | None] = mapped_column(default=None)


class CardToken(Base):
    """A card entered in a browser or app with the publishable key: usable once, within 15 minutes, to create a
    payment method. An unused token's vault entry is destroyed by the janitor when it expires."""

    __tablename__ = "card_tokens"
    __table_args__ = (Index("ix_card_tokens_expires_at", "expires_at"),)

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"), index=True)
    card_brand: Mapped[str] = mapped_column(String(16))
    card_last4: Mapped[str] = mapped_column(String(4))
    card_exp_month: Mapped[int] = mapped_column(SmallInteger)
    card_exp_year: Mapped[int] = mapped_column(SmallInteger)
    vault_entry_id: Mapped[str | None] = mapped_column(
        ForeignKey("vault_entries.id", ondelete="SET NULL"), default=None, unique=True
    )
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None] = mapped_column(default=None)
