"""Cross-origin calls from browsers (CORS), allowed on the publishable-key routes only.

A SaaS app tokenizes cards in its customer's browser with its publishable key (POST /v1/tokens), from its own
origin: the browser first sends a preflight (OPTIONS with `Access-Control-Request-Method`), then the call, and
lets the page read the answer only when `Access-Control-Allow-Origin` names its origin. Secret-key routes never
answer with that header: a secret key in a browser is a leaked key, so a page must not be able to use one.

Which origins: `BILLING_CORS_ORIGINS` (default `*`, any origin). A preflight carries no key, so the only list that
can answer it is the deployment's; publishable keys are public by design (they sit in every page's source) and
only create single-use tokens, so `*` lets any page do no more than curl already can, as Stripe's API does. No
cookies or other credentials are involved: the key travels in the Authorization header the page sets itself.
"""

from __future__ import annotations

from collections.abc import Collection

ALLOWED_REQUEST_HEADERS = ("authorization", "content-type", "idempotency-key")
EXPOSED_HEADERS = b"request-id, idempotent-replayed"
PREFLIGHT_MAX_AGE = b"600"

Header = tuple[bytes, bytes]


class CorsPolicy:
    """Answers for cross-origin requests to the routes a publishable key may call."""

    def __init__(self, origins: Collection[str], publishable_routes: Collection[tuple[str, str]]) -> None:
        self.any_origin = tuple(origins) == ("*",)
        self.origins = frozenset(origins)
        self.methods_by_path: dict[str, set[str]] = {}
        for method, path in publishable_routes:
            self.methods_by_path.setdefault(path, set()).add(method)

    def is_browser_route(self, path: str) -> bool:
        return path.rstrip("/") in self.methods_by_path

    def methods(self, path: str) -> list[str]:
        """The methods a browser may call on this path (sorted)."""
        return sorted(self.methods_by_path.get(path.rstrip("/"), set()))

    def allow_origin(self, origin: str | None) -> bytes | None:
        if origin is None:
            return None
        if self.any_origin:
            return b"*"
        return origin.encode("latin-1") if origin.lower() in self.origins else None

    def preflight(self, path: str, origin: str | None, method: str | None) -> list[Header] | None:
        """The headers of a successful preflight, or None when this origin may not make this call."""
        methods = self.methods_by_path.get(path.rstrip("/"), set())
        allowed = self.allow_origin(origin)
        if allowed is None or method is None or method.upper() not in methods:
            return None
        return [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", ", ".join(sorted(methods)).encode()),
            (b"access-control-allow-headers", ", ".join(ALLOWED_REQUEST_HEADERS).encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE),
            (b"vary", b"Origin"),
        ]

    def response_headers(self, method: str, path: str, origin: str | None) -> list[Header]:
        """Headers added to the answer of an actual call (errors included, so the page can read them)."""
        if method.upper() not in self.methods_by_path.get(path.rstrip("/"), set()):
            return []
        allowed = self.allow_origin(origin)
        headers: list[Header] = [(b"vary", b"Origin")]
        if allowed is not None:
            headers += [
                (b"access-control-allow-origin", allowed),
                (b"access-control-expose-headers", EXPOSED_HEADERS),
            ]
        return headers
