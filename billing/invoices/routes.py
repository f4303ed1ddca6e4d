from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import DeletedObject, ErrorBody, page
from billing.db.pagination import PageRequest
from billing.invoices import collection, service, states
from billing.invoices.documents import load_invoice_document
from billing.invoices.hosted_routes import pdf_response, render_pdf_off_loop
from billing.invoices.models import Invoice as InvoiceModel
from billing.invoices.schemas import Invoice, InvoiceCreate, InvoiceList, InvoicePay, LineCreate
from billing.invoices.search import InvoiceFilters
from billing.payments.models import Payment as PaymentModel
from billing.payments.schemas import Payment
from billing.payments.service import get_payment, payment_error, render_payment

InvoiceId = Annotated[str, PathParameter(description="An invoice id, in_...", max_length=64)]


_DATE = "An RFC 3339 instant, or a YYYY-MM-DD date (UTC)"
CreatedGte = Annotated[
    str | None,
    QueryParameter(name="created[gte]", description=f"{_DATE}: created at or after.", max_length=40),
]
CreatedLte = Annotated[
    str | None,
    QueryParameter(
        name="created[lte]",
        description=f"{_DATE}: created at or before (a date: that whole day).",
        max_length=40,
    ),
]
DueGte = Annotated[
    str | None, QueryParameter(name="due_date[gte]", description=f"{_DATE}: due at or after.", max_length=40)
]
DueLte = Annotated[
    str | None,
    QueryParameter(
        name="due_date[lte]",
        description=f"{_DATE}: due at or before (a date: that whole day).",
        max_length=40,
    ),
]
TotalGte = Annotated[
    str | None,
    QueryParameter(
        name="total[gte]", description="A total of at least this many minor units.", max_length=20
    ),
]
TotalLte = Annotated[
    str | None,
    QueryParameter(name="total[lte]", description="A total of at most this many minor units.", max_length=20),
]


async def collect_at_once(
    ctx: RequestContext, invoice_id: str, *, attempt: int | None = None
) -> InvoiceModel:
    """Commit, then run the invoice's pending collection task now (of payment attempt `attempt` only, when
    given), so the answer carries its outcome. The request holds one pooled connection at a time throughout
    (collection.collect_now)."""
    task_id = await collection.pending_collection(ctx.session, invoice_id, attempt=attempt)
    if task_id is not None and ctx.committed is not None:
        async with ctx.committed():
            await collection.collect_now(ctx.services, task_id)
        ctx.session.expire_all()
    return await service.get_invoice(ctx.session, ctx.merchant_id, invoice_id)


class _Named(msgspec.Struct):
    id: str


async def _outcome_of_earlier_charge(
    ctx: RequestContext, invoice_id: str, earlier_pending: bytes
) -> Response[Invoice] | Response[Payment]:
    """A retry, with its Idempotency-Key, of a pay request that answered 202: the outcome of that charge now,
    never a new charge. Succeeded: the invoice (paid); failed: the card error; still pending: 202 again."""
    payment_id = msgspec.json.decode(earlier_pending, type=_Named).id
    earlier = await get_payment(ctx.session, ctx.merchant_id, payment_id)
    # The charge may have settled since (the janitor asked the gateway): let the invoice catch up with it now, by
    # the look-again task of that same attempt (it never charges anew).
    invoice = await collect_at_once(ctx, invoice_id, attempt=earlier.attempt)
    earlier = await get_payment(ctx.session, ctx.merchant_id, payment_id)
    return await _answer(ctx, invoice, earlier)


async def _answer(
    ctx: RequestContext, invoice: InvoiceModel, payment: PaymentModel | None
) -> Response[Invoice] | Response[Payment]:
    if invoice.status != states.PAID and payment is not None:
        if payment.status == "pending":
            return Response(render_payment(payment), status_code=202)
        error = payment_error(payment)
        if error is not None:
            raise error
    return Response(await service.render(ctx.session, invoice), status_code=200)


class InvoicesController(Controller):
    path = "/invoices"
    tags = ["invoices"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a draft invoice with ad-hoc lines")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[InvoiceCreate]) -> Invoice:
        invoice = await service.create_invoice(ctx.session, ctx.merchant_id, data)
        return await service.render(ctx.session, invoice)

    @get(
        "/",
        responses=ERROR_RESPONSES,
        summary="List invoices, newest first",
        description="Filters combine (AND). Dates take an RFC 3339 instant or a YYYY-MM-DD date (UTC); a date in "
        "a [lte] bound includes that whole day. Amounts are minor units. A bad value answers 400 naming the "
        "parameter.",
    )
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
        created_gte: CreatedGte = None,
        created_lte: CreatedLte = None,
        due_date_gte: DueGte = None,
        due_date_lte: DueLte = None,
        total_gte: TotalGte = None,
        total_lte: TotalLte = None,
        currency: Annotated[
            str | None, QueryParameter(description="Only invoices in this ISO 4217 currency.", max_length=3)
        ] = None,
        number: Annotated[
            str | None,
            QueryParameter(description="The invoice with this number, e.g. INV-000042.", max_length=60),
        ] = None,
    ) -> InvoiceList:
        filters = InvoiceFilters.from_query(
            {
                "customer": customer,
                "subscription": subscription,
                "status": status,
                "created[gte]": created_gte,
                "created[lte]": created_lte,
                "due_date[gte]": due_date_gte,
                "due_date[lte]": due_date_lte,
                "total[gte]": total_gte,
                "total[lte]": total_lte,
                "currency": currency,
                "number": number,
            }
        )
        result = await service.list_invoices(
            ctx.session, ctx.merchant_id, PageRequest(limit, starting_after), filters=filters
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
        responses={
            **ERROR_RESPONSES,
            202: ResponseSpec(
                Payment,
                description="The charge was sent but no gateway confirmed it yet: the pending payment. It is "
                "settled automatically and was charged at most once; do not pay again. Retry this request with "
                "the same Idempotency-Key to get the outcome (the invoice once paid, a 402 if it failed), or "
                "retrieve the payment.",
            ),
            402: ResponseSpec(ErrorBody, description="card_error: the charge was declined; see decline_code"),
        },
        summary="Pay an open invoice now: charge a payment method, or record a payment made out of band",
    )
    async def pay(
        self, ctx: NamedDependency[RequestContext], invoice_id: InvoiceId, data: JSONBody[InvoicePay]
    ) -> Response[Invoice] | Response[Payment]:
        if ctx.earlier_pending is not None:
            return await _outcome_of_earlier_charge(ctx, invoice_id, ctx.earlier_pending)
        if data.paid_out_of_band:
            invoice = await service.pay_invoice_out_of_band(ctx.session, ctx.merchant_id, invoice_id)
            return Response(await service.render(ctx.session, invoice), status_code=200)
        await collection.request_payment(
            ctx.session, ctx.merchant_id, invoice_id, payment_method=data.payment_method
        )
        invoice = await collect_at_once(ctx, invoice_id)
        return await _answer(ctx, invoice, await collection.latest_payment(ctx.session, invoice.id))

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
