from __future__ import annotations

from typing import Annotated

from litestar import Controller
from litestar.params import PathParameter, QueryParameter

from billing.api.crud import list_and_retrieve
from webhooks import events
from webhooks.events import Event, EventList


class EventsController(Controller):
    path = "/events"
    tags = ["events"]  # noqa: RUF012

    list_, retrieve = list_and_retrieve(
        noun="event",
        url="/v1/events",
        list_type=EventList,
        item_type=Event,
        render=events.render_event,
        list_rows=events.list_events,
        get_row=events.get_event,
        id_param="event_id",
        id_type=Annotated[str, PathParameter(max_length=64)],
        filters={
            "event_type": Annotated[
                str | None,
                QueryParameter(
                    name="type",
                    description="An event type such as customer.created, or a prefix such as customer.*",
                ),
            ],
            "object_id": Annotated[str | None, QueryParameter(description="Only events about this object.")],
        },
    )
