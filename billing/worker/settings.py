"""The arq worker definition: which jobs exist, which run on a schedule, and the shared Services."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from arq import cron
from arq.worker import Worker

import billing.wiring  # noqa: F401  the task table and every hook listener
from billing.channels.notify import ChannelNotifyApp
from billing.config import Settings
from billing.notifications.jobs import send_emails
from billing.services import Services, open_services
from billing.usage.maintenance import usage_maintenance_job
from billing.worker import codec, jobs
from billing.worker.lease import LeasingWorker
from billing.worker.reconnect import REDIS_OUTAGE, Backoff

log = logging.getLogger("billing.worker")

FUNCTIONS: list[Any] = [jobs.advance_test_clock_job, jobs.deliver_webhooks, send_emails]
CRON_JOBS = [
    # Every second: due work is looked up in PostgreSQL, so a tick that runs twice or not at all loses nothing.
    cron(jobs.tick, second=set(range(60)), unique=True, timeout=300, keep_result=0, run_at_startup=True),
    cron(jobs.sweep, second={0, 15, 30, 45}, unique=True, timeout=120, keep_result=0, run_at_startup=True),
    # Every 10 s: payments and refunds left pending by a timeout or a crash are settled from their gateways.
    cron(jobs.payments_janitor, second={5, 15, 25, 35, 45, 55}, unique=True, timeout=600, keep_result=0),
    # Every second: webhook deliveries due (first attempts and retries) are read from PostgreSQL; a NOTIFY from
    # the committing transaction wakes the dispatcher sooner (jobs.start_webhook_listener).
    cron(jobs.deliver_webhooks, second=set(range(60)), unique=True, timeout=120, keep_result=0),
    # Every 5 s: customer emails due (new ones and retries) are read from PostgreSQL (billing.notifications).
    cron(send_emails, second=set(range(0, 60, 5)), unique=True, timeout=300, keep_result=0),
    # Daily at 02:30 UTC (China's 10:30, when its channels' bills of the day before are out): reconciliation of
    # yesterday for every connection; idempotent, so two workers running it store each run once.
    cron(
        jobs.reconcile_yesterday_job,
        hour={2},
        minute={30},
        second={0},
        unique=True,
        timeout=3600,
        keep_result=0,
    ),
    # Daily (and at start-up): usage_events partitions for the months around now, old usage dedupe keys pruned.
    cron(
        usage_maintenance_job,
        hour={3},
        minute={17},
        second={0},
        unique=True,
        timeout=3600,
        keep_result=0,
        run_at_startup=True,
    ),
]


def build_worker(
    services: Services,
    *,
    burst: bool = False,
    with_cron: bool = True,
    max_jobs: int = 10,
    graceful_timeout: int = 0,
) -> Worker:
    async def on_startup(ctx: dict[str, Any]) -> None:
        ctx["services"] = services
        # In-process channel sandboxes of this process deliver their notifications through the engine's app.
        services.gateways.notify_app = ChannelNotifyApp(services.sessions, services.gateways)
        if with_cron and "webhook_listener" not in ctx:
            await jobs.start_webhook_listener(ctx)

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        await jobs.stop_webhooks(ctx)

    return LeasingWorker(
        functions=FUNCTIONS,
        cron_jobs=CRON_JOBS if with_cron else None,
        redis_pool=services.redis,
        queue_name=services.queue_name,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        burst=burst,
        poll_delay=0.2 if not burst else 0,
        max_jobs=max_jobs,
        job_timeout=600,
        keep_result=3600,
        handle_signals=not burst,
        # On SIGTERM/SIGINT: take no new job, give the running ones this long to finish, then cancel them (a
        # cancelled job's work is rolled back and picked up again by the sweeper).
        job_completion_wait=graceful_timeout,
        job_serializer=codec.serialize,
        job_deserializer=codec.deserialize,
    )


async def run_worker(settings: Settings, *, concurrency: int = 10, graceful_timeout: int = 30) -> None:
    """`billing worker`: runs until SIGINT/SIGTERM. Redis going away never ends it (ReconnectingWorker): at start
    it waits for Redis with backoff; while running it keeps retrying and goes on when Redis is back."""
    # At least a connection per job in flight, so jobs do not queue at the pool.
    services = await open_services(settings, pool_size=max(10, concurrency))
    worker = build_worker(services, max_jobs=concurrency, graceful_timeout=graceful_timeout)
    backoff = Backoff()
    try:
        while True:
            try:
                await worker.async_run()
                return
            except REDIS_OUTAGE as exc:
                # Redis failed before the poll loop (arq's start-up reads the server's info): start again.
                delay = backoff.next_delay()
                log.warning("Redis is unavailable at start (%s); retrying in %.1f s", exc, delay)
                await asyncio.sleep(delay)
    except asyncio.CancelledError:
        # arq cancels its main task on SIGINT/SIGTERM: that is the normal way a worker stops.
        pass
    finally:
        # Jobs cancelled by the signal end with CancelledError, which arq's close() would raise again before it
        # closes anything; their work is in PostgreSQL, and the next worker picks it up.
        await asyncio.gather(*worker.tasks.values(), return_exceptions=True)
        worker.tasks.clear()
        try:
            await worker.close()
        except REDIS_OUTAGE:
            log.warning("Redis is unavailable while stopping; stopped without cleaning up arq's health key")
        await jobs.stop_webhooks(worker.ctx)
        await services.close()
