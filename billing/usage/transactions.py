"""The transactions a percentage charge prices: each usage event's amount (its `value`), in time order.

A percentage charge (`plans.pricing.price_transactions`) needs every transaction, not the meter's total: its
fixed fee, per-transaction minimum and maximum and free first transactions all act per event. This reads them for
the windows that need them, in one query: one array per window, ordered as ``last`` orders events (timestamp,
then event id), so the free transactions are the same whatever order the events arrived in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.usage.aggregate import UsageWindow
from plans.pricing import PricingModel
from plans.usage import billable_quantity

_QUERY = """
SELECT w.ord, t.amounts
FROM unnest(CAST(:ords AS integer[]), CAST(:customer_ids AS text[]), CAST(:meter_ids AS text[]),
            CAST(:starts AS timestamptz[]), CAST(:ends AS timestamptz[]))
     AS w(ord, customer_id, meter_id, period_start, period_end)
CROSS JOIN LATERAL (
  SELECT array_agg(coalesce(e.value, 0) ORDER BY e."timestamp", e.event_id) AS amounts
  FROM usage_events e
  WHERE e.merchant_id = :merchant_id AND e.customer_id = w.customer_id AND e.meter_id = w.meter_id
    AND e."timestamp" >= w.period_start AND e."timestamp" < w.period_end
) t
"""


def transaction_windows(
    charges: Sequence[Mapping[str, Any] | None], windows: Sequence[UsageWindow]
) -> list[UsageWindow | None]:
    """The windows whose stored charge is priced from its transactions (percentage); None for the others."""
    return [
        window if charge is not None and charge["model"] == PricingModel.PERCENTAGE else None
        for charge, window in zip(charges, windows, strict=True)
    ]


async def transaction_amounts(
    session: AsyncSession,
    *,
    merchant_id: str,
    customer_id: str,
    windows: Sequence[UsageWindow | None],
) -> list[tuple[Decimal, ...] | None]:
    """Each window's event amounts in time order (empty without events), as `billable_quantity` rounds them (a
    negative correction counts as zero); None where the window is None (a charge priced from its total). One
    query for all; none when no window needs it."""
    return await transaction_amounts_of(
        session,
        merchant_id=merchant_id,
        windows=[None if window is None else (customer_id, window) for window in windows],
    )


async def transaction_amounts_of(
    session: AsyncSession,
    *,
    merchant_id: str,
    windows: Sequence[tuple[str, UsageWindow] | None],
) -> list[tuple[Decimal, ...] | None]:
    """`transaction_amounts` for windows of any of the merchant's customers (each with its customer's id)."""
    wanted = [(index, window) for index, window in enumerate(windows) if window is not None]
    results: list[tuple[Decimal, ...] | None] = [None] * len(windows)
    if not wanted:
        return results
    params = {
        "merchant_id": merchant_id,
        "ords": [index for index, _ in wanted],
        "customer_ids": [customer for _, (customer, _) in wanted],
        "meter_ids": [window.meter_id for _, (_, window) in wanted],
        "starts": [window.start for _, (_, window) in wanted],
        "ends": [window.end for _, (_, window) in wanted],
    }
    for ord_, amounts in await session.execute(text(_QUERY), params):
        results[ord_] = tuple(billable_quantity(amount) for amount in amounts or ())
    return results
