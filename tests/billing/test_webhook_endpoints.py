"""Webhook endpoints through the HTTP API (SPEC §4, §7): the secret shown only at creation and rotation, URL
and event-type validation, updates, deletion, the deliveries log, redelivery, and the fan-out of every event into
deliveries inside the event's own transaction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from standardwebhooks import Webhook

from billing.customers.schemas import CustomerCreate
from billing.customers.service import create_customer
from billing.db.engine import transaction
from billing.errors import InvalidRequest
from billing.merchants.service import NewMerchant
from billing.services import Services, open_services
from billing.vault.keys import VaultKeyError
from webhooks.delivery_models import WebhookDelivery, WebhookEndpoint
from webhooks.endpoints import MAX_ENDPOINTS, create_endpoint
from webhooks.models import Event
from webhooks.schemas import WebhookEndpointCreate

URL = "https://example.com/webhooks/billing"


async def create(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    body = {"url": URL, "enabled_events": ["*"]} | fields
    response = await api.post("/v1/webhook_endpoints", json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def deliveries_of(services: Services, endpoint_id: str) -> list[WebhookDelivery]:
    async with services.sessions() as session:
        return list(
            (
                await session.scalars(
                    select(WebhookDelivery)
                    .where(WebhookDelivery.endpoint_id == endpoint_id)
                    .order_by(WebhookDelivery.seq)
                )
            ).all()
        )


async def test_create_shows_the_secret_once(api: httpx.AsyncClient) -> None:
    created = await create(
        api,
        enabled_events=["customer.created", "customer.created"],
        description="CRM",
        metadata={"team": "crm"},
    )
    assert created["id"].startswith("we_") and created["object"] == "webhook_endpoint"
    assert created["url"] == URL
    assert created["enabled_events"] == ["customer.created"]
    assert (created["status"], created["disabled_reason"]) == ("enabled", None)
    assert created["description"] == "CRM" and created["metadata"] == {"team": "crm"}
    assert created["secret"].startswith("whsec_")
    Webhook(created["secret"])  # a secret the reference package accepts
    fetched = (await api.get(f"/v1/webhook_endpoints/{created['id']}")).json()
    assert "secret" not in fetched
    assert fetched == {k: v for k, v in created.items() if k != "secret"}
    listed = (await api.get("/v1/webhook_endpoints")).json()["data"]
    assert all("secret" not in e for e in listed)
    assert created["id"] in [e["id"] for e in listed]


async def test_the_secret_holds_at_least_24_random_bytes(api: httpx.AsyncClient) -> None:
    import base64

    first, second = await create(api), await create(api)
    for secret in (first["secret"], second["secret"]):
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) >= 24
    assert first["secret"] != second["secret"]


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("ftp://example.com/hook", "https://"),
        ("javascript:alert(1)", "https://"),
        ("https:///nohost", "no host"),
        ("example.com/hook", "https://"),
        ("https://user:pw@example.com/hook", "credentials"),
        ("https://exa mple.com/hook", "spaces"),
        ("http://[::1/hook", "cannot be parsed"),
    ],
)
async def test_only_http_urls_with_a_host_are_accepted(
    api: httpx.AsyncClient, url: str, fragment: str
) -> None:
    response = await api.post("/v1/webhook_endpoints", json={"url": url, "enabled_events": ["*"]})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "url" and fragment in error["message"]


async def test_unknown_event_types_are_refused_and_named(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/webhook_endpoints",
        json={"url": URL, "enabled_events": ["customer.created", "customer.exploded"]},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "enabled_events[1]" and "customer.exploded" in error["message"]
    empty = await api.post("/v1/webhook_endpoints", json={"url": URL, "enabled_events": []})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "enabled_events"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://100.64.0.1/hook",
        "http://224.0.0.1/hook",
    ],
)
async def test_in_production_private_loopback_and_link_local_urls_are_refused(
    services: Services, merchant: NewMerchant, url: str
) -> None:
    async with services.sessions() as session:
        with pytest.raises(InvalidRequest) as refused:
            await create_endpoint(
                session,
                merchant.id,
                WebhookEndpointCreate(url=url, enabled_events=["*"]),
                production=True,
                box=services.vault,
            )
    assert refused.value.param == "url"
    assert "public internet addresses" in refused.value.message


async def test_in_production_a_public_address_is_accepted(services: Services, merchant: NewMerchant) -> None:
    async with transaction(services.sessions) as session:
        endpoint, _ = await create_endpoint(
            session,
            merchant.id,
            WebhookEndpointCreate(url="https://93.184.215.14/hook", enabled_events=["*"]),
            production=True,
            box=services.vault,
        )
    assert endpoint.url == "https://93.184.215.14/hook"


async def test_outside_production_loopback_is_allowed(api: httpx.AsyncClient) -> None:
    created = await create(api, url="http://127.0.0.1:9/hook")
    assert created["url"] == "http://127.0.0.1:9/hook"


async def test_update_changes_only_what_is_sent_and_records_previous_attributes(
    api: httpx.AsyncClient,
) -> None:
    created = await create(api, enabled_events=["customer.created"], metadata={"a": "1"})
    response = await api.patch(
        f"/v1/webhook_endpoints/{created['id']}",
        json={"enabled_events": ["customer.updated"], "metadata": {"a": "", "b": "2"}, "description": "x"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["enabled_events"] == ["customer.updated"] and body["metadata"] == {"b": "2"}
    assert body["url"] == URL and "secret" not in body
    [event] = (await api.get("/v1/events", params={"type": "webhook_endpoint.updated"})).json()["data"]
    assert event["data"]["previous_attributes"] == {
        "enabled_events": ["customer.created"],
        "metadata": {"a": "1"},
        "description": None,
    }
    bad = await api.patch(f"/v1/webhook_endpoints/{created['id']}", json={"url": "gopher://x"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "url"


async def test_disabling_cancels_pending_deliveries_and_enabling_resumes_new_ones(
    api: httpx.AsyncClient, services: Services
) -> None:
    created = await create(api, enabled_events=["customer.created"])
    await api.post("/v1/customers", json={})
    disabled = (await api.patch(f"/v1/webhook_endpoints/{created['id']}", json={"disabled": True})).json()
    assert (disabled["status"], disabled["disabled_reason"]) == ("disabled", "requested")
    await api.post("/v1/customers", json={})
    assert [d.status for d in await deliveries_of(services, created["id"])] == ["canceled"]

    enabled = (await api.patch(f"/v1/webhook_endpoints/{created['id']}", json={"disabled": False})).json()
    assert (enabled["status"], enabled["disabled_reason"]) == ("enabled", None)
    await api.post("/v1/customers", json={})
    assert [d.status for d in await deliveries_of(services, created["id"])] == ["canceled", "pending"]


async def test_delete_hides_the_endpoint_but_keeps_its_delivery_log(
    api: httpx.AsyncClient, services: Services
) -> None:
    created = await create(api, enabled_events=["customer.created"])
    await api.post("/v1/customers", json={})
    deleted = await api.delete(f"/v1/webhook_endpoints/{created['id']}")
    assert deleted.json() == {"id": created["id"], "object": "webhook_endpoint", "deleted": True}
    assert (await api.get(f"/v1/webhook_endpoints/{created['id']}")).status_code == 404
    assert (await api.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret")).status_code == 404
    log = (await api.get(f"/v1/webhook_endpoints/{created['id']}/deliveries")).json()["data"]
    assert [d["status"] for d in log] == ["canceled"]
    await api.post("/v1/customers", json={})
    assert len(await deliveries_of(services, created["id"])) == 1


async def test_rotate_secret_returns_a_new_secret_and_when_the_old_one_stops(api: httpx.AsyncClient) -> None:
    created = await create(api)
    rotated = (await api.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret")).json()
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    assert rotated["previous_secret_expires_at"] is not None
    fetched = (await api.get(f"/v1/webhook_endpoints/{created['id']}")).json()
    assert (
        "secret" not in fetched
        and fetched["previous_secret_expires_at"] == rotated["previous_secret_expires_at"]
    )
    [event] = (await api.get("/v1/events", params={"type": "webhook_endpoint.secret_rotated"})).json()["data"]
    assert "secret" not in event["data"]["object"]
    assert created["secret"] not in str(event) and rotated["secret"] not in str(event)


async def test_an_endpoint_limit_keeps_fan_out_bounded(api: httpx.AsyncClient) -> None:
    for _ in range(MAX_ENDPOINTS):
        await create(api)
    response = await api.post("/v1/webhook_endpoints", json={"url": URL, "enabled_events": ["*"]})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "webhook_endpoint_limit"


async def test_every_event_gets_one_delivery_per_listening_endpoint(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, services: Services
) -> None:
    everything = await create(api)
    created_only = await create(api, enabled_events=["customer.created"])
    off = await create(api)
    await api.patch(f"/v1/webhook_endpoints/{off['id']}", json={"disabled": True})
    theirs = await create(other_api)

    customer = (await api.post("/v1/customers", json={"name": "fan"})).json()
    await api.patch(f"/v1/customers/{customer['id']}", json={"name": "out"})

    def types(rows: list[WebhookDelivery]) -> list[str]:
        return [d.event_type for d in rows]

    # "*" also hears about the other endpoints (never about itself).
    assert types(await deliveries_of(services, everything["id"])) == [
        "webhook_endpoint.created",
        "webhook_endpoint.created",
        "webhook_endpoint.updated",
        "customer.created",
        "customer.updated",
    ]
    assert types(await deliveries_of(services, created_only["id"])) == ["customer.created"]
    assert types(await deliveries_of(services, off["id"])) == []
    assert types(await deliveries_of(services, theirs["id"])) == []


async def test_an_event_and_its_deliveries_commit_together_or_not_at_all(
    api: httpx.AsyncClient, services: Services, merchant: NewMerchant
) -> None:
    endpoint = await create(api, enabled_events=["customer.created"])

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with transaction(services.sessions) as session:
            customer = await create_customer(session, merchant.id, CustomerCreate(), production=False)
            await session.flush()
            [staged] = (
                await session.scalars(
                    select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint["id"])
                )
            ).all()
            assert staged.event_type == "customer.created"
            raise Boom
    assert await deliveries_of(services, endpoint["id"]) == []
    async with services.sessions() as session:
        assert await session.scalar(select(Event).where(Event.object_id == customer.id)) is None

    async with transaction(services.sessions) as session:
        kept = await create_customer(session, merchant.id, CustomerCreate(), production=False)
    [delivery] = await deliveries_of(services, endpoint["id"])
    async with services.sessions() as session:
        event = await session.get(Event, delivery.event_id)
    assert event is not None and event.object_id == kept.id


async def test_redeliver_refuses_what_it_cannot_do(api: httpx.AsyncClient) -> None:
    customer = (await api.post("/v1/customers", json={})).json()
    [event] = (await api.get("/v1/events", params={"object_id": customer["id"]})).json()["data"]
    nobody = await api.post(f"/v1/events/{event['id']}/redeliver")
    assert nobody.status_code == 422 and nobody.json()["error"]["code"] == "no_webhook_endpoint"

    endpoint = await create(api, enabled_events=["customer.updated"])
    # An explicit endpoint receives the event even if it does not subscribe to its type.
    explicit = await api.post(f"/v1/events/{event['id']}/redeliver", json={"endpoint": endpoint["id"]})
    assert explicit.status_code == 200 and explicit.json()["data"][0]["endpoint"] == endpoint["id"]
    # A second request while that delivery is pending does not double it.
    again = await api.post(f"/v1/events/{event['id']}/redeliver", json={"endpoint": endpoint["id"]})
    assert again.json()["data"][0]["id"] == explicit.json()["data"][0]["id"]

    await api.patch(f"/v1/webhook_endpoints/{endpoint['id']}", json={"disabled": True})
    disabled = await api.post(f"/v1/events/{event['id']}/redeliver", json={"endpoint": endpoint["id"]})
    assert disabled.status_code == 409 and disabled.json()["error"]["param"] == "endpoint"
    unknown = await api.post("/v1/events/evt_000000000000000000000000/redeliver")
    assert unknown.status_code == 404
    typo = await api.post(f"/v1/events/{event['id']}/redeliver", json={"endpoint": "we_nope"})
    assert typo.status_code == 404 and typo.json()["error"]["param"] == "endpoint"


async def test_deliveries_can_be_filtered_and_paged(api: httpx.AsyncClient) -> None:
    endpoint = await create(api, enabled_events=["customer.created"])
    for _ in range(3):
        await api.post("/v1/customers", json={})
    path = f"/v1/webhook_endpoints/{endpoint['id']}/deliveries"
    first = (await api.get(path, params={"limit": 2})).json()
    assert first["has_more"] is True and len(first["data"]) == 2 and first["url"] == path
    rest = (await api.get(path, params={"limit": 2, "starting_after": first["data"][-1]["id"]})).json()
    assert rest["has_more"] is False and len(rest["data"]) == 1
    pending = (await api.get(path, params={"status": "pending"})).json()["data"]
    assert len(pending) == 3 and all(d["attempts"] == [] for d in pending)
    one = (await api.get(path, params={"event": pending[0]["event"]})).json()["data"]
    assert [d["id"] for d in one] == [pending[0]["id"]]
    assert (await api.get(path, params={"status": "lost"})).status_code == 400


async def test_the_routes_are_in_the_openapi_document(api: httpx.AsyncClient) -> None:
    paths = (await api.get("/schema/openapi.json")).json()["paths"]
    for path in (
        "/v1/webhook_endpoints",
        "/v1/webhook_endpoints/{endpoint_id}",
        "/v1/webhook_endpoints/{endpoint_id}/rotate_secret",
        "/v1/webhook_endpoints/{endpoint_id}/deliveries",
        "/v1/events/{event_id}/redeliver",
    ):
        assert path in paths, path


async def test_secrets_are_stored_sealed_and_bound_to_their_endpoint(
    api: httpx.AsyncClient, services: Services
) -> None:
    first, second = await create(api), await create(api)
    rotated = (await api.post(f"/v1/webhook_endpoints/{first['id']}/rotate_secret")).json()
    async with services.sessions() as session:
        rows = {
            e.id: e
            for e in await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.id.in_([first["id"], second["id"]]))
            )
        }
    stored = rows[first["id"]]
    # Neither the current secret nor the previous one is in the database in plaintext.
    assert {stored.secret[:10], (stored.previous_secret or "")[:10]} == {"sealed:v1:"}
    assert rotated["secret"] not in stored.secret and first["secret"] not in (stored.previous_secret or "")
    assert await services.vault.open_secret(stored.secret, first["id"]) == rotated["secret"]
    assert await services.vault.open_secret(stored.previous_secret or "", first["id"]) == first["secret"]
    # A sealed secret copied onto another endpoint does not open there.
    with pytest.raises(VaultKeyError):
        await services.vault.open_secret(stored.secret, second["id"])


async def test_secrets_stored_in_plaintext_by_an_older_version_are_sealed_at_start(
    api: httpx.AsyncClient, services: Services
) -> None:
    endpoint = await create(api)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(secret=endpoint["secret"])
        )
    reopened = await open_services(services.settings, pool_size=1)
    await reopened.close()
    async with services.sessions() as session:
        stored = await session.scalar(
            select(WebhookEndpoint.secret).where(WebhookEndpoint.id == endpoint["id"])
        )
    assert stored is not None and stored.startswith("sealed:v1:")
    assert await services.vault.open_secret(stored, endpoint["id"]) == endpoint["secret"]
