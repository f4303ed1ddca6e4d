from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import DeletedObject, page
from billing.invoices import collection, service, states
from billing.invoices.documents import load_invoice_document
from billing.invoices.hosted_routes import pdf_response, render_pdf_off_loop
from billing.invoices.models import Invoice as InvoiceModel
from billing.invoices.schemas import Invoice, InvoiceCreate, InvoiceList, InvoicePay, LineCreate
from billing.payments.service import payment_error
from billing.scheduler.runner import run_task_now
from billing.test_clocks.service import customer_clock

InvoiceId = Annotated[str, PathParameter(description="An invoice id, in_...", max_length=64)]


async def collect_at_once(ctx: RequestContext, invoice_id: str) -> InvoiceModel:
    """Commit, then run the invoice's pending collection task now, so the answer carries its outcome."""
    task_id = await collection.pending_collection(ctx.session, invoice_id)
    if task_id is not None and ctx.committed is not None:
        # Bounded per process: a charge in flight holds two pooled connections (the task's and the payment's).
        async with ctx.committed(), ctx.services.collection_slots:
            await run_task_now(ctx.services, task_id)
        ctx.session.expire_all()
    return await service.get_invoice(ctx.session, ctx.merchant_id, invoice_id)


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

    @get(
        "/{invoice_id:str}/pdf",
        media_type="application/pdf",
        responses=ERROR_RESPONSES,
        summary="The invoice as a PDF (drafts too, marked DRAFT)",
        response_description=(
            'The PDF, with Content-Disposition: inline; filename="<number, or the id of a draft>.pdf".'
        ),
    )
    async def pdf(
        self,
        ctx: NamedDependency[RequestContext],
        invoice_id: InvoiceId,
        locale: Annotated[
            Literal["en", "zh-CN"] | None,
            QueryParameter(description="en or zh-CN; by default the customer's locale."),
        ] = None,
    ) -> Response[bytes]:
        invoice = await service.get_invoice(ctx.session, ctx.merchant_id, invoice_id)
        doc = await load_invoice_document(ctx.session, invoice, locale=locale)
        return pdf_response(doc, await render_pdf_off_loop(doc))

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
        invoice = await service.finalize_invoice(ctx.session, ctx.merchant_id, invoice_id)
        return await service.render(ctx.session, invoice)

    @post(
        "/{invoice_id:str}/pay",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Pay an open invoice now: charge a payment method, or record a payment made out of band",
    )
    async def pay(
        self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId, data: JSONBody[InvoicePay]
    ) -> Invoice:
        if data.paid_out_of_band:
            invoice = await service.pay_invoice_out_of_band(ctx.session, ctx.merchant_id, invoice_id)
            return await service.render(ctx.session, invoice)
        invoice = await service.get_invoice(ctx.session, ctx.merchant_id, invoice_id, for_update=True)
        states.transition(invoice.id, invoice.status, "pay")
        if await collection.pending_collection(ctx.session, invoice.id) is None:
            clock = await customer_clock(ctx.session, ctx.merchant_id, invoice.customer_id)
            # Paying on request charges whatever the collection method: the customer asked to pay now.
            await collection.request_collection(
                ctx.session, invoice, clock, payment_method=data.payment_method, on_request=True
            )
        invoice = await collect_at_once(ctx, invoice.id)
        if invoice.status != states.PAID:
            payment = await collection.latest_payment(ctx.session, invoice.id)
            error = payment_error(payment) if payment is not None else None
            if error is not None:
                raise error
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
