"""Helpers for the payment tests: standalone sandbox gateways (real processes, real HTTP), gateway settings,
customers with cards."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

FUTURE_YEAR = 2040


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    args: list[str], url: str, ready_path: str, env: dict[str, str], what: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m billing *args` until it answers 200 on `url + ready_path`; stop it afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + ready_path, timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{what} did not start: {process.stderr.read() if process.stderr else ''}"
                )
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def standalone_sandbox() -> Iterator[str]:
    """`billing sandbox-gateway --port P` in its own process; yields its URL."""
    port = free_port()
    env = {**os.environ, "BILLING_ENV": "test", "BILLING_LOG_LEVEL": "WARNING"}
    url = f"http://127.0.0.1:{port}"
    with serving(["sandbox-gateway", "--port", str(port)], url, "/admin/state", env, "the sandbox gateway"):
        yield url


async def run_process(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run in a thread, so the test's event loop keeps serving while the process runs."""
    result: subprocess.CompletedProcess[str] = await asyncio.to_thread(subprocess.run, *args, **kwargs)
    return result


async def sandbox_admin(url: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        response = await (client.post(path, json=body) if body is not None else client.get(path))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data


async def set_mode(url: str, mode: str, **extra: int) -> None:
    await sandbox_admin(url, "/admin/mode", {"mode": mode, **extra})


async def charges_with_key(url: str, key: str) -> list[dict[str, Any]]:
    state = await sandbox_admin(url, "/admin/state")
    return [c for c in state["charges"] if c["idempotency_key"] == key]


async def configure_gateways(api: httpx.AsyncClient, *connections: dict[str, Any]) -> dict[str, Any]:
    response = await api.patch("/v1/settings", json={"gateways": list(connections)})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


async def customer_with_card(
    api: httpx.AsyncClient, number: str, *, locale: str = "en", cvc: str | None = None, default: bool = True
) -> tuple[dict[str, Any], dict[str, Any]]:
    customer = (await api.post("/v1/customers", json={"email": "payer@example.com", "locale": locale})).json()
    card: dict[str, Any] = {"number": number, "exp_month": 12, "exp_year": FUTURE_YEAR}
    if cvc is not None:
        card["cvc"] = cvc
    created = await api.post("/v1/payment_methods", json={"customer": customer["id"], "card": card})
    assert created.status_code == 200, created.text
    pm = created.json()
    if default:
        updated = await api.patch(
            f"/v1/customers/{customer['id']}", json={"default_payment_method": pm["id"]}
        )
        assert updated.status_code == 200, updated.text
        customer = updated.json()
    return customer, pm
