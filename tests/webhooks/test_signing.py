"""Standard Webhooks signatures, checked against the reference `standardwebhooks` package."""

from __future__ import annotations

import base64
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from webhooks.signing import (
    SignatureError,
    generate_secret,
    secret_key,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

SECRET = generate_secret()


def test_a_secret_is_whsec_and_at_least_24_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    assert secret != generate_secret()
    with pytest.raises(ValueError, match="24"):
        generate_secret(16)


def test_a_malformed_secret_is_refused() -> None:
    for bad in ("sk_abc", "whsec_***", "whsec_" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="webhook secret"):
            secret_key(bad)


@given(
    body=st.binary(max_size=2000).map(lambda b: b.hex().encode()),
    msg_id=st.from_regex(r"evt_[A-Za-z0-9]{24}", fullmatch=True),
)
def test_the_reference_package_verifies_what_we_sign(body: bytes, msg_id: str) -> None:
    now = int(time.time())
    headers = webhook_headers([SECRET], msg_id, now, b'{"x":"' + body + b'"}')
    assert Webhook(SECRET).verify(b'{"x":"' + body + b'"}', headers) == {"x": body.decode()}


def test_our_signature_equals_the_reference_signature() -> None:
    from datetime import UTC, datetime

    body = '{"id":"evt_1","type":"customer.created"}'
    ours = sign(SECRET, "evt_1", 1_800_000_000, body.encode())
    reference = Webhook(SECRET).sign("evt_1", datetime.fromtimestamp(1_800_000_000, UTC), body)
    assert ours == reference


def test_with_two_secrets_either_one_verifies_and_a_third_does_not() -> None:
    old, new, stranger = generate_secret(), generate_secret(), generate_secret()
    body = b'{"ok":true}'
    headers = webhook_headers([new, old], "evt_2", int(time.time()), body)
    assert headers["webhook-signature"].count("v1,") == 2
    assert Webhook(new).verify(body, headers) == {"ok": True}
    assert Webhook(old).verify(body, headers) == {"ok": True}
    with pytest.raises(WebhookVerificationError):
        Webhook(stranger).verify(body, headers)


def test_a_tampered_body_id_or_timestamp_fails_verification() -> None:
    now = int(time.time())
    body = b'{"amount":100}'
    headers = webhook_headers([SECRET], "evt_3", now, body)
    verify(SECRET, headers, body, now=now)
    with pytest.raises(SignatureError):
        verify(SECRET, headers, b'{"amount":999}', now=now)
    with pytest.raises(SignatureError):
        verify(SECRET, headers | {"webhook-id": "evt_4"}, body, now=now)
    with pytest.raises(SignatureError):
        verify(SECRET, headers | {"webhook-timestamp": str(now + 1)}, body, now=now)
    with pytest.raises(SignatureError, match="tolerance"):
        verify(SECRET, headers, body, now=now + 600)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(b'{"amount":999}', headers)


def test_signing_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], "evt_5", 0, b"")
