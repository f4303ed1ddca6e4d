"""Daily upkeep of the usage tables: monthly partitions created ahead of time, old dedupe keys forgotten.

Both are idempotent and safe on any number of workers at once (an advisory lock in the partition function,
plain deletes of rows past their retention), so the arq cron can run them twice or late without harm.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.services import Services
from billing.usage.ingest import MAX_EVENT_FUTURE
from plans.usage import MAX_EVENT_AGE

log = logging.getLogger("billing.usage")

# The promise is "an id is accepted once for at least 35 days". Kept a little longer: a retry of a real-time
# event after the key is gone would carry a timestamp older than 35 days and be refused as too old anyway (the
# tolerated 5 minutes of future, plus a day of margin for a late janitor run). Retention is wall time, since
# test clocks only move forward and faster than it.
KEY_RETENTION = MAX_EVENT_AGE + MAX_EVENT_FUTURE + timedelta(days=1)
PRUNE_BATCH = 50_000
MONTHS_BEFORE = 2
MONTHS_AFTER = 2


async def ensure_usage_partitions(
    session: AsyncSession,
    around: datetime,
    *,
    months_before: int = MONTHS_BEFORE,
    months_after: int = MONTHS_AFTER,
) -> int:
    """Create the missing monthly partitions of usage_events for [month of `around` - before, + after], moving
    rows that had landed in the DEFAULT partition for those months into them; the number created."""
    created = await session.scalar(
        text("SELECT usage_events_ensure_partitions(:around, :before, :after)"),
        {"around": around, "before": months_before, "after": months_after},
    )
    return int(created or 0)


async def prune_usage_event_keys(session: AsyncSession, now: datetime, *, limit: int = PRUNE_BATCH) -> int:
    """Forget up to `limit` dedupe keys received before now - KEY_RETENTION; the number deleted."""
    result = await session.execute(
        text(
            "DELETE FROM usage_event_keys WHERE ctid = ANY(ARRAY("
            "SELECT ctid FROM usage_event_keys WHERE received_at < :cutoff LIMIT :limit))"
        ),
        {"cutoff": now - KEY_RETENTION, "limit": limit},
    )
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class MaintenanceReport:
    partitions_created: int
    keys_pruned: int


async def run_usage_maintenance(services: Services, *, now: datetime | None = None) -> MaintenanceReport:
    """Partitions for the months around now, then old keys in batches (short transactions: the key table is
    written by every ingest, so no long lock or huge delete)."""
    now = now or utc_now()
    async with transaction(services.sessions) as session:
        created = await ensure_usage_partitions(session, now)
    pruned = 0
    while True:
        async with transaction(services.sessions) as session:
            deleted = await prune_usage_event_keys(session, now)
        pruned += deleted
        if deleted < PRUNE_BATCH:
            break
    if created or pruned:
        log.info("usage maintenance: %d partitions created, %d dedupe keys pruned", created, pruned)
    return MaintenanceReport(partitions_created=created, keys_pruned=pruned)


async def usage_maintenance_job(ctx: dict[str, Any]) -> dict[str, int]:
    """arq cron (daily, and at worker start-up)."""
    services = ctx["services"]
    assert isinstance(services, Services)
    report = await run_usage_maintenance(services)
    return {"partitions_created": report.partitions_created, "keys_pruned": report.keys_pruned}
