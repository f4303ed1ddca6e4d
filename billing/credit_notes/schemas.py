"""Credit notes and customer balance transactions as the API shows them, and what create accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.customers.schemas import CurrencyCode, Metadata

Reason = Literal["duplicate", "fraudulent", "order_change", "product_unsatisfactory"]
# Minor units, below 10^15 (the largest amount the engine handles anywhere).
PositiveAmount = Annotated[int, Meta(ge=1, lt=10**15, description="In minor units, e.g. 1999 for 19.99 USD.")]
Amount = Annotated[int, Meta(ge=0, lt=10**15, description="In minor units.")]


class CreditNoteLine(msgspec.Struct, kw_only=True):
    """One line of a credit note: what it credits (an invoice line or an amount) and how much."""

    id: str
    object: Literal["credit_note_line_item"] = "credit_note_line_item"
    invoice_line: str | None
    description: str
    amount: int


class CreditNoteTaxAmount(msgspec.Struct, kw_only=True):
    """The tax one rate of the invoice puts inside the credit note's amount."""

    tax_rate: Annotated[
        str | None,
        Meta(description="The invoice's tax rate (txr_...); null when its tax is not split by rate."),
    ]
    display_name: str
    percentage: Annotated[str | None, Meta(description='The rate as a decimal string, e.g. "20".')]
    inclusive: bool
    amount: Annotated[int, Meta(description="In minor units.")]


class CreditNote(msgspec.Struct, kw_only=True):
    """A credit note as the API returns it."""

    id: str
    object: Literal["credit_note"] = "credit_note"
    created_at: datetime
    number: str
    invoice: str
    customer: str
    currency: str
    status: Literal["issued", "void"]
    type: Annotated[
        Literal["pre_payment", "post_payment"],
        Meta(
            description="pre_payment: issued on an unpaid invoice, it reduced what is owed; post_payment: on a "
            "paid invoice, it gave money back."
        ),
    ]
    amount: int
    pre_payment_amount: int
    post_payment_amount: int
    refund_amount: int
    refund: Annotated[str | None, Meta(description="The refund (re_...) to the payment method, if any.")]
    credit_amount: int
    customer_balance_transaction: Annotated[
        str | None, Meta(description="The balance ledger entry (cbt_...) of credit_amount, if any.")
    ]
    out_of_band_amount: int
    tax_amounts: Annotated[
        list[CreditNoteTaxAmount],
        Meta(
            description="The tax inside `amount`, rate by rate, in the invoice's proportion of tax to total; an "
            "invoice's credit notes together never carry more tax than it did."
        ),
    ]
    total_excluding_tax: Annotated[int, Meta(description="`amount` less its tax.")]
    reason: Reason | None
    memo: str | None
    lines: list[CreditNoteLine]
    voided_at: datetime | None
    metadata: dict[str, str]


class CreditNoteList(ListResponse[CreditNote]):
    pass


class CreditNoteLineCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One line to credit: an invoice line (with a quantity or amount) or a custom amount."""

    amount: PositiveAmount
    invoice_line: (
        Annotated[
            str,
            Meta(max_length=64, description="The invoice line (il_...) this credits; at most its amount."),
        ]
        | None
    ) = None
    description: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class CreditNoteCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """`lines` or `amount`. On an open (or uncollectible) invoice the credit reduces what is owed; on a paid
    invoice give how it goes back: refund_amount + credit_amount + out_of_band_amount = the credit note's amount
    (none given: all of it to the customer balance)."""

    invoice: Annotated[str, Meta(max_length=64, description="The finalized invoice (in_...) to credit.")]
    amount: PositiveAmount | None = None
    lines: Annotated[list[CreditNoteLineCreate], Meta(max_length=100)] | None = None
    reason: Reason | None = None
    memo: Annotated[str, Meta(max_length=5000)] | None = None
    refund_amount: Amount | None = None
    credit_amount: Amount | None = None
    out_of_band_amount: Amount | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class CustomerBalanceTransaction(msgspec.Struct, kw_only=True):
    """One immutable entry of a customer's balance ledger; the entries add up to the customer's `balance`
    (negative: credit the customer holds)."""

    id: str
    object: Literal["customer_balance_transaction"] = "customer_balance_transaction"
    created_at: datetime
    customer: str
    type: Annotated[
        str,
        Meta(
            description="adjustment (made by hand), applied_to_invoice, invoice_voided, credit_note, or what "
            "another feature records (e.g. a prorated credit)."
        ),
    ]
    amount: int
    ending_balance: int
    currency: str | None
    invoice: str | None
    credit_note: str | None
    description: str | None


class CustomerBalanceTransactionList(ListResponse[CustomerBalanceTransaction]):
    pass


class CustomerBalanceTransactionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A manual adjustment of a customer's credit balance: negative amounts are credit the customer can spend on
    future invoices, positive ones are debt."""

    amount: Annotated[
        int,
        Meta(
            gt=-(10**15),
            lt=10**15,
            description="Negative credits the customer (it pays less next time); positive makes it owe more.",
        ),
    ]
    currency: CurrencyCode
    description: Annotated[str, Meta(min_length=1, max_length=500)] | None = None
