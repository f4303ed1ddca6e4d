"""A subscription's add-on items as the subscription's own use cases read them: rendered beside its plan (the
first item), billed wherever the plan's fee is billed (renewals, their preview, resumes), credited wherever its
unused time is (a resume on a new cycle, a prorated cancel), and kept on the plan's calendar when the plan changes.
Also the proration lines and pending items that plan changes and item changes share. The use cases on items are
in `billing/subscriptions/items.py`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Plan
from billing.catalog.plans import get_plan
from billing.errors import InvalidRequest
from billing.ids import new_id
from billing.invoices.service import NewLine
from billing.subscriptions import schemas
from billing.subscriptions.models import PendingInvoiceItem, Subscription, SubscriptionItem
from plans.calendar import Period
from plans.items import item_fee, prorate_item_change
from plans.proration import ProrationLine


def proration_lines(
    prorations: Sequence[ProrationLine], description: str, details: dict[str, Any] | None = None
) -> list[NewLine]:
    """Invoice lines for the non-zero proration lines of a change (plans.proration), each with its fraction
    (and `details` naming what changed, such as the item)."""
    return [
        NewLine(
            type="proration",
            description=description,
            amount=line.amount,
            quantity=Decimal(1),
            period_start=line.start,
            period_end=line.end,
            details={"fraction": str(line.fraction), "kind": str(line.kind), **(details or {})},
        )
        for line in prorations
        if line.amount != 0
    ]


def stage_prorations(
    session: AsyncSession, sub: Subscription, lines: Sequence[NewLine], now: datetime
) -> None:
    """Keep proration lines for the subscription's next invoice (proration_behavior=create_prorations)."""
    for line in lines:
        session.add(
            PendingInvoiceItem(
                id=new_id("ii"),
                merchant_id=sub.merchant_id,
                subscription_id=sub.id,
                type=line.type,
                description=line.description,
                amount=line.amount,
                quantity=1,
                period_start=line.period_start or now,
                period_end=line.period_end or now,
                details=line.details,
                created_at=now,
            )
        )


def first_item_id(sub: Subscription) -> str:
    """The id of the first item, the subscription's own plan: derived from the subscription's id (the same
    random part), so it is stable and needs no row of its own."""
    return "si_" + sub.id.removeprefix("sub_")


def render_items(sub: Subscription) -> list[schemas.SubscriptionItem]:
    """The subscription's items as the API shows them: its plan first, then the add-ons in the order added."""
    first = schemas.SubscriptionItem(
        id=first_item_id(sub),
        subscription=sub.id,
        plan=sub.plan_id,
        quantity=sub.quantity,
        created_at=sub.created_at,
    )
    return [first] + [
        schemas.SubscriptionItem(
            id=item.id,
            subscription=sub.id,
            plan=item.plan_id,
            quantity=item.quantity,
            created_at=item.created_at,
        )
        for item in sub.addon_items
    ]


async def _with_plans(session: AsyncSession, sub: Subscription) -> list[tuple[SubscriptionItem, Plan]]:
    return [(item, await get_plan(session, sub.merchant_id, item.plan_id)) for item in sub.addon_items]


def addon_line(
    item: SubscriptionItem, plan: Plan, start: datetime, end: datetime, *, charge: ProrationLine | None = None
) -> NewLine:
    """An add-on's fee line, named after its plan and quantity: the full period's fee, or the prorated
    `charge` for part of it (a resume after the paid period)."""
    partial = charge is not None and charge.fraction != 1
    return NewLine(
        type="subscription",
        description=f"{item.quantity} × {plan.name}"
        + (" (from the resume to the period end)" if partial else ""),
        amount=item_fee(plan.amount_decimal, item.quantity) if charge is None else charge.amount,
        quantity=Decimal(item.quantity),
        unit_amount_decimal=plan.amount_decimal,
        period_start=start,
        period_end=end,
        details={"plan": plan.id, "subscription_item": item.id}
        | ({} if charge is None else {"fraction": str(charge.fraction)}),
    )


async def addon_fee_lines(
    session: AsyncSession, sub: Subscription, start: datetime, end: datetime
) -> list[NewLine]:
    """One line per add-on for the period ``[start, end)`` billed in advance (a renewal, its preview, a new
    cycle)."""
    return [addon_line(item, plan, start, end) for item, plan in await _with_plans(session, sub)]


async def addon_rest_of_period_lines(
    session: AsyncSession, sub: Subscription, period: Period, at: datetime
) -> list[NewLine]:
    """One line per add-on for the part of `period` from `at` on, prorated (a resume after the paid period)."""
    lines = []
    for item, plan in await _with_plans(session, sub):
        _, charges = prorate_item_change(plan.amount_decimal, 0, item.quantity, period, at)
        lines += [addon_line(item, plan, at, period.end, charge=charge) for charge in charges]
    return lines


async def addon_credit_lines(session: AsyncSession, sub: Subscription, at: datetime) -> list[NewLine]:
    """The add-ons' unused time of the current period at `at`, as proration credits (a resume on a new cycle)."""
    period = Period(sub.current_period_start, sub.current_period_end)
    lines = []
    for item, plan in await _with_plans(session, sub):
        credits, _ = prorate_item_change(plan.amount_decimal, item.quantity, 0, period, at)
        lines += proration_lines(
            credits,
            f"Unused time on {item.quantity} × {plan.name}",
            {"plan": plan.id, "subscription_item": item.id},
        )
    return lines


async def unused_addon_time(session: AsyncSession, sub: Subscription, at: datetime) -> int:
    """What the add-ons' unused time of the current period is worth at `at` (credited by a prorated cancel)."""
    return -sum(line.amount for line in await addon_credit_lines(session, sub, at))


async def ensure_addons_fit(session: AsyncSession, sub: Subscription, new_plan: Plan) -> None:
    """Refuse a plan for the subscription that its add-ons could not follow: another billing interval (every
    item renews on one calendar) or the plan of one of its add-ons (the same plan twice would bill twice)."""
    for item, plan in await _with_plans(session, sub):
        if item.plan_id == new_plan.id:
            raise InvalidRequest(
                f"Plan {new_plan.id} is already add-on item {item.id} of this subscription. Remove that item "
                f"first (DELETE /v1/subscriptions/{sub.id}/items/{item.id}), or change its quantity instead.",
                param="plan",
                code="item_duplicate_plan",
            )
        if (plan.interval, plan.interval_count) != (new_plan.interval, new_plan.interval_count):
            raise InvalidRequest(
                f"Plan {new_plan.id} bills every {new_plan.interval_count} {new_plan.interval}(s), but add-on "
                f"item {item.id} ({plan.code!r}) every {plan.interval_count} {plan.interval}(s); every item of "
                "a subscription renews on one calendar. Remove the add-ons first, or choose a plan with their "
                "interval.",
                param="plan",
                code="item_interval_mismatch",
            )
