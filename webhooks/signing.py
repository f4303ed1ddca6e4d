"""Standard Webhooks signatures (https://www.standardwebhooks.com): pure functions on plain values.

A secret is `whsec_` + base64 of random bytes. A message is signed as
`v1,<base64 HMAC-SHA256(key, "{webhook-id}.{webhook-timestamp}.{body}")>`; during a secret rotation the header
carries one signature per valid secret, separated by spaces, and a receiver accepts the message when any one of
them matches its secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
# The spec asks for 24 to 64 random bytes; 32 bytes is HMAC-SHA256's block-size-friendly sweet spot.
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
# A receiver refuses a timestamp further than this from its own clock (the spec's replay window).
TOLERANCE_SECONDS = 5 * 60


class SignatureError(ValueError):
    """The headers are missing, malformed, too old or too new, or no signature matches."""


def generate_secret(nbytes: int = SECRET_BYTES) -> str:
    """A new endpoint secret: `whsec_` + base64 of `nbytes` random bytes."""
    if nbytes < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret needs at least {MIN_SECRET_BYTES} random bytes")
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(nbytes)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a `whsec_` secret."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret holds at least {MIN_SECRET_BYTES} bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """One signature, `v1,<base64>`, of the message `msg_id` sent at unix time `timestamp` with `body`."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret (the new one first), space-separated."""
    if not signing_secrets:
        raise ValueError("at least one secret is needed to sign")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in signing_secrets)


def webhook_headers(
    signing_secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery attempt."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(signing_secrets, msg_id, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance: int = TOLERANCE_SECONDS,
) -> None:
    """Check a received message as a receiver would: raise SignatureError unless one `v1` signature matches
    `secret` and the timestamp is within `tolerance` seconds of `now`."""
    lowered = {k.lower(): v for k, v in headers.items()}
    msg_id = lowered.get("webhook-id")
    raw_timestamp = lowered.get("webhook-timestamp")
    header = lowered.get("webhook-signature")
    if not (msg_id and raw_timestamp and header):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    if not raw_timestamp.isdigit():
        raise SignatureError("webhook-timestamp is not a unix time in seconds")
    timestamp = int(raw_timestamp)
    if abs(now - timestamp) > tolerance:
        raise SignatureError("webhook-timestamp is outside the tolerance window")
    expected = sign(secret, msg_id, timestamp, body).encode()
    for candidate in header.split(" "):
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise SignatureError("no signature matches this secret")
