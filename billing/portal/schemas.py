"""Portal sessions as the API shows them, and what create accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

FlowType = Literal["payment_method_update", "subscription_cancel", "subscription_update", "invoice_pay"]


class PortalFlow(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One task the link opens on (after it, the customer may go on to the rest of the portal), as Stripe's
    `flow_data`: `payment_method_update`; `subscription_update` and `subscription_cancel` with `subscription`;
    `invoice_pay` with `invoice`."""

    type: FlowType
    subscription: Annotated[str, Meta(max_length=64, description="sub_... (subscription flows)")] | None = (
        None
    )
    invoice: Annotated[str, Meta(max_length=64, description="in_... (invoice_pay)")] | None = None


class PortalSessionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A customer portal session: for which customer, where to send them back, and optionally one flow."""

    customer: Annotated[str, Meta(max_length=64, description="The customer the portal opens for, cus_...")]
    return_url: (
        Annotated[
            str,
            Meta(
                max_length=2048,
                description="Where the portal's return link leads (your app); http(s) with a host.",
            ),
        ]
        | None
    ) = None
    locale: (
        Annotated[
            Literal["en", "zh-CN", "auto"],
            Meta(
                description="The portal's language: en, zh-CN, or auto (the browser's Accept-Language). "
                "Default: the customer's locale."
            ),
        ]
        | None
    ) = None
    flow: PortalFlow | None = None


class PortalSession(msgspec.Struct, kw_only=True):
    """A link into the hosted portal. `url` is a bearer secret: send it to the customer only, at once; it is
    shown in this response and never again, and it opens the portal once."""

    id: str
    object: Literal["portal_session"] = "portal_session"
    created_at: datetime
    customer: str
    flow: PortalFlow | None
    locale: str | None
    return_url: str | None
    url: str
    expires_at: datetime
