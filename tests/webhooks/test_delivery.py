"""Delivery against a real HTTP receiver on loopback: signed per Standard Webhooks (verified with the reference
`standardwebhooks` package), retried on failures and timeouts, 410 and three days of failures disable the
endpoint, rotation signs twice, redelivery and a crash between send and record resend with the same webhook-id."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from billing.clock import utc_now
from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.services import Services
from billing.worker import jobs
from billing.worker.settings import build_worker
from tests.webhooks.receiver import Receiver, Reply
from webhooks import retry
from webhooks.delivery import (
    DeliveryPolicy,
    Dispatcher,
    NotificationListener,
    claim_due,
    deliver_due,
    record,
    send,
)
from webhooks.delivery_models import WebhookDelivery, WebhookEndpoint
from webhooks.models import Event
from webhooks.transport import make_client

POLICY = DeliveryPolicy(timeout=1.0)


async def new_endpoint(api: httpx.AsyncClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    response = await api.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": events or ["*"]})
    assert response.status_code == 200, response.text
    return response.json()


async def new_customer(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/customers", json=fields)
    assert response.status_code == 200, response.text
    return response.json()


async def deliveries(api: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    response = await api.get(f"/v1/webhook_endpoints/{endpoint_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def the_delivery(services: Services, endpoint_id: str) -> WebhookDelivery:
    async with services.sessions() as session:
        rows = (
            await session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
        ).all()
    assert len(rows) == 1
    return rows[0]


async def test_an_event_is_delivered_signed_and_verifies_with_the_reference_package(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url())
    customer = await new_customer(api, name="Ada", email="ada@example.com")

    report = await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)

    assert [status for _, _, status in report.results] == ["succeeded"]
    [request] = receiver.requests
    payload = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    assert payload["type"] == "customer.created"
    assert payload["data"]["object"] == customer
    assert request.headers["webhook-id"] == payload["id"]
    assert request.headers["content-type"] == "application/json"
    # The payload is the event exactly as the API shows it.
    assert payload == (await api.get(f"/v1/events/{payload['id']}")).json()
    assert set(payload) >= {"id", "type", "created_at", "data"}

    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "succeeded" and delivery["event"] == payload["id"]
    [attempt] = delivery["attempts"]
    assert attempt["succeeded"] is True and attempt["status_code"] == 200
    assert attempt["response_body"] == '{"received": true}'
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None


async def test_a_500_is_retried_on_the_schedule_then_succeeds(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url())
    receiver.then(Reply(500, b"database is down"))
    await new_customer(api)
    t0 = utc_now()

    first = await deliver_due(
        services.sessions, services.vault, sender, POLICY, now=t0, merchant_id=merchant.id
    )
    assert [status for _, _, status in first.results] == ["pending"]
    pending = await the_delivery(services, endpoint["id"])
    assert pending.next_attempt_at is not None
    wait = pending.next_attempt_at - t0
    # 5 s after the failure, ±10 % jitter.
    assert timedelta(seconds=4.5) <= wait <= timedelta(seconds=5.5) + timedelta(seconds=1)

    assert (
        await deliver_due(
            services.sessions,
            services.vault,
            sender,
            POLICY,
            now=t0 + timedelta(seconds=4),
            merchant_id=merchant.id,
        )
    ).attempted == 0
    second = await deliver_due(
        services.sessions,
        services.vault,
        sender,
        POLICY,
        now=pending.next_attempt_at,
        merchant_id=merchant.id,
    )
    assert [status for _, _, status in second.results] == ["succeeded"]
    assert len(receiver.requests) == 2
    assert receiver.requests[0].webhook_id == receiver.requests[1].webhook_id

    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["attempt_count"] == 2
    failed, succeeded = delivery["attempts"]
    assert (failed["succeeded"], failed["status_code"], failed["response_body"]) == (
        False,
        500,
        "database is down",
    )
    assert failed["next_attempt_at"] is not None
    assert succeeded["succeeded"] is True


async def test_a_timeout_is_a_failure_and_is_retried(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url())
    receiver.then(Reply(200, delay=2.0))
    await new_customer(api)
    policy = DeliveryPolicy(timeout=0.3)

    first = await deliver_due(services.sessions, services.vault, sender, policy, merchant_id=merchant.id)
    [(_, result, status)] = first.results
    assert status == "pending"
    assert result.status_code is None and result.error == "timed out after 0.3 s"
    # It waited for the timeout (the reply, 2 s later, is what the error above says it did not wait for).
    assert result.latency_ms >= 250

    later = (await the_delivery(services, endpoint["id"])).next_attempt_at
    second = await deliver_due(
        services.sessions, services.vault, sender, policy, now=later, merchant_id=merchant.id
    )
    assert [status for _, _, status in second.results] == ["succeeded"]
    [delivery] = await deliveries(api, endpoint["id"])
    assert [a["error"] for a in delivery["attempts"]] == ["timed out after 0.3 s", None]


async def test_retry_after_is_honoured(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url())
    receiver.then(Reply(503, headers={"Retry-After": "120"}))
    await new_customer(api)
    t0 = utc_now()

    await deliver_due(services.sessions, services.vault, sender, POLICY, now=t0, merchant_id=merchant.id)

    pending = await the_delivery(services, endpoint["id"])
    assert pending.next_attempt_at is not None
    assert pending.next_attempt_at - t0 >= timedelta(seconds=120)
    assert pending.last_status_code == 503


async def test_410_gone_disables_the_endpoint_and_records_an_event(
    api: httpx.AsyncClient,
    other_api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    gone = await new_endpoint(api, receiver.url("/gone"), ["customer.created"])
    watcher = await new_endpoint(api, receiver.url("/watcher"), ["webhook_endpoint.disabled"])
    receiver.always(Reply(410, b"unsubscribed"), path="/gone")
    await new_customer(api)
    await new_customer(api)

    report = await deliver_due(
        services.sessions,
        services.vault,
        sender,
        DeliveryPolicy(timeout=1.0, per_endpoint=1),
        merchant_id=merchant.id,
    )

    assert [status for _, _, status in report.results] == ["failed"]
    after = (await api.get(f"/v1/webhook_endpoints/{gone['id']}")).json()
    assert (after["status"], after["disabled_reason"]) == ("disabled", "gone")
    statuses = sorted(d["status"] for d in await deliveries(api, gone["id"]))
    assert statuses == ["canceled", "failed"]
    events = (await api.get("/v1/events", params={"type": "webhook_endpoint.disabled"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in events] == [gone["id"]]
    assert "secret" not in events[0]["data"]["object"]

    # The disabled endpoint gets nothing more, not even news of its own disabling; the watcher is told.
    await new_customer(api)
    second = await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)
    assert [c.endpoint_id for c, _, _ in second.results] == [watcher["id"]]
    assert receiver.to("/watcher")[0].headers["webhook-id"] == events[0]["id"]
    assert len(receiver.to("/gone")) == 1


async def test_three_days_of_failures_fail_the_delivery_and_disable_the_endpoint(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    receiver.always(Reply(500))
    await new_customer(api)
    now = t0 = utc_now()
    attempts_at = []
    while True:
        report = await deliver_due(
            services.sessions,
            services.vault,
            sender,
            POLICY,
            now=now,
            merchant_id=merchant.id,
            rng=random.Random(7),
        )
        assert report.attempted == 1
        attempts_at.append(now - t0)
        delivery = await the_delivery(services, endpoint["id"])
        if delivery.status != "pending":
            break
        assert delivery.next_attempt_at is not None
        now = delivery.next_attempt_at

    assert delivery.status == "failed"
    assert len(receiver.requests) == len(attempts_at) == len(retry.planned_attempts())
    # Every attempt within jitter of the schedule; the last one at the three-day mark.
    for actual, planned in zip(attempts_at, retry.planned_attempts(), strict=True):
        assert abs(actual - planned) <= planned * 0.1 + timedelta(seconds=len(attempts_at))
    assert timedelta(days=3) <= attempts_at[-1] <= timedelta(days=3, seconds=30)
    after = (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}")).json()
    assert (after["status"], after["disabled_reason"]) == ("disabled", "failing")
    disabled = (await api.get("/v1/events", params={"type": "webhook_endpoint.disabled"})).json()["data"]
    assert [e["data"]["object"]["id"] for e in disabled] == [endpoint["id"]]


async def test_one_failing_event_does_not_disable_an_endpoint_that_otherwise_works(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created", "customer.updated"])
    poison = await new_customer(api, name="poison")
    t0 = utc_now()
    receiver.then(Reply(500))
    await deliver_due(services.sessions, services.vault, sender, POLICY, now=t0, merchant_id=merchant.id)
    # Another event goes through two days later: the endpoint works, it is not "failing for three days".
    await api.patch(f"/v1/customers/{poison['id']}", json={"name": "fine"})
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint["id"], WebhookDelivery.attempt_count == 0)
            .values(next_attempt_at=t0 + timedelta(days=2))
        )
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint["id"], WebhookDelivery.attempt_count == 1)
            .values(next_attempt_at=t0 + timedelta(days=3))
        )
    ok = await deliver_due(
        services.sessions, services.vault, sender, POLICY, now=t0 + timedelta(days=2), merchant_id=merchant.id
    )
    assert [status for _, _, status in ok.results] == ["succeeded"]
    receiver.always(Reply(500))
    last = await deliver_due(
        services.sessions,
        services.vault,
        sender,
        POLICY,
        now=t0 + timedelta(days=3, seconds=1),
        merchant_id=merchant.id,
    )
    assert [status for _, _, status in last.results] == ["failed"]
    assert (await api.get(f"/v1/webhook_endpoints/{endpoint['id']}")).json()["status"] == "enabled"


async def test_after_a_rotation_both_secrets_sign_for_24_hours(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    old_secret = endpoint["secret"]
    rotated = (await api.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")).json()
    new_secret = rotated["secret"]
    assert new_secret != old_secret and new_secret.startswith("whsec_")
    await new_customer(api)

    await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)

    [request] = receiver.requests
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    assert Webhook(new_secret).verify(request.body, request.headers)["type"] == "customer.created"
    assert Webhook(old_secret).verify(request.body, request.headers)["type"] == "customer.created"

    # 25 hours later only the new secret signs.
    await new_customer(api)
    await deliver_due(
        services.sessions,
        services.vault,
        sender,
        POLICY,
        now=utc_now() + timedelta(hours=25),
        merchant_id=merchant.id,
    )
    later = receiver.requests[1]
    assert len(later.headers["webhook-signature"].split(" ")) == 1
    Webhook(new_secret).verify(later.body, later.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old_secret).verify(later.body, later.headers)


async def test_redelivery_sends_the_same_event_again_with_the_same_webhook_id(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await new_customer(api)
    await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)
    event_id = receiver.requests[0].webhook_id

    response = await api.post(f"/v1/events/{event_id}/redeliver")
    assert response.status_code == 200, response.text
    [queued] = response.json()["data"]
    assert (queued["origin"], queued["status"], queued["endpoint"]) == (
        "redelivery",
        "pending",
        endpoint["id"],
    )

    await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)
    first, again = receiver.requests
    assert again.webhook_id == first.webhook_id == event_id
    assert again.body == first.body
    Webhook(endpoint["secret"]).verify(again.body, again.headers)
    assert sorted(d["origin"] for d in await deliveries(api, endpoint["id"])) == ["event", "redelivery"]


async def test_a_worker_crash_between_send_and_record_delivers_again_with_the_same_webhook_id(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await new_customer(api)
    t0 = utc_now()

    [claimed] = await claim_due(
        services.sessions, services.vault, POLICY, limit=10, now=t0, merchant_id=merchant.id
    )
    crashed = await send(sender, claimed, POLICY)  # ...and the worker dies before recording it
    assert crashed.succeeded
    # While the lease holds, nobody else sends it.
    assert (
        await claim_due(
            services.sessions,
            services.vault,
            POLICY,
            limit=10,
            now=t0 + timedelta(seconds=30),
            merchant_id=merchant.id,
        )
        == []
    )

    retry_at = t0 + POLICY.lease + timedelta(seconds=1)
    [again] = await claim_due(
        services.sessions, services.vault, POLICY, limit=10, now=retry_at, merchant_id=merchant.id
    )
    assert again.delivery_id == claimed.delivery_id and again.lease_token == claimed.lease_token + 1
    result = await send(sender, again, POLICY)
    assert await record(services.sessions, again, result, POLICY) == "succeeded"

    first, second = receiver.requests
    assert first.webhook_id == second.webhook_id == claimed.event_id
    assert first.body == second.body
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["status"] == "succeeded" and len(delivery["attempts"]) == 1


async def test_a_stale_lease_cannot_undo_a_later_claims_outcome(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await new_customer(api)
    t0 = utc_now()
    [slow] = await claim_due(
        services.sessions, services.vault, POLICY, limit=10, now=t0, merchant_id=merchant.id
    )
    [fresh] = await claim_due(
        services.sessions,
        services.vault,
        POLICY,
        limit=10,
        now=t0 + POLICY.lease + timedelta(seconds=1),
        merchant_id=merchant.id,
    )
    assert await record(services.sessions, fresh, await send(sender, fresh, POLICY), POLICY) == "succeeded"
    receiver.always(Reply(500))
    late_failure = await send(sender, slow, POLICY)

    assert await record(services.sessions, slow, late_failure, POLICY) == "succeeded"
    [delivery] = await deliveries(api, endpoint["id"])
    assert [a["succeeded"] for a in delivery["attempts"]] == [True, False]


async def test_a_slow_endpoint_has_bounded_concurrency_and_does_not_starve_others(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, receiver: Receiver
) -> None:
    await new_endpoint(api, receiver.url("/slow"), ["customer.created"])
    await new_endpoint(api, receiver.url("/fast"), ["customer.created"])
    receiver.always(Reply(200, delay=0.4), path="/slow")
    for _ in range(12):
        await new_customer(api)
    policy = DeliveryPolicy(timeout=2.0, per_endpoint=3, concurrency=8, batch=8)
    dispatcher = Dispatcher(services.sessions, services.vault, policy, merchant_id=merchant.id)
    started = asyncio.get_running_loop().time()
    try:
        attempts = await dispatcher.drain()
    finally:
        await dispatcher.close()

    assert attempts == 24
    slow, fast = receiver.to("/slow"), receiver.to("/fast")
    assert len(slow) == len(fast) == 12
    assert receiver.max_in_flight["/slow"] == 3
    # 12 slow requests, 3 at a time, 0.4 s each, take at least 1.6 s; the fast ones do not queue behind them:
    # all are in before the slow endpoint's last three, which can start only once nine have been answered.
    assert max(r.at for r in fast) < sorted(r.at for r in slow)[9]
    assert asyncio.get_running_loop().time() - started >= 1.5


async def test_in_production_private_addresses_are_refused_at_delivery_time(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, receiver: Receiver
) -> None:
    # Saved outside production (loopback is allowed there), delivered by a production worker.
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await new_customer(api)
    policy = DeliveryPolicy(timeout=1.0, production=True)
    async with make_client(production=True) as guarded:
        report = await deliver_due(
            services.sessions, services.vault, guarded, policy, merchant_id=merchant.id
        )

    [(_, result, status)] = report.results
    assert status == "pending"
    assert result.error is not None and result.error.startswith("refused:")
    assert "127.0.0.1" in result.error and "loopback" in result.error
    assert receiver.requests == []
    [delivery] = await deliveries(api, endpoint["id"])
    assert delivery["last_error"].startswith("refused:")


async def test_a_redirect_is_a_failure_and_is_not_followed(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    await new_endpoint(api, receiver.url(), ["customer.created"])
    receiver.then(Reply(302, headers={"Location": receiver.url("/elsewhere")}))
    await new_customer(api)
    report = await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)
    assert [r.status_code for _, r, _ in report.results] == [302]
    assert [status for _, _, status in report.results] == ["pending"]
    assert receiver.to("/elsewhere") == []


async def test_the_dispatcher_is_woken_by_the_committing_transaction(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, receiver: Receiver
) -> None:
    await new_endpoint(api, receiver.url(), ["customer.created"])
    assert services.settings.database_url is not None
    dispatcher = Dispatcher(services.sessions, services.vault, POLICY, merchant_id=merchant.id)
    listener = NotificationListener(services.settings.database_url, dispatcher.kick)
    listener.start()
    try:
        await asyncio.wait_for(listener.connected.wait(), 10)
        await new_customer(api)
        [request] = await receiver.wait_for(1, within=5)
    finally:
        await listener.stop()
        await dispatcher.close()
    assert request.headers["webhook-id"].startswith("evt_")


async def test_the_worker_job_delivers_and_the_sweeper_re_enqueues_what_redis_lost(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, receiver: Receiver
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await new_customer(api)
    # The immediate trigger was lost and the delivery has been due for a minute.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint["id"])
            .values(next_attempt_at=utc_now() - timedelta(minutes=1))
        )

    swept = await jobs.sweep({"services": services})

    assert swept["webhook_drains_enqueued"] == 1
    queued = await services.redis.queued_jobs(queue_name=services.queue_name)
    assert "deliver_webhooks" in [job.function for job in queued]
    worker = build_worker(services, burst=True, with_cron=False)
    try:
        await worker.main()
    finally:
        await worker.close()
    assert [r.path for r in receiver.requests] == ["/hooks"]
    assert (await the_delivery(services, endpoint["id"])).status == "succeeded"


async def test_the_sweeper_cancels_deliveries_of_disabled_endpoints_and_forgets_expired_secrets(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant, receiver: Receiver
) -> None:
    endpoint = await new_endpoint(api, receiver.url(), ["customer.created"])
    await api.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret")
    await new_customer(api)
    # As if a transaction disabled the endpoint while another was fanning an event out to it.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(status="disabled", previous_secret_expires_at=utc_now() - timedelta(seconds=1))
        )

    swept = await jobs.sweep({"services": services})

    assert swept["webhook_deliveries_canceled"] >= 1 and swept["webhook_secrets_expired"] >= 1
    assert (await the_delivery(services, endpoint["id"])).status == "canceled"
    async with services.sessions() as session:
        row = await session.get(WebhookEndpoint, endpoint["id"])
        assert row is not None and row.previous_secret is None


async def test_events_of_a_test_clock_are_delivered_in_real_time(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
) -> None:
    await new_endpoint(api, receiver.url(), ["customer.created"])
    clock = (await api.post("/v1/test_clocks", json={"frozen_time": "2031-01-01T00:00:00Z"})).json()
    await new_customer(api, test_clock=clock["id"])
    await deliver_due(services.sessions, services.vault, sender, POLICY, merchant_id=merchant.id)
    [request] = receiver.requests
    payload = request.body.decode()
    assert '"created_at":"2031-01-01T00:00:00Z"' in payload and clock["id"] in payload
    async with services.sessions() as session:
        event = await session.get(Event, request.webhook_id)
        assert event is not None and event.test_clock_id == clock["id"]
