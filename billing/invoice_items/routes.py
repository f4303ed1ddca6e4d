"""HTTP routes of invoice items: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
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

    list_, retrieve = list_and_retrieve(
        noun="invoice item",
        url="/v1/invoice_items",
        list_type=InvoiceItemList,
        item_type=InvoiceItem,
        render=service.render_invoice_item,
        list_rows=service.list_invoice_items,
        get_row=service.get_invoice_item,
        id_param="item_id",
        id_type=InvoiceItemId,
        filters={
            "customer": Annotated[
                str | None, QueryParameter(description="Only this customer's items.", max_length=64)
            ],
            "pending": Annotated[
                bool | None,
                QueryParameter(description="true: only pending items; false: only invoiced ones."),
            ],
        },
    )

    @delete(
        "/{item_id:str}", status_code=200, responses=ERROR_RESPONSES, summary="Delete a pending invoice item"
    )
    async def delete_(
        self, ctx: NamedDependency[RequestContext], item_id: InvoiceItemId
    ) -> DeletedInvoiceItem:
        return DeletedInvoiceItem(id=await service.delete_invoice_item(ctx.session, ctx.merchant_id, item_id))
