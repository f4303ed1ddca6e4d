"""Settings as the API shows them and as PATCH accepts them."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.customers.schemas import Address, TaxId, TaxIds
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
            "plan_id (and optional notify_url_base); unionpay takes mer_id, merchant_cert_id, merchant_private_key, "
            "unionpay_public_key; ecny takes merchant_no, merchant_private_key, ecny_public_key (both with optional "
            "notify_url_base). Private keys and the APIv3 key are sealed in the vault and "
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


ProrationBehavior = Literal["create_prorations", "always_invoice", "none"]
CancelMode = Literal["at_period_end", "at_period_end_or_now", "disabled"]


class PortalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What customers may do in the hosted portal (docs/portal.md)."""

    proration_behavior: ProrationBehavior = "create_prorations"
    plan_changes: bool = True
    cancel_mode: CancelMode = "at_period_end"
    cancel_now_prorate: bool = False


class PortalSettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change."""

    proration_behavior: (
        Annotated[
            ProrationBehavior,
            Meta(
                description="How a plan or quantity change made in the portal is prorated, as the change "
                "route's proration_behavior: create_prorations (default: credit and charge go on the next "
                "invoice), always_invoice (invoiced and charged at once), none."
            ),
        ]
        | UnsetType
    ) = UNSET
    plan_changes: (
        Annotated[
            bool,
            Meta(
                description="Customers may change plan (to a plan with portal_visible) or quantity (default "
                "true)."
            ),
        ]
        | UnsetType
    ) = UNSET
    cancel_mode: (
        Annotated[
            CancelMode,
            Meta(
                description="at_period_end (default: a cancellation takes effect when the paid period ends), "
                "at_period_end_or_now (the customer may also end it at once), disabled (no cancel button)."
            ),
        ]
        | UnsetType
    ) = UNSET
    cancel_now_prorate: (
        Annotated[
            bool,
            Meta(
                description="With at_period_end_or_now: credit the unused time of a subscription ended at once "
                "to the customer's balance (default false)."
            ),
        ]
        | UnsetType
    ) = UNSET


class BrandingSettings(msgspec.Struct, kw_only=True):
    """How the portal, hosted invoices, PDFs and emails present the merchant."""

    display_name: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None
    support_email: str | None = None


class BrandingSettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; null clears one."""

    display_name: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=100,
                description="The name customers see (default: the merchant's name).",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    logo_url: (
        Annotated[
            str,
            Meta(
                max_length=2048,
                description="An https:// URL of a PNG, JPEG, GIF or WebP logo (up to 512 KB). The engine "
                "fetches it and serves it from its own address, so pages load nothing from other hosts.",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    accent_color: (
        Annotated[
            str,
            Meta(
                description="#rrggbb for buttons and links. A colour too light for white text (WCAG contrast "
                "below 4.5:1) is darkened, keeping its hue; the stored value is the one used."
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    support_email: (
        Annotated[
            str,
            Meta(
                max_length=320,
                pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
                description="Where customers write for help; shown on the portal, invoices and emails.",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET


class BusinessProfile(msgspec.Struct, kw_only=True):
    """Who issues the merchant's invoices: printed as the seller on every invoice (hosted page and PDF), frozen on
    each invoice when it is finalized."""

    legal_name: str | None = None
    address: Address | None = None
    tax_ids: list[TaxId] = msgspec.field(default_factory=list)
    invoice_footer: str | None = None
    payment_instructions: str | None = None


class BusinessProfileUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; null clears one."""

    legal_name: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=200,
                description="The registered name printed as the seller, e.g. 上海云图信息技术有限公司 "
                "(default: the display name).",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    address: Address | UnsetType | None = UNSET
    tax_ids: TaxIds | UnsetType = UNSET
    invoice_footer: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=500,
                description="A closing text on every invoice (registration details, a thank-you, legal notes).",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET
    payment_instructions: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=1000,
                description="How to pay an invoice sent for payment (collection_method send_invoice), e.g. a "
                "bank account for transfers; printed on open invoices of that kind.",
            ),
        ]
        | UnsetType
        | None
    ) = UNSET


Limit = Annotated[int, Meta(ge=1, le=1_000_000)]
Listed = Annotated[list[Annotated[str, Meta(min_length=1, max_length=320)]], Meta(max_length=10_000)]


class RiskVelocity(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Attempts (charges and new payment methods) allowed per hour, the current one included; over a limit the
    attempt is blocked, at 80% of it the attempt scores 30. null: no limit (the default)."""

    per_fingerprint_per_hour: Limit | None = None
    per_customer_per_hour: Limit | None = None
    per_ip_per_hour: Limit | None = None


class RiskAmountLimit(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Minor units of one currency: a charge at or above `review` scores 60 (a review at the default
    review_score), at or above `block` it is blocked."""

    review: Annotated[int, Meta(ge=1, lt=10**15)] | None = None
    block: Annotated[int, Meta(ge=1, lt=10**15)] | None = None


class RiskBlocklists(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Attempts that match an entry are blocked: card fingerprints (as payment methods show them), customer
    emails (any case), IP addresses, customer countries (ISO 3166-1 alpha-2, from the customer's address)."""

    fingerprints: Listed = msgspec.field(default_factory=list)
    emails: Listed = msgspec.field(default_factory=list)
    ips: Listed = msgspec.field(default_factory=list)
    countries: Listed = msgspec.field(default_factory=list)


class RiskSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The risk check every charge and new payment method passes (docs/risk.md). PATCH replaces the section."""

    enabled: bool = True
    velocity: RiskVelocity = msgspec.field(default_factory=RiskVelocity)
    amount_limits: Annotated[
        dict[Annotated[str, Meta(max_length=3)], RiskAmountLimit],
        Meta(max_length=200, description='Per ISO 4217 currency code, e.g. {"USD": {"review": 50000}}.'),
    ] = msgspec.field(default_factory=dict)
    blocklists: RiskBlocklists = msgspec.field(default_factory=RiskBlocklists)
    review_score: Annotated[
        int,
        Meta(
            ge=1,
            le=100,
            description="A charge whose score reaches this (without a blocking rule) is held for review "
            "(default 50).",
        ),
    ] = 50


class MerchantSettings(msgspec.Struct, kw_only=True):
    """The merchant's settings; `id` is the merchant's id."""

    id: str
    object: Literal["settings"] = "settings"
    gateways: list[GatewayConnection]
    usage: UsageSettings = msgspec.field(default_factory=UsageSettings)
    dunning: DunningSettings = msgspec.field(default_factory=DunningSettings)
    portal: PortalSettings = msgspec.field(default_factory=PortalSettings)
    branding: BrandingSettings = msgspec.field(default_factory=BrandingSettings)
    business: BusinessProfile = msgspec.field(default_factory=BusinessProfile)
    risk: RiskSettings = msgspec.field(default_factory=RiskSettings)


class SettingsUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the sections present change; `gateways` replaces the whole list."""

    gateways: Annotated[list[GatewayConnection], Meta(max_length=20)] | UnsetType = UNSET
    usage: UsageSettings | UnsetType = UNSET
    dunning: DunningSettingsUpdate | UnsetType = UNSET
    portal: PortalSettingsUpdate | UnsetType = UNSET
    branding: BrandingSettingsUpdate | UnsetType = UNSET
    business: BusinessProfileUpdate | UnsetType = UNSET
    risk: RiskSettings | UnsetType = UNSET
