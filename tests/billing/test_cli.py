"""The `billing` command as a user runs it: real processes, real servers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from billing.config import Settings


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(overrides)
    return env


def _processes_under(folder: Path) -> list[str]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if str(folder) in cmdline:
            found.append(cmdline)
    return found


def _start_up(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], dict[str, str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "up", "--port", str(port)],
        env=_env(BILLING_DATA_DIR=str(data_dir), BILLING_LOG_LEVEL="WARNING"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    printed: dict[str, str] = {}
    deadline = time.monotonic() + 120
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "secret key:" in line:
            printed["secret_key"] = line.split()[-1]
        if "Demo merchant" in line:
            printed["merchant"] = line.split()[-1]
        if "OpenAPI:" in line:
            printed["openapi"] = line.split()[1]
        if "Press Ctrl-C" in line:
            return process, printed
    process.kill()
    raise AssertionError(f"billing up did not become ready; it printed {printed}")


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(60)
    finally:
        if process.poll() is None:
            process.kill()


def test_up_starts_everything_prints_a_working_key_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = _free_port()
    process, printed = _start_up(data_dir, port)
    try:
        assert printed["openapi"] == f"http://127.0.0.1:{port}/schema/openapi.json"
        assert httpx.get(printed["openapi"], timeout=10).status_code == 200
        created = httpx.post(
            f"http://127.0.0.1:{port}/v1/customers",
            json={"email": "ada@example.com"},
            headers={"Authorization": f"Bearer {printed['secret_key']}"},
            timeout=10,
        )
        assert created.status_code == 200, created.text
        customer_id = created.json()["id"]
    finally:
        assert _stop(process) == 0
    assert _processes_under(data_dir) == []

    # A second `billing up` finds its data again: same demo merchant and key, the customer still there.
    process, again = _start_up(data_dir, port)
    try:
        assert again["merchant"] == printed["merchant"]
        assert again["secret_key"] == printed["secret_key"]
        fetched = httpx.get(
            f"http://127.0.0.1:{port}/v1/customers/{customer_id}",
            headers={"Authorization": f"Bearer {again['secret_key']}"},
            timeout=10,
        )
        assert fetched.status_code == 200
    finally:
        assert _stop(process) == 0
    assert _processes_under(data_dir) == []


def test_merchants_create_prints_one_json_object_with_working_keys(settings: Settings) -> None:
    assert settings.database_url is not None
    result = subprocess.run(
        [sys.executable, "-m", "billing", "merchants", "create", "Acme 上海"],
        env=_env(DATABASE_URL=settings.database_url, BILLING_LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    created = json.loads(result.stdout)
    assert set(created) >= {"id", "secret_key", "publishable_key"}
    assert created["id"].startswith("mer_")
    assert created["secret_key"].startswith("sk_")
    assert created["publishable_key"].startswith("pk_")


def test_commands_without_a_database_say_what_to_set() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "billing", "serve"], env=_env(), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "DATABASE_URL" in result.stderr
    assert "billing up" in result.stderr
