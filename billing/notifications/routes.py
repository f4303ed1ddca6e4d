"""HTTP route of the invoice email: `POST /v1/invoices/{id}/send`."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, post
from litestar.di import NamedDependency
from litestar.params import HeaderParameter, PathParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES
from billing.invoices.schemas import Invoice
from billing.invoices.service import render
from billing.notifications.invoice_email import send_invoice_email


class InvoiceEmailController(Controller):
    path = "/invoices"
    tags = ["invoices"]  # noqa: RUF012

    @post(
        "/{invoice_id:str}/send",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Email the invoice to its customer (again)",
        description="Queues an email with the invoice's figures and a link to its hosted page, in the customer's "
        "language. Open, paid and uncollectible invoices only; the customer needs an email address. Each call "
        "sends once more; a retry with the same Idempotency-Key does not.",
    )
    async def send(
        self,
        ctx: NamedDependency[RequestContext],
        invoice_id: Annotated[str, PathParameter(description="An invoice id, in_...", max_length=64)],
        idempotency_key: Annotated[
            str | None, HeaderParameter(name="Idempotency-Key", required=False, description="Sends once.")
        ] = None,
    ) -> Invoice:
        invoice, _ = await send_invoice_email(
            ctx.session, ctx.merchant_id, invoice_id, request_key=idempotency_key
        )
        return await render(ctx.session, invoice)
