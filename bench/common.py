"""Shared helpers for benchmarks: servers (the machine's when DATABASE_URL/REDIS_URL are set, embedded
otherwise), a scratch database per run, and the results file."""

from __future__ import annotations

import asyncio
import os
import platform
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import psutil

from billing.db.engine import asyncpg_url
from billing.db.migrate import upgrade

RESULTS = Path(__file__).parent / "results.md"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    memory = psutil.virtual_memory().total / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {memory:.0f} GiB, Python {platform.python_version()}"


def _with_database(url: str, name: str) -> str:
    base, _, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}" + (f"?{query}" if query else "")


@contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(database_url, redis_url) of a fresh, migrated database; dropped afterwards."""
    started = []
    database_url = os.environ.get("DATABASE_URL")
    redis_url = os.environ.get("REDIS_URL")
    folder = Path(tempfile.mkdtemp(prefix="billing-bench-"))
    try:
        if not database_url:
            from billing.runtime.embedded import EmbeddedPostgres

            postgres = EmbeddedPostgres.start(folder)
            started.append(postgres)
            database_url = postgres.admin_url("postgres")
        if not redis_url:
            from billing.runtime.embedded import EmbeddedRedis

            redis = EmbeddedRedis.start(folder)
            started.append(redis)
            redis_url = redis.url
        name = f"billing_bench_{secrets.token_hex(4)}"
        admin = asyncpg_url(_with_database(database_url, "postgres")).replace("+asyncpg", "")

        async def run(sql: str) -> None:
            connection = await asyncpg.connect(admin)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(run(f'CREATE DATABASE "{name}"'))
        url = _with_database(database_url, name)
        upgrade(url)
        try:
            yield url, redis_url
        finally:
            asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        for server in reversed(started):
            server.stop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def record(title: str, lines: list[str]) -> None:
    """Print the figures and append them, dated, to bench/results.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"## {title} — {stamp}", f"Machine: {machine()}", "", *lines, ""]
    print("\n".join(block))
    existing = (
        RESULTS.read_text()
        if RESULTS.exists()
        else "# Benchmark results\n\nAppended by the scripts in bench/.\n\n"
    )
    RESULTS.write_text(existing + "\n".join(block) + "\n")
