"""HTTP routes of customers: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES
from billing.customers import service
from billing.customers.schemas import Customer, CustomerCreate, CustomerList, CustomerUpdate, DeletedCustomer

CustomerId = Annotated[str, PathParameter(description="A customer id, cus_...", max_length=64)]


class CustomersController(Controller):
    path = "/customers"
    tags = ["customers"]  # noqa: RUF012

    @post("/", status_code=200, responses=ERROR_RESPONSES, summary="Create a customer")
    async def create(self, ctx: NamedDependency[RequestContext], data: JSONBody[CustomerCreate]) -> Customer:
        customer = await service.create_customer(
            ctx.session, ctx.merchant_id, data, production=ctx.services.settings.is_production
        )
        return service.render_customer(customer)

    list_, retrieve = list_and_retrieve(
        noun="customer",
        url="/v1/customers",
        list_type=CustomerList,
        item_type=Customer,
        render=service.render_customer,
        list_rows=service.list_customers,
        get_row=service.get_customer,
        id_param="customer_id",
        id_type=CustomerId,
        filters={
            "email": Annotated[str | None, QueryParameter(description="Only customers with this email.")],
            "external_id": Annotated[
                str | None, QueryParameter(description="Only the customer with this external_id.")
            ],
            "test_clock": Annotated[
                str | None, QueryParameter(description="Only customers living on this test clock.")
            ],
        },
    )

    @patch("/{customer_id:str}", responses=ERROR_RESPONSES, summary="Update a customer")
    async def update(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId, data: JSONBody[CustomerUpdate]
    ) -> Customer:
        customer = await service.update_customer(ctx.session, ctx.merchant_id, customer_id, data)
        return service.render_customer(customer)

    @delete("/{customer_id:str}", status_code=200, responses=ERROR_RESPONSES, summary="Delete a customer")
    async def delete_(self, ctx: NamedDependency[RequestContext], customer_id: CustomerId) -> DeletedCustomer:
        return await service.delete_customer(ctx.session, ctx.merchant_id, customer_id)
