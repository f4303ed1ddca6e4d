"""Portal sessions as the API shows them, and what create accepts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta


class PortalSessionCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
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


class PortalSession(msgspec.Struct, kw_only=True):
    """A link into the hosted portal. `url` is a bearer secret: send it to the customer only, at once; it is
    shown in this response and never again."""

    id: str
    object: Literal["portal_session"] = "portal_session"
    created_at: datetime
    customer: str
    flow: Literal["payment_method_update"] = "payment_method_update"
    return_url: str | None
    url: str
    expires_at: datetime
