"""Subscription items (issue 17 item 1, Stripe's subscription items restated): add, change and remove a
subscription's add-ons, each a plan × quantity on the subscription's calendar and invoices, with the same
proration behaviours as a change of its plan. The first item is the subscription's own plan: changing its
quantity is `service.change_subscription`; it cannot be removed (change the plan instead)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.catalog.plans import ensure_plan_subscribable, get_plan, mark_plan_in_use
from billing.clock import Clock
from billing.customers.service import get_customer
from billing.entitlements.service import refresh_customer_entitlements
from billing.errors import Conflict, InvalidRequest, not_found
from billing.ids import new_id
from billing.invoices import service as invoices
from billing.subscriptions import schemas, service, states
from billing.subscriptions.addons import first_item_id, proration_lines, render_items, stage_prorations
from billing.subscriptions.item_schemas import (
    ProrationBehavior,
    SubscriptionItemCreate,
    SubscriptionItemUpdate,
)
from billing.subscriptions.models import Subscription, SubscriptionItem
from billing.test_clocks.service import clock_for
from plans.calendar import Period
from plans.errors import CatalogError
from plans.items import ItemTerms, check_addon, prorate_item_change
from webhooks.outbox import record_event


def _terms(plan: Plan) -> ItemTerms:
    return ItemTerms(
        code=plan.code,
        currency=plan.currency,
        interval=plan.interval,
        interval_count=plan.interval_count,
        metered=bool(plan.charges),
    )


async def _changeable(
    session: AsyncSession, merchant_id: str, subscription_id: str
) -> tuple[Subscription, Clock]:
    """The subscription, locked, then its customer (locked in the order a plan change and a renewal lock them:
    a proration may invoice), and its clock; a Conflict when its status takes no change (ended, incomplete,
    paused), as a change of its plan would answer."""
    sub = await service.get_subscription(session, merchant_id, subscription_id, for_update=True)
    if sub.status in states.ENDED or sub.status in (states.PAUSED, states.INCOMPLETE):
        states.transition(sub.id, sub.status, "change")
    customer = await get_customer(session, merchant_id, sub.customer_id, for_update=True)
    return sub, await clock_for(session, merchant_id, customer.test_clock_id)


def _addon(sub: Subscription, item_id: str) -> SubscriptionItem:
    for item in sub.addon_items:
        if item.id == item_id:
            return item
    raise not_found("subscription item", item_id, None)


async def _set_quantity(
    session: AsyncSession,
    sub: Subscription,
    clock: Clock,
    item: SubscriptionItem,
    plan: Plan,
    quantity: int,
    behavior: ProrationBehavior,
) -> None:
    """Move an add-on from its quantity to `quantity` now (0: remove it; an item just added starts from 0),
    prorated as a plan change is, and write `subscription.updated` with the items as they were."""
    previous = [
        {"id": shown.id, "plan": shown.plan, "quantity": shown.quantity} for shown in render_items(sub)
    ]
    old = item.quantity if item in sub.addon_items else 0
    await _prorate(session, sub, clock, item.id, plan, old, quantity, behavior)
    if quantity == 0:
        sub.addon_items.remove(item)
    else:
        item.quantity = quantity
        if item not in sub.addon_items:
            sub.addon_items.append(item)
    sub.updated_at = clock.now()
    await session.flush()
    record_event(
        session,
        merchant_id=sub.merchant_id,
        event_type="subscription.updated",
        obj=service.render_subscription(sub),
        clock=clock,
        previous_attributes={"items": previous},
    )
    if old == 0 or quantity == 0:
        # An add-on's plan grants its entitlements while it is an item (billing.entitlements).
        customer = await get_customer(session, sub.merchant_id, sub.customer_id)
        await refresh_customer_entitlements(session, customer, clock)


async def _prorate(
    session: AsyncSession,
    sub: Subscription,
    clock: Clock,
    item_id: str,
    plan: Plan,
    old_quantity: int,
    new_quantity: int,
    behavior: ProrationBehavior,
) -> None:
    """Prorate an add-on's quantity going from `old_quantity` to `new_quantity` now, as a plan change does: the
    lines wait for the next invoice (create_prorations) or are invoiced and charged at once (always_invoice);
    nothing during a trial (no charge) or with `none`."""
    if sub.status == states.TRIALING or behavior == "none":
        return
    now = clock.now()
    credits, charges = prorate_item_change(
        plan.amount_decimal,
        old_quantity,
        new_quantity,
        Period(sub.current_period_start, sub.current_period_end),
        now,
    )
    details = {"plan": plan.id, "subscription_item": item_id}
    lines = proration_lines(
        credits, f"Unused time on {old_quantity} × {plan.name}", details
    ) + proration_lines(charges, f"Remaining time on {new_quantity} × {plan.name}", details)
    if not lines:
        return
    if behavior == "create_prorations":
        stage_prorations(session, sub, lines, now)
        return
    customer = await get_customer(session, sub.merchant_id, sub.customer_id, for_update=True)
    invoice = await invoices.create_draft(
        session,
        customer=customer,
        clock=clock,
        currency=plan.currency,
        collection_method=sub.collection_method,
        days_until_due=sub.days_until_due,
        lines=lines,
        billing_reason="subscription_update",
        subscription_id=sub.id,
        period_start=now,
        period_end=sub.current_period_end,
        tax_rate_ids=list(sub.tax_rate_ids),
    )
    sub.latest_invoice_id = invoice.id
    await session.flush()
    await service.finalize_and_collect(session, sub, invoice, clock)


def _find(sub: Subscription, item_id: str) -> schemas.SubscriptionItem:
    for item in render_items(sub):
        if item.id == item_id:
            return item
    raise not_found("subscription item", item_id, None)


async def add_item(
    session: AsyncSession, merchant_id: str, subscription_id: str, params: SubscriptionItemCreate
) -> schemas.SubscriptionItem:
    """Add an add-on (a plan × quantity) to the subscription now, prorated for the rest of the period."""
    sub, clock = await _changeable(session, merchant_id, subscription_id)
    plan = await get_plan(session, merchant_id, params.plan, param="plan")
    base = await get_plan(session, merchant_id, sub.plan_id)
    if plan.id == base.id or any(item.plan_id == plan.id for item in sub.addon_items):
        raise InvalidRequest(
            f"Plan {plan.id} ({plan.code!r}) is already an item of subscription {sub.id}; a plan is billed once "
            "per subscription. Change that item's quantity instead (POST "
            f"/v1/subscriptions/{sub.id}/items/<item id>).",
            param="plan",
            code="item_duplicate_plan",
        )
    try:
        check_addon(_terms(base), _terms(plan))
    except CatalogError as error:
        raise InvalidRequest(error.message, param="plan", code=error.code) from None
    ensure_plan_subscribable(plan)
    plan = await mark_plan_in_use(session, plan)
    item = SubscriptionItem(
        id=new_id("si"),
        merchant_id=merchant_id,
        subscription_id=sub.id,
        plan_id=plan.id,
        quantity=params.quantity,
        created_at=clock.now(),
    )
    await _set_quantity(session, sub, clock, item, plan, params.quantity, params.proration_behavior)
    return _find(sub, item.id)


async def update_item(
    session: AsyncSession,
    merchant_id: str,
    subscription_id: str,
    item_id: str,
    params: SubscriptionItemUpdate,
) -> schemas.SubscriptionItem:
    """Change an item's quantity now, the difference prorated; the first item's is the subscription's own
    quantity (a change of the subscription, with its event)."""
    sub, clock = await _changeable(session, merchant_id, subscription_id)
    if item_id == first_item_id(sub):
        change = schemas.SubscriptionChange(
            quantity=params.quantity, proration_behavior=params.proration_behavior
        )
        sub = await service.change_subscription(session, merchant_id, subscription_id, change)
        return _find(sub, item_id)
    item = _addon(sub, item_id)
    if item.quantity != params.quantity:
        plan = await get_plan(session, merchant_id, item.plan_id)
        await _set_quantity(session, sub, clock, item, plan, params.quantity, params.proration_behavior)
    return _find(sub, item_id)


async def remove_item(
    session: AsyncSession,
    merchant_id: str,
    subscription_id: str,
    item_id: str,
    proration_behavior: ProrationBehavior,
) -> str:
    """Remove an add-on now, its unused paid time credited as a plan change credits it. The first item is the
    subscription's plan and cannot be removed."""
    sub, clock = await _changeable(session, merchant_id, subscription_id)
    if item_id == first_item_id(sub):
        raise Conflict(
            f"Item {item_id} is subscription {sub.id}'s own plan, which cannot be removed. Change the plan "
            f"(POST /v1/subscriptions/{sub.id}/change) or cancel the subscription "
            f"(POST /v1/subscriptions/{sub.id}/cancel).",
            code="item_is_subscription_plan",
            param="item",
        )
    item = _addon(sub, item_id)
    plan = await get_plan(session, merchant_id, item.plan_id)
    await _set_quantity(session, sub, clock, item, plan, 0, proration_behavior)
    return item.id


async def list_items(
    session: AsyncSession, merchant_id: str, subscription_id: str
) -> list[schemas.SubscriptionItem]:
    """The subscription's items: its plan first, then its add-ons in the order they were added."""
    return render_items(await service.get_subscription(session, merchant_id, subscription_id))
