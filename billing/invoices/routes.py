from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import DeletedObject, page
from billing.invoices import service
from billing.invoices.schemas import Invoice, InvoiceCreate, InvoiceList, InvoicePay, LineCreate
from billing.merchants.models import Merchant

InvoiceId = Annotated[str, PathParameter(description="An invoice id, in_...", max_length=64)]


async def _prefix(ctx: RequestContext) -> str:
    merchant = await ctx.session.get(Merchant, ctx.merchant_id)
    return service.invoice_prefix(merchant.settings if merchant else {})


class InvoicesController(Controller):
    path = "/invoices"
    tags = ["invoices"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a draft invoice with ad-hoc lines")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[InvoiceCreate]) -> Invoice:
        invoice = await service.create_invoice(ctx.session, ctx.merchant_id, data)
        return await service.render(ctx.session, invoice)

    @get("/", responses=ERROR_RESPONSES, summary="List invoices, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        customer: Annotated[str | None, QueryParameter(description="Only this customer's invoices.")] = None,
        subscription: Annotated[str | None, QueryParameter(description="Only this subscription's.")] = None,
        status: Annotated[
            str | None, QueryParameter(description="draft, open, paid, void or uncollectible.")
        ] = None,
    ) -> InvoiceList:
        result = await service.list_invoices(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            customer=customer,
            subscription=subscription,
            status=status,
        )
        return page(
            InvoiceList,
            [await service.render(ctx.session, i) for i in result.rows],
            has_more=result.has_more,
            url="/v1/invoices",
        )

    @get("/{invoice_id:str}", responses=ERROR_RESPONSES, summary="Retrieve an invoice")
    async def retrieve(self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId) -> Invoice:
        return await service.render(
            ctx.session, await service.get_invoice(ctx.session, ctx.merchant_id, invoice_id)
        )

    @post(
        "/{invoice_id:str}/lines",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Add an ad-hoc line to a draft invoice",
    )
    async def add_line(
        self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId, data: JSONBody[LineCreate]
    ) -> Invoice:
        invoice = await service.add_line(ctx.session, ctx.merchant_id, invoice_id, data)
        return await service.render(ctx.session, invoice)

    @post(
        "/{invoice_id:str}/finalize",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Finalize a draft: number it, apply the customer balance, make it immutable",
    )
    async def finalize(self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId) -> Invoice:
        invoice = await service.finalize_invoice(
            ctx.session, ctx.merchant_id, invoice_id, prefix=await _prefix(ctx)
        )
        return await service.render(ctx.session, invoice)

    @post(
        "/{invoice_id:str}/pay",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Pay an open invoice (paid_out_of_band: recorded as paid outside the engine)",
    )
    async def pay(
        self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId, data: JSONBody[InvoicePay]
    ) -> Invoice:
        if not data.paid_out_of_band:
            from billing.errors import Conflict

            raise Conflict(
                "Charging a payment method from this route arrives with payments; pass "
                "paid_out_of_band=true to record a payment made outside the engine.",
                code="payment_collection_unavailable",
                param="paid_out_of_band",
            )
        invoice = await service.pay_invoice_out_of_band(ctx.session, ctx.merchant_id, invoice_id)
        return await service.render(ctx.session, invoice)

    @post(
        "/{invoice_id:str}/void", status_code=200, responses=ERROR_RESPONSES, summary="Void an open invoice"
    )
    async def void(self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId) -> Invoice:
        return await service.render(
            ctx.session, await service.void_invoice(ctx.session, ctx.merchant_id, invoice_id)
        )

    @post(
        "/{invoice_id:str}/mark_uncollectible",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Mark an open invoice uncollectible",
    )
    async def mark_uncollectible(
        self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId
    ) -> Invoice:
        invoice = await service.mark_uncollectible(ctx.session, ctx.merchant_id, invoice_id)
        return await service.render(ctx.session, invoice)

    @delete("/{invoice_id:str}", status_code=200, responses=ERROR_RESPONSES, summary="Delete a draft invoice")
    async def delete_(self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId) -> DeletedObject:
        return DeletedObject(
            id=await service.delete_draft(ctx.session, ctx.merchant_id, invoice_id), object="invoice"
        )
