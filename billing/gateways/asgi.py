"""A tiny raw-ASGI frame for the sandboxes (the card processor's and the channels') and the engine's channel
notification endpoint: one request in (method, path, query, headers, body), one response out. Raw ASGI rather than
the API's framework because these speak other formats byte for byte (a processor's JSON, form posts, a bare
"success", signed headers), and because the same object serves a standalone port (`serve`), a mount inside the
engine, and an in-process `httpx.ASGITransport`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY = 1_048_576


@dataclass(frozen=True)
class HttpRequest:
    method: str
    # Inside the app: no trailing slash, never empty ("/").
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]
    body: bytes
    # Scheme and host as the client addressed them (absolute links in pages and answers).
    origin: str
    # The path and query exactly as sent (what WeChat Pay's request signature covers).
    target: str = ""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    def form(self) -> dict[str, str]:
        """An application/x-www-form-urlencoded body (UTF-8), first value of each field."""
        pairs = parse_qsl(self.body.decode("utf-8", errors="replace"), keep_blank_values=True)
        out: dict[str, str] = {}
        for key, value in pairs:
            out.setdefault(key, value)
        return out

    def parts(self) -> list[str]:
        return [p for p in self.path.split("/") if p]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, payload: Any, headers: list[tuple[str, str]] | None = None) -> HttpResponse:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return cls(status, body, [("content-type", "application/json; charset=utf-8"), *(headers or [])])

    @classmethod
    def text(cls, status: int, text: str, content_type: str = "text/plain; charset=utf-8") -> HttpResponse:
        return cls(status, text.encode(), [("content-type", content_type)])

    @classmethod
    def html(cls, status: int, page: str) -> HttpResponse:
        return cls(
            status,
            page.encode(),
            [
                ("content-type", "text/html; charset=utf-8"),
                ("cache-control", "no-store"),
                ("x-content-type-options", "nosniff"),
            ],
        )

    @classmethod
    def redirect(cls, location: str) -> HttpResponse:
        return cls(302, b"", [("location", location), ("cache-control", "no-store")])


class MiniApp:
    """Subclasses implement `handle`; everything else (lifespan, body, headers) is done here."""

    async def handle(self, request: HttpRequest) -> HttpResponse:
        raise NotImplementedError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        body = await _read(receive)
        headers = {
            bytes(k).decode("latin-1").lower(): bytes(v).decode("latin-1") for k, v in scope["headers"]
        }
        query = dict(
            parse_qsl(bytes(scope.get("query_string", b"")).decode("latin-1"), keep_blank_values=True)
        )
        host = headers.get("host", "localhost")
        raw_query = bytes(scope.get("query_string", b"")).decode("latin-1")
        # httpx's ASGI transport puts the query into raw_path, uvicorn does not.
        raw_path = bytes(scope.get("raw_path") or scope["path"].encode()).decode("latin-1").split("?", 1)[0]
        request = HttpRequest(
            method=scope["method"].upper(),
            path="/" + "/".join(p for p in scope["path"].split("/") if p),
            query=query,
            headers=headers,
            body=body if body is not None else b"",
            origin=f"{scope.get('scheme', 'http')}://{host}",
            target=raw_path + (f"?{raw_query}" if raw_query else ""),
        )
        if body is None:
            response = HttpResponse.text(413, "request body too large")
        else:
            response = await self.handle(request)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [
                    (k.encode("latin-1"), v.encode("latin-1"))
                    for k, v in [*response.headers, ("content-length", str(len(response.body)))]
                ],
            }
        )
        await send({"type": "http.response.body", "body": response.body})


async def _read(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def serve(app: ASGIApp, host: str, port: int) -> None:
    """Serve `app` over HTTP until interrupted (a standalone sandbox)."""
    import uvicorn

    uvicorn.run(
        app, host=host, port=port, lifespan="on", log_level="warning", access_log=False, server_header=False
    )
