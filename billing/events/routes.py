from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter

from billing.api.context import RequestContext
from billing.api.openapi import ERROR_RESPONSES, Limit, StartingAfter
from billing.api.schemas import page
from webhooks import events
from webhooks.events import Event, EventList


class EventsController(Controller):
    path = "/events"
    tags = ["events"]  # noqa: RUF012

    @get("/", responses=ERROR_RESPONSES, summary="List events, newest first")
    async def list_(
        self,
        ctx: NamedDependency[RequestContext],
        limit: Limit = 10,
        starting_after: StartingAfter = None,
        type: Annotated[
            str | None,
            QueryParameter(
                description="An event type such as customer.created, or a prefix such as customer.*"
            ),
        ] = None,
        object_id: Annotated[str | None, QueryParameter(description="Only events about this object.")] = None,
    ) -> EventList:
        result = await events.list_events(
            ctx.session,
            ctx.merchant_id,
            limit=limit,
            starting_after=starting_after,
            event_type=type,
            object_id=object_id,
        )
        return page(
            EventList,
            [events.render_event(e) for e in result.rows],
            has_more=result.has_more,
            url="/v1/events",
        )

    @get("/{event_id:str}", responses=ERROR_RESPONSES, summary="Retrieve an event")
    async def retrieve(
        self, ctx: NamedDependency[RequestContext], event_id: Annotated[str, PathParameter(max_length=64)]
    ) -> Event:
        return events.render_event(await events.get_event(ctx.session, ctx.merchant_id, event_id))
