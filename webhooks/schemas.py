"""Webhook endpoints and deliveries as the API shows them, and what create, update and redeliver accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse

Url = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2048,
        description="Where events are POSTed: an absolute https:// (or http://) URL. In production it must "
        "resolve to public internet addresses only.",
        examples=["https://example.com/webhooks/billing"],
    ),
]
EnabledEvents = Annotated[
    list[Annotated[str, Meta(min_length=1, max_length=64)]],
    Meta(
        min_length=1,
        max_length=200,
        description='Event types to receive (see docs/webhooks.md), or ["*"] for every type.',
        examples=[["customer.created", "customer.updated"], ["*"]],
    ),
]
Description = Annotated[str, Meta(max_length=500, description="A note for yourself, up to 500 characters.")]
Metadata = Annotated[
    dict[str, str], Meta(description="Up to 50 string keys (≤40 chars) and values (≤500 chars).")
]
EndpointStatus = Literal["enabled", "disabled"]


class WebhookEndpoint(msgspec.Struct, kw_only=True):
    """A URL that receives signed events. `secret` appears only in the answers to create and rotate_secret."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    created_at: datetime
    url: str
    description: str | None
    enabled_events: list[str]
    status: EndpointStatus
    disabled_reason: Literal["requested", "gone", "failing"] | None
    previous_secret_expires_at: datetime | None
    metadata: dict[str, str]
    secret: (
        Annotated[
            str,
            Meta(
                description="The signing secret (whsec_...): present only in the answers to create and "
                "rotate_secret. Store it; it cannot be read again."
            ),
        ]
        | UnsetType
    ) = UNSET


class WebhookEndpointList(ListResponse[WebhookEndpoint]):
    pass


class WebhookEndpointCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new webhook endpoint: the HTTPS URL and the event types to send it."""

    url: Url
    enabled_events: EnabledEvents
    description: Description | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class WebhookEndpointUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. `disabled: true` stops deliveries (pending ones are canceled);
    `disabled: false` enables the endpoint again."""

    url: Url | UnsetType = UNSET
    enabled_events: EnabledEvents | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET
    disabled: bool | UnsetType = UNSET


class WebhookDeliveryAttempt(msgspec.Struct, kw_only=True):
    """One HTTP request of a delivery and its outcome."""

    id: str
    object: Literal["webhook_delivery_attempt"] = "webhook_delivery_attempt"
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None
    next_attempt_at: datetime | None


class WebhookDelivery(msgspec.Struct, kw_only=True):
    """One event sent (or being sent) to one endpoint, with every attempt so far, oldest first."""

    id: str
    object: Literal["webhook_delivery"] = "webhook_delivery"
    created_at: datetime
    endpoint: str
    event: str
    event_type: str
    origin: Literal["event", "redelivery"]
    status: Literal["pending", "succeeded", "failed", "canceled"]
    attempt_count: int
    next_attempt_at: datetime | None
    completed_at: datetime | None
    last_error: str | None
    attempts: list[WebhookDeliveryAttempt]


class WebhookDeliveryList(ListResponse[WebhookDelivery]):
    pass


class EventRedeliver(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which webhook endpoint to send the event to again."""

    endpoint: (
        Annotated[
            str,
            Meta(
                max_length=64,
                description="Send to this endpoint only (we_...). Without it, to every enabled endpoint that "
                "listens to the event's type.",
            ),
        ]
        | None
    ) = None
