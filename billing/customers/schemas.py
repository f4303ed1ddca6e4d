"""The customer as the API shows it, and what create and update accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse

Email = Annotated[
    str,
    Meta(
        max_length=320,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="An email address; invoices and payment reminders go there.",
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
CurrencyCode = Annotated[
    str, Meta(min_length=3, max_length=3, description="ISO 4217 code, e.g. USD, CNY, JPY.")
]
TimezoneName = Annotated[str, Meta(max_length=64, description="IANA time zone, e.g. Asia/Shanghai.")]
ExternalId = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        description="Your own id for this customer; unique among your live customers.",
    ),
]
Locale = Literal["en", "zh-CN"]
Metadata = Annotated[
    dict[str, str], Meta(description="Up to 50 string keys (≤40 chars) and values (≤500 chars).")
]

AddressLine = Annotated[str, Meta(max_length=200)]


class Address(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=False):
    """A postal address, printed on invoices. `country` (ISO 3166-1 alpha-2, e.g. CN, US) is required with any
    other field."""

    line1: AddressLine | None = None
    line2: AddressLine | None = None
    city: AddressLine | None = None
    state: AddressLine | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    country: Annotated[str, Meta(max_length=2, description="ISO 3166-1 alpha-2, e.g. CN.")] | None = None


class TaxId(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A tax id printed on invoices: `type` one of cn_tin, eu_vat, gb_vat, us_ein, au_abn, jp_cn, hk_br, sg_uen,
    ca_bn, in_gst; `value` checked against that type's format (spaces and dots are ignored)."""

    type: Annotated[str, Meta(max_length=20)]
    value: Annotated[str, Meta(min_length=1, max_length=64)]


TaxIds = Annotated[
    list[TaxId], Meta(max_length=5, description="Up to 5 tax ids; an update replaces the list.")
]


class Customer(msgspec.Struct, kw_only=True):
    """A customer as the API returns it."""

    id: str
    object: Literal["customer"] = "customer"
    created_at: datetime
    email: str | None
    name: str | None
    currency: str | None
    timezone: str
    locale: str
    external_id: str | None
    balance: int
    default_payment_method: str | None
    test_clock: str | None
    address: Address | None = None
    tax_ids: list[TaxId] = msgspec.field(default_factory=list)
    metadata: dict[str, str]


class CustomerList(ListResponse[Customer]):
    pass


class CustomerCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What a new customer may have; every field is optional."""

    email: Email | None = None
    name: Name | None = None
    currency: CurrencyCode | None = None
    timezone: TimezoneName = "UTC"
    locale: Locale = "en"
    external_id: ExternalId | None = None
    test_clock: str | None = None
    address: Address | None = None
    tax_ids: TaxIds = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)


class CustomerUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present are changed; null clears an optional field; metadata keys set to "" are removed."""

    email: Email | UnsetType | None = UNSET
    name: Name | UnsetType | None = UNSET
    currency: CurrencyCode | UnsetType | None = UNSET
    timezone: TimezoneName | UnsetType = UNSET
    locale: Locale | UnsetType = UNSET
    external_id: ExternalId | UnsetType | None = UNSET
    default_payment_method: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="A payment method (pm_...) attached to this customer; null clears it.",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    address: Address | UnsetType | None = UNSET
    tax_ids: TaxIds | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET


class DeletedCustomer(msgspec.Struct, kw_only=True):
    """The answer to deleting a customer: its id and `deleted: true`."""

    id: str
    object: Literal["customer"] = "customer"
    deleted: bool = True
