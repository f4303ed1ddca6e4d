"""`billing up`: the whole engine for development in one command.

Starts embedded PostgreSQL and Redis when DATABASE_URL / REDIS_URL are not set, migrates, creates a demo
merchant on first start, runs `billing serve` and `billing worker` as child processes and prints the URLs and the
demo key. Ctrl-C (or SIGTERM) stops everything it started, in reverse order, and waits for each to exit.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

from billing.config import ConfigError, Settings
from billing.db.engine import make_engine, make_sessionmaker, transaction
from billing.db.migrate import upgrade
from billing.merchants.service import NewMerchant, create_merchant
from billing.runtime.listen import PUBLIC_URL_VARIABLE, is_wildcard, listening_url
from billing.settings.service import default_merchant_settings

DEMO_FILE = "demo-merchant.json"
READY_TIMEOUT = 60.0


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # Only the first signal interrupts; a second Ctrl-C must not break off the orderly shutdown.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise _Stop


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


async def _demo_merchant(database_url: str, data_dir: Path) -> NewMerchant:
    """The demo merchant recorded in the data dir, or a new one. Its keys are kept in that file (mode 0600)
    because a key is otherwise shown only once; this is a development convenience only."""
    from sqlalchemy import select

    from billing.merchants.models import Merchant

    path = data_dir / DEMO_FILE
    engine = make_engine(database_url, null_pool=True)
    try:
        sessions = make_sessionmaker(engine)
        if path.exists():
            saved = json.loads(path.read_text())
            async with sessions() as session:
                if await session.scalar(select(Merchant.id).where(Merchant.id == saved["id"])):
                    return NewMerchant(**saved)
        async with transaction(sessions) as session:
            merchant = await create_merchant(
                session, "Demo merchant", settings=default_merchant_settings(production=False)
            )
        path.write_text(json.dumps(merchant.__dict__, indent=2))
        path.chmod(0o600)
        return merchant
    finally:
        await engine.dispose()


def wait_ready(url: str, processes: Sequence[subprocess.Popen[Any]], timeout: float = READY_TIMEOUT) -> None:
    """Return once `url`/ready answers 200; a ConfigError if one of `processes` exits first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise ConfigError(
                    f"{' '.join(map(str, process.args))} exited with code {process.returncode} "  # type: ignore[arg-type]
                    "while starting; see its messages above."
                )
        try:
            if httpx.get(url + "/ready", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ConfigError(f"the API did not become ready at {url}/ready within {timeout:.0f} s.")


def _terminate(process: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def run_up(settings: Settings, *, host: str, port: int) -> int:
    started_at = time.monotonic()
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    if port == 0:
        port = _any_free_port(host)
    if not _port_free(host, port):
        raise ConfigError(f"port {port} on {host} is in use: stop what runs there, or pass --port.")
    api_url = listening_url(host, port)
    # Hosted, PDF, portal and email links (the worker writes emails too): where this API really listens.
    public_url = settings.public_url or api_url
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    servers: list[Any] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        database_url, redis_url = settings.database_url, settings.redis_url
        if not database_url:
            from billing.runtime.embedded import EmbeddedPostgres

            postgres = EmbeddedPostgres.start(data_dir)
            servers.append(postgres)
            database_url = postgres.url
        if not redis_url:
            from billing.runtime.embedded import EmbeddedRedis

            redis = EmbeddedRedis.start(data_dir)
            servers.append(redis)
            redis_url = redis.url
        upgrade(database_url)
        merchant = asyncio.run(_demo_merchant(database_url, data_dir))

        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "BILLING_DATA_DIR": str(data_dir),
            "BILLING_ENV": settings.env,
            PUBLIC_URL_VARIABLE: public_url,
        }
        command = [sys.executable, "-m", "billing"]
        # Each child in its own session: Ctrl-C reaches only us, and we stop them in order.
        for arguments in (["serve", "--host", host, "--port", str(port)], ["worker"]):
            children.append(subprocess.Popen([*command, *arguments], env=env, start_new_session=True))  # noqa: S603
        wait_ready(api_url, children)
        elapsed = time.monotonic() - started_at
        print(
            f"\nBilling engine ready in {elapsed:.1f} s ({settings.env}; data in {data_dir})\n"
            f"  API:      {api_url}/v1\n"
            f"  OpenAPI:  {api_url}/schema/openapi.json   (browse it at {api_url}/schema)\n"
            f"  Health:   {api_url}/ready\n"
            f"  Links:    {public_url}   {_links_note(settings, host)}\n"
            f"  Console:  {api_url}/console   (a user: billing users create --merchant {merchant.id} "
            "--email you@example.com --role admin)\n"
            f"  Emails:   {_mail_destination(settings)}\n"
            f"  Demo merchant {merchant.id}\n"
            f"    secret key:      {merchant.secret_key}\n"
            f"    publishable key: {merchant.publishable_key}\n\n"
            f"  Try: curl -X POST {api_url}/v1/customers -H 'Authorization: Bearer {merchant.secret_key}' "
            f"-H 'Content-Type: application/json' -d '{{\"email\": \"ada@example.com\"}}'\n\n"
            "Press Ctrl-C to stop everything.",
            flush=True,
        )
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        failed = [child for child in children if child.poll() is not None]
        print(
            f"billing: {' '.join(map(str, failed[0].args))} exited with code {failed[0].returncode}; "  # type: ignore[arg-type]
            "stopping the rest.",
            file=sys.stderr,
        )
        return 1
    except _Stop:
        print("\nstopping...", file=sys.stderr, flush=True)
        return 0
    finally:
        # Ignore further signals while shutting down, so nothing is left half-stopped.
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        for child in reversed(children):
            _terminate(child)
        for server in reversed(servers):
            server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _any_free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def _links_note(settings: Settings, host: str) -> str:
    """Where the base of hosted, portal and email links comes from, said beside it."""
    if settings.public_url:
        return "(hosted invoices, portal and emails; BILLING_PUBLIC_URL)"
    if is_wildcard(host):
        return "(hosted invoices, portal and emails; set BILLING_PUBLIC_URL for other machines)"
    return "(hosted invoices, portal and emails; set BILLING_PUBLIC_URL to change)"


def _mail_destination(settings: Settings) -> str:
    """Where customer emails go: the SMTP server, or the folder of .eml files a developer opens."""
    from billing.notifications.transport import outbox_folder, parse_smtp_url

    if settings.smtp_url:
        config = parse_smtp_url(settings.smtp_url)
        return f"SMTP server {config.host}:{config.port} (SMTP_URL)"
    return f"{outbox_folder(settings)}/*.eml (no SMTP_URL set)"
