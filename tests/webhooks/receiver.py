"""A real HTTP server on 127.0.0.1 for delivery tests: records every request and answers as told (a status,
headers such as Retry-After, a delay past the client's timeout), per path. Plain asyncio, HTTP/1.1 keep-alive."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from http import HTTPStatus


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b'{"received": true}'
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._scripted: dict[str, deque[Reply]] = {}
        self._default: dict[str, Reply] = {}
        self._server: asyncio.Server | None = None
        self.port = 0
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}
        self.arrived = asyncio.Event()

    def url(self, path: str = "/hooks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def always(self, reply: Reply, path: str = "/hooks") -> None:
        """Answer every request to `path` with `reply` (after any scripted replies)."""
        self._default[path] = reply

    def then(self, *replies: Reply, path: str = "/hooks") -> None:
        """Answer the next requests to `path` with these replies, in order."""
        self._scripted.setdefault(path, deque()).extend(replies)

    def to(self, path: str = "/hooks") -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, count: int, within: float = 10.0) -> list[Received]:
        """Wait until `count` requests arrived in all (AssertionError after `within` seconds)."""
        try:
            async with asyncio.timeout(within):
                while len(self.requests) < count:
                    self.arrived.clear()
                    await self.arrived.wait()
        except TimeoutError:
            raise AssertionError(f"expected {count} requests, got {len(self.requests)}") from None
        return self.requests

    def _reply_for(self, path: str) -> Reply:
        queue = self._scripted.get(path)
        if queue:
            return queue.popleft()
        return self._default.get(path, Reply())

    async def start(self, port: int = 0) -> Receiver:
        """Listen on `port` (a free one by default; the same one again to come back after `stop`)."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                _method, path, _version = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Received(path=path, headers=headers, body=body, at=time.time()))
                self.arrived.set()
                reply = self._reply_for(path)
                self.in_flight[path] = self.in_flight.get(path, 0) + 1
                self.max_in_flight[path] = max(self.max_in_flight.get(path, 0), self.in_flight[path])
                try:
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                finally:
                    self.in_flight[path] -= 1
                extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers.items())
                writer.write(
                    f"HTTP/1.1 {reply.status} {HTTPStatus(reply.status).phrase}\r\n"
                    f"content-length: {len(reply.body)}\r\ncontent-type: application/json\r\n{extra}\r\n".encode()
                    + reply.body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
