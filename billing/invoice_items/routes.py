"""HTTP routes of invoice items: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from billing.invoice_items import service
from billing.invoice_items.schemas import DeletedInvoiceItem, InvoiceItem, InvoiceItemCreate, InvoiceItemList

InvoiceItemId = Annotated[str, PathParameter(description="An invoice item id, ii_...", max_length=64)]


class InvoiceItemsController(Controller):
    path = "/invoice_items"
    tags = ["invoice_items"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Create a one-off pending item, billed on the customer's next renewal invoice",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[InvoiceItemCreate]
    ) -> InvoiceItem:
        return service.render_invoice_item(
            await service.create_invoice_item(ctx.session, ctx.merchant_id, data)
        )

    @get("/", responses=ERROR_RESPONSES, summary="List invoice items, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        customer: Annotated[
            str | None, QueryParameter(description="Only this customer's items.", max_length=64)
        ] = None,
        pending: Annotated[
            bool | None, QueryParameter(description="true: only pending items; false: only invoiced ones.")
        ] = None,
    ) -> InvoiceItemList:
        result = await service.list_invoice_items(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            customer=customer,
            pending=pending,
        )
        return page(
            InvoiceItemList,
            [service.render_invoice_item(i) for i in result.rows],
            has_more=result.has_more,
            url="/v1/invoice_items",
        )

    @get("/{item_id:str}", responses=ERROR_RESPONSES, summary="Retrieve an invoice item")
    async def retrieve(self, ctx: NamedDependency[RequestContext], item_id: InvoiceItemId) -> InvoiceItem:
        return service.render_invoice_item(
            await service.get_invoice_item(ctx.session, ctx.merchant_id, item_id)
        )

    @delete(
        "/{item_id:str}", status_code=200, responses=ERROR_RESPONSES, summary="Delete a pending invoice item"
    )
    async def delete_(
        self, ctx: NamedDependency[RequestContext], item_id: InvoiceItemId
    ) -> DeletedInvoiceItem:
        return DeletedInvoiceItem(id=await service.delete_invoice_item(ctx.session, ctx.merchant_id, item_id))
