"""Usage ingestion through the HTTP API (SPEC §4 usage_events, issue 6 part 1): each event id stored once per
merchant, whatever the batching or the concurrency; invalid events reported by index; time rules on the
customer's clock; monthly partitions that take over what landed in DEFAULT."""

from __future__ import annotations

import asyncio
import random
import secrets
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from billing.db.engine import transaction
from billing.merchants.service import NewMerchant
from billing.services import Services
from billing.usage.maintenance import KEY_RETENTION, ensure_usage_partitions, prune_usage_event_keys


async def post_ok(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, response.text
    return response.json()


async def make_meter(api: httpx.AsyncClient, aggregation: str = "sum", **fields: Any) -> dict[str, Any]:
    code = f"{aggregation}_{secrets.token_hex(4)}"
    return await post_ok(
        api, "/v1/meters", {"code": code, "name": code, "aggregation": aggregation, **fields}
    )


async def make_customer(api: httpx.AsyncClient, **fields: Any) -> dict[str, Any]:
    return await post_ok(api, "/v1/customers", {"email": "u@example.com", **fields})


async def make_clock(api: httpx.AsyncClient, at: datetime) -> str:
    return str((await post_ok(api, "/v1/test_clocks", {"frozen_time": at.isoformat()}))["id"])


async def send(api: httpx.AsyncClient, events: list[dict[str, Any]]) -> dict[str, Any]:
    return await post_ok(api, "/v1/usage_events/batch", {"events": events})


def new_id() -> str:
    return "ev_" + secrets.token_hex(8)


async def stored(
    services: Services, merchant_id: str, event_ids: list[str] | None = None
) -> list[dict[str, Any]]:
    """The stored rows of these ids (every row of the merchant without ids), with their partition's name."""
    async with transaction(services.sessions) as session:
        rows = await session.execute(
            text(
                'SELECT event_id, customer_id, meter_id, "timestamp", value, properties, received_at, '
                "tableoid::regclass::text AS partition FROM usage_events "
                "WHERE merchant_id = :m AND (CAST(:ids AS text[]) IS NULL OR event_id = ANY(:ids)) "
                "ORDER BY event_id"
            ),
            {"m": merchant_id, "ids": event_ids},
        )
        return [dict(row._mapping) for row in rows]


def iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


async def test_one_event_is_stored_once_with_its_resolved_ids(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = await make_customer(api)
    meter = await make_meter(api, "sum")
    event = {
        "id": "req_1",
        "customer": customer["id"],
        "meter": meter["code"],
        "value": "0.125",
        "properties": {"region": "eu", "n": [1, 2]},
        "timestamp": iso(datetime.now(UTC) - timedelta(minutes=1)),
    }
    first = await post_ok(api, "/v1/usage_events", event)
    assert first == {"object": "usage_event_batch", "accepted": 1, "duplicates": 0, "errors": []}
    again = await post_ok(api, "/v1/usage_events", {**event, "value": 7})
    assert again == {"object": "usage_event_batch", "accepted": 0, "duplicates": 1, "errors": []}

    [row] = await stored(services, merchant.id)
    assert (row["event_id"], row["customer_id"], row["meter_id"]) == ("req_1", customer["id"], meter["id"])
    assert row["value"] == Decimal("0.125")  # the first copy wins; exact, never through a float
    assert row["properties"] == {"region": "eu", "n": [1, 2]}
    assert abs(row["received_at"] - datetime.now(UTC)) < timedelta(minutes=1)
    assert row["partition"].startswith("usage_events_p")


async def test_a_single_invalid_event_is_a_400_with_the_batch_code(api: httpx.AsyncClient) -> None:
    meter = await make_meter(api, "count")
    response = await api.post(
        "/v1/usage_events", json={"id": "x", "customer": "cus_nope", "meter": meter["code"]}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unknown_customer", "customer")
    assert "POST /v1/customers" in error["message"]


async def test_every_invalid_event_is_reported_by_index_and_the_valid_ones_are_accepted(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = (await make_customer(api))["id"]
    summed = (await make_meter(api, "sum"))["code"]
    counted = (await make_meter(api, "count"))["code"]
    users = (await make_meter(api, "unique_count", property="user_id"))["code"]
    now = datetime.now(UTC)

    def event(**fields: Any) -> dict[str, Any]:
        return {"id": new_id(), "customer": customer, "meter": summed, "value": 1, **fields}

    cases: list[tuple[dict[str, Any], str | None, str | None]] = [
        (event(), None, None),
        ({"customer": customer, "meter": counted}, "missing_id", "id"),
        (event(id=""), "invalid_id", "id"),
        (event(id="x" * 256), "invalid_id", "id"),
        (event(id=12), "invalid_id", "id"),
        (event(customer=None), "missing_customer", "customer"),
        (event(customer="cus_missing"), "unknown_customer", "customer"),
        (event(meter="no_such_meter"), "unknown_meter", "meter"),
        (event(timestamp="yesterday"), "invalid_timestamp", "timestamp"),
        (event(timestamp="2026-11-25T10:00:00"), "invalid_timestamp", "timestamp"),  # no offset
        (event(timestamp=1764064800), "invalid_timestamp", "timestamp"),
        (event(timestamp=iso(now - timedelta(days=36))), "timestamp_too_old", "timestamp"),
        (event(timestamp=iso(now + timedelta(minutes=10))), "timestamp_in_future", "timestamp"),
        (event(value=None), "missing_value", "value"),
        (event(value="abc"), "invalid_value", "value"),
        (event(value="NaN"), "invalid_value", "value"),
        (event(value="Infinity"), "invalid_value", "value"),
        (event(value=True), "invalid_value", "value"),
        (event(value=-1), "invalid_value", "value"),
        (event(value=[1]), "invalid_value", "value"),
        (event(value="1e20"), "invalid_value", "value"),
        (event(meter=users, value=None, properties={"plan": "pro"}), "missing_property", "properties"),
        (event(meter=users, value=None), "missing_property", "properties"),
        (event(properties=["a"]), "invalid_properties", "properties"),
        (event(meter=counted, value=None), None, None),
        (event(meter=users, value=None, properties={"user_id": "u1"}), None, None),
        (event(value=2.5, timestamp=iso(now - timedelta(days=34))), None, None),
    ]
    answer = await send(api, [case for case, _, _ in cases])

    expected_errors = [(i, code, f"events[{i}].{param}") for i, (_, code, param) in enumerate(cases) if code]
    assert [(e["index"], e["code"], e["param"]) for e in answer["errors"]] == expected_errors
    assert all(e["message"] for e in answer["errors"])
    assert (answer["accepted"], answer["duplicates"]) == (4, 0)
    valid_ids = [case["id"] for case, code, _ in cases if code is None]
    assert [row["event_id"] for row in await stored(services, merchant.id)] == sorted(valid_ids)


async def test_every_character_is_stored_as_sent_and_a_refused_events_key_stays_free(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    """Ids and properties holding the characters COPY's text format escapes (backslash, tab, newline, carriage
    return) are stored as sent, a timestamp whose offset has a fraction of a second is stored as the same instant,
    and the key of a refused event is free for a later valid one (whatever way the rows reach PostgreSQL)."""
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "sum"))["code"]
    odd_ids = ["tab\there", "back\\slash", "new\nline\r", "plain"]
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    events: list[dict[str, Any]] = [
        {"id": event_id, "customer": customer, "meter": code, "value": n + 1, "properties": {"k": event_id}}
        for n, event_id in enumerate(odd_ids)
    ]
    events[3]["timestamp"] = (at + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S") + "+01:00:00.5"
    events.append({"id": "refused", "customer": customer, "meter": code, "value": "abc"})
    first = await send(api, events)
    assert (first["accepted"], first["duplicates"]) == (4, 0)
    assert [(e["index"], e["code"]) for e in first["errors"]] == [(4, "invalid_value")]
    rows = {row["event_id"]: row for row in await stored(services, merchant.id)}
    assert sorted(rows) == sorted(odd_ids)
    assert all(rows[i]["properties"] == {"k": i} for i in odd_ids)
    assert [rows[i]["value"] for i in odd_ids] == [1, 2, 3, 4]
    # at + 1 s written with an offset of +01:00:00.5 is 1 h 0.5 s earlier in UTC.
    assert rows["plain"]["timestamp"] == at + timedelta(seconds=1) - timedelta(hours=1, microseconds=500_000)
    second = await send(api, [{"id": "refused", "customer": customer, "meter": code, "value": 7}])
    assert (second["accepted"], second["duplicates"], second["errors"]) == (1, 0, [])
    [row] = await stored(services, merchant.id, ["refused"])
    assert row["value"] == 7


async def test_duplicates_within_a_batch_and_across_batches_are_counted_not_stored(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "sum"))["code"]
    first = await send(
        api,
        [
            {"id": "a", "customer": customer, "meter": code, "value": 1},
            {"id": "b", "customer": customer, "meter": code, "value": 2},
            {"id": "a", "customer": customer, "meter": code, "value": 100},
            {"id": "a", "customer": customer, "meter": "unknown", "value": 5},  # an error claims nothing
        ],
    )
    assert (first["accepted"], first["duplicates"], len(first["errors"])) == (2, 1, 1)
    second = await send(
        api,
        [
            {"id": "b", "customer": customer, "meter": code, "value": 20},
            {"id": "c", "customer": customer, "meter": code, "value": 3},
        ],
    )
    assert (second["accepted"], second["duplicates"], second["errors"]) == (1, 1, [])
    rows = await stored(services, merchant.id)
    assert [(r["event_id"], r["value"]) for r in rows] == [("a", 1), ("b", 2), ("c", 3)]


async def test_concurrent_requests_with_the_same_ids_store_each_event_exactly_once(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "count"))["code"]
    ids = [f"race_{i}" for i in range(300)]

    async def one_request(seed: int) -> dict[str, Any]:
        # Each copy in its own order: claiming keys in id order is what keeps such batches from deadlocking.
        order = ids[:]
        random.Random(seed).shuffle(order)
        response = await api.post(
            "/v1/usage_events/batch",
            json={"events": [{"id": i, "customer": customer, "meter": code} for i in order]},
        )
        assert response.status_code == 200, response.text
        return response.json()

    answers = await asyncio.gather(*(one_request(seed) for seed in range(8)))
    assert sum(a["accepted"] for a in answers) == len(ids)
    assert all(a["accepted"] + a["duplicates"] == len(ids) for a in answers)
    rows = await stored(services, merchant.id)
    assert sorted(r["event_id"] for r in rows) == sorted(ids)


async def _waiting_on_a_lock(services: Services) -> bool:
    async with services.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND query LIKE '%usage_event_keys%'"
            )
        )
    return bool(waiting)


@pytest.mark.parametrize("other_commits", [True, False])
async def test_a_key_taken_meanwhile_by_another_transaction_is_claimed_once(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services, other_commits: bool
) -> None:
    """The claim inserts the ids no committed key holds; one that another transaction inserted and has not
    committed makes it wait. If that transaction commits, the insert fails on the primary key and the claim falls
    back to ON CONFLICT (the id is a duplicate, the others are stored); if it rolls back, the id is stored."""
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "count"))["code"]
    ids = [f"held_{other_commits}_{i}" for i in range(5)]
    async with services.engine.connect() as other:
        await other.execute(
            text("INSERT INTO usage_event_keys (merchant_id, event_id) VALUES (:m, :id)"),
            {"m": merchant.id, "id": ids[2]},
        )
        request = asyncio.create_task(
            send(api, [{"id": i, "customer": customer, "meter": code} for i in ids])
        )
        for _ in range(200):
            if await _waiting_on_a_lock(services):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the claim never waited on the held key")
        assert not request.done()
        await (other.commit() if other_commits else other.rollback())
        answer = await asyncio.wait_for(request, 60)
    rows = await stored(services, merchant.id)
    if other_commits:
        assert (answer["accepted"], answer["duplicates"], answer["errors"]) == (4, 1, [])
        assert sorted(r["event_id"] for r in rows) == sorted(ids[:2] + ids[3:])
    else:
        assert (answer["accepted"], answer["duplicates"], answer["errors"]) == (5, 0, [])
        assert sorted(r["event_id"] for r in rows) == sorted(ids)


async def test_ten_thousand_events_are_accepted_and_ten_thousand_and_one_refused(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = (await make_customer(api, external_id="acct-42"))["external_id"]
    code = (await make_meter(api, "sum"))["code"]
    stamp = iso(datetime.now(UTC) - timedelta(seconds=5))

    def events(n: int, prefix: str) -> list[dict[str, Any]]:
        return [
            {
                "id": f"{prefix}-{i:06d}",
                "customer": customer,
                "meter": code,
                "value": i % 17,
                "timestamp": stamp,
                "properties": {"host": f"web-{i % 9}"},
            }
            for i in range(n)
        ]

    too_many = await api.post("/v1/usage_events/batch", json={"events": events(10_001, "big")})
    assert too_many.status_code == 400
    error = too_many.json()["error"]
    assert (error["code"], error["param"]) == ("batch_too_large", "events")
    assert "10,000" in error["message"] and "Split" in error["message"]
    assert await stored(services, merchant.id) == []

    full = await api.post("/v1/usage_events/batch", json={"events": events(10_000, "ok")})
    assert len(full.request.content) > services.settings.max_body_bytes  # the batch route takes bigger bodies
    assert full.status_code == 200, full.text
    assert full.json() == {"object": "usage_event_batch", "accepted": 10_000, "duplicates": 0, "errors": []}
    async with transaction(services.sessions) as session:
        count, total = (
            await session.execute(
                text("SELECT count(*), sum(value) FROM usage_events WHERE merchant_id = :m"),
                {"m": merchant.id},
            )
        ).one()
    assert (count, total) == (10_000, sum(i % 17 for i in range(10_000)))


async def test_other_routes_keep_the_default_body_limit(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/usage_events",
        content=b"{" + b" " * 2_000_000 + b"}",
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413


async def test_customer_is_found_by_external_id_and_an_id_wins_over_an_external_id(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    by_external = await make_customer(api, external_id="user-7")
    plain = await make_customer(api)
    # An external_id that happens to equal another customer's id: the id names its own customer.
    await make_customer(api, external_id=plain["id"])
    code = (await make_meter(api, "count"))["code"]
    answer = await send(
        api,
        [
            {"id": "e1", "customer": "user-7", "meter": code},
            {"id": "e2", "customer": plain["id"], "meter": code},
        ],
    )
    assert answer["accepted"] == 2
    rows = await stored(services, merchant.id)
    assert [r["customer_id"] for r in rows] == [by_external["id"], plain["id"]]

    deleted = await make_customer(api, external_id="gone")
    assert (await api.delete(f"/v1/customers/{deleted['id']}")).status_code == 200
    answer = await send(api, [{"id": "e3", "customer": "gone", "meter": code}])
    assert [e["code"] for e in answer["errors"]] == ["unknown_customer"]


async def test_time_limits_follow_the_customers_test_clock(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    clock_now = datetime(2031, 3, 10, 12, 0, tzinfo=UTC)  # years ahead of real time
    clock = await make_clock(api, clock_now)
    customer = (await make_customer(api, test_clock=clock))["id"]
    code = (await make_meter(api, "max"))["code"]

    def event(event_id: str, at: datetime | None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": event_id, "customer": customer, "meter": code, "value": 3}
        if at is not None:
            body["timestamp"] = iso(at)
        return body

    answer = await send(
        api,
        [
            event("oldest", clock_now - timedelta(days=35)),
            event("too_old", clock_now - timedelta(days=35, seconds=1)),
            event("latest", clock_now + timedelta(minutes=5)),
            event("future", clock_now + timedelta(minutes=5, seconds=1)),
            event("default", None),
        ],
    )
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [
        (1, "timestamp_too_old"),
        (3, "timestamp_in_future"),
    ]
    assert "2031-03-10T12:00:00Z" in answer["errors"][0]["message"]  # measured against the clock's now
    rows = {r["event_id"]: r for r in await stored(services, merchant.id)}
    assert set(rows) == {"oldest", "latest", "default"}
    assert rows["default"]["timestamp"] == clock_now
    assert {r["received_at"] for r in rows.values()} == {clock_now}  # clock time of acceptance
    # A real-time customer's event at the clock's time is far in the future.
    real = (await make_customer(api))["id"]
    refused = await send(
        api, [{"id": "r", "customer": real, "meter": code, "value": 1, "timestamp": iso(clock_now)}]
    )
    assert [e["code"] for e in refused["errors"]] == ["timestamp_in_future"]


async def test_another_merchants_customers_and_meters_are_unknown(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    theirs = await make_customer(other_api, external_id="shared-ext")
    their_meter = (await make_meter(other_api, "count"))["code"]
    mine = (await make_customer(api))["id"]
    my_meter = (await make_meter(api, "count"))["code"]
    answer = await send(
        api,
        [
            {"id": "t1", "customer": theirs["id"], "meter": my_meter},
            {"id": "t2", "customer": "shared-ext", "meter": my_meter},
            {"id": "t3", "customer": mine, "meter": their_meter},
        ],
    )
    assert [e["code"] for e in answer["errors"]] == ["unknown_customer", "unknown_customer", "unknown_meter"]
    # Event ids are per merchant: the other merchant may use the same id.
    theirs_answer = await send(other_api, [{"id": "t1", "customer": theirs["id"], "meter": their_meter}])
    mine_answer = await send(api, [{"id": "t1", "customer": mine, "meter": my_meter}])
    assert theirs_answer["accepted"] == mine_answer["accepted"] == 1
    assert [r["customer_id"] for r in await stored(services, merchant.id)] == [mine]


async def test_an_idempotency_key_replays_the_first_answer(api: httpx.AsyncClient) -> None:
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "count"))["code"]
    body = {"events": [{"id": "i1", "customer": customer, "meter": code}]}
    headers = {"Idempotency-Key": "usage-" + secrets.token_hex(6)}
    first = await api.post("/v1/usage_events/batch", json=body, headers=headers)
    replay = await api.post("/v1/usage_events/batch", json=body, headers=headers)
    assert first.json()["accepted"] == 1
    assert replay.headers["idempotent-replayed"] == "true" and replay.content == first.content


async def test_a_malformed_batch_is_refused_whole_with_the_path(api: httpx.AsyncClient) -> None:
    unknown = await api.post(
        "/v1/usage_events/batch", json={"events": [{"id": "a"}, {"id": "b", "colour": "red"}]}
    )
    assert unknown.status_code == 400
    assert (unknown.json()["error"]["code"], unknown.json()["error"]["param"]) == (
        "parameter_unknown",
        "events[1].colour",
    )
    not_json = await api.post(
        "/v1/usage_events/batch", content=b"{", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400
    assert (await api.post("/v1/usage_events/batch", json={"events": {}})).status_code == 400
    assert (await api.post("/v1/usage_events/batch", json={})).status_code == 400


async def test_partition_maintenance_creates_months_and_moves_rows_out_of_default(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    month = datetime(2033, 7, 1, tzinfo=UTC)  # no partition: far beyond now + 2 months
    clock = await make_clock(api, month + timedelta(days=20))
    customer = (await make_customer(api, test_clock=clock))["id"]
    code = (await make_meter(api, "sum"))["code"]
    events = [
        {
            "id": f"p{i}",
            "customer": customer,
            "meter": code,
            "value": i,
            "timestamp": iso(month + timedelta(days=i)),
        }
        for i in range(10)
    ]
    assert (await send(api, events))["accepted"] == 10
    assert {r["partition"] for r in await stored(services, merchant.id)} == {"usage_events_default"}

    async with transaction(services.sessions) as session:
        created = await ensure_usage_partitions(session, month, months_before=1, months_after=1)
    assert created == 3  # June, July, August 2033
    rows = await stored(services, merchant.id)
    assert {r["partition"] for r in rows} == {"usage_events_p203307"}
    assert sorted(r["value"] for r in rows) == list(range(10))
    async with transaction(services.sessions) as session:
        assert (
            await ensure_usage_partitions(session, month, months_before=1, months_after=1) == 0
        )  # idempotent
        bounds = (
            await session.execute(
                text(
                    "SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_class c "
                    "WHERE c.relname = 'usage_events_p203307'"
                )
            )
        ).scalar_one()
        indexes = (
            (
                await session.execute(
                    text("SELECT indexdef FROM pg_indexes WHERE tablename = 'usage_events_p203307'")
                )
            )
            .scalars()
            .all()
        )
    assert bounds == "FOR VALUES FROM ('2033-07-01 00:00:00+00') TO ('2033-08-01 00:00:00+00')"
    assert any('(merchant_id, customer_id, meter_id, "timestamp")' in i for i in indexes)

    # New events of that month now go straight to its partition; ids already stored are still duplicates.
    answer = await send(
        api,
        [
            events[0],
            {
                "id": "p10",
                "customer": customer,
                "meter": code,
                "value": 1,
                "timestamp": iso(month + timedelta(days=15)),
            },
        ],
    )
    assert (answer["accepted"], answer["duplicates"]) == (1, 1)
    assert {r["partition"] for r in await stored(services, merchant.id)} == {"usage_events_p203307"}


async def test_dedupe_keys_are_pruned_only_after_their_retention(
    services: Services, merchant: NewMerchant
) -> None:
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO usage_event_keys (merchant_id, event_id, received_at) VALUES "
                "(:m, 'expired', :old), (:m, 'kept', :recent)"
            ),
            {
                "m": merchant.id,
                "old": now - KEY_RETENTION - timedelta(minutes=1),
                "recent": now - timedelta(days=35),
            },
        )
    async with transaction(services.sessions) as session:
        assert await prune_usage_event_keys(session, now) >= 1
        left = (
            (
                await session.execute(
                    text("SELECT event_id FROM usage_event_keys WHERE merchant_id = :m ORDER BY event_id"),
                    {"m": merchant.id},
                )
            )
            .scalars()
            .all()
        )
    assert left == ["kept"]
    assert timedelta(days=35) < KEY_RETENTION


async def test_properties_postgresql_would_refuse_are_reported_per_event(
    api: httpx.AsyncClient, merchant: NewMerchant, services: Services
) -> None:
    customer = (await make_customer(api))["id"]
    code = (await make_meter(api, "count"))["code"]
    head = f'{{"customer": "{customer}", "meter": "{code}", '.encode()
    body = (
        b'{"events": ['
        + head
        + b'"id": "huge_number", "properties": {"a": [1, {"b": 1e200000}]}},'
        + head
        + b'"id": "too_big", "properties": {"a": "'
        + b"x" * 9000
        + b'"}},'
        + head
        + b'"id": "fine", "properties": {"a": 1e300, "b": "\xc3\xa9"}}'
        + b"]}"
    )
    response = await api.post(
        "/v1/usage_events/batch", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert [(e["index"], e["code"]) for e in answer["errors"]] == [
        (0, "invalid_properties"),
        (1, "invalid_properties"),
    ]
    [row] = await stored(services, merchant.id)
    assert row["event_id"] == "fine" and row["properties"]["b"] == "é"
    # Bytes that are not UTF-8 make the body itself not JSON (RFC 8259 §8.1): the whole batch is refused,
    # naming the byte, and nothing of it is stored.
    bad_utf8 = b'{"events": [' + head + b'"id": "bad_utf8", "properties": {"a": "\xff"}}]}'
    refused = await api.post(
        "/v1/usage_events/batch", content=bad_utf8, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "body_invalid_utf8"
    first_bad_byte = bad_utf8.index(b"\xff")
    assert f"byte {first_bad_byte}" in refused.json()["error"]["message"]
    assert [r["event_id"] for r in await stored(services, merchant.id)] == ["fine"]


async def test_the_daily_maintenance_job_keeps_partitions_ahead_and_prunes_keys(
    services: Services, merchant: NewMerchant
) -> None:
    from billing.usage.maintenance import run_usage_maintenance

    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        await session.execute(
            text(
                "INSERT INTO usage_event_keys (merchant_id, event_id, received_at) VALUES (:m, 'stale', :at)"
            ),
            {"m": merchant.id, "at": now - KEY_RETENTION - timedelta(hours=1)},
        )
    report = await run_usage_maintenance(services, now=now)
    assert report.partitions_created == 0  # the migration made them; the job is idempotent
    assert report.keys_pruned >= 1
    expected = {
        f"usage_events_p{(now.year * 12 + now.month - 1 + k) // 12}{(now.month - 1 + k) % 12 + 1:02d}"
        for k in range(-2, 3)
    }
    async with transaction(services.sessions) as session:
        names = set(
            (
                await session.execute(
                    text(
                        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                        "WHERE i.inhparent = 'usage_events'::regclass"
                    )
                )
            )
            .scalars()
            .all()
        )
        stale = await session.scalar(
            text("SELECT count(*) FROM usage_event_keys WHERE merchant_id = :m"), {"m": merchant.id}
        )
    assert expected <= names and stale == 0
