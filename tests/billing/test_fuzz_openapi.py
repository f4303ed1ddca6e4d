"""Bad input never yields a 500: schemathesis generates requests from our own OpenAPI document (valid and
invalid ones) and sends them over real HTTP to a real `billing serve` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from billing.config import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="session")
def live_server(settings: Settings) -> Iterator[dict[str, str]]:
    assert settings.database_url is not None and settings.redis_url is not None
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_ENV": "test",
        "BILLING_REDIS_PREFIX": settings.redis_prefix,
        "BILLING_LOG_LEVEL": "ERROR",
    }
    created = subprocess.run(
        [sys.executable, "-m", "billing", "merchants", "create", "Fuzz"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    key = json.loads(created.stdout)["secret_key"]
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "billing", "serve", "--port", str(port)], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise AssertionError("billing serve did not become ready")
        yield {"url": url, "key": key}
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_request_yields_a_server_error(live_server: dict[str, str], mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(live_server["url"] + "/schema/openapi.json")
    headers = {"Authorization": f"Bearer {live_server['key']}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12
    sent: list[int] = []

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def call(case: Any) -> None:
            response = case.call(base_url=live_server["url"], headers=headers, timeout=30)
            sent.append(response.status_code)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
            )
            if response.status_code >= 400:
                error = response.json()["error"]
                assert error["type"]
                assert error["message"]

        call()
    # The generator really exercised every route, with both answers that succeed and answers that refuse.
    assert len(sent) >= 5 * len(operations)
    print(f"{mode.value}: {len(sent)} requests, statuses {sorted(set(sent))}")
