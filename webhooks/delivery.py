"""Delivering webhooks: claim due deliveries, POST them signed, record each attempt.

1. **Claim** (one short transaction, committed before any HTTP request): lease up to `limit` due deliveries,
   at most `per_endpoint` in flight per endpoint across every worker, so a slow endpoint cannot take every slot.
2. **Send** (no transaction open): POST the event, signed with every valid secret of the endpoint, within the
   timeout; a 2xx is a success, anything else (or no answer) a failure.
3. **Record** (a new transaction): the attempt row, then the delivery's next state: succeeded, retried at the
   next point of the schedule (webhooks.retry), or failed; a 410, or three days without a success, disables the
   endpoint and records `webhook_endpoint.disabled`.

A worker that dies between send and record leaves a lease that lapses; the delivery is then claimed and sent
again with the same webhook-id (the event id): delivery is at least once, and receivers dedupe on that id.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
from sqlalchemy import exists, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.clock import utc_now
from billing.db.engine import asyncpg_url, transaction
from billing.ids import new_id
from webhooks.delivery_models import WebhookDelivery, WebhookDeliveryAttempt, WebhookEndpoint
from webhooks.endpoints import disable_endpoint
from webhooks.events import Event, EventData
from webhooks.fanout import NOTIFY_CHANNEL
from webhooks.retry import DEFAULT_SCHEDULE, MAX_AGE, next_attempt_at, parse_retry_after
from webhooks.secret_box import SecretBox
from webhooks.signing import webhook_headers
from webhooks.transport import RefusedAddress, make_client

log = logging.getLogger("billing.webhooks")

# Any constant shared by every worker: the claim takes this transaction-level advisory lock, so concurrent claims
# queue for a few milliseconds instead of each leasing `per_endpoint` deliveries of the same endpoint.
CLAIM_LOCK = 0x77656268  # "webh"


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are made. The defaults are the product's (SPEC §7); tests shorten the timeout and the
    schedule instead of sleeping."""

    timeout: float = 10.0
    schedule: tuple[timedelta, ...] = DEFAULT_SCHEDULE
    max_age: timedelta = MAX_AGE
    # Longer than the timeout plus recording: a live worker never loses its lease.
    lease: timedelta = timedelta(seconds=60)
    per_endpoint: int = 4
    concurrency: int = 32
    batch: int = 50
    production: bool = False
    excerpt_bytes: int = 1024


@dataclass(frozen=True)
class Claimed:
    """A leased delivery with everything needed to send it (no database access during the request)."""

    delivery_id: str
    lease_token: int
    merchant_id: str
    endpoint_id: str
    url: str
    secrets: tuple[str, ...]
    event_id: str
    event_type: str
    body: bytes
    claimed_at: datetime


@dataclass(frozen=True)
class AttemptResult:
    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.error is None and self.status_code is not None and 200 <= self.status_code < 300

    @property
    def summary(self) -> str:
        if self.error is not None:
            return self.error
        return f"HTTP {self.status_code}"


def render_body(row: Any) -> bytes:
    """The payload, exactly as GET /v1/events/{id} renders the event: `{id, type, created_at, data: {object}}`."""
    event = Event(
        id=row.event_id,
        type=row.event_type,
        created_at=row.event_created_at,
        data=EventData(object=row.event_data, previous_attributes=row.event_previous_attributes),
        test_clock=row.event_test_clock_id,
    )
    return msgspec.json.encode(event)


_CLAIM_LOCK = text("SELECT set_config('synchronous_commit', 'off', true), pg_advisory_xact_lock(:key)")


def signing_secrets(
    secret: str, previous_secret: str | None, previous_expires_at: datetime | None, now: datetime
) -> tuple[str, ...]:
    """The secrets that sign a message at `now`: the current one, plus the previous one for 24 h after a
    rotation (the new one first)."""
    if previous_secret and previous_expires_at and previous_expires_at > now:
        return (secret, previous_secret)
    return (secret,)


_CLAIM = """
WITH candidates AS (
    SELECT due.id
    FROM webhook_endpoints e
    CROSS JOIN LATERAL (
        SELECT d.id, d.next_attempt_at, d.seq
        FROM webhook_deliveries d
        WHERE d.endpoint_id = e.id
          AND d.status = 'pending'
          AND d.next_attempt_at <= :now
          AND (d.lease_until IS NULL OR d.lease_until <= :now)
        ORDER BY d.next_attempt_at, d.seq
        -- the endpoint's free slots: per_endpoint minus its deliveries in flight on any worker
        LIMIT GREATEST(0, :per_endpoint - (
            SELECT count(*) FROM webhook_deliveries f
            WHERE f.endpoint_id = e.id AND f.status = 'pending'
              AND f.lease_until IS NOT NULL AND f.lease_until > :now))
    ) due
    WHERE e.status = 'enabled' AND e.deleted_at IS NULL {merchant_filter}
    ORDER BY due.next_attempt_at, due.seq
    LIMIT :limit
)
UPDATE webhook_deliveries d
SET lease_until = :lease_until, lease_token = d.lease_token + 1
FROM candidates c, webhook_endpoints e, events ev
WHERE d.id = c.id AND e.id = d.endpoint_id AND ev.id = d.event_id
  AND d.status = 'pending' AND (d.lease_until IS NULL OR d.lease_until <= :now)
RETURNING d.id AS delivery_id, d.lease_token, d.merchant_id, d.endpoint_id,
          e.url, e.secret, e.previous_secret, e.previous_secret_expires_at,
          ev.id AS event_id, ev.type AS event_type, ev.created_at AS event_created_at, ev.data AS event_data,
          ev.previous_attributes AS event_previous_attributes, ev.test_clock_id AS event_test_clock_id
"""


async def claim_due(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    policy: DeliveryPolicy,
    *,
    limit: int,
    now: datetime | None = None,
    merchant_id: str | None = None,
) -> list[Claimed]:
    """Lease up to `limit` due deliveries (earliest due first, within each endpoint's free slots) and commit the
    lease, so no transaction stays open across the network."""
    if limit <= 0:
        return []
    now = now or utc_now()
    sql = _CLAIM.format(merchant_filter="AND e.merchant_id = :merchant_id" if merchant_id else "")
    params: dict[str, Any] = {
        "now": now,
        "lease_until": now + policy.lease,
        "per_endpoint": policy.per_endpoint,
        "limit": limit,
    }
    if merchant_id:
        params["merchant_id"] = merchant_id
    async with transaction(sessions) as session:
        # A lease need not survive a database crash (it would only lapse sooner), so the claim does not wait
        # for its commit to reach the disk while it holds the claim lock.
        await session.execute(_CLAIM_LOCK, {"key": CLAIM_LOCK})
        rows = (await session.execute(text(sql), params)).all()
    claimed = []
    for row in rows:
        claimed.append(
            Claimed(
                delivery_id=row.delivery_id,
                lease_token=row.lease_token,
                merchant_id=row.merchant_id,
                endpoint_id=row.endpoint_id,
                url=row.url,
                secrets=signing_secrets(
                    await box.open_secret(row.secret, row.endpoint_id),
                    await box.open_secret(row.previous_secret, row.endpoint_id)
                    if row.previous_secret
                    else None,
                    row.previous_secret_expires_at,
                    now,
                ),
                event_id=row.event_id,
                event_type=row.event_type,
                body=render_body(row),
                claimed_at=now,
            )
        )
    return claimed


async def _excerpt(response: httpx.Response, limit: int) -> str:
    chunks = bytearray()
    async for chunk in response.aiter_bytes():
        chunks += chunk
        if len(chunks) >= limit:
            break
    # PostgreSQL text cannot hold NUL; the excerpt is for people, so lenient decoding is fine.
    return bytes(chunks[:limit]).decode("utf-8", "replace").replace("\x00", "")


async def send(client: httpx.AsyncClient, claimed: Claimed, policy: DeliveryPolicy) -> AttemptResult:
    """POST one delivery and report what happened; never raises for anything the receiver or network does."""
    # The signature timestamp is wall time by the spec (receivers check freshness), never a test clock.
    timestamp = int(utc_now().timestamp())
    headers = webhook_headers(claimed.secrets, claimed.event_id, timestamp, claimed.body)
    started = time.perf_counter()
    status: int | None = None
    error: str | None = None
    excerpt: str | None = None
    retry_after: timedelta | None = None
    try:
        async with asyncio.timeout(policy.timeout):
            async with client.stream(
                "POST", claimed.url, content=claimed.body, headers=headers, timeout=policy.timeout
            ) as response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"), now=utc_now())
                excerpt = await _excerpt(response, policy.excerpt_bytes)
    except TimeoutError:
        error = f"timed out after {policy.timeout:g} s"
    except httpx.TimeoutException:
        error = f"timed out after {policy.timeout:g} s"
    except httpx.HTTPError as exc:
        if isinstance(exc.__cause__, RefusedAddress):
            error = f"refused: {exc}"
        else:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    except Exception as exc:
        # Whatever else goes wrong with this request (a URL httpx cannot use, a TLS library error) is this
        # attempt's failure, recorded and retried like any other, never a crash of the worker's loop.
        error = f"{type(exc).__name__}: {exc}"
    latency_ms = round((time.perf_counter() - started) * 1000)
    return AttemptResult(
        attempted_at=claimed.claimed_at,
        latency_ms=latency_ms,
        status_code=status,
        error=error[:1000] if error else None,
        response_body=excerpt or None,
        retry_after=retry_after,
    )


def _attempt_row(claimed: Claimed, result: AttemptResult, planned: datetime | None) -> dict[str, Any]:
    return {
        "id": new_id("wda"),
        "merchant_id": claimed.merchant_id,
        "delivery_id": claimed.delivery_id,
        "attempted_at": result.attempted_at,
        "latency_ms": result.latency_ms,
        "succeeded": result.succeeded,
        "status_code": result.status_code,
        "error": result.error,
        "response_body": result.response_body,
        "next_attempt_at": planned,
    }


_HEALED = text(
    "UPDATE webhook_endpoints SET failing_since = NULL WHERE id = :endpoint_id AND failing_since IS NOT NULL"
)
# A success is final whoever recorded it (a lapsed lease's late success counts); the attempt is logged either way.
_SUCCEEDED = text("""
WITH delivery AS (
    UPDATE webhook_deliveries
    SET status = 'succeeded', completed_at = :finished_at, attempt_count = attempt_count + 1,
        last_status_code = :status_code, last_error = NULL, next_attempt_at = NULL, lease_until = NULL
    WHERE id = :delivery_id AND status = 'pending'
    RETURNING status
)
INSERT INTO webhook_delivery_attempts
    (id, merchant_id, delivery_id, attempted_at, latency_ms, succeeded, status_code, error, response_body,
     next_attempt_at)
VALUES
    (:id, :merchant_id, :delivery_id, :attempted_at, :latency_ms, :succeeded, :status_code, :error,
     :response_body, :next_attempt_at)
RETURNING (SELECT status FROM delivery)
""")


async def _record_success(
    sessions: async_sessionmaker[AsyncSession], claimed: Claimed, result: AttemptResult, finished_at: datetime
) -> str:
    """The hot path, in two plain statements: the endpoint is healthy again (its row locked only if it was
    failing, endpoint before delivery as everywhere), then the delivery succeeded and its attempt row."""
    async with transaction(sessions) as session:
        await session.execute(_HEALED, {"endpoint_id": claimed.endpoint_id})
        params = _attempt_row(claimed, result, None) | {"finished_at": finished_at}
        done = await session.scalar(_SUCCEEDED, params)
        if done is None:
            # Already final (canceled meanwhile, or recorded by a later claim): the attempt is still logged.
            done = await session.scalar(
                select(WebhookDelivery.status).where(WebhookDelivery.id == claimed.delivery_id)
            )
        return str(done)


async def record(
    sessions: async_sessionmaker[AsyncSession],
    claimed: Claimed,
    result: AttemptResult,
    policy: DeliveryPolicy,
    *,
    rng: random.Random | None = None,
) -> str:
    """Record one attempt and move its delivery on; returns the delivery's status afterwards.

    Locks are taken endpoint first, then delivery: the order every other writer of both uses."""
    finished_at = result.attempted_at + timedelta(milliseconds=result.latency_ms)
    if result.succeeded:
        return await _record_success(sessions, claimed, result, finished_at)
    async with transaction(sessions) as session:
        endpoint = await session.scalar(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.id == claimed.endpoint_id)
            .with_for_update(key_share=True)
        )
        assert endpoint is not None
        if endpoint.failing_since is None:
            endpoint.failing_since = result.attempted_at
        delivery = await session.scalar(
            select(WebhookDelivery)
            .where(WebhookDelivery.id == claimed.delivery_id)
            .with_for_update(key_share=True)
        )
        assert delivery is not None
        planned: datetime | None = None
        # Only the current lease holder moves the delivery on: a lapsed lease's late failure is logged, no more.
        if delivery.status == "pending" and delivery.lease_token == claimed.lease_token:
            failures = delivery.attempt_count + 1
            first_failed_at = delivery.first_failed_at or result.attempted_at
            if result.status_code != 410:
                planned = next_attempt_at(
                    failed_attempts=failures,
                    first_failed_at=first_failed_at,
                    failed_at=finished_at,
                    jitter=(rng or random).random(),
                    retry_after=result.retry_after,
                    schedule=policy.schedule,
                    max_age=policy.max_age,
                )
            delivery.attempt_count = failures
            delivery.first_failed_at = first_failed_at
            delivery.last_status_code = result.status_code
            delivery.last_error = result.summary
            delivery.lease_until = None
            delivery.next_attempt_at = planned
            if planned is None:
                delivery.status = "failed"
                delivery.completed_at = finished_at
        disable_reason: str | None = None
        if endpoint.status == "enabled" and endpoint.deleted_at is None:
            if result.status_code == 410:
                disable_reason = "gone"
            elif (
                endpoint.failing_since is not None and finished_at - endpoint.failing_since >= policy.max_age
            ):
                disable_reason = "failing"
        session.add(
            WebhookDeliveryAttempt(
                **_attempt_row(claimed, result, planned if disable_reason is None else None)
            )
        )
        if disable_reason is not None:
            log.warning("disabling webhook endpoint %s (%s)", endpoint.id, disable_reason)
            await disable_endpoint(session, endpoint, disable_reason)
        await session.flush()
        return delivery.status


@dataclass
class Report:
    """What one `deliver_due` pass did."""

    results: list[tuple[Claimed, AttemptResult, str]] = field(default_factory=list)

    @property
    def attempted(self) -> int:
        return len(self.results)


async def deliver_due(
    sessions: async_sessionmaker[AsyncSession],
    box: SecretBox,
    client: httpx.AsyncClient,
    policy: DeliveryPolicy,
    *,
    now: datetime | None = None,
    merchant_id: str | None = None,
    rng: random.Random | None = None,
) -> Report:
    """One pass: claim what is due (up to a batch), send it all concurrently, record every attempt."""
    claimed = await claim_due(
        sessions, box, policy, limit=min(policy.batch, policy.concurrency), now=now, merchant_id=merchant_id
    )

    async def one(item: Claimed) -> tuple[Claimed, AttemptResult, str]:
        result = await send(client, item, policy)
        return item, result, await record(sessions, item, result, policy, rng=rng)

    return Report(results=list(await asyncio.gather(*(one(item) for item in claimed))))


class Dispatcher:
    """A worker process's delivery loop: keeps up to `policy.concurrency` requests in flight, refilling from
    PostgreSQL as they finish, until nothing is due. Started by the cron job every second and woken at once by
    a NOTIFY from the transaction that created deliveries."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        box: SecretBox,
        policy: DeliveryPolicy,
        *,
        client: httpx.AsyncClient | None = None,
        merchant_id: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.box = box
        self.policy = policy
        self.client = client or make_client(
            production=policy.production, max_connections=policy.concurrency * 2
        )
        self._owns_client = client is None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._kicks: set[asyncio.Task[int]] = set()
        self._wake = asyncio.Event()
        self._draining = False
        # Only this merchant's deliveries (tests and benchmarks share a database with other merchants).
        self._merchant_id = merchant_id
        self.attempts = 0

    async def _deliver(self, claimed: Claimed) -> None:
        try:
            result = await send(self.client, claimed, self.policy)
            await record(self.sessions, claimed, result, self.policy)
            self.attempts += 1
        except Exception:
            # The lease lapses and the delivery is claimed again: at least once, never lost.
            log.exception("webhook delivery %s: attempt not recorded", claimed.delivery_id)

    async def drain(self, *, budget: float = 50.0) -> int:
        """Deliver until nothing is due (or `budget` seconds passed); returns how many attempts were made.
        If a drain is already running in this process, wake it and return at once."""
        if self._draining:
            self._wake.set()
            return 0
        self._draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + budget
        started = self.attempts
        try:
            while True:
                self._wake.clear()
                free = self.policy.concurrency - len(self._in_flight)
                claimed: list[Claimed] = []
                if free > 0 and loop.time() < deadline:
                    claimed = await claim_due(
                        self.sessions,
                        self.box,
                        self.policy,
                        limit=min(free, self.policy.batch),
                        merchant_id=self._merchant_id,
                    )
                    for item in claimed:
                        task = asyncio.create_task(self._deliver(item))
                        self._in_flight.add(task)
                        task.add_done_callback(self._in_flight.discard)
                if not self._in_flight:
                    if claimed or (self._wake.is_set() and loop.time() < deadline):
                        continue
                    return self.attempts - started
                if len(claimed) == free and free > 0:
                    continue  # slots were all filled: the next claim waits for a free one below
                waiter = asyncio.ensure_future(self._wake.wait())
                try:
                    await asyncio.wait({*self._in_flight, waiter}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    waiter.cancel()
        finally:
            self._draining = False

    async def _drain_logged(self) -> int:
        try:
            return await self.drain()
        except Exception:
            # PostgreSQL unreachable, say: the cron job tries again within a second.
            log.exception("webhook dispatcher: drain failed")
            return 0

    def kick(self) -> None:
        """Start draining in the background (or wake the running drain): new deliveries were committed."""
        if self._draining:
            self._wake.set()
            return
        task = asyncio.ensure_future(self._drain_logged())
        self._kicks.add(task)
        task.add_done_callback(self._kicks.discard)

    async def close(self, grace: float = 5.0) -> None:
        """Let in-flight requests finish for up to `grace` seconds; the rest are abandoned to their leases."""
        pending = [*self._in_flight, *self._kicks]
        if pending:
            _, still = await asyncio.wait(pending, timeout=grace)
            for task in still:
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        if self._owns_client:
            await self.client.aclose()


class NotificationListener:
    """Listens for NOTIFY on the webhooks channel with its own connection and calls `on_notify`; reconnects
    with backoff if PostgreSQL goes away (meanwhile the cron job keeps deliveries going)."""

    def __init__(self, database_url: str, on_notify: Callable[[], None]) -> None:
        self._dsn = asyncpg_url(database_url).replace("postgresql+asyncpg://", "postgresql://", 1)
        self._on_notify = on_notify
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        backoff = 1.0
        while True:
            connection: asyncpg.Connection | None = None
            try:
                connection = await asyncpg.connect(self._dsn)
                lost = asyncio.Event()
                connection.add_termination_listener(lambda _, lost=lost: lost.set())
                await connection.add_listener(NOTIFY_CHANNEL, lambda *_: self._on_notify())
                self.connected.set()
                backoff = 1.0
                self._on_notify()  # catch up on what was committed while not listening
                await lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook notification listener: %s; retrying in %.0f s", exc, backoff)
            finally:
                self.connected.clear()
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass(frozen=True)
class SweepReport:
    canceled: int
    secrets_expired: int
    overdue: bool


async def sweep(
    session: AsyncSession, now: datetime, *, overdue_after: timedelta = timedelta(seconds=30)
) -> SweepReport:
    """Repairs from the facts in PostgreSQL: cancel pending deliveries of endpoints disabled or deleted by a
    transaction that raced their fan-out; forget previous secrets past their 24 h; and say whether deliveries
    have been due for a while without a worker taking them (then the caller enqueues a drain)."""
    dead_endpoints = select(WebhookEndpoint.id).where(
        (WebhookEndpoint.status != "enabled") | WebhookEndpoint.deleted_at.is_not(None)
    )
    canceled = await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.status == "pending", WebhookDelivery.endpoint_id.in_(dead_endpoints))
        .values(
            status="canceled",
            last_error="canceled: the endpoint is disabled or deleted",
            lease_until=None,
            completed_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    expired = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.previous_secret.is_not(None), WebhookEndpoint.previous_secret_expires_at <= now
        )
        .values(previous_secret=None, previous_secret_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    overdue = await session.scalar(
        select(
            exists().where(
                WebhookDelivery.status == "pending",
                WebhookDelivery.next_attempt_at <= now - overdue_after,
                WebhookDelivery.lease_until.is_(None) | (WebhookDelivery.lease_until <= now),
            )
        )
    )
    return SweepReport(
        canceled=int(canceled.rowcount or 0),  # type: ignore[attr-defined]
        secrets_expired=int(expired.rowcount or 0),  # type: ignore[attr-defined]
        overdue=bool(overdue),
    )
