"""HTTP routes of customers: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
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

    @get("/", responses=ERROR_RESPONSES, summary="List customers, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        email: Annotated[str | None, QueryParameter(description="Only customers with this email.")] = None,
        external_id: Annotated[
            str | None, QueryParameter(description="Only the customer with this external_id.")
        ] = None,
        test_clock: Annotated[
            str | None, QueryParameter(description="Only customers living on this test clock.")
        ] = None,
    ) -> CustomerList:
        result = await service.list_customers(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            email=email,
            external_id=external_id,
            test_clock=test_clock,
        )
        return page(
            CustomerList,
            [service.render_customer(c) for c in result.rows],
            has_more=result.has_more,
            url="/v1/customers",
        )

    @get("/{customer_id:str}", responses=ERROR_RESPONSES, summary="Retrieve a customer")
    async def retrieve(self, ctx: NamedDependency[RequestContext], customer_id: CustomerId) -> Customer:
        return service.render_customer(await service.get_customer(ctx.session, ctx.merchant_id, customer_id))

    @patch("/{customer_id:str}", responses=ERROR_RESPONSES, summary="Update a customer")
    async def update(
        self, ctx: NamedDependency[RequestContext], customer_id: CustomerId, data: JSONBody[CustomerUpdate]
    ) -> Customer:
        customer = await service.update_customer(ctx.session, ctx.merchant_id, customer_id, data)
        return service.render_customer(customer)

    @delete("/{customer_id:str}", status_code=200, responses=ERROR_RESPONSES, summary="Delete a customer")
    async def delete_(self, ctx: NamedDependency[RequestContext], customer_id: CustomerId) -> DeletedCustomer:
        return await service.delete_customer(ctx.session, ctx.merchant_id, customer_id)
