"""arq job functions and the helpers that enqueue them. Every job is idempotent: it reads the state from
PostgreSQL, acts, and records the act, so running it twice (arq is at-least-once) changes nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis

from billing.api import idempotency
from billing.clock import utc_now
from billing.db.engine import transaction
from billing.scheduler import runner
from billing.services import Services

log = logging.getLogger("billing.worker")

# How long an advancing clock may wait for its job before the sweeper enqueues it again.
ADVANCE_GRACE = timedelta(seconds=10)


def advance_job_id(test_clock_id: str, requested_at: datetime | None) -> str:
    # One id per advance request: dedupes the sweeper against the API, but not one advance against the next.
    stamp = int(requested_at.timestamp() * 1_000_000) if requested_at else 0
    return f"advance:{test_clock_id}:{stamp}"


async def enqueue_advance(
    redis: ArqRedis, queue_name: str, test_clock_id: str, requested_at: datetime | None
) -> None:
    await redis.enqueue_job(
        "advance_test_clock_job",
        test_clock_id,
        _job_id=advance_job_id(test_clock_id, requested_at),
        _queue_name=queue_name,
    )


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx["services"]
    assert isinstance(services, Services)
    return services


async def advance_test_clock_job(ctx: dict[str, Any], test_clock_id: str) -> str:
    return await runner.advance_test_clock(_services(ctx).sessions, test_clock_id)


async def tick(ctx: dict[str, Any]) -> int:
    """Run the real-time tasks that are due (renewals, retries...)."""
    return await runner.run_due_tasks(_services(ctx).sessions)


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    """Repair what a lost Redis or a crashed worker left behind, from the facts in PostgreSQL."""
    services = _services(ctx)
    async with transaction(services.sessions) as session:
        stale = await runner.stale_advancing_clocks(session, ADVANCE_GRACE)
        purged = await idempotency.purge_expired(session, utc_now())
    for clock_id, requested_at in stale:
        await enqueue_advance(services.redis, services.queue_name, clock_id, requested_at)
    if stale:
        log.info("sweeper re-enqueued %d advancing test clocks", len(stale))
    return {"clocks_reenqueued": len(stale), "idempotency_keys_purged": purged}
