"""Features, plan entitlements and a customer's effective entitlements as the API shows them, and what create
and update accept."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from billing.api.schemas import ListResponse
from billing.catalog.schemas import Code, Description, Name
from billing.customers.schemas import Metadata
from plans.entitlements import MAX_OPTIONS, FeatureType

FeatureTypeName = Annotated[str, Meta(max_length=16, description="One of boolean, limit, enum.")]
Option = Annotated[str, Meta(min_length=1, max_length=100)]
#: true/false for a boolean feature, a whole number for a limit, one of the options for an enum.
EntitlementValue = bool | int | Annotated[str, Meta(max_length=100)]
FeatureRef = Annotated[
    str, Meta(min_length=1, max_length=100, description="A feature id (feat_...) or code.")
]


class Feature(msgspec.Struct, kw_only=True):
    """Something a plan may allow: a boolean switch, a limit, or one of ordered options (enum)."""

    id: str
    object: Literal["feature"] = "feature"
    created_at: datetime
    code: str
    name: str
    description: str | None
    type: FeatureType
    options: list[str]
    active: bool
    metadata: dict[str, str]


class FeatureList(ListResponse[Feature]):
    pass


class FeatureCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A new feature that plans can grant: a code, a name and its type (boolean, quantity or unlimited)."""

    code: Code
    name: Name
    description: Description | None = None
    type: FeatureTypeName = "boolean"
    # enum only: the options from the lowest tier to the highest (the highest granted wins).
    options: Annotated[list[Option], Meta(max_length=MAX_OPTIONS)] = msgspec.field(default_factory=list)
    metadata: Metadata = msgspec.field(default_factory=dict)


class FeatureUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change. The code, type and options never change: plans grant values of them."""

    name: Name | UnsetType = UNSET
    description: Description | UnsetType | None = UNSET
    metadata: Metadata | UnsetType = UNSET


class PlanEntitlement(msgspec.Struct, kw_only=True):
    """A plan's value for one feature."""

    feature: str
    feature_id: str
    type: FeatureType
    value: bool | int | str


class PlanEntitlements(msgspec.Struct, kw_only=True):
    """The features a plan grants and their values, by feature code."""

    object: Literal["plan_entitlements"] = "plan_entitlements"
    plan: str
    entitlements: list[PlanEntitlement]


class PlanEntitlementSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Replaces what a plan grants: the features and, for quantity features, how much."""

    feature: FeatureRef
    value: EntitlementValue


class CustomerEntitlement(msgspec.Struct, kw_only=True):
    """A feature's effective value for a customer, and the plans (of live subscriptions) granting it."""

    feature: str
    type: FeatureType
    value: bool | int | str
    plans: list[str]


class CustomerEntitlements(msgspec.Struct, kw_only=True):
    """What a customer may use now: one entry per feature granted by a plan of an active, trialing or past_due
    subscription. A feature absent here is not granted."""

    object: Literal["customer_entitlements"] = "customer_entitlements"
    customer: str
    entitlements: list[CustomerEntitlement]
