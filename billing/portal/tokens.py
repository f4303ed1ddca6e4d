"""Portal link tokens: `<session id>.<expiry>.<signature>`, signed for one customer. No I/O.

The signature is HMAC-SHA256 (key from the vault, `Vault.portal_link_key`) over the session id, the customer
id and the expiry, so a token opens exactly one customer's portal until exactly that instant, and a changed
character anywhere makes it worthless. The customer id is signed but not written in the link. Comparisons are
constant-time. Whether the session behind a well-signed token still exists, is unused (single-use links) and
unexpired is the database's answer (billing.portal.service).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import UTC, datetime

VERSION = "v1"
_SHAPE = re.compile(r"(?P<id>ps_[0-9A-Za-z]{24})\.(?P<exp>[0-9]{1,12})\.(?P<sig>[A-Za-z0-9_-]{43})")


@dataclass(frozen=True)
class LinkToken:
    session_id: str
    expires_at: datetime
    signature: str


def _mac(key: bytes, session_id: str, customer_id: str, expires: int) -> str:
    message = f"{VERSION}|{session_id}|{customer_id}|{expires}".encode()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, session_id: str, customer_id: str, expires_at: datetime) -> str:
    """The token of a link to `session_id` for `customer_id`, valid until `expires_at` (whole seconds)."""
    expires = int(expires_at.timestamp())
    return f"{session_id}.{expires}.{_mac(key, session_id, customer_id, expires)}"


def parse(token: str) -> LinkToken | None:
    """The parts of a token of the right shape (not yet verified), or None."""
    match = _SHAPE.fullmatch(token)
    if match is None:
        return None
    expires = int(match.group("exp"))
    try:
        moment = datetime.fromtimestamp(expires, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return LinkToken(match.group("id"), moment, match.group("sig"))


def verify(key: bytes, token: LinkToken, customer_id: str) -> bool:
    """Whether `token` was signed with `key` for this customer and its own session id and expiry."""
    expected = _mac(key, token.session_id, customer_id, int(token.expires_at.timestamp()))
    return hmac.compare_digest(expected.encode(), token.signature.encode())
