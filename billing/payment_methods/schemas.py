"""Payment methods and tokens as the API shows them, and what create and update accept. No shape here has a
field for the card number or CVC on the way out."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

CardNumber = Annotated[
    str, Meta(min_length=1, max_length=40, description="The card number; spaces and dashes are ignored.")
]
ExpMonth = Annotated[int, Meta(ge=-1000, le=1000, description="1 to 12.")]
ExpYear = Annotated[int, Meta(ge=-10000, le=10000, description="Four digits, e.g. 2030.")]
Cvc = Annotated[str, Meta(min_length=1, max_length=8, description="3 digits (4 for American Express).")]


class CardInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    number: CardNumber
    exp_month: ExpMonth
    exp_year: ExpYear
    cvc: Cvc | None = None


class Card(msgspec.Struct, kw_only=True):
    """What may be shown of a card: never its number or security code."""

    brand: str
    last4: str
    exp_month: int
    exp_year: int
    fingerprint: str


class PaymentMethod(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["payment_method"] = "payment_method"
    created_at: datetime
    type: Literal["card"] = "card"
    customer: str | None
    card: Card
    metadata: dict[str, str]


class PaymentMethodList(ListResponse[PaymentMethod]):
    pass


class PaymentMethodCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give either `card` (server-side, with your secret key) or `token` (a tok_ made in the browser)."""

    customer: Annotated[str, Meta(max_length=64)]
    type: Literal["card"] = "card"
    card: CardInput | None = None
    token: Annotated[str, Meta(max_length=64)] | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class CardUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    exp_month: ExpMonth | UnsetType = UNSET
    exp_year: ExpYear | UnsetType = UNSET


class PaymentMethodUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A renewed card keeps its number and gets a new expiry date; metadata keys set to "" are removed."""

    card: CardUpdate | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class TokenCard(msgspec.Struct, kw_only=True):
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class Token(msgspec.Struct, kw_only=True):
    id: str
    object: Literal["token"] = "token"
    type: Literal["card"] = "card"
    created_at: datetime
    expires_at: datetime
    used: bool
    card: TokenCard


class TokenCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    card: CardInput
