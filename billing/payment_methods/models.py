from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, SmallInteger, String, text
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column

CARD = "card"
# Debit agreements in a channel (SPEC §8); unionpay and ecny arrive with part 2 of the channels.
AGREEMENT_TYPES = ("alipay", "wechat_pay", "unionpay", "ecny")
PENDING, ACTIVE, REVOKED, EXPIRED = "pending", "active", "revoked", "expired"


class PaymentMethod(Base):
    """A card, or a debit agreement in a channel, attached to a customer.

    A card: only what may be shown is stored in clear (brand, last four, expiry, fingerprint); the number is in
    `vault_entries`, destroyed when the payment method is detached. Always `active`.
    An agreement: the connection that signed it (it belongs to that account: billing.payment_methods.agreements),
    our number for it (`external_agreement_no`, sent when signing), the channel's (`agreement_no`, once signed),
    and `agreement` (limits, the masked buyer account, signing and ending times). `pending` until the channel's
    signed notification says the customer approved; `revoked` when the customer ended it in the channel; `expired`
    when its signing link ran out unapproved.
    """

    __tablename__ = "payment_methods"
    __table_args__ = (
        CheckConstraint("type IN ('card', 'alipay', 'wechat_pay', 'unionpay', 'ecny')", name="type"),
        CheckConstraint("status IN ('pending', 'active', 'revoked', 'expired')", name="status"),
        CheckConstraint(
            "type <> 'card' OR (card_brand IS NOT NULL AND card_last4 IS NOT NULL AND card_exp_month IS NOT NULL "
            "AND card_exp_year IS NOT NULL AND card_fingerprint IS NOT NULL AND status = 'active')",
            name="card_fields",
        ),
        CheckConstraint(
            "type = 'card' OR (connection_id IS NOT NULL AND external_agreement_no IS NOT NULL "
            "AND agreement IS NOT NULL)",
            name="agreement_fields",
        ),
        Index("ix_payment_methods_merchant_seq", "merchant_id", "seq"),
        Index("ix_payment_methods_customer_seq", "merchant_id", "customer_id", "seq"),
        # A notification names the agreement by our number, or by the channel's.
        Index(
            "uq_payment_methods_external_agreement_no",
            "merchant_id",
            "connection_id",
            "external_agreement_no",
            unique=True,
            postgresql_where=text("external_agreement_no IS NOT NULL"),
        ),
        Index(
            "ix_payment_methods_agreement_no",
            "merchant_id",
            "connection_id",
            "agreement_no",
            postgresql_where=text("agreement_no IS NOT NULL"),
        ),
        # The janitor's look at agreements whose signing link may have run out.
        Index("ix_payment_methods_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    type: Mapped[str] = mapped_column(String(16), default=CARD)
    status: Mapped[str] = mapped_column(String(16), default=ACTIVE, server_default=ACTIVE)
    card_brand: Mapped[str | None] = mapped_column(String(16), default=None)
    card_last4: Mapped[str | None] = mapped_column(String(4), default=None)
    card_exp_month: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    card_exp_year: Mapped[int | None] = mapped_column(SmallInteger, default=None)
    card_fingerprint: Mapped[str | None] = mapped_column(String(32), default=None)
    vault_entry_id: Mapped[str | None] = mapped_column(
        ForeignKey("vault_entries.id", ondelete="SET NULL"), default=None, unique=True
    )
    connection_id: Mapped[str | None] = mapped_column(String(40), default=None)
    external_agreement_no: Mapped[str | None] = mapped_column(String(32), default=None)
    agreement_no: Mapped[str | None] = mapped_column(String(64), default=None)
    agreement: Mapped[dict[str, Any] | None] = mapped_column(default=None)
    # While pending: what the customer must do (redirect or QR code), and until when.
    next_action: Mapped[dict[str, Any] | None] = mapped_column(default=None)
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
