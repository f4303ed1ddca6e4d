"""Subscription items (Stripe's rule, restated): every item of a subscription bills on one invoice per period,
so an add-on must share the subscription's currency and billing interval; its mid-period changes are prorated
by `plans.proration`, exactly as a change of the subscription's own plan is.

An item's full-period fee is ``round_minor(unit_amount × quantity)`` (rounded once, at the line), and a change of
quantity from ``old`` to ``new`` at `at` credits the unused time of the old fee and charges the new fee for the
same time; adding an item is a change from quantity 0, removing one a change to quantity 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from plans.calendar import Period
from plans.errors import CatalogError
from plans.money import round_minor
from plans.proration import ProrationLine, prorate_change


@dataclass(frozen=True, slots=True)
class ItemTerms:
    """What the item rules read of a plan: its currency, its calendar and whether it bills usage in arrears."""

    code: str
    currency: str
    interval: str
    interval_count: int
    metered: bool


def check_addon(subscription: ItemTerms, addon: ItemTerms, *, param: str = "plan") -> None:
    """Raise a CatalogError saying what to do unless `addon` may be added to a subscription on `subscription`."""
    if addon.currency != subscription.currency:
        raise CatalogError(
            f"Plan {addon.code!r} bills in {addon.currency}; this subscription bills in {subscription.currency}. "
            f"Every item of a subscription is on one invoice: add a plan priced in {subscription.currency}.",
            param=param,
            code="item_currency_mismatch",
        )
    if (addon.interval, addon.interval_count) != (subscription.interval, subscription.interval_count):
        raise CatalogError(
            f"Plan {addon.code!r} bills every {addon.interval_count} {addon.interval}(s); this subscription "
            f"every {subscription.interval_count} {subscription.interval}(s). Every item of a subscription "
            "renews on one calendar: add a plan with the subscription's interval and interval_count.",
            param=param,
            code="item_interval_mismatch",
        )
    if addon.metered:
        raise CatalogError(
            f"Plan {addon.code!r} has metered charges; add-on items are licensed (a fee per unit, in advance) "
            "for now. Put the metered charges on the subscription's own plan, or add a plan without charges.",
            param=param,
            code="item_metered_unsupported",
        )


def item_fee(unit_amount: Decimal, quantity: int) -> int:
    """The advance fee of one full period of an item: unit price × quantity, rounded half-up at the line."""
    return round_minor(unit_amount * quantity)


def prorate_item_change(
    unit_amount: Decimal, old_quantity: int, new_quantity: int, period: Period, at: datetime
) -> tuple[list[ProrationLine], list[ProrationLine]]:
    """``(credits, charges)`` of an item's quantity going from `old_quantity` to `new_quantity` at `at` within
    `period` (0 for an item added or removed): the old fee's unused time credited, the new fee charged for it."""
    return prorate_change(
        item_fee(unit_amount, old_quantity),
        1 if old_quantity else 0,
        item_fee(unit_amount, new_quantity),
        1 if new_quantity else 0,
        period,
        at,
    )
