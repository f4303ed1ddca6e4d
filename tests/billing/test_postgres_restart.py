"""PostgreSQL restarted under a running engine (issue 16 item 3): a request blocked in its transaction when the
server goes down is answered a clean 503 (SPEC §3 error body, Retry-After), so is a request sent while it is down;
the retry with the same Idempotency-Key after the restart creates the customer once, at its first try. Meanwhile
`billing worker` is advancing a test clock: it reconnects and finishes. Then a second restart while the API's pool
is full of idle connections: every request after it answers 2xx (a pooled connection the server closed is
replaced at checkout, never answered 503). `billing audit` is clean afterwards.

The cluster is the test's own (the embedded PostgreSQL the suite uses when DATABASE_URL is unset, started in the
test's folder), never the machine's shared server. Real processes: `billing serve` and `billing worker`. About a
minute: a cluster, two processes and a four-month advance start, then two restarts."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from billing.config import Settings
from billing.runtime.embedded import EmbeddedPostgres
from tests.billing.locks import backend_pid, process_waiting
from tests.billing.processes import (
    Isolated,
    assert_audit_clean,
    billing_serve,
    billing_worker,
    isolated,
    wait_for,
)
from tests.conftest import THROWAWAY_CLUSTER

pytestmark = [pytest.mark.fault, pytest.mark.timeout(480)]

SUBSCRIPTIONS = 8
# `billing serve`'s pool per process (billing.services.open_services: 10, and 10 more overflow closed on return).
API_POOL_SIZE = 10
# Requests in a row after a restart, each answered 2xx: more than the pool holds, so each of its dead
# connections is taken at least once (the pool hands out its connections in turn).
AFTER_RESTART = 3 * API_POOL_SIZE


class Cluster:
    """An embedded PostgreSQL of the test's own, stopped (fast shutdown: every connection is cut) and started
    again on the same socket."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.server = EmbeddedPostgres.start(folder, settings=THROWAWAY_CLUSTER)

    @property
    def admin_url(self) -> str:
        return self.server.admin_url("postgres")

    def stop(self) -> None:
        self.server.stop()

    def start(self) -> None:
        self.server = EmbeddedPostgres.start(self.folder, settings=THROWAWAY_CLUSTER)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    # Not under pytest's tmp_path: PostgreSQL runs as another user when the tests run as root, and every pytest
    # run that starts on the machine takes the other users' access to /tmp/pytest-of-<user> away again.
    folder = Path(tempfile.mkdtemp(prefix="billing-pg-restart-"))
    own = Cluster(folder)
    try:
        yield own
    finally:
        own.stop()
        shutil.rmtree(folder, ignore_errors=True)


async def fill_pool(iso: Isolated, api: httpx.AsyncClient, *, exclude: set[int]) -> int:
    """Fill the pool of `billing serve`: more requests at once than it keeps, each held on a connection by a
    lock this test takes until all of them wait for it. Returns how many connections the API keeps open
    afterwards (every connection named "billing pid <n>" but those of the processes in `exclude`)."""
    others = [f"billing pid {pid}" for pid in exclude]
    async with iso.services.sessions() as holder:
        await holder.execute(text("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
        holder_pid = await backend_pid(holder)
        requests = [
            asyncio.ensure_future(api.get("/v1/customers", params={"limit": 1}))
            for _ in range(API_POOL_SIZE + 2)
        ]

        async def all_waiting() -> bool:
            async with iso.services.sessions() as session:
                waiting = await session.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE :holder = ANY(pg_blocking_pids(pid)) "
                        "AND application_name <> ALL(:others)"
                    ),
                    {"holder": holder_pid, "others": others},
                )
            return waiting == len(requests)

        await wait_for(all_waiting, deadline_s=60, what="every request to hold a connection", pause=0.02)
        await holder.rollback()
    assert [(await request).status_code for request in requests] == [200] * len(requests)
    async with iso.services.sessions() as session:
        return int(
            await session.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'billing pid %' "
                    "AND application_name <> ALL(:others)"
                ),
                {"others": others},
            )
            or 0
        )


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("api_error", "database_unavailable"), error
    assert "Idempotency-Key" in error["message"]
    assert response.headers["retry-after"] == "2"


async def _post(api: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.post(path, json=body)
    assert response.status_code == 200, f"{path}: {response.text}"
    created: dict[str, Any] = response.json()
    return created


async def test_a_postgres_restart_answers_503_and_the_retry_applies_once(
    settings: Settings, cluster: Cluster, tmp_path: Path
) -> None:
    # More requests of one key at once than the API's pool keeps (fill_pool): the bulkhead lets them all in.
    async with isolated(
        settings, cluster.admin_url, BILLING_CONCURRENCY_PER_KEY=str(4 * API_POOL_SIZE)
    ) as iso:
        worker = billing_worker(iso.env, tmp_path / "worker.log")
        try:
            async with billing_serve(iso.env, tmp_path / "serve.log") as url, iso.api(url) as api:
                clock = await _post(api, "/v1/test_clocks", {"frozen_time": "2027-01-01T00:00:00Z"})
                plan = await _post(
                    api,
                    "/v1/plans",
                    {"code": "pg", "name": "Pro", "currency": "USD", "interval": "month", "amount": 900},
                )
                subscriptions = []
                for _ in range(SUBSCRIPTIONS):
                    customer = await _post(api, "/v1/customers", {"test_clock": clock["id"]})
                    subscriptions.append(
                        await _post(
                            api,
                            "/v1/subscriptions",
                            {
                                "customer": customer["id"],
                                "plan": plan["id"],
                                "collection_method": "send_invoice",
                                "days_until_due": 7,
                            },
                        )
                    )
                advanced = await _post(
                    api, f"/v1/test_clocks/{clock['id']}/advance", {"frozen_time": "2027-04-02T00:00:00Z"}
                )
                assert advanced["status"] == "advancing"

                key = f"pg-restart-{secrets.token_hex(4)}"
                email = f"{key}@example.com"
                # A request in flight: blocked inside its transaction on a lock this test holds.
                async with iso.services.sessions() as holder:
                    await holder.execute(text("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
                    holder_pid = await backend_pid(holder)
                    in_flight = asyncio.ensure_future(
                        api.post("/v1/customers", json={"email": email}, headers={"Idempotency-Key": key})
                    )

                    async def request_waiting() -> bool:
                        pid = await process_waiting(iso.services, holder_pid, "INSERT INTO customers")
                        return pid is not None

                    await wait_for(request_waiting, deadline_s=60, what="the request to wait", pause=0.02)
                    assert not in_flight.done(), in_flight.result().text
                    await asyncio.to_thread(cluster.stop)
                    assert_unavailable(await in_flight)
                    await holder.invalidate()
                await iso.services.engine.dispose()

                # While it is down: the same answer, and /ready names PostgreSQL.
                assert_unavailable(
                    await api.post("/v1/customers", json={"email": email}, headers={"Idempotency-Key": key})
                )
                ready = await api.get("/ready")
                assert ready.status_code == 503
                assert ready.json()["checks"]["postgres"].startswith("unavailable"), ready.json()

                await asyncio.to_thread(cluster.start)

                # Once the server is back, the very first retry is applied: no pooled connection that died with
                # the server answers another 503.
                created = await api.post(
                    "/v1/customers", json={"email": email}, headers={"Idempotency-Key": key}
                )
                assert created.status_code == 200, created.text
                replay = await api.post(
                    "/v1/customers", json={"email": email}, headers={"Idempotency-Key": key}
                )
                assert replay.headers.get("idempotent-replayed") == "true"
                assert replay.json()["id"] == created.json()["id"]
                listed = (await api.get("/v1/customers", params={"limit": 100})).json()["data"]
                assert [c["id"] for c in listed if c["email"] == email] == [created.json()["id"]]

                async def clock_ready() -> bool:
                    shown = (await api.get(f"/v1/test_clocks/{clock['id']}")).json()
                    assert shown["status"] != "internal_failure", shown
                    return bool(shown["status"] == "ready")

                await wait_for(
                    clock_ready, deadline_s=240, what="the worker to finish the advance", pause=0.5
                )
                for subscription in subscriptions:
                    invoices = (
                        await api.get("/v1/invoices", params={"subscription": subscription["id"]})
                    ).json()["data"]
                    # The first period, then Feb 1, Mar 1 and Apr 1: one invoice each, 9.00 USD.
                    assert sorted(i["period_start"][:10] for i in invoices) == [
                        "2027-01-01",
                        "2027-02-01",
                        "2027-03-01",
                        "2027-04-01",
                    ]
                    assert {i["total"] for i in invoices} == {900}
                assert worker.alive(), worker.output()

                # A restart while nothing is in flight: every connection of the API's full pool dies idle, and no
                # request learns of it. Each later request runs on a connection that is alive.
                pooled = await fill_pool(iso, api, exclude={worker.pid, os.getpid()})
                assert pooled >= API_POOL_SIZE, pooled
                await asyncio.to_thread(cluster.stop)
                await asyncio.to_thread(cluster.start)
                answers = [
                    (await api.get("/v1/customers", params={"limit": 1})).status_code
                    for _ in range(AFTER_RESTART)
                ]
                assert answers == [200] * AFTER_RESTART
                assert worker.alive(), worker.output()
        finally:
            worker.stop()
        await assert_audit_clean(iso.env)
