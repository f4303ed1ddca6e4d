"""Embedded PostgreSQL and Redis (SPEC §2): real servers from pip packages, restartable, no stray process."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import psutil
import pytest
import redis.asyncio as aioredis
import redis.exceptions
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from billing.runtime.embedded import (
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    _socket_dir_for,
    ensure_database,
)

REPO = Path(__file__).resolve().parents[2]

OWNER_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, signal, sys, time
    from pathlib import Path
    import asyncpg
    from billing.runtime.embedded import EmbeddedPostgres, EmbeddedRedis

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if launched with SIGINT ignored
    data_dir = Path(sys.argv[1])
    pg = EmbeddedPostgres.start(data_dir)
    try:
        rd = EmbeddedRedis.start(data_dir)
        try:
            async def seed() -> None:
                conn = await asyncpg.connect(pg.url)
                await conn.execute("CREATE TABLE IF NOT EXISTS seen (who text)")
                await conn.execute("INSERT INTO seen VALUES ('owner')")
                await conn.close()
            asyncio.run(seed())
            print(json.dumps({"pg_pid": pg.pid, "redis_pid": rd.pid, "redis_url": rd.url}), flush=True)
            while True:
                time.sleep(0.05)
        finally:
            rd.stop()
    finally:
        pg.stop()
    """
)


def _server_processes(folder: Path) -> list[psutil.Process]:
    """Live (non-zombie) postgres / redis-server processes working in or naming anything under `folder`."""
    found = []
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] not in ("postgres", "redis-server"):
            continue
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            cwd = proc.cwd().removesuffix(" (deleted)")
            cmdline = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if str(folder) in cmdline or cwd == str(folder) or cwd.startswith(f"{folder}/"):
            found.append(proc)
    return found


def _gone(pids: list[int]) -> bool:
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


@pytest.fixture
def owner_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, object]]]:
    """Another process that starts both servers on tmp_path, seeds a row and waits."""
    child = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(tmp_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    line = child.stdout.readline()
    if not line:
        child.wait(10)
        pytest.fail(f"owner process failed: {child.stderr.read() if child.stderr else ''}")
    try:
        yield child, json.loads(line)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(10)


async def test_start_use_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    pg = EmbeddedPostgres.start(tmp_path)
    rd = EmbeddedRedis.start(tmp_path)
    try:
        assert pg.owned
        assert pg.initialized
        assert rd.owned
        assert pg.pgdata == tmp_path / "postgres" / "data"
        assert pg.url.startswith("postgresql://")
        assert "/billing?" in pg.url
        password = (tmp_path / "redis" / "password").read_text().strip()
        assert len(password) >= 32
        assert rd.url == f"redis://:{password}@127.0.0.1:{rd.port}/0"
        assert rd.port not in (6379, 5432)

        conn = await asyncpg.connect(pg.url)
        try:
            assert (await conn.fetchval("SELECT version()")).startswith("PostgreSQL 18")
            assert await conn.fetchval("SELECT current_database()") == "billing"
            assert int(await conn.fetchval("SHOW max_connections")) >= 200
            await conn.execute("CREATE TABLE kept (v text)")
            await conn.execute("INSERT INTO kept VALUES ('before restart')")
        finally:
            await conn.close()

        engine = create_async_engine(pg.async_url)
        try:
            async with engine.connect() as sa_conn:
                assert (await sa_conn.execute(text("SELECT count(*) FROM kept"))).scalar() == 1
        finally:
            await engine.dispose()

        client = aioredis.from_url(rd.url)
        try:
            assert await client.ping()
            await client.set("k", "v")
            assert await client.get("k") == b"v"
        finally:
            await client.aclose()

        pids = [pg.pid, rd.pid, *(c.pid for c in psutil.Process(pg.pid).children())]
        assert len(pids) > 3  # postmaster, redis and the postmaster's auxiliary processes
    finally:
        pg.stop()
        rd.stop()
    pg.stop()  # idempotent
    rd.stop()
    assert not pg.running
    assert not rd.running
    assert _gone(pids)
    assert _server_processes(tmp_path) == []
    assert not (tmp_path / "redis" / "redis.pid").exists()

    # A stale postmaster.pid naming a dead process (as after a crash) does not prevent the restart.
    dead = psutil.Popen(["true"])
    dead.wait()
    (pg.pgdata / "postmaster.pid").write_text(f"{dead.pid}\n{pg.pgdata}\n0\n5432\n\n\n0 0\nready   \n")
    version_mtime = (pg.pgdata / "PG_VERSION").stat().st_mtime_ns

    with EmbeddedPostgres.start(tmp_path) as again:
        assert again.owned
        assert not again.initialized
        assert (again.pgdata / "PG_VERSION").stat().st_mtime_ns == version_mtime
        conn = await asyncpg.connect(again.url)
        try:
            assert await conn.fetchval("SELECT v FROM kept") == "before restart"
        finally:
            await conn.close()
    assert _server_processes(tmp_path) == []


async def test_deep_data_dir_puts_the_socket_in_a_short_folder(tmp_path: Path) -> None:
    deep = tmp_path / ("with space " + "d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    socket_dir = _socket_dir_for(deep / "postgres")
    assert socket_dir != deep / "postgres"
    assert len(str(socket_dir / ".s.PGSQL.5432")) <= 107
    assert _socket_dir_for(tmp_path / "postgres") == tmp_path / "postgres"

    with EmbeddedPostgres.start(deep) as pg:
        assert pg.socket_dir == socket_dir
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval("SELECT 1") == 1
        finally:
            await conn.close()
        assert await ensure_database(pg.admin_url(), "second") is True
        assert await ensure_database(pg.admin_url(), "second") is False
        conn = await asyncpg.connect(pg.admin_url("second"))
        await conn.close()
    assert not socket_dir.exists()
    assert _server_processes(deep) == []


async def test_attach_to_a_live_owner_then_replace_orphans_of_a_killed_owner(
    tmp_path: Path, owner_process: tuple[subprocess.Popen[str], dict[str, object]]
) -> None:
    child, started = owner_process

    # While the owner lives, another start attaches: same servers, and stop() leaves them running.
    pg = EmbeddedPostgres.start(tmp_path)
    rd = EmbeddedRedis.start(tmp_path)
    assert not pg.owned
    assert pg.pid == started["pg_pid"]
    assert not rd.owned
    assert rd.pid == started["redis_pid"]
    assert rd.url == started["redis_url"]
    pg.stop()
    rd.stop()
    assert pg.running is False
    assert psutil.pid_exists(pg.pid)
    assert psutil.pid_exists(rd.pid)

    # The owner is SIGKILLed: its servers survive as orphans; the next start replaces both.
    child.kill()
    child.wait(10)
    old = [int(str(started["pg_pid"])), int(str(started["redis_pid"]))]
    assert not _gone(old)
    pg = EmbeddedPostgres.start(tmp_path)
    rd = EmbeddedRedis.start(tmp_path)
    try:
        assert pg.owned
        assert rd.owned
        assert not pg.initialized
        assert _gone(old)
        assert (tmp_path / "redis" / "redis.pid").read_text().strip() == str(rd.pid)
        conn = await asyncpg.connect(pg.url)
        try:
            assert await conn.fetchval("SELECT who FROM seen") == "owner"
        finally:
            await conn.close()
        client = aioredis.from_url(rd.url)
        try:
            assert await client.ping()
        finally:
            await client.aclose()
    finally:
        pg.stop()
        rd.stop()
    assert _server_processes(tmp_path) == []


async def test_redis_stale_pid_file_of_a_dead_owner_is_killed(tmp_path: Path) -> None:
    first = EmbeddedRedis.start(tmp_path)
    try:
        # Make the recorded owner a process that no longer exists: the server is now a stale leftover.
        dead = psutil.Popen(["true"])
        dead.wait()
        owner = json.loads((tmp_path / "redis" / "owner.json").read_text())
        owner["owner_pid"] = dead.pid
        (tmp_path / "redis" / "owner.json").write_text(json.dumps(owner))
        assert (tmp_path / "redis" / "redis.pid").read_text().strip() == str(first.pid)

        second = EmbeddedRedis.start(tmp_path)
        try:
            assert second.owned
            assert second.pid != first.pid
            assert _gone([first.pid])
            client = aioredis.from_url(second.url)
            try:
                assert await client.ping()
            finally:
                await client.aclose()
        finally:
            second.stop()
    finally:
        first.stop()  # its server is gone already: no error
    assert _server_processes(tmp_path) == []


def test_sigint_to_the_owner_leaves_no_process(
    tmp_path: Path, owner_process: tuple[subprocess.Popen[str], dict[str, object]]
) -> None:
    child, started = owner_process
    children = [int(str(started["pg_pid"])), int(str(started["redis_pid"]))]
    children += [c.pid for c in psutil.Process(children[0]).children()]
    os.kill(child.pid, signal.SIGINT)
    child.wait(30)
    assert _gone(children)
    assert _server_processes(tmp_path) == []
    assert not (tmp_path / "postgres" / "owner.json").exists()


def test_redis_on_a_taken_port_fails_clearly_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EmbeddedServerError, match=f"could not bind 127.0.0.1:{port}") as failure:
            EmbeddedRedis.start(tmp_path, port=port)
    assert "Address already in use" in str(failure.value)  # the log tail is part of the message
    assert _server_processes(tmp_path) == []


async def test_embedded_redis_needs_its_generated_password(tmp_path: Path) -> None:
    """Any local user can reach a loopback port: the embedded Redis takes commands only with the password kept in
    the data dir (mode 0600), which never appears on its command line (issue #12 item 14)."""
    rd = EmbeddedRedis.start(tmp_path)
    try:
        password_file = tmp_path / "redis" / "password"
        password = password_file.read_text().strip()
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "redis" / "redis.conf").stat().st_mode) == 0o600
        assert not any(password in part for part in psutil.Process(rd.pid).cmdline())

        anonymous = aioredis.from_url(f"redis://127.0.0.1:{rd.port}/0")
        try:
            with pytest.raises(redis.exceptions.AuthenticationError):
                await anonymous.set("queue", "anything")
        finally:
            await anonymous.aclose()
        assert await _pings(rd.url)
    finally:
        rd.stop()
    # Started again on the same data dir: the same password (every process sharing the folder finds it).
    again = EmbeddedRedis.start(tmp_path)
    try:
        assert f":{password}@" in again.url
    finally:
        again.stop()


async def _pings(url: str) -> bool:
    client = aioredis.from_url(url)
    try:
        return bool(await client.ping())
    finally:
        await client.aclose()
