"""An API process SIGKILLed in the middle of a request (issue 16 item 3), under `billing serve --workers 2`: the
client loses its connection, retries with its Idempotency-Key, and the customer is created exactly once; the
server keeps answering (the other process, and the one uvicorn's supervisor starts in place of the dead one).
`billing audit` is clean afterwards.

The request is held inside its transaction by a lock this test takes, so the kill certainly lands mid-request; the
process serving it is found from its PostgreSQL connection (the backend's client port). About a minute: two API
processes start, and the supervisor's replacement is waited for."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import text

from billing.config import Settings
from billing.runtime.up import wait_ready
from tests.billing.live import READY_DEADLINE, free_port
from tests.billing.locks import backend_pid, process_waiting
from tests.billing.processes import Process, api_processes, assert_audit_clean, isolated, wait_for
from tests.conftest import Servers

pytestmark = [pytest.mark.fault, pytest.mark.timeout(300)]


def _api_process(serve_pid: int, pid: int) -> psutil.Process:
    for child in api_processes(serve_pid):
        if child.pid == pid:
            return child
    raise AssertionError(
        f"process {pid}, whose connection holds the request, is not an API process of billing serve"
    )


async def test_an_api_process_killed_mid_request_and_the_retry_creates_once(
    settings: Settings, servers: Servers, tmp_path: Path
) -> None:
    async with isolated(settings, servers.admin_database_url) as iso:
        port = free_port()
        serve = Process(
            [sys.executable, "-m", "billing", "serve", "--port", str(port), "--workers", "2"],
            iso.env,
            tmp_path / "serve.log",
        )
        url = f"http://127.0.0.1:{port}"
        try:
            await asyncio.to_thread(wait_ready, url, [serve.popen], timeout=READY_DEADLINE)
            key = f"kill-{secrets.token_hex(4)}"
            email = f"{key}@example.com"

            async def create(api: httpx.AsyncClient) -> httpx.Response:
                return await api.post(
                    "/v1/customers", json={"email": email}, headers={"Idempotency-Key": key}
                )

            async with iso.api(url) as api:
                async with iso.services.sessions() as holder:
                    await holder.execute(text("LOCK TABLE customers IN ACCESS EXCLUSIVE MODE"))
                    holder_pid = await backend_pid(holder)
                    in_flight = asyncio.ensure_future(create(api))
                    holding = await wait_for(
                        lambda: process_waiting(iso.services, holder_pid, "INSERT INTO customers"),
                        deadline_s=60,
                        what="the request to wait inside its transaction",
                        pause=0.02,
                    )
                    victim = _api_process(serve.pid, holding)
                    victim.send_signal(signal.SIGKILL)
                    with pytest.raises(httpx.TransportError):
                        await in_flight
                    await holder.rollback()

                async def retried() -> httpx.Response | None:
                    try:
                        response = await create(api)
                    except httpx.TransportError:
                        return None  # a kept-alive connection to the dead process
                    if response.status_code == 409:
                        # The dead process's transaction is still open until PostgreSQL notices it is gone.
                        assert response.json()["error"]["type"] == "idempotency_error", response.text
                        return None
                    return response

                created = await wait_for(retried, deadline_s=120, what="the retry to be applied", pause=0.5)
                assert created.status_code == 200, created.text
                replay = await create(api)
                assert replay.headers.get("idempotent-replayed") == "true"
                assert replay.json()["id"] == created.json()["id"]
                listed: list[dict[str, Any]] = (await api.get("/v1/customers", params={"limit": 100})).json()[
                    "data"
                ]
                assert [c["id"] for c in listed if c["email"] == email] == [created.json()["id"]]

                def replaced() -> bool:
                    """The dead process reaped and two API processes serving again (uvicorn's supervisor)."""
                    live = api_processes(serve.pid)
                    return victim.pid not in [c.pid for c in live] and len(live) == 2

                await wait_for(replaced, deadline_s=120, what="the supervisor to replace the killed process")
                assert serve.alive(), serve.output()
        finally:
            serve.stop()
        await assert_audit_clean(iso.env)
