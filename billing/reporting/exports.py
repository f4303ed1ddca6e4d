"""CSV exports of invoices, invoice lines, payments, refunds and credit notes (columns in docs/console.md).

Streamed: the rows come from a server-side cursor in batches and leave as CSV text batch by batch, so an export
of any size holds one batch in memory. One row per object created in the period (`from`/`to`: UTC dates, both
included; either may be left out), oldest first; amounts in minor units beside their currency; timestamps in
RFC 3339 (UTC, `Z`). Free-text cells that a spreadsheet would run as a formula (starting with = + - @) get a
leading apostrophe.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from billing.credit_notes.models import CreditNote
from billing.customers.models import Customer
from billing.errors import InvalidRequest
from billing.invoices.models import Invoice, InvoiceLine
from billing.payments.models import Payment, Refund

BATCH = 2000
NAMES = ("invoices", "invoice_lines", "payments", "refunds", "credit_notes")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any, *, text: bool = False) -> str:
    """One CSV cell: RFC 3339 for instants, plain digits for numbers, '' for nothing."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    result = str(value)
    if text and result.startswith(_FORMULA):
        return "'" + result
    return result


@dataclass(frozen=True)
class Column:
    name: str
    expression: Any
    text: bool = False  # free text a person typed: guarded against spreadsheet formulas


@dataclass(frozen=True)
class Export:
    name: str
    columns: tuple[Column, ...]
    created_at: Any
    merchant_id: Any
    order_by: Any
    joins: tuple[tuple[Any, Any], ...] = ()

    def query(self, merchant_id: str, start: datetime | None, end: datetime | None) -> Select[Any]:
        stmt = select(*(c.expression.label(c.name) for c in self.columns))
        for table, on in self.joins:
            stmt = stmt.outerjoin(table, on)
        conditions: list[ColumnElement[bool]] = [self.merchant_id == merchant_id]
        if start is not None:
            conditions.append(self.created_at >= start)
        if end is not None:
            conditions.append(self.created_at < end)
        return stmt.where(*conditions).order_by(self.order_by)

    @property
    def header(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, expression: Any, *, text: bool = False) -> Column:
    return Column(name, expression, text)


EXPORTS: dict[str, Export] = {
    "invoices": Export(
        name="invoices",
        columns=(
            _c("id", Invoice.id),
            _c("number", Invoice.number),
            _c("status", Invoice.status),
            _c("customer", Invoice.customer_id),
            _c("customer_email", Customer.email, text=True),
            _c("customer_name", Customer.name, text=True),
            _c("subscription", Invoice.subscription_id),
            _c("billing_reason", Invoice.billing_reason),
            _c("collection_method", Invoice.collection_method),
            _c("currency", Invoice.currency),
            _c("subtotal", Invoice.subtotal),
            _c("discount", Invoice.discount),
            _c("tax", Invoice.tax),
            _c("total", Invoice.total),
            _c("balance_applied", Invoice.balance_applied),
            _c("amount_due", Invoice.amount_due),
            _c("amount_paid", Invoice.amount_paid),
            _c("amount_remaining", Invoice.amount_remaining),
            _c("pre_payment_credit_notes_amount", Invoice.pre_payment_credit_notes_amount),
            _c("post_payment_credit_notes_amount", Invoice.post_payment_credit_notes_amount),
            _c("attempt_count", Invoice.attempt_count),
            _c("paid_out_of_band", Invoice.paid_out_of_band),
            _c("period_start", Invoice.period_start),
            _c("period_end", Invoice.period_end),
            _c("created_at", Invoice.created_at),
            _c("finalized_at", Invoice.finalized_at),
            _c("due_date", Invoice.due_date),
            _c("paid_at", Invoice.paid_at),
            _c("voided_at", Invoice.voided_at),
            _c("marked_uncollectible_at", Invoice.marked_uncollectible_at),
            _c("test_clock", Customer.test_clock_id),
        ),
        created_at=Invoice.created_at,
        merchant_id=Invoice.merchant_id,
        order_by=Invoice.seq,
        joins=((Customer, Customer.id == Invoice.customer_id),),
    ),
    "invoice_lines": Export(
        name="invoice_lines",
        columns=(
            _c("id", InvoiceLine.id),
            _c("invoice", InvoiceLine.invoice_id),
            _c("invoice_number", Invoice.number),
            _c("invoice_status", Invoice.status),
            _c("customer", Invoice.customer_id),
            _c("type", InvoiceLine.type),
            _c("description", InvoiceLine.description, text=True),
            _c("quantity", InvoiceLine.quantity),
            _c("unit_amount_decimal", InvoiceLine.unit_amount_decimal),
            _c("currency", Invoice.currency),
            _c("amount", InvoiceLine.amount),
            _c("discount_amount", InvoiceLine.discount_amount),
            _c("tax_amount", InvoiceLine.tax_amount),
            _c("period_start", InvoiceLine.period_start),
            _c("period_end", InvoiceLine.period_end),
            _c("created_at", InvoiceLine.created_at),
        ),
        created_at=InvoiceLine.created_at,
        merchant_id=InvoiceLine.merchant_id,
        order_by=InvoiceLine.seq,
        joins=((Invoice, Invoice.id == InvoiceLine.invoice_id),),
    ),
    "payments": Export(
        name="payments",
        columns=(
            _c("id", Payment.id),
            _c("invoice", Payment.invoice_id),
            _c("customer", Payment.customer_id),
            _c("status", Payment.status),
            _c("amount", Payment.amount),
            _c("amount_refunded", Payment.amount_refunded),
            _c("currency", Payment.currency),
            _c("attempt", Payment.attempt),
            _c("gateway", Payment.gateway),
            _c("gateway_type", Payment.gateway_type),
            _c("gateway_reference", Payment.gateway_reference),
            _c("card_brand", Payment.card_brand),
            _c("card_last4", Payment.card_last4),
            _c("failure_code", Payment.failure_code),
            _c("decline_type", Payment.decline_type),
            _c("failure_message", Payment.failure_message, text=True),
            _c("created_at", Payment.created_at),
            _c("settled_at", Payment.settled_at),
            _c("test_clock", Payment.test_clock_id),
        ),
        created_at=Payment.created_at,
        merchant_id=Payment.merchant_id,
        order_by=Payment.seq,
    ),
    "refunds": Export(
        name="refunds",
        columns=(
            _c("id", Refund.id),
            _c("payment", Refund.payment_id),
            _c("invoice", Payment.invoice_id),
            _c("customer", Payment.customer_id),
            _c("status", Refund.status),
            _c("amount", Refund.amount),
            _c("currency", Refund.currency),
            _c("reason", Refund.reason),
            _c("gateway", Refund.gateway),
            _c("gateway_reference", Refund.gateway_reference),
            _c("failure_code", Refund.failure_code),
            _c("failure_message", Refund.failure_message, text=True),
            _c("created_at", Refund.created_at),
            _c("settled_at", Refund.settled_at),
            _c("test_clock", Refund.test_clock_id),
        ),
        created_at=Refund.created_at,
        merchant_id=Refund.merchant_id,
        order_by=Refund.seq,
        joins=((Payment, Payment.id == Refund.payment_id),),
    ),
    "credit_notes": Export(
        name="credit_notes",
        columns=(
            _c("id", CreditNote.id),
            _c("number", CreditNote.number),
            _c("invoice", CreditNote.invoice_id),
            _c("customer", CreditNote.customer_id),
            _c("status", CreditNote.status),
            _c("type", CreditNote.type),
            _c("currency", CreditNote.currency),
            _c("amount", CreditNote.amount),
            _c("refund_amount", CreditNote.refund_amount),
            _c("refund", CreditNote.refund_id),
            _c("credit_amount", CreditNote.credit_amount),
            _c("out_of_band_amount", CreditNote.out_of_band_amount),
            _c("reason", CreditNote.reason),
            _c("memo", CreditNote.memo, text=True),
            _c("created_at", CreditNote.created_at),
            _c("voided_at", CreditNote.voided_at),
        ),
        created_at=CreditNote.created_at,
        merchant_id=CreditNote.merchant_id,
        order_by=CreditNote.seq,
    ),
}


def _day(value: str | None, param: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value.strip()) if len(value.strip()) == 10 else None
    except ValueError:
        return None


@dataclass(frozen=True)
class ExportRequest:
    export: Export
    start: datetime | None
    end: datetime | None

    @property
    def filename(self) -> str:
        return f"{self.export.name}.csv"


def export_request(name: str, date_from: str | None, date_to: str | None) -> ExportRequest:
    """Check an export's name and period (dates YYYY-MM-DD, UTC, both included) before anything is streamed."""
    export = EXPORTS.get(name)
    if export is None:
        raise InvalidRequest(
            f"There is no {name!r} export. Exports: {', '.join(n + '.csv' for n in NAMES)}.", param="name"
        )
    bounds = []
    for value, param in ((date_from, "from"), (date_to, "to")):
        day = _day(value, param)
        if value not in (None, "") and day is None:
            raise InvalidRequest(
                f"{param} must be a date as YYYY-MM-DD; got {str(value)[:20]!r}.", param=param
            )
        bounds.append(day)
    first, last = bounds
    if first is not None and last is not None and first > last:
        raise InvalidRequest("from is after to: give the earlier date first.", param="from")
    return ExportRequest(
        export=export,
        start=datetime.combine(first, time.min, tzinfo=UTC) if first else None,
        end=datetime.combine(last, time.min, tzinfo=UTC) + timedelta(days=1) if last else None,
    )


def _csv(rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode()


async def stream_csv(
    engine: AsyncEngine, merchant_id: str, request: ExportRequest, *, batch: int = BATCH
) -> AsyncIterator[bytes]:
    """The export as CSV bytes, header row first, then one chunk per batch of rows from a server-side cursor."""
    export = request.export
    yield _csv([export.header])
    texts: list[Callable[[Any], str]] = [
        (lambda v: cell(v, text=True)) if column.text else cell for column in export.columns
    ]
    async with engine.connect() as connection:
        result = await connection.stream(
            export.query(merchant_id, request.start, request.end).execution_options(yield_per=batch)
        )
        async for rows in result.partitions(batch):
            yield _csv([[fmt(value) for fmt, value in zip(texts, row, strict=True)] for row in rows])
