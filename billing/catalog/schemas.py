"""The catalog as the API shows it (Meter, Plan, Charge, Tier, Coupon, TaxRate, PricePreview) and what create
and update accept.

Choice fields (interval, model, aggregation, duration) arrive as strings and are parsed by the pure validators
in `plans`, whose messages list the allowed values; prices are integers of minor units or, where a fraction of
a minor unit is needed, `*_decimal` strings (never floats).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.catalog.models import Aggregation
from billing.customers.schemas import CurrencyCode, Metadata
from plans.calendar import Interval
from plans.discounts import CouponDuration
from plans.pricing import PricingModel


def _choices(values: type[Aggregation | Interval | CouponDuration | PricingModel]) -> str:
    return ", ".join(member.value for member in values)


Code = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=100,
        description="Your key for this object, unique in your account: letters, digits, '_', '-', '.', ':'.",
    ),
]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
Description = Annotated[str, Meta(max_length=2000)]
AggregationName = Annotated[str, Meta(max_length=32, description=f"One of {_choices(Aggregation)}.")]
PropertyName = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=256,
        description="unique_count only: the key of the usage event's properties whose distinct values count.",
    ),
]
IntervalName = Annotated[str, Meta(max_length=32, description=f"One of {_choices(Interval)}.")]
ModelName = Annotated[str, Meta(max_length=32, description=f"One of {_choices(PricingModel)}.")]
DurationName = Annotated[str, Meta(max_length=32, description=f"One of {_choices(CouponDuration)}.")]
MinorUnits = Annotated[int, Meta(description="An amount in minor units of the currency (1999 = 19.99 USD).")]
DecimalMinorUnits = Annotated[
    str,
    Meta(
        max_length=40,
        description="A price in minor units with up to 12 decimal places, as a string: '0.25' is a quarter "
        "of a cent in USD. Use instead of the integer field when a fraction of a minor unit is needed.",
    ),
]
Percentage = Annotated[
    Decimal, Meta(description="A percentage from 0 to 100 with up to 4 decimals, e.g. '20' or '8.875'.")
]


class Tier(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Units above the previous tier's up_to, up to and including this one's (null: no limit, last tier only)."""

    up_to: int | None = None
    unit_amount: MinorUnits | None = None
    unit_amount_decimal: DecimalMinorUnits | None = None
    flat_amount: MinorUnits | None = None


class Charge(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A metered charge of a plan, billed in arrears: the usage of `meter` priced by `model`.

    per_unit and package take unit_amount (per package for package, with package_size); graduated and volume
    take tiers. free_units are subtracted from the usage first. percentage takes rate and, optionally,
    fixed_amount, free_units_per_events, free_units_per_total_aggregation and per-transaction min/max.
    """

    meter: Code
    model: ModelName
    unit_amount: MinorUnits | None = None
    unit_amount_decimal: DecimalMinorUnits | None = None
    tiers: Annotated[list[Tier], Meta(max_length=100)] = msgspec.field(default_factory=list)
    package_size: int | None = None
    free_units: int = 0
    rate: (
        Annotated[
            str,
            Meta(
                max_length=20,
                description="percentage only: the percent of each transaction's amount, as a string, e.g. '2.9' "
                "(0 to 100, up to 4 decimals). The meter must be a sum meter whose event value is the amount.",
            ),
        ]
        | None
    ) = None
    fixed_amount: Annotated[
        MinorUnits | None, Meta(description="percentage only: a fee added to each paid transaction.")
    ] = None
    free_units_per_events: Annotated[
        int | None, Meta(description="percentage only: how many first transactions (in time order) are free.")
    ] = None
    free_units_per_total_aggregation: Annotated[
        MinorUnits | None,
        Meta(description="percentage only: how much of the period's first transaction amounts is free."),
    ] = None
    per_transaction_min_amount: Annotated[
        MinorUnits | None,
        Meta(description="percentage only: the least a paid transaction costs (fee included)."),
    ] = None
    per_transaction_max_amount: Annotated[
        MinorUnits | None,
        Meta(description="percentage only: the most a paid transaction costs (fee included)."),
    ] = None


class Meter(msgspec.Struct, kw_only=True):
    """A meter: how usage events of one kind add up to a billable quantity."""

    id: str
    object: Literal["meter"] = "meter"
    created_at: datetime
    code: str
    name: str
    description: str | None
    aggregation: Aggregation
    property: str | None
    active: bool
    in_use: bool
    metadata: dict[str, str]


class MeterList(ListResponse[Meter]):
    pass


class MeterCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new meter: its code (what usage events name), how it aggregates events, and the property it reads."""

    code: Code
    name: Name
    aggregation: AggregationName
    property: PropertyName | None = None
    description: Description | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class MeterUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. aggregation and property cannot change once a subscription uses the
    meter (409); the code never changes, since plans and usage events refer to it."""

    code: Code | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    aggregation: AggregationName | UnsetType = UNSET
    property: PropertyName | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET


class Plan(msgspec.Struct, kw_only=True):
    """A plan: a price per unit billed in advance each interval, plus metered charges billed in arrears."""

    id: str
    object: Literal["plan"] = "plan"
    created_at: datetime
    code: str
    name: str
    description: str | None
    currency: str
    interval: Interval
    interval_count: int
    amount: int | None
    amount_decimal: str
    trial_period_days: int | None
    charges: list[Charge]
    minimum_commitment: int | None
    active: bool
    in_use: bool
    portal_visible: bool
    metadata: dict[str, str]


class PlanList(ListResponse[Plan]):
    pass


class PlanCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """amount (or amount_decimal) is the price of one unit for one interval, billed in advance; 0 if unsent."""

    code: Code
    name: Name
    currency: CurrencyCode
    interval: IntervalName = "month"
    interval_count: int = 1
    amount: MinorUnits | None = None
    amount_decimal: DecimalMinorUnits | None = None
    trial_period_days: int | None = None
    charges: Annotated[list[Charge], Meta(max_length=50)] = msgspec.field(default_factory=list)
    minimum_commitment: Annotated[
        MinorUnits | None,
        Meta(
            description="The least each period bills, in minor units: when its fixed fee and usage (before "
            "discounts and taxes) fall short, a true-up line on the invoice that closes it makes up the rest, "
            "prorated for a partial period. Null: no minimum."
        ),
    ] = None
    description: Description | None = None
    portal_visible: Annotated[
        bool,
        Meta(
            description="Offer this plan in the hosted customer portal, to customers whose subscription bills in "
            "the same currency, as a plan to change to (default false)."
        ),
    ] = False
    metadata: Metadata = msgspec.field(default_factory=dict)


class PlanUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. name, description, metadata and code can always change; the pricing
    (currency, interval, interval_count, amount, trial_period_days, charges, minimum_commitment) only until a
    subscription uses
    the plan (then 409: create a new plan). charges, when sent, replace the whole list."""

    code: Code | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    currency: CurrencyCode | UnsetType = UNSET
    interval: IntervalName | UnsetType = UNSET
    interval_count: int | UnsetType = UNSET
    amount: MinorUnits | UnsetType = UNSET
    amount_decimal: DecimalMinorUnits | UnsetType = UNSET
    trial_period_days: int | UnsetType | None = UNSET
    charges: Annotated[list[Charge], Meta(max_length=50)] | UnsetType = UNSET
    minimum_commitment: MinorUnits | UnsetType | None = UNSET
    portal_visible: (
        Annotated[
            bool,
            Meta(
                description="Offer this plan in the hosted customer portal, to customers whose subscription bills in "
                "the same currency, as a plan to change to (default false)."
            ),
        ]
        | UnsetType
    ) = UNSET
    metadata: Metadata | UnsetType = UNSET


class PriceOverrides(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One subscription's own prices for its plan, without a new plan (Lago's plan overrides, Stripe's custom
    prices). Only what is sent is overridden: `amount` (or `amount_decimal`) replaces the plan's price per unit
    and period; each of `charges` replaces the plan's charge for the same meter, whole; `minimum_commitment`
    replaces the plan's minimum (null: none)."""

    amount: MinorUnits | UnsetType = UNSET
    amount_decimal: DecimalMinorUnits | UnsetType = UNSET
    charges: Annotated[list[Charge], Meta(max_length=50)] | UnsetType = UNSET
    minimum_commitment: MinorUnits | UnsetType | None = UNSET


class PricePreviewRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What to price: a plan (or its charges) and the quantities or usage to price them for."""

    quantity: int = 1
    usage: Annotated[
        dict[str, Decimal],
        Meta(description='Usage per meter code for one period, e.g. {"api_calls": 12000}.'),
    ] = msgspec.field(default_factory=dict)


class PricePreviewTier(msgspec.Struct, kw_only=True):
    """One row of a breakdown: amount_decimal == quantity * unit_amount_decimal + flat_amount, exactly."""

    tier_index: int | None
    from_units: int
    to_units: int | None
    quantity: str
    unit_amount_decimal: str
    flat_amount: int
    amount_decimal: str


class PricePreviewLine(msgspec.Struct, kw_only=True):
    """One priced line of a preview: the charge, the quantity and the amount it comes to."""

    type: Literal["subscription", "usage"]
    billed: Literal["in_advance", "in_arrears"]
    description: str
    meter: str | None
    model: PricingModel
    quantity: str
    free_units: str
    billable_quantity: str
    packages: int | None
    tiers: list[PricePreviewTier]
    amount_decimal: str
    amount: int


class PricePreview(msgspec.Struct, kw_only=True):
    """What one period of a plan costs for a quantity and usage, before discounts and taxes.

    Each line's amount is rounded once, half-up, from its exact amount_decimal.
    """

    object: Literal["price_preview"] = "price_preview"
    plan: str
    currency: str
    quantity: int
    lines: list[PricePreviewLine]
    subtotal: int


class Coupon(msgspec.Struct, kw_only=True):
    """A discount: percent_off or amount_off (in currency), for once, repeating periods, or forever."""

    id: str
    object: Literal["coupon"] = "coupon"
    created_at: datetime
    name: str | None
    percent_off: str | None
    amount_off: int | None
    currency: str | None
    duration: CouponDuration
    duration_in_periods: int | None
    max_redemptions: int | None
    redeem_by: datetime | None
    times_redeemed: int
    valid: bool
    active: bool
    metadata: dict[str, str]


class CouponList(ListResponse[Coupon]):
    pass


class CouponCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Exactly one of percent_off and amount_off (with currency)."""

    name: Name | None = None
    percent_off: Percentage | None = None
    amount_off: MinorUnits | None = None
    currency: CurrencyCode | None = None
    duration: DurationName = "once"
    duration_in_periods: int | None = None
    max_redemptions: int | None = None
    redeem_by: datetime | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class CouponUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. name, metadata, max_redemptions and redeem_by can always change; the
    discount (percent_off, amount_off, currency, duration, duration_in_periods) only until the coupon is first
    redeemed (then 409: create a new coupon)."""

    name: Name | UnsetType | None = UNSET
    percent_off: Percentage | UnsetType | None = UNSET
    amount_off: MinorUnits | UnsetType | None = UNSET
    currency: CurrencyCode | UnsetType | None = UNSET
    duration: DurationName | UnsetType = UNSET
    duration_in_periods: int | UnsetType | None = UNSET
    max_redemptions: int | UnsetType | None = UNSET
    redeem_by: datetime | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET


class TaxRate(msgspec.Struct, kw_only=True):
    """A tax rate: percentage, inclusive (extracted from prices) or exclusive (added to them)."""

    id: str
    object: Literal["tax_rate"] = "tax_rate"
    created_at: datetime
    display_name: str
    description: str | None
    percentage: str
    inclusive: bool
    active: bool
    in_use: bool
    metadata: dict[str, str]


class TaxRateList(ListResponse[TaxRate]):
    pass


DisplayName = Annotated[
    str, Meta(min_length=1, max_length=100, description="Shown on invoices, e.g. 'VAT' or '增值税'.")
]


class TaxRateCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new tax rate: a name, a percentage and whether prices include it."""

    display_name: DisplayName
    percentage: Percentage
    inclusive: bool = False
    description: Description | None = None
    metadata: Metadata = msgspec.field(default_factory=dict)


class TaxRateUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. percentage and inclusive cannot change once the rate is in use (409)."""

    display_name: DisplayName | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    percentage: Percentage | UnsetType = UNSET
    inclusive: bool | UnsetType = UNSET
    metadata: Metadata | UnsetType = UNSET
