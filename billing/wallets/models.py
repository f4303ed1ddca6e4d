"""A customer's prepaid credit wallet and its ledger: every movement of credit, in minor units of the wallet's
currency. `wallets.balance` is the sum of the settled entries' amounts, and of the credit entries' `remaining`."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Numeric, String, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from billing.db.base import Base, id_column, seq_column


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'terminated')", name="status"),
        CheckConstraint("balance >= 0", name="balance_non_negative"),
        # One active wallet per customer and currency: the burn at finalization has one wallet to draw from.
        Index(
            "uq_wallets_customer_currency_active",
            "customer_id",
            "currency",
            unique=True,
            postgresql_where=text("status = 'active'"),
        ),
        Index("ix_wallets_customer_seq", "customer_id", "seq"),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    name: Mapped[str | None] = mapped_column(String(256))
    currency: Mapped[str] = mapped_column(String(3))
    # The price of one credit in major units of the currency (Lago's rate_amount): only for showing credits.
    rate_amount: Mapped[Decimal] = mapped_column(Numeric(38, 12))
    status: Mapped[str] = mapped_column(String(16))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    # Automatic top-up: {"threshold": minor units, "amount": minor units} or None.
    auto_top_up: Mapped[dict[str, Any] | None] = mapped_column(JSONB, default=None)
    metadata_: Mapped[dict[str, str]] = mapped_column("metadata", default=dict, server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    terminated_at: Mapped[datetime | None] = mapped_column(default=None)


class WalletTransaction(Base):
    """One movement of a wallet. Credits in (granted, purchased, restored: given back by a voided invoice's burn) are
    positive and keep what is left of them in
    `remaining` (the burn and the expiry draw on it); credits out (burned, expired, voided) are negative. A paid
    top-up is `pending` until its invoice is paid, `failed` if it never is; only `settled` entries count."""

    __tablename__ = "wallet_transactions"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('granted', 'purchased', 'restored', 'burned', 'expired', 'voided')", name="kind"
        ),
        CheckConstraint("status IN ('pending', 'settled', 'failed')", name="status"),
        CheckConstraint(
            "(kind IN ('granted', 'purchased', 'restored') AND amount > 0 AND remaining BETWEEN 0 AND amount) "
            "OR (kind NOT IN ('granted', 'purchased', 'restored') AND amount < 0 AND remaining IS NULL)",
            name="amount_sign",
        ),
        Index("ix_wallet_transactions_wallet_seq", "wallet_id", "seq"),
        # One burn per wallet and invoice: a finalization retried never burns twice.
        Index(
            "uq_wallet_transactions_burn_invoice",
            "wallet_id",
            "invoice_id",
            unique=True,
            postgresql_where=text("kind = 'burned'"),
        ),
        # One automatic top-up per crossing of the threshold (the burn that crossed it).
        Index("uq_wallet_transactions_trigger", "trigger_id", unique=True),
    )

    id: Mapped[str] = id_column()
    seq: Mapped[int] = seq_column()
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.id"))
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime | None]
    # The invoice that sells (purchased) or consumes (burned) the credits.
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    # For an automatic top-up: the burn whose crossing of the threshold asked for it.
    trigger_id: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(String(500))
    # A burn: the credit entries it drew on, [[id, amount], ...] (a void of its invoice gives them back).
    details: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime]
    settled_at: Mapped[datetime | None]
