"""Wallets and their transactions as the API shows them, and what create, top up and update accept. Amounts are
minor units of the wallet's currency (cents, fen)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

# Up to 10^12 minor units (ten billion of a two-decimal currency) in one movement.
Amount = Annotated[int, Meta(gt=0, le=10**12, description="Minor units of the wallet's currency; above 0.")]
Threshold = Annotated[int, Meta(ge=0, le=10**12, description="Minor units of the wallet's currency.")]
RateAmount = Annotated[
    str,
    Meta(
        max_length=40,
        description="The price of one credit in major units of the currency, as a decimal string (default 1).",
    ),
]
WalletName = Annotated[str, Meta(min_length=1, max_length=256)]
TransactionDescription = Annotated[str, Meta(max_length=500)]


WalletStatus = Literal["active", "terminated"]
TransactionKind = Literal["granted", "purchased", "restored", "burned", "expired", "voided"]
TransactionStatus = Literal["pending", "settled", "failed"]


class AutoTopUp(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """When a burn takes the balance below `threshold`, a paid top-up of `amount` is invoiced (once per
    crossing: the balance must rise to the threshold again before the next)."""

    threshold: Threshold
    amount: Amount


class Wallet(msgspec.Struct, kw_only=True):
    """A customer's prepaid credits in one currency, burned before the card is charged."""

    id: str
    object: Literal["wallet"] = "wallet"
    created_at: datetime
    customer: str
    name: str | None
    currency: str
    rate_amount: str
    status: WalletStatus
    balance: Annotated[int, Meta(description="Settled credit left, in minor units of the currency.")]
    credits_balance: Annotated[str, Meta(description="The balance in credits: balance / rate_amount.")]
    auto_top_up: AutoTopUp | None
    terminated_at: datetime | None
    metadata: dict[str, str]


class WalletList(ListResponse[Wallet]):
    pass


class WalletTransaction(msgspec.Struct, kw_only=True):
    """One movement of a wallet: credits in (granted, purchased) or out (burned, expired, voided)."""

    id: str
    object: Literal["wallet_transaction"] = "wallet_transaction"
    created_at: datetime
    wallet: str
    kind: TransactionKind
    status: Annotated[
        TransactionStatus,
        Meta(description="pending (a purchase awaiting its invoice's payment), settled, or failed."),
    ]
    amount: Annotated[int, Meta(description="Minor units; positive in, negative out.")]
    remaining: Annotated[
        int | None,
        Meta(description="Credits in: what is left of them to burn or expire. None for credits out."),
    ]
    expires_at: datetime | None
    invoice: str | None
    description: str | None
    settled_at: datetime | None


class WalletTransactionList(ListResponse[WalletTransaction]):
    pass


class WalletCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A prepaid credit wallet for a customer in one currency: credits bought (paid_amount, through an invoice)
    and/or granted (granted_amount, optionally expiring), burned before a card is charged."""

    currency: Annotated[str, Meta(min_length=3, max_length=3)]
    name: WalletName | None = None
    rate_amount: RateAmount = "1"
    # Bought credits: an invoice for this amount, whose payment grants them.
    paid_amount: Amount | None = None
    # Free credits, granted at once; they expire at granted_expires_at if given.
    granted_amount: Amount | None = None
    granted_expires_at: datetime | None = None
    auto_top_up: AutoTopUp | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class WalletTopUp(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """At least one of paid_amount (invoiced; credits granted when paid) and granted_amount (free, at once)."""

    paid_amount: Amount | None = None
    granted_amount: Amount | None = None
    expires_at: datetime | None = None
    description: TransactionDescription | None = None


class WalletUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; auto_top_up null removes the rule."""

    name: WalletName | UnsetType | None = UNSET
    auto_top_up: AutoTopUp | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET
