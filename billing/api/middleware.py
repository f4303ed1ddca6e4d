"""The /v1 envelope, implemented once for every resource: read the body (bounded), authenticate the key, claim
the Idempotency-Key, run the handler inside one transaction, and send nothing until that transaction committed.

It wraps the Litestar app at the ASGI level, so it sees finished responses (errors included) and can decide what
to commit: a 2xx commits the handler's work; a 4xx rolls the work back but still stores the answer for
idempotent replay; a 5xx rolls everything back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, MutableMapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, AsyncSessionTransaction

from billing.api import idempotency
from billing.api.bulkhead import Bulkhead
from billing.api.context import SCOPE_KEY, RequestContext
from billing.api.cors import CorsPolicy
from billing.api.errors import JSON, error_headers, error_json
from billing.api.rate_limit import Bucket, Budget, Decision, RateLimiter, refusal
from billing.api.request_text import check_request_text
from billing.clock import utc_now
from billing.db.availability import is_database_unavailable
from billing.db.engine import take_kept_writes
from billing.errors import (
    ApiError,
    AuthenticationFailed,
    BillingError,
    PayloadTooLarge,
    PermissionDenied,
    database_unavailable,
)
from billing.ids import random_token
from billing.merchants.service import Principal, authenticate, hash_key
from billing.services import Services

log = logging.getLogger("billing.api")

# Raw ASGI, typed loosely on purpose: this layer sits outside the framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# Routes a publishable key may call: only client-side tokenization (SPEC §3).
PUBLISHABLE_ROUTES = frozenset({("POST", "/v1/tokens")})


class BodyTooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


class _CapturedResponse:
    def __init__(self) -> None:
        self.status = 500
        self.headers: list[tuple[bytes, bytes]] = []
        self.body = bytearray()

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self.headers = list(message.get("headers", []))
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if name.lower() == b"content-type":
                return value.decode("latin-1")
        return ""


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


async def _send(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _json_headers(
    request_id: str, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"request-id", request_id.encode()),
        *(extra or []),
    ]


# Methods that only read: their handlers run without a savepoint of their own (see _UnitOfWork).
READ_METHODS = frozenset({"GET", "HEAD"})


class _UnitOfWork:
    """The request's transaction, and the savepoint the handler works in (rolled back on a 4xx). A read (GET,
    HEAD) has no savepoint: nothing of its own comes before its handler in the transaction (no Idempotency-Key),
    so a 4xx rolls the whole transaction back, and a read that answers 2xx saves two round trips (SAVEPOINT,
    RELEASE)."""

    def __init__(self, session: AsyncSession, transaction: AsyncSessionTransaction) -> None:
        self.session = session
        self.transaction = transaction
        self.work: AsyncSessionTransaction | None = None
        self.idempotency: tuple[str, str] | None = None

    async def claim_key(
        self, *, merchant_id: str, key: str, method: str, path: str, fingerprint: str
    ) -> idempotency.StoredResponse | idempotency.Claimed:
        """idempotency.claim, waiting for a first request that is between two of its transactions: between
        looks this request's transaction is rolled back, so it holds no connection and no lock while it waits."""
        waited = 0.0
        pause = 0.05
        while True:
            try:
                return await idempotency.claim(
                    self.session,
                    merchant_id=merchant_id,
                    key=key,
                    method=method,
                    path=path,
                    fingerprint=fingerprint,
                    now=utc_now(),
                )
            except idempotency.KeyInProgress:
                if waited >= idempotency.WAIT_FOR_FIRST_REQUEST_SECONDS:
                    raise
            await self.transaction.rollback()
            await asyncio.sleep(pause)
            waited += pause
            pause = min(pause * 2, 1.0)
            self.transaction = await self.session.begin()

    async def roll_back_work(self) -> None:
        """Undo the handler's work, keeping what came before it (the Idempotency-Key claim)."""
        if self.work is not None:
            await self.work.rollback()
        else:
            await self.transaction.rollback()
            self.transaction = await self.session.begin()

    @asynccontextmanager
    async def committed(self) -> AsyncIterator[None]:
        """Commit the work so far, run the block outside any transaction of this request (its connection goes
        back to the pool), then go on in a new transaction. For use cases that must record their intent
        before calling the outside world (a charge): a crash inside the block leaves that record for the
        janitors. The Idempotency-Key row commits as in progress and is locked again afterwards, so a
        duplicate arriving meanwhile is told the first request is still being processed."""
        in_savepoint = self.work is not None
        if self.work is not None and self.work.is_active:
            await self.work.commit()
        await self.transaction.commit()
        try:
            yield
        finally:
            self.transaction = await self.session.begin()
            if self.idempotency is not None:
                await idempotency.relock(
                    self.session, merchant_id=self.idempotency[0], key=self.idempotency[1]
                )
            if in_savepoint:
                self.work = await self.session.begin_nested()


class ApiMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        services: Services,
        route_body_limits: Mapping[tuple[str, str], int] | None = None,
        streaming_prefixes: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.services = services
        self.bulkhead = Bulkhead(services.settings.concurrency_per_key)
        self.cors = CorsPolicy(services.settings.cors_origins, PUBLISHABLE_ROUTES)
        # (method, path) → a larger body limit than BILLING_MAX_BODY_BYTES, for bulk routes (usage batches).
        self.route_body_limits = dict(route_body_limits or {})
        # GET routes whose answer is streamed (CSV exports): authenticated here, then passed straight through,
        # never held in memory; they only read, so they need no transaction of ours nor idempotency.
        self.streaming_prefixes = streaming_prefixes
        # The key check is one SELECT: on a connection in autocommit (the same pool), it costs that one round trip
        # instead of three (BEGIN, the SELECT, ROLLBACK).
        self.key_check_engine = services.engine.execution_options(isolation_level="AUTOCOMMIT")
        settings = services.settings
        self.rate_limiter = RateLimiter(services.redis, settings.redis_prefix)
        self.key_budget = Budget(*settings.rate_limit_per_key)
        self.usage_budget = Budget(*settings.rate_limit_usage_per_key)
        self.ip_budget = Budget(*settings.rate_limit_per_ip)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        request_id = "req_" + random_token(20)
        origin = _header(scope, b"origin")
        is_preflight = (
            scope["method"] == "OPTIONS" and _header(scope, b"access-control-request-method") is not None
        )
        limits: Decision | None = None
        if not is_preflight:
            buckets = self._buckets(scope, path)
            limits = await self.rate_limiter.check(buckets)
            if limits is not None and not limits.allowed:
                body = error_json(refusal(buckets, limits))
                headers = _json_headers(request_id, body, limits.headers())
                headers += self.cors.response_headers(scope["method"], path, origin)
                await _send(send, 429, body, headers)
                return
        if scope["method"] == "GET" and path.startswith(self.streaming_prefixes):
            try:
                with _outage_is_503():
                    await self._stream(scope, receive, send, request_id)
                return
            except BillingError as error:
                await _send(send, error.status, *_error_answer(error, request_id))
                return
        try:
            if is_preflight:
                status, body, headers = self._preflight(scope, origin, request_id)
            else:
                with _outage_is_503():
                    status, body, headers = await self._handle(scope, receive, request_id)
        except BillingError as error:
            status = error.status
            body, headers = _error_answer(error, request_id)
        headers += self.cors.response_headers(scope["method"], path, origin)
        if limits is not None:
            headers += limits.headers()
        await _send(send, status, body, headers)

    def _buckets(self, scope: Scope, path: str) -> list[Bucket]:
        """The bucket a request spends from: its secret key's (the usage one on usage ingestion routes), or,
        without a secret key (none, a publishable key, a malformed header), its client IP's."""
        header = _header(scope, b"authorization") or ""
        scheme, _, value = header.strip().partition(" ")
        key = value.strip()
        if scheme.lower() == "bearer" and key.startswith("sk_"):
            if scope["method"] == "POST" and path.startswith("/v1/usage_events"):
                return [
                    Bucket(f"usage:{hash_key(key)}", self.usage_budget, "usage ingestion with this API key")
                ]
            return [Bucket(f"key:{hash_key(key)}", self.key_budget, "this API key")]
        client = scope.get("client")
        address = client[0] if client else "unknown"
        return [Bucket(f"ip:{address}", self.ip_budget, "requests without a secret key from your IP address")]

    def _preflight(
        self, scope: Scope, origin: str | None, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """A browser asks whether a page of `origin` may call this route (CORS preflight; it carries no key)."""
        path = scope["path"]
        method = _header(scope, b"access-control-request-method")
        if not self.cors.is_browser_route(path):
            raise PermissionDenied(
                f"{path} takes a secret key and cannot be called from a browser: call it from your server. "
                "From a browser, only POST /v1/tokens is allowed, with a publishable key (pk_...).",
                code="cors_not_allowed",
            )
        methods = self.cors.methods(path)
        if method is None or method.upper() not in methods:
            raise PermissionDenied(
                f"{method} {path} cannot be called from a browser; only {', '.join(methods)} {path} can.",
                code="cors_method_not_allowed",
            )
        allowed = self.cors.preflight(path, origin, method)
        if allowed is None:
            raise PermissionDenied(
                f"A page of origin {origin or '(none)'} may not call {method} {path} from a browser. Add the "
                "origin to BILLING_CORS_ORIGINS (or set it to *).",
                code="cors_origin_not_allowed",
            )
        return 204, b"", [*allowed, (b"request-id", request_id.encode())]

    async def _stream(self, scope: Scope, receive: Receive, send: Send, request_id: str) -> None:
        """Authenticate, give the connection back, then let the route stream its answer as it goes."""
        check_request_text(scope, b"")
        raw_key = _bearer_key(_header(scope, b"authorization"))
        async with self.services.sessions() as session:
            principal = await authenticate(session, raw_key)
            await session.rollback()
            if principal.key_kind == "publishable":
                raise PermissionDenied(
                    "This is a publishable key (pk_...): exports need your secret key (sk_...), from your server."
                )
            scope[SCOPE_KEY] = RequestContext(
                session=session,
                merchant_id=principal.merchant_id,
                key_kind=principal.key_kind,
                services=self.services,
            )

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {
                        **message,
                        "headers": _with_request_id(list(message.get("headers", [])), request_id),
                    }
                await send(message)

            await self.app(scope, receive, send_with_id)

    async def _handle(
        self, scope: Scope, receive: Receive, request_id: str
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method = scope["method"]
        path = scope["path"]
        # Who is asking comes first: nothing of an unauthenticated request is read or kept (its body could be
        # up to the largest limit). The key is checked on a connection of its own, released before the body is
        # read, so a slow upload never holds a pooled connection.
        raw_key = _bearer_key(_header(scope, b"authorization"))
        # One client's burst waits its turn here, holding nothing, so other merchants keep the pool.
        async with self.bulkhead.turn(hash_key(raw_key)):
            async with self.services.sessions(bind=self.key_check_engine) as auth_session:
                principal = await authenticate(auth_session, raw_key)
            if principal.key_kind == "publishable" and (method, path) not in PUBLISHABLE_ROUTES:
                raise PermissionDenied(
                    "This is a publishable key (pk_...): it can only create card tokens with POST /v1/tokens. "
                    "Call this route from your server with your secret key (sk_...)."
                )
            idempotency_key = _header(scope, b"idempotency-key")
            if idempotency_key is not None and method == "POST":
                idempotency.validate_key(idempotency_key)
            return await self._handle_as(principal, scope, receive, request_id, idempotency_key)

    async def _handle_as(
        self,
        principal: Principal,
        scope: Scope,
        receive: Receive,
        request_id: str,
        idempotency_key: str | None,
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method = scope["method"]
        path = scope["path"]
        limit = max(
            self.services.settings.max_body_bytes, self.route_body_limits.get((method, path.rstrip("/")), 0)
        )
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        try:
            body = await _read_body(receive, limit)
        except BodyTooLarge:
            raise _too_large(limit) from None
        check_request_text(scope, body)

        async with self.services.sessions() as session:
            unit = _UnitOfWork(session, await session.begin())
            try:
                claimed_key = None
                earlier_pending = None
                if idempotency_key is not None and method == "POST":
                    fingerprint = idempotency.request_fingerprint(
                        method,
                        path,
                        scope.get("query_string", b""),
                        body,
                        key=await self.services.vault.request_fingerprint_key(),
                    )
                    claim = await unit.claim_key(
                        merchant_id=principal.merchant_id,
                        key=idempotency_key,
                        method=method,
                        path=path,
                        fingerprint=fingerprint,
                    )
                    if isinstance(claim, idempotency.StoredResponse):
                        await unit.transaction.rollback()
                        return (
                            claim.status,
                            claim.body,
                            [
                                (b"content-type", claim.content_type.encode()),
                                (b"content-length", str(len(claim.body)).encode()),
                                (b"request-id", request_id.encode()),
                                (b"idempotent-replayed", b"true"),
                            ],
                        )
                    earlier_pending = claim.earlier_pending.body if claim.earlier_pending else None
                    claimed_key = idempotency_key
                    unit.idempotency = (principal.merchant_id, idempotency_key)

                if method not in READ_METHODS:
                    unit.work = await session.begin_nested()
                context = RequestContext(
                    session=session,
                    merchant_id=principal.merchant_id,
                    key_kind=principal.key_kind,
                    services=self.services,
                    committed=unit.committed,
                    earlier_pending=earlier_pending,
                    client_ip=(scope.get("client") or (None, None))[0],
                )
                scope[SCOPE_KEY] = context
                response = _CapturedResponse()
                await self.app(scope, _replay(body), response.send)
                if response.status >= 500:
                    await _rollback(unit.transaction)
                    return (
                        response.status,
                        bytes(response.body),
                        _with_request_id(response.headers, request_id),
                    )
                if response.status >= 400:
                    await unit.roll_back_work()
                    for write in take_kept_writes(session):
                        await write(session)
                else:
                    take_kept_writes(session)  # only a refusal keeps its record apart from its work
                    if unit.work is not None and unit.work.is_active:
                        await unit.work.commit()
                if claimed_key is not None:
                    await idempotency.complete(
                        session,
                        merchant_id=principal.merchant_id,
                        key=claimed_key,
                        response=idempotency.StoredResponse(
                            response.status, response.content_type, bytes(response.body)
                        ),
                    )
                await unit.transaction.commit()
            except BillingError:
                await _rollback(unit.transaction)
                raise
            except Exception as exc:
                await _rollback(unit.transaction)
                if is_database_unavailable(exc):
                    raise
                log.exception("request %s %s failed before a response was committed", method, path)
                raise ApiError(
                    "Something went wrong on our side and nothing was applied. Retry the request, with "
                    "the same Idempotency-Key if you sent one."
                ) from None
        if response.status < 400:
            for hook in context.after_commit:
                try:
                    await hook()
                except Exception:
                    log.exception("after-commit hook failed; the sweeper will pick the work up")
        return response.status, bytes(response.body), _with_request_id(response.headers, request_id)


def _error_answer(error: BillingError, request_id: str) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers of an error answered by this layer (a 401 names the scheme it wants)."""
    body = error_json(error)
    headers = _json_headers(request_id, body)
    headers += [(name.lower().encode(), value.encode()) for name, value in error_headers(error).items()]
    if error.status == 401:
        headers.append((b"www-authenticate", b'Bearer realm="billing"'))
    return body, headers


@contextmanager
def _outage_is_503() -> Iterator[None]:
    """PostgreSQL going away under a request (a restart, a failover) is answered 503 with Retry-After: nothing
    was committed, and the retry with the same Idempotency-Key is the first to apply."""
    try:
        yield
    except BillingError:
        raise
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
        raise database_unavailable() from None


async def _rollback(transaction: AsyncSessionTransaction) -> None:
    """Roll back after a failure; on a connection the server already closed there is nothing to roll back."""
    try:
        await transaction.rollback()
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise


def _with_request_id(headers: list[tuple[bytes, bytes]], request_id: str) -> list[tuple[bytes, bytes]]:
    return [*headers, (b"request-id", request_id.encode())]


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"The request body is larger than {limit} bytes. Send fewer objects per request.")


def _bearer_key(header: str | None) -> str:
    if not header:
        raise AuthenticationFailed(
            "You did not provide an API key. Send your secret key as 'Authorization: Bearer sk_...'.",
            code="api_key_missing",
        )
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise AuthenticationFailed(
            "The Authorization header must be 'Bearer <API key>', e.g. 'Authorization: Bearer sk_...'.",
            code="authorization_malformed",
        )
    return value.strip()


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive
