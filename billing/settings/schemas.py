"""Settings as the API shows them and as PATCH accepts them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from dunning.recovery import FinalAction

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
    credentials: Annotated[
        dict[Annotated[str, Meta(max_length=64)], Annotated[str, Meta(max_length=8000)]],
        Meta(
            max_length=20,
            description="A channel's ids and keys (docs/channels.md): alipay takes app_id, app_private_key, "
            "alipay_public_key (and optional sign_scene, notify_url_base); wechat_pay takes mchid, appid, "
            "merchant_serial_no, merchant_private_key, apiv3_key, platform_public_key, platform_public_key_id, "
            "plan_id (and optional notify_url_base). Private keys and the APIv3 key are sealed in the vault and "
            'shown as "[sealed]"; sending "[sealed]" back (or leaving credentials out) keeps what is stored. '
            "Outside production, a channel connection saved without credentials gets a sandbox account.",
        ),
    ] = msgspec.field(default_factory=dict)


class UsageSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """How metered usage is billed (docs/usage.md)."""

    grace_period_seconds: Annotated[
        int,
        Meta(
            ge=0,
            le=7 * 86_400,
            description="How long after a period ends its renewal invoice stays a draft, so that usage events "
            "arriving late still land on it (default 3600; 0 finalizes at once). Later events are billed as an "
            "adjustment on the next invoice.",
        ),
    ] = 3600


class DunningSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Smart retries of failed automatic charges (docs/dunning.md)."""

    retry_schedule_days: list[int] = msgspec.field(default_factory=lambda: [1, 3, 5, 7])
    final_action: FinalAction = "cancel"
    smart_retries: bool = True


class DunningSettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change."""

    retry_schedule_days: (
        Annotated[
            list[int],
            Meta(
                description="Retries, in days after the first failed charge: 1 to 10 whole days, each 1..60, "
                "strictly increasing (default [1, 3, 5, 7])."
            ),
        ]
        | UnsetType
    ) = UNSET
    final_action: (
        Annotated[
            FinalAction,
            Meta(
                description="What happens once every retry failed: cancel (the subscription is canceled and "
                "the invoice marked uncollectible; default), unpaid (the subscription becomes unpaid: invoices "
                "keep coming but are not charged), past_due (the subscription stays past_due and every new "
                "invoice is charged and retried)."
            ),
        ]
        | UnsetType
    ) = UNSET
    smart_retries: (
        Annotated[
            bool,
            Meta(
                description="Move each retry within its day to the hour that succeeds most for the card's "
                "brand in your history (default true)."
            ),
        ]
        | UnsetType
    ) = UNSET


class MerchantSettings(msgspec.Struct, kw_only=True):
    """The merchant's settings; `id` is the merchant's id."""

    id: str
    object: Literal["settings"] = "settings"
    gateways: list[GatewayConnection]
    usage: UsageSettings = msgspec.field(default_factory=UsageSettings)
    dunning: DunningSettings = msgspec.field(default_factory=DunningSettings)


class SettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the sections present change; `gateways` replaces the whole list."""

    gateways: Annotated[list[GatewayConnection], Meta(max_length=20)] | UnsetType = UNSET
    usage: UsageSettings | UnsetType = UNSET
    dunning: DunningSettingsUpdate | UnsetType = UNSET
