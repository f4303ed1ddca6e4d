"""HTTP routes of webhook endpoints and event redelivery: parse, call the use case, render."""

from __future__ import annotations

from typing import Annotated, Literal

from litestar import Controller, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.crud import list_and_retrieve
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import DeletedObject, page
from billing.db.pagination import PageRequest
from webhooks import endpoints
from webhooks.schemas import (
    EventRedeliver,
    WebhookDeliveryList,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointList,
    WebhookEndpointUpdate,
)

EndpointId = Annotated[str, PathParameter(description="A webhook endpoint id, we_...", max_length=64)]
EventId = Annotated[str, PathParameter(description="An event id, evt_...", max_length=64)]


class WebhookEndpointsController(Controller):
    path = "/webhook_endpoints"
    tags = ["webhook_endpoints"]  # noqa: RUF012

    @post(
        "/",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Create a webhook endpoint; the answer holds its signing secret, shown only this once",
    )
    async def create(
        self, ctx: NamedDependency[RequestContext], data: JSONBody[WebhookEndpointCreate]
    ) -> WebhookEndpoint:
        endpoint, secret = await endpoints.create_endpoint(
            ctx.session,
            ctx.merchant_id,
            data,
            production=ctx.services.settings.is_production,
            box=ctx.services.vault,
        )
        return endpoints.render_endpoint(endpoint, secret=secret)

    list_, retrieve = list_and_retrieve(
        noun="webhook endpoint",
        url="/v1/webhook_endpoints",
        list_type=WebhookEndpointList,
        item_type=WebhookEndpoint,
        render=endpoints.render_endpoint,
        list_rows=endpoints.list_endpoints,
        get_row=endpoints.get_endpoint,
        id_param="endpoint_id",
        id_type=EndpointId,
    )

    @patch("/{endpoint_id:str}", responses=ERROR_RESPONSES, summary="Update a webhook endpoint")
    async def update(
        self,
        ctx: NamedDependency[RequestContext],
        endpoint_id: EndpointId,
        data: JSONBody[WebhookEndpointUpdate],
    ) -> WebhookEndpoint:
        endpoint = await endpoints.update_endpoint(
            ctx.session, ctx.merchant_id, endpoint_id, data, production=ctx.services.settings.is_production
        )
        return endpoints.render_endpoint(endpoint)

    @delete(
        "/{endpoint_id:str}",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Delete a webhook endpoint; its pending deliveries are canceled",
    )
    async def delete_(self, ctx: NamedDependency[RequestContext], endpoint_id: EndpointId) -> DeletedObject:
        endpoint = await endpoints.delete_endpoint(ctx.session, ctx.merchant_id, endpoint_id)
        return DeletedObject(id=endpoint.id, object="webhook_endpoint")

    @post(
        "/{endpoint_id:str}/rotate_secret",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Rotate the signing secret; the old one keeps signing beside the new one for 24 hours",
    )
    async def rotate_secret(
        self, ctx: NamedDependency[RequestContext], endpoint_id: EndpointId
    ) -> WebhookEndpoint:
        endpoint, secret = await endpoints.rotate_secret(
            ctx.session, ctx.merchant_id, endpoint_id, box=ctx.services.vault
        )
        return endpoints.render_endpoint(endpoint, secret=secret)

    @get(
        "/{endpoint_id:str}/deliveries",
        responses=ERROR_RESPONSES,
        summary="List the endpoint's deliveries, newest first, each with every attempt",
    )
    async def deliveries(
        self,
        ctx: NamedDependency[RequestContext],
        endpoint_id: EndpointId,
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        status: Annotated[
            Literal["pending", "succeeded", "failed", "canceled"] | None,
            QueryParameter(description="Only deliveries in this status."),
        ] = None,
        event: Annotated[
            str | None, QueryParameter(description="Only deliveries of this event (evt_...).", max_length=64)
        ] = None,
    ) -> WebhookDeliveryList:
        result = await endpoints.list_deliveries(
            ctx.session,
            ctx.merchant_id,
            endpoint_id,
            PageRequest(limit, starting_after),
            status=status,
            event_id=event,
        )
        return page(
            WebhookDeliveryList,
            await endpoints.render_deliveries(ctx.session, result.rows),
            has_more=result.has_more,
            url=endpoints.deliveries_url(endpoint_id),
        )


class EventRedeliveryController(Controller):
    path = "/events"
    tags = ["events"]  # noqa: RUF012

    @post(
        "/{event_id:str}/redeliver",
        status_code=200,
        responses=ERROR_RESPONSES,
        summary="Send an event again now, with the same webhook-id, to one endpoint or to every listening one",
    )
    async def redeliver(
        self,
        ctx: NamedDependency[RequestContext],
        event_id: EventId,
        data: JSONBody[EventRedeliver | None] = None,
    ) -> WebhookDeliveryList:
        deliveries = await endpoints.redeliver_event(
            ctx.session, ctx.merchant_id, event_id, endpoint_id=data.endpoint if data is not None else None
        )
        return page(
            WebhookDeliveryList,
            await endpoints.render_deliveries(ctx.session, deliveries),
            has_more=False,
            url=f"/v1/events/{event_id}/redeliver",
        )
