"""Real `billing` processes for tests: `billing serve` on a free port, `billing up` on a database of its own.

Every process is started with its own free port, waited for on /ready, and stopped (its whole process group)
when the `with` block ends, whatever happened inside it.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from billing.config import Settings
from billing.runtime.up import wait_ready
from tests.conftest import run_admin_sql, with_database

READY_DEADLINE = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def base_env(**overrides: str) -> dict[str, str]:
    """The test process's environment without the settings a test decides itself."""
    removed = ("DATABASE_URL", "REDIS_URL", "BILLING_PUBLIC_URL", "BILLING_DATA_DIR", "BILLING_REDIS_PREFIX")
    env = {k: v for k, v in os.environ.items() if k not in removed}
    env.update({"BILLING_LOG_LEVEL": "WARNING", **overrides})
    return env


def suite_env(settings: Settings, redis_url: str, **overrides: str) -> dict[str, str]:
    """The environment of a process that shares the suite's database and Redis prefix (a server, no worker)."""
    assert settings.database_url is not None
    return base_env(
        DATABASE_URL=settings.database_url,
        REDIS_URL=redis_url,
        BILLING_REDIS_PREFIX=settings.redis_prefix,
        BILLING_ENV="test",
        **overrides,
    )


def create_merchant(env: dict[str, str], name: str) -> dict[str, str]:
    """`billing merchants create NAME`: the printed id and keys."""
    result = subprocess.run(
        [sys.executable, "-m", "billing", "merchants", "create", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    created: dict[str, str] = json.loads(result.stdout)
    return created


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return int(process.returncode)


@contextmanager
def serve(env: dict[str, str], *, host: str = "127.0.0.1", port: int | None = None) -> Iterator[str]:
    """`billing serve --host H --port P` (a free port unless given); yields the URL it answers on."""
    port = free_port() if port is None else port
    process = subprocess.Popen(
        [sys.executable, "-m", "billing", "serve", "--host", host, "--port", str(port)],
        env=env,
        start_new_session=True,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, [process], timeout=READY_DEADLINE)
        yield url
    finally:
        _stop(process)


@dataclass(frozen=True)
class Up:
    """A running `billing up`: the lines it printed and what they name."""

    process: subprocess.Popen[str]
    port: int
    data_dir: Path
    printed: list[str]
    # The database it runs on when it is not the embedded one of data_dir.
    database_url: str | None = None

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def value(self, label: str) -> str:
        """The last word of the printed line that starts with `label` (e.g. "secret key:")."""
        for line in self.printed:
            if line.strip().startswith(label):
                return line.split()[-1]
        raise AssertionError(f"billing up printed no {label!r} line: {self.printed}")


@contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of `admin_url`, dropped afterwards: for processes that run a worker,
    which must not take the scheduled work of the suite's shared database."""
    name = f"billing_live_{secrets.token_hex(4)}"
    run_admin_sql(admin_url, f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        run_admin_sql(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def billing_up(
    data_dir: Path, *, admin_database_url: str | None, redis_url: str | None, port: int | None = None
) -> Iterator[Up]:
    """`billing up --port P` with a fresh data dir: on a database of its own on the machine's PostgreSQL and a
    Redis prefix of its own when the suite runs against servers, on embedded servers otherwise."""
    port = free_port() if port is None else port
    with own_database(admin_database_url) if admin_database_url else _nothing() as database_url:
        env = base_env(BILLING_DATA_DIR=str(data_dir), BILLING_ENV="development")
        if database_url and redis_url:
            env.update(
                DATABASE_URL=database_url,
                REDIS_URL=redis_url,
                BILLING_REDIS_PREFIX=f"billing-live-{secrets.token_hex(4)}",
            )
        process = subprocess.Popen(
            [sys.executable, "-m", "billing", "up", "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        printed: list[str] = []
        try:
            assert process.stdout is not None
            deadline = time.monotonic() + READY_DEADLINE
            while time.monotonic() < deadline:
                line = process.stdout.readline()
                if not line:
                    raise AssertionError(
                        f"billing up exited ({process.poll()}); it printed: {''.join(printed)}"
                    )
                printed.append(line.rstrip("\n"))
                if "Press Ctrl-C" in line:
                    break
            else:
                raise AssertionError(f"billing up was not ready in time; it printed: {printed}")
            # Keep reading what it prints, so a full pipe never blocks it.
            threading.Thread(target=_drain, args=(process, printed), daemon=True).start()
            yield Up(
                process=process, port=port, data_dir=data_dir, printed=printed, database_url=database_url
            )
        except BaseException:
            _stop(process, signal.SIGINT)
            raise
        # Ctrl-C, as a person stops it: it stops its children and servers itself.
        returned = _stop(process, signal.SIGINT)
        assert returned == 0, f"billing up exited with {returned}; it printed: {printed}"


def _drain(process: subprocess.Popen[str], printed: list[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        printed.append(line.rstrip("\n"))


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
