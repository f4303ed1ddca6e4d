"""arq job functions and the helpers that enqueue them. Every job is idempotent: it reads the state from
PostgreSQL, acts, and records the act, so running it twice (arq is at-least-once) changes nothing."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

from billing.api import idempotency
from billing.clock import utc_now
from billing.db.engine import transaction
from billing.payment_methods.agreements import settle_pending_agreements
from billing.payments.janitor import run_janitor
from billing.reconciliation.service import reconcile_yesterday
from billing.services import Services
from billing.test_clocks import advance
from webhooks import delivery as webhook_delivery

log = logging.getLogger("billing.worker")

# How long an advancing clock may wait for its job before the sweeper enqueues it again.
ADVANCE_GRACE = timedelta(seconds=10)


def advance_job_id(test_clock_id: str, requested_at: datetime | None, *, attempt: str = "") -> str:
    # One id per advance request: a duplicate enqueue of the same request is a no-op for arq, but not one advance
    # against the next. The sweeper adds its own `attempt`: a job id arq still holds as "in progress" for a
    # worker that was killed (the marker lives as long as the longest job timeout) would never run again.
    stamp = int(requested_at.timestamp() * 1_000_000) if requested_at else 0
    return f"advance:{test_clock_id}:{stamp}" + (f":{attempt}" if attempt else "")


async def enqueue_advance(
    redis: ArqRedis, queue_name: str, test_clock_id: str, requested_at: datetime | None, *, attempt: str = ""
) -> None:
    await redis.enqueue_job(
        "advance_test_clock_job",
        test_clock_id,
        _job_id=advance_job_id(test_clock_id, requested_at, attempt=attempt),
        _queue_name=queue_name,
    )


async def discard_abandoned_advances(redis: ArqRedis, queue_name: str, test_clock_id: str) -> int:
    """Drop the queue entries of a clock's advance jobs that no live worker runs (the caller checked that), with
    their arq keys. arq keeps a killed worker's job queued and marked in progress until its marker expires (the
    longest job timeout): meanwhile a burst worker never sees an empty queue and every poll walks past it."""
    abandoned = [
        member async for member, _ in redis.zscan_iter(queue_name, match=f"advance:{test_clock_id}:*")
    ]
    for job_id in abandoned:
        name = job_id.decode() if isinstance(job_id, bytes) else str(job_id)
        await redis.zrem(queue_name, name)
        await redis.delete(job_key_prefix + name, in_progress_key_prefix + name, retry_key_prefix + name)
    return len(abandoned)


def _services(ctx: dict[str, Any]) -> Services:
    services = ctx["services"]
    assert isinstance(services, Services)
    return services


async def advance_test_clock_job(ctx: dict[str, Any], test_clock_id: str) -> str:
    return await advance.advance_test_clock(_services(ctx), test_clock_id)


async def tick(ctx: dict[str, Any]) -> int:
    """Run the real-time tasks that are due (renewals, retries...)."""
    return await advance.run_due_tasks(_services(ctx))


async def payments_janitor(ctx: dict[str, Any]) -> dict[str, int]:
    """Settle payments and refunds whose outcome is unknown by asking their gateways (never charging again);
    destroy the card numbers of expired unused tokens; ask the channels about agreements whose signing
    notification did not come (billing.payment_methods.agreements)."""
    services = _services(ctx)
    report = await run_janitor(services)
    agreements = await settle_pending_agreements(services.sessions, services.gateways)
    return {**report.__dict__, "agreements_settled": agreements}


async def reconcile_yesterday_job(ctx: dict[str, Any]) -> dict[str, int]:
    """Daily: yesterday's settlement listing of every connection matched and stored (billing.reconciliation)."""
    return {"runs": await reconcile_yesterday(_services(ctx))}


def _webhook_dispatcher(ctx: dict[str, Any]) -> webhook_delivery.Dispatcher:
    """This worker process's webhook dispatcher (one per process: it bounds the requests in flight)."""
    dispatcher = ctx.get("webhook_dispatcher")
    if dispatcher is None:
        services = _services(ctx)
        policy = webhook_delivery.DeliveryPolicy(production=services.settings.is_production)
        dispatcher = ctx["webhook_dispatcher"] = webhook_delivery.Dispatcher(
            services.sessions, services.vault, policy
        )
    assert isinstance(dispatcher, webhook_delivery.Dispatcher)
    return dispatcher


async def deliver_webhooks(ctx: dict[str, Any]) -> int:
    """Send the webhook deliveries that are due (every second, on a NOTIFY from a committed event, and when the
    sweeper finds overdue ones); returns the attempts made."""
    return await _webhook_dispatcher(ctx).drain()


async def start_webhook_listener(ctx: dict[str, Any]) -> None:
    """Wake this worker's dispatcher as soon as a transaction commits new deliveries (PostgreSQL NOTIFY)."""
    services = _services(ctx)
    assert services.settings.database_url is not None
    listener = webhook_delivery.NotificationListener(
        services.settings.database_url, _webhook_dispatcher(ctx).kick
    )
    listener.start()
    ctx["webhook_listener"] = listener


async def stop_webhooks(ctx: dict[str, Any]) -> None:
    listener = ctx.pop("webhook_listener", None)
    if listener is not None:
        await listener.stop()
    dispatcher = ctx.pop("webhook_dispatcher", None)
    if dispatcher is not None:
        await dispatcher.close()


async def sweep(ctx: dict[str, Any]) -> dict[str, int]:
    """Repair what a lost Redis or a crashed worker left behind, from the facts in PostgreSQL."""
    services = _services(ctx)
    async with transaction(services.sessions) as session:
        # An advancing clock whose advance no live worker runs: its job was lost with Redis, or its worker died.
        stale = [
            (clock_id, requested_at)
            for clock_id, requested_at in await advance.stale_advancing_clocks(session, ADVANCE_GRACE)
            if not await advance.advance_in_progress(session, clock_id)
        ]
        purged = await idempotency.purge_expired(session, utc_now())
        webhooks = await webhook_delivery.sweep(session, utc_now())
    sweep_attempt = f"sweep{int(utc_now().timestamp() * 1000)}"
    for clock_id, requested_at in stale:
        await discard_abandoned_advances(services.redis, services.queue_name, clock_id)
        await enqueue_advance(
            services.redis, services.queue_name, clock_id, requested_at, attempt=sweep_attempt
        )
    if stale:
        log.warning("sweeper re-enqueued %d advancing test clocks that no worker was advancing", len(stale))
    if webhooks.overdue:
        # Deliveries due for a while and not taken: kick a drain through the queue (any worker takes it).
        await services.redis.enqueue_job("deliver_webhooks", _queue_name=services.queue_name)
    return {
        "clocks_reenqueued": len(stale),
        "idempotency_keys_purged": purged,
        "webhook_deliveries_canceled": webhooks.canceled,
        "webhook_secrets_expired": webhooks.secrets_expired,
        "webhook_drains_enqueued": int(webhooks.overdue),
    }
