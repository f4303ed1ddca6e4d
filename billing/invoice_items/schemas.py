"""Invoice items as the API shows them, and what create accepts."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.customers.schemas import Metadata

PositiveAmount = Annotated[
    int, Meta(gt=0, le=10**15, description="Minor units of the item's currency; above 0.")
]


class InvoiceItem(msgspec.Struct, kw_only=True):
    """A one-off charge billed on the customer's next renewal invoice in its currency."""

    id: str
    object: Literal["invoiceitem"] = "invoiceitem"
    created_at: datetime
    customer: str
    currency: str
    description: str
    amount: int
    quantity: Decimal
    unit_amount_decimal: Decimal | None
    status: Annotated[str, Meta(description="pending (waiting for the next renewal) or invoiced.")]
    invoice: str | None
    invoiced_at: datetime | None
    metadata: dict[str, str]


class InvoiceItemList(ListResponse[InvoiceItem]):
    pass


class DeletedInvoiceItem(msgspec.Struct, kw_only=True):
    """A pending invoice item that was deleted: it will not be billed."""

    id: str
    object: Literal["invoiceitem"] = "invoiceitem"
    deleted: bool = True


class InvoiceItemCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Give `amount`, or a unit price (`unit_amount` or `unit_amount_decimal`) and `quantity`."""

    customer: Annotated[str, Meta(max_length=64)]
    description: Annotated[str, Meta(min_length=1, max_length=500)]
    currency: Annotated[str, Meta(min_length=3, max_length=3)] | None = None
    amount: PositiveAmount | None = None
    unit_amount: PositiveAmount | None = None
    unit_amount_decimal: str | None = None
    quantity: Annotated[Decimal, Meta(description="Defaults to 1.")] | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)
