"""What the subscription item routes accept (docs/billing.md "Subscription items")."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from billing.api.schemas import ListResponse
from billing.subscriptions.schemas import PlanRef, Quantity, SubscriptionItem

ProrationBehavior = Annotated[
    Literal["create_prorations", "always_invoice", "none"],
    Meta(
        description="create_prorations (default): the prorated amount waits for the next invoice; "
        "always_invoice: invoiced and charged now; none: nothing prorated, the new fee from the next renewal."
    ),
]


class SubscriptionItemCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An add-on for the subscription: a plan of its currency and billing interval, times a quantity, prorated for
    the rest of the current period as `proration_behavior` says."""

    plan: Annotated[PlanRef, Meta(description="The add-on plan, by id or code.")]
    quantity: Quantity = 1
    proration_behavior: ProrationBehavior = "create_prorations"


class SubscriptionItemUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new quantity for an item, the difference prorated as `proration_behavior` says."""

    quantity: Quantity
    proration_behavior: ProrationBehavior = "create_prorations"


class SubscriptionItemList(ListResponse[SubscriptionItem]):
    pass
