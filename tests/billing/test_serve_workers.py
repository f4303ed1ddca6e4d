"""`billing serve --workers N` (issue 16 item 1): N API processes on one port, a graceful stop that finishes the
requests in flight, and /ready answering 503 while a process drains."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from billing.api.health import start_draining, stop_draining
from billing.config import Settings
from billing.merchants.service import NewMerchant
from billing.runtime.up import wait_ready
from tests.billing.live import READY_DEADLINE, free_port, suite_env
from tests.billing.processes import api_processes, assert_audit_clean, billing_env
from tests.conftest import Servers


@pytest.fixture
def two_workers(settings: Settings, servers: Servers) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "serve", "--port", str(port), "--workers", "2"],
        env=suite_env(settings, servers.redis_url),
        start_new_session=True,
        text=True,
    )
    try:
        wait_ready(f"http://127.0.0.1:{port}", [process], timeout=READY_DEADLINE)
        yield process, port
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)


# Starting two API processes takes 10-30 s on the shared CI cores (each imports the application and opens its
# pools); the stop is bounded by the 60 s wait below and the whole test by its timeout.
@pytest.mark.fault
@pytest.mark.timeout(240)
async def test_two_workers_share_the_port_and_sigterm_lets_a_request_in_flight_finish(
    two_workers: tuple[subprocess.Popen[str], int],
    api: httpx.AsyncClient,
    merchant: NewMerchant,
    settings: Settings,
) -> None:
    process, port = two_workers
    assert len(api_processes(process.pid)) == 2
    body = json.dumps({"email": "in-flight@example.com"}).encode()
    head = (
        f"POST /v1/customers HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {merchant.secret_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        # The request is in flight: its head and part of its body are sent, the rest still to come.
        connection.sendall(head + body[:5])
        # Give a worker time to take the connection and start the request (ordering, not an assertion).
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        connection.sendall(body[5:])
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 200 OK", answer
    created = json.loads(rest.partition(b"\r\n\r\n")[2])
    # The customer the stopping server created is there, with the email sent after the signal.
    found = await api.get(f"/v1/customers/{created['id']}")
    assert found.json()["email"] == "in-flight@example.com"
    assert process.wait(60) == 0
    await assert_audit_clean(billing_env(settings), merchant.id)


async def test_ready_answers_503_while_the_process_drains(client: httpx.AsyncClient) -> None:
    assert (await client.get("/ready")).status_code == 200
    start_draining()
    try:
        draining = await client.get("/ready")
    finally:
        stop_draining()
    assert (draining.status_code, draining.json()["status"]) == (503, "draining")
