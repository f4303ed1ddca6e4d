"""A webhook receiver down for an hour (issue 16 item 3), on the delivery retry schedule's own clock: while its
port refuses connections every attempt fails and is rescheduled (5 s, 5 min, 30 min after the failures, SPEC §7
and docs/webhooks.md); once it listens again, the next attempts deliver every event, each exactly once, and none
is lost. Order is not the contract (docs/webhooks.md: "Events are not guaranteed to arrive in order"), so the test
checks the set of webhook-ids and that each arrived once. `billing audit` of the merchant is clean afterwards."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import httpx
import pytest

from billing.clock import utc_now
from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.services import Services
from tests.billing.processes import assert_audit_clean, billing_env
from tests.webhooks.receiver import Receiver
from tests.webhooks.test_delivery import POLICY, deliveries, new_customer, new_endpoint
from webhooks.delivery import deliver_due

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]

CUSTOMERS = 12
STEP = timedelta(minutes=1)
OUTAGE = timedelta(hours=1)
# After an hour of failures the next wait is at most 2 h + 10 %, and an endpoint takes POLICY.per_endpoint (4)
# deliveries per pass: everything is due again well within 4 h. Only a guard against a hang.
HORIZON = timedelta(hours=4)


async def test_a_receiver_down_for_an_hour_gets_every_event_once_when_it_is_back(
    api: httpx.AsyncClient,
    services: Services,
    merchant: NewMerchant,
    receiver: Receiver,
    sender: httpx.AsyncClient,
    settings: Settings,
) -> None:
    endpoint = await new_endpoint(api, receiver.url())
    port = receiver.port
    await receiver.stop()  # down: connections to its port are refused
    t0 = utc_now()
    for index in range(CUSTOMERS):
        customer = await new_customer(api, email=f"outage{index}@example.com")
        updated = await api.patch(f"/v1/customers/{customer['id']}", json={"name": f"Customer {index}"})
        assert updated.status_code == 200, updated.text
    listed = (await api.get("/v1/events", params={"limit": 100})).json()["data"]
    events = [e["id"] for e in listed if (e["data"]["object"].get("email") or "").startswith("outage")]
    assert len(events) == 2 * CUSTOMERS  # customer.created and customer.updated of each

    now = t0
    during_outage = Counter[str]()
    while now < t0 + OUTAGE:
        report = await deliver_due(
            services.sessions, services.vault, sender, POLICY, now=now, merchant_id=merchant.id
        )
        assert {status for _, _, status in report.results} <= {"pending"}  # failed, rescheduled, not given up
        during_outage.update(claimed.event_id for claimed, _, _ in report.results)
        now += STEP
    # Every event was tried, and tried again on the schedule (5 s, 5 min, 30 min after its failures), while down.
    assert set(during_outage) == set(events)
    assert min(during_outage.values()) >= 3, during_outage
    assert receiver.requests == []

    await receiver.start(port)  # back, on the same address
    while len(receiver.requests) < len(events) and now < t0 + HORIZON:
        report = await deliver_due(
            services.sessions, services.vault, sender, POLICY, now=now, merchant_id=merchant.id
        )
        assert {status for _, _, status in report.results} <= {"succeeded"}
        now += STEP
    # A few more passes after the last one: nothing is sent again.
    for _ in range(5):
        assert (
            await deliver_due(
                services.sessions, services.vault, sender, POLICY, now=now, merchant_id=merchant.id
            )
        ).attempted == 0
        now += STEP

    received = Counter(request.webhook_id for request in receiver.requests)
    assert set(received) == set(events), "an event was lost"
    assert set(received.values()) == {1}, "an event was delivered twice"
    shown = await deliveries(api, endpoint["id"])
    assert len(shown) == len(events)
    for delivery in shown:
        failures = during_outage[delivery["event"]]
        assert (delivery["status"], delivery["attempt_count"]) == ("succeeded", failures + 1), delivery
        assert [a["succeeded"] for a in delivery["attempts"]] == [False] * failures + [True]

    await assert_audit_clean(billing_env(settings), merchant.id)
