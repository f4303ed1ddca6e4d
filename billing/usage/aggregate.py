"""Aggregating usage events into quantities, in SQL: one query for any number of (customer, meter, period) windows
of one merchant (one customer's invoice, or a batch of renewals: `aggregate_usage_of`).

Each window is a half-open interval ``[start, end)`` of event *timestamps*: the last instant of a period belongs
to it, the first instant of the next period to the next. Aggregations (SPEC §4 meters):

* ``count``: the number of events;
* ``sum`` / ``max``: of the events' `value`;
* ``last``: the value of the event with the latest `timestamp` (not the latest to arrive); ties on the timestamp
  go to the greatest `event_id`, so the answer never depends on arrival order;
* ``unique_count``: the number of distinct ``properties ->> meter.property`` (events without it don't count);
* ``avg``: the mean of the events' `value` (None without events).

The windows arrive as arrays and are unnested; each is aggregated by a LATERAL subquery, so PostgreSQL runs an
index range scan of ``ix_usage_events_customer_meter_timestamp`` (merchant, customer, meter, timestamp) per
window, and prunes the monthly partitions that cannot hold the window at run time ("Subplans Removed" in
EXPLAIN ANALYZE). ``last`` reads one row: a backward scan of the same index, stopped by ``LIMIT 1``.

`received_before` / `received_since` bound the events by their `received_at` (clock time of acceptance), to
ask what a period looked like when it was billed, or what arrived since.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.catalog.models import Aggregation


@dataclass(frozen=True, slots=True)
class UsageWindow:
    """One meter over one half-open period of event timestamps."""

    meter_id: str
    aggregation: Aggregation | str
    property: str | None
    start: datetime
    end: datetime


_QUERY = """
SELECT w.ord,
       CASE w.aggregation
         WHEN 'count' THEN a.events
         WHEN 'sum' THEN a.total
         WHEN 'max' THEN a.maximum
         WHEN 'unique_count' THEN a.uniques
         WHEN 'avg' THEN a.average
         WHEN 'last' THEN l.value
       END AS quantity
FROM unnest(CAST(:ords AS integer[]), CAST(:customer_ids AS text[]), CAST(:meter_ids AS text[]),
            CAST(:aggregations AS text[]), CAST(:properties AS text[]), CAST(:starts AS timestamptz[]),
            CAST(:ends AS timestamptz[]))
     AS w(ord, customer_id, meter_id, aggregation, property, period_start, period_end)
CROSS JOIN LATERAL (
  SELECT count(*) AS events,
         sum(e.value) AS total,
         max(e.value) AS maximum,
         avg(e.value) AS average,
         count(DISTINCT e.properties ->> w.property) FILTER (WHERE w.property IS NOT NULL) AS uniques
  FROM usage_events e
  WHERE e.merchant_id = :merchant_id AND e.customer_id = w.customer_id AND e.meter_id = w.meter_id
    AND e."timestamp" >= w.period_start AND e."timestamp" < w.period_end
    AND w.aggregation <> 'last'{received}
) a
LEFT JOIN LATERAL (
  SELECT e.value
  FROM usage_events e
  WHERE e.merchant_id = :merchant_id AND e.customer_id = w.customer_id AND e.meter_id = w.meter_id
    AND e."timestamp" >= w.period_start AND e."timestamp" < w.period_end
    AND w.aggregation = 'last'{received}
  ORDER BY e."timestamp" DESC, e.event_id DESC
  LIMIT 1
) l ON true
"""


def aggregate_sql(*, received_before: bool = False, received_since: bool = False) -> str:
    """The aggregation query, with the optional `received_at` bounds it needs (kept out when unused, so the
    planner sees the plain range scan)."""
    received = ""
    if received_before:
        received += " AND e.received_at < :received_before"
    if received_since:
        received += " AND e.received_at >= :received_since"
    return _QUERY.format(received=received)


async def aggregate_usage(
    session: AsyncSession,
    *,
    merchant_id: str,
    customer_id: str,
    windows: Sequence[UsageWindow],
    received_before: datetime | None = None,
    received_since: datetime | None = None,
) -> list[Decimal | None]:
    """The raw aggregate of each window, in order, in one query: an int for count and unique_count (0 without
    events), the value for sum, max, last and avg (None without events)."""
    return await aggregate_usage_of(
        session,
        merchant_id=merchant_id,
        windows=[(customer_id, window) for window in windows],
        received_before=received_before,
        received_since=received_since,
    )


async def aggregate_usage_of(
    session: AsyncSession,
    *,
    merchant_id: str,
    windows: Sequence[tuple[str, UsageWindow]],
    received_before: datetime | None = None,
    received_since: datetime | None = None,
) -> list[Decimal | None]:
    """`aggregate_usage` for windows of any of the merchant's customers (each window with its customer's id), in
    one query: a batch of renewals counts every subscription's usage at once."""
    if not windows:
        return []
    for _, window in windows:
        Aggregation(window.aggregation)  # an unknown aggregation is a bug, not a zero
    params: dict[str, object] = {
        "merchant_id": merchant_id,
        "ords": list(range(len(windows))),
        "customer_ids": [customer for customer, _ in windows],
        "meter_ids": [w.meter_id for _, w in windows],
        "aggregations": [str(w.aggregation) for _, w in windows],
        "properties": [w.property if w.aggregation == Aggregation.UNIQUE_COUNT else None for _, w in windows],
        "starts": [w.start for _, w in windows],
        "ends": [w.end for _, w in windows],
    }
    if received_before is not None:
        params["received_before"] = received_before
    if received_since is not None:
        params["received_since"] = received_since
    sql = aggregate_sql(
        received_before=received_before is not None, received_since=received_since is not None
    )
    results: list[Decimal | None] = [None] * len(windows)
    for ord_, quantity in await session.execute(text(sql), params):
        results[ord_] = None if quantity is None else Decimal(quantity)
    return results
