"""Entitlement use cases: features, their values on plans, and what a customer may use now.

A feature (`boolean`, `limit` or `enum`) is granted by plans with a value of its type. A customer's effective
entitlements come from the plans of its live subscriptions (active, trialing, past_due) and of their add-on items,
merged by the pure `plans.entitlements.effective_entitlements` (the highest value wins). They are computed by one
query on every read, so they are never stale; the set last announced is kept on the customer row, and the
subscriptions feature calls `refresh_customer_entitlements` after each change of status or plan and each add-on
added or removed, which writes `customer.entitlements_updated` only when the set differs.
"""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy import select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.common import (
    CATALOG_CLOCK,
    code_taken,
    flush_unique,
    get_by_id_or_code,
    set_archived,
    validate_new_code,
)
from billing.catalog.models import Plan
from billing.catalog.plans import get_plan
from billing.clock import Clock
from billing.customers.models import Customer
from billing.customers.service import get_customer
from billing.db.lookup import active_filter, equals, list_owned
from billing.db.pagination import Page, PageRequest
from billing.entitlements import schemas
from billing.entitlements.models import Feature, PlanEntitlement
from billing.errors import InvalidRequest, not_found
from billing.ids import new_id
from billing.metadata import merge_metadata, validate_metadata
from billing.subscriptions import states
from billing.subscriptions.models import Subscription, SubscriptionItem
from plans.entitlements import FeatureType, Grant, effective_entitlements, validate_options, validate_value
from plans.errors import parse_choice
from webhooks.outbox import previous_attributes, record_event

_UNIQUE_CODE = "uq_features_merchant_code"
#: The statuses whose plan grants its entitlements: the customer is paying, on trial, or being dunned.
LIVE_STATUSES = (states.ACTIVE, states.TRIALING, states.PAST_DUE)


def render_feature(feature: Feature) -> schemas.Feature:
    return schemas.Feature(
        id=feature.id,
        created_at=feature.created_at,
        code=feature.code,
        name=feature.name,
        description=feature.description,
        type=FeatureType(feature.type),
        options=list(feature.options),
        active=feature.archived_at is None,
        metadata=feature.metadata_,
    )


# --- features --------------------------------------------------------------------------------------------


async def _code_owner(session: AsyncSession, merchant_id: str, code: str) -> Feature | None:
    return await session.scalar(
        select(Feature).where(Feature.merchant_id == merchant_id, Feature.code == code)
    )


async def create_feature(session: AsyncSession, merchant_id: str, params: schemas.FeatureCreate) -> Feature:
    code = validate_new_code(params.code)
    feature_type = parse_choice(FeatureType, params.type, param="type")
    options = validate_options(feature_type, params.options)
    metadata = validate_metadata(params.metadata)
    if (owner := await _code_owner(session, merchant_id, code)) is not None:
        raise code_taken("feature", code, owner.id, archived=owner.archived_at is not None)
    now = CATALOG_CLOCK.now()
    feature = Feature(
        id=new_id("feat"),
        merchant_id=merchant_id,
        code=code,
        name=params.name,
        description=params.description,
        type=feature_type.value,
        options=list(options),
        metadata_=metadata,
        created_at=now,
        updated_at=now,
    )
    session.add(feature)
    await flush_unique(session, _UNIQUE_CODE, lambda: code_taken("feature", code, None))
    record_event(
        session,
        merchant_id=merchant_id,
        event_type="feature.created",
        obj=render_feature(feature),
        clock=CATALOG_CLOCK,
    )
    return feature


async def get_feature(
    session: AsyncSession,
    merchant_id: str,
    feature_id: str,
    *,
    param: str | None = None,
    for_update: bool = False,
) -> Feature:
    """The merchant's feature with that id or code, archived or not."""
    return await get_by_id_or_code(
        session,
        Feature,
        feature_id,
        merchant_id=merchant_id,
        prefix="feat",
        kind="feature",
        param=param,
        for_update=for_update,
    )


async def list_features(
    session: AsyncSession,
    merchant_id: str,
    page: PageRequest,
    *,
    active: bool | None = None,
    code: str | None = None,
) -> Page[Feature]:
    filters = (active_filter(Feature.archived_at, active), equals(Feature.code, code))
    return await list_owned(session, Feature, merchant_id, filters, page, prefix="feat")


async def update_feature(
    session: AsyncSession, merchant_id: str, feature_id: str, params: schemas.FeatureUpdate
) -> Feature:
    """name, description and metadata; the code, type and options never change (plans grant values of them)."""
    feature = await get_feature(session, merchant_id, feature_id, for_update=True)
    before = msgspec.to_builtins(render_feature(feature))
    if params.name is not msgspec.UNSET:
        feature.name = params.name
    if params.description is not msgspec.UNSET:
        feature.description = params.description
    if params.metadata is not msgspec.UNSET:
        feature.metadata_ = merge_metadata(feature.metadata_, params.metadata)
    after = render_feature(feature)
    if previous := previous_attributes(before, after):
        feature.updated_at = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=merchant_id,
            event_type="feature.updated",
            obj=after,
            clock=CATALOG_CLOCK,
            previous_attributes=previous,
        )
    return feature


async def set_feature_archived(
    session: AsyncSession, merchant_id: str, feature_id: str, archived: bool
) -> Feature:
    """Archive a feature (plans granting it go on granting it; it can no longer be added to a plan) or not."""
    feature = await get_feature(session, merchant_id, feature_id, for_update=True)
    await set_archived(session, feature, archived, kind="feature", render=render_feature)
    return feature


# --- values on plans -------------------------------------------------------------------------------------


def _render_plan_entitlement(feature: Feature, value: Any) -> schemas.PlanEntitlement:
    return schemas.PlanEntitlement(
        feature=feature.code, feature_id=feature.id, type=FeatureType(feature.type), value=value
    )


async def plan_entitlements(session: AsyncSession, plan: Plan) -> schemas.PlanEntitlements:
    """The plan's values, by feature code."""
    rows = (
        await session.execute(
            select(PlanEntitlement, Feature)
            .join(Feature, Feature.id == PlanEntitlement.feature_id)
            .where(PlanEntitlement.plan_id == plan.id)
            .order_by(Feature.code)
        )
    ).all()
    return schemas.PlanEntitlements(
        plan=plan.id, entitlements=[_render_plan_entitlement(feature, row.value) for row, feature in rows]
    )


async def _plan_changed(
    session: AsyncSession, plan: Plan, before: schemas.PlanEntitlements
) -> schemas.PlanEntitlements:
    """Stage `plan.entitlements_updated` when the plan's values changed (its `updated_at` moves with them)."""
    after = await plan_entitlements(session, plan)
    if after.entitlements != before.entitlements:
        plan.updated_at = CATALOG_CLOCK.now()
        await session.flush()
        record_event(
            session,
            merchant_id=plan.merchant_id,
            event_type="plan.entitlements_updated",
            obj=after,
            clock=CATALOG_CLOCK,
            object_id=plan.id,
            previous_attributes={"entitlements": msgspec.to_builtins(before.entitlements)},
        )
    return after


async def set_plan_entitlement(
    session: AsyncSession, merchant_id: str, plan_ref: str, params: schemas.PlanEntitlementSet
) -> schemas.PlanEntitlements:
    """Grant a feature on a plan with a value of the feature's type, or change the value it grants.

    Customers already on the plan get the new value on their next read; `customer.entitlements_updated` is
    written on their next change of subscription (not for every subscriber at once)."""
    plan = await get_plan(session, merchant_id, plan_ref, for_update=True)
    feature = await get_feature(session, merchant_id, params.feature, param="feature")
    value = validate_value(
        feature.code, FeatureType(feature.type), tuple(feature.options), params.value, param="value"
    )
    current = await session.get(PlanEntitlement, (plan.id, feature.id))
    if current is None and feature.archived_at is not None:
        raise InvalidRequest(
            f"feature {feature.code!r} ({feature.id}) is archived, so it cannot be added to a plan. Unarchive it "
            f"with POST /v1/features/{feature.id}/unarchive, or grant an active feature.",
            code="feature_archived",
            param="feature",
        )
    before = await plan_entitlements(session, plan)
    now = CATALOG_CLOCK.now()
    if current is None:
        session.add(
            PlanEntitlement(
                plan_id=plan.id,
                feature_id=feature.id,
                merchant_id=merchant_id,
                value=value,
                created_at=now,
                updated_at=now,
            )
        )
    elif current.value != value:
        current.value = value
        current.updated_at = now
    await session.flush()
    return await _plan_changed(session, plan, before)


async def remove_plan_entitlement(
    session: AsyncSession, merchant_id: str, plan_ref: str, feature_ref: str
) -> schemas.PlanEntitlements:
    """Stop granting a feature on a plan; NotFound if the plan does not grant it."""
    plan = await get_plan(session, merchant_id, plan_ref, for_update=True)
    feature = await get_feature(session, merchant_id, feature_ref, param="feature")
    current = await session.get(PlanEntitlement, (plan.id, feature.id))
    if current is None:
        raise not_found("plan entitlement", f"{plan.id}/{feature.code}", "feature")
    before = await plan_entitlements(session, plan)
    await session.delete(current)
    await session.flush()
    return await _plan_changed(session, plan, before)


# --- a customer's effective entitlements -----------------------------------------------------------------


async def _grants(session: AsyncSession, merchant_id: str, customer_id: str) -> list[Grant]:
    """Every value granted by a plan of the customer's live subscriptions, their own plans and their add-on
    items' plans alike, in one query."""
    live = (
        Subscription.merchant_id == merchant_id,
        Subscription.customer_id == customer_id,
        Subscription.status.in_(LIVE_STATUSES),
    )
    plans = union_all(
        select(Subscription.plan_id.label("plan_id")).where(*live),
        select(SubscriptionItem.plan_id.label("plan_id"))
        .join(Subscription, Subscription.id == SubscriptionItem.subscription_id)
        .where(*live),
    ).subquery()
    rows = (
        await session.execute(
            select(plans.c.plan_id, PlanEntitlement.value, Feature.code, Feature.type, Feature.options)
            .join(PlanEntitlement, PlanEntitlement.plan_id == plans.c.plan_id)
            .join(Feature, Feature.id == PlanEntitlement.feature_id)
        )
    ).all()
    return [
        Grant(
            feature=row.code,
            type=FeatureType(row.type),
            value=row.value,
            plan=row.plan_id,
            options=tuple(row.options),
        )
        for row in rows
    ]


async def _effective(
    session: AsyncSession, merchant_id: str, customer_id: str
) -> list[schemas.CustomerEntitlement]:
    return [
        schemas.CustomerEntitlement(
            feature=entitlement.feature,
            type=entitlement.type,
            value=entitlement.value,
            plans=list(entitlement.plans),
        )
        for entitlement in effective_entitlements(await _grants(session, merchant_id, customer_id)).values()
    ]


async def customer_entitlements(
    session: AsyncSession, merchant_id: str, customer_id: str
) -> schemas.CustomerEntitlements:
    """What the customer may use now (computed afresh: never stale)."""
    customer = await get_customer(session, merchant_id, customer_id)
    return schemas.CustomerEntitlements(
        customer=customer.id, entitlements=await _effective(session, merchant_id, customer.id)
    )


async def refresh_customer_entitlements(session: AsyncSession, customer: Customer, clock: Clock) -> None:
    """Compare the customer's effective entitlements with those last announced; when they differ, store them
    and stage `customer.entitlements_updated` (previous_attributes: the entitlements before).

    Call it in the transaction that changed a subscription's status or plan, after the change is flushed."""
    now_granted = await _effective(session, customer.merchant_id, customer.id)
    announced = msgspec.to_builtins(now_granted)
    if announced == customer.entitlements:
        return
    previous = customer.entitlements
    customer.entitlements = announced
    await session.flush()
    record_event(
        session,
        merchant_id=customer.merchant_id,
        event_type="customer.entitlements_updated",
        obj=schemas.CustomerEntitlements(customer=customer.id, entitlements=now_granted),
        clock=clock,
        object_id=customer.id,
        previous_attributes={"entitlements": previous},
    )
