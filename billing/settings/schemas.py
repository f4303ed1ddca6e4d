"""Settings as the API shows them and as PATCH accepts them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

ConnectionId = Annotated[
    str,
    Meta(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,39}$",
        description="Your name for this connection: lowercase letters, digits, '_' and '-', up to 40.",
    ),
]


class GatewayConnection(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One gateway connection. Charges try connections by `priority` (lowest first; default: position in the
    list); connections of equal priority share the first try in proportion to `weight`; weight 0 drains one."""

    id: ConnectionId
    type: Annotated[str, Meta(max_length=32, description="A gateway type, e.g. 'sandbox'.")]
    url: Annotated[str, Meta(max_length=500)] | None = None
    weight: Annotated[int, Meta(ge=0, le=1000)] = 1
    priority: Annotated[int, Meta(ge=0, le=1000)] | None = None
    timeout_ms: Annotated[int, Meta(ge=50, le=60_000, description="Per request to this gateway.")] = 10_000


class MerchantSettings(msgspec.Struct, kw_only=True):
    """The merchant's settings; `id` is the merchant's id."""

    id: str
    object: Literal["settings"] = "settings"
    gateways: list[GatewayConnection]


class SettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the sections present change; `gateways` replaces the whole list."""

    gateways: Annotated[list[GatewayConnection], Meta(max_length=20)] | UnsetType = UNSET
