"""What may leave the engine in an event payload: never a card number, never a secret.

Payloads are the objects as the API renders them, and the API never renders a card number or a secret, so this
is the second line of defence: a value that still looks like one (a merchant pasting a card number into
metadata, a render function that grows a `secret` field by mistake) is replaced by "[redacted]" before the event
is stored, so it reaches neither the event log nor any webhook endpoint.
"""

from __future__ import annotations

import re
from typing import Any

from billing.luhn import looks_like_card_number

REDACTED = "[redacted]"

# Field names that only ever hold secrets or card data.
SENSITIVE_KEYS = frozenset(
    {"secret", "password", "card_number", "pan", "cvc", "cvv", "cvc2", "cvv2", "secret_key", "api_key"}
)
# Our own secrets by their prefixes: endpoint secrets and secret API keys.
_SECRET_VALUE = re.compile(r"\b(?:whsec_[A-Za-z0-9+/=]{20,}|sk_[A-Za-z0-9]{20,})")


def _sensitive_string(text: str) -> bool:
    secret = ("sk_" in text or "whsec_" in text) and _SECRET_VALUE.search(text) is not None
    return secret or looks_like_card_number(text)


def holds_sensitive(value: Any) -> bool:
    """Whether `value` (JSON-shaped) holds anything `redact` would replace. Nearly every payload holds nothing, so
    this walk builds no paths and copies nothing: the cost of an event is this test alone."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is not None and item != "" and str(key).lower() in SENSITIVE_KEYS:
                return True
            if holds_sensitive(item):
                return True
        return False
    if isinstance(value, list):
        return any(holds_sensitive(item) for item in value)
    return isinstance(value, str) and _sensitive_string(value)


def redact(value: Any, path: str = "") -> tuple[Any, list[str]]:
    """`value` (JSON-shaped: dicts, lists, scalars) with every secret or card number replaced by "[redacted]",
    and the paths of what was replaced; `value` itself when there is nothing to replace."""
    if not holds_sensitive(value):
        return value, []
    return _redacted(value, path)


def _redacted(value: Any, path: str) -> tuple[Any, list[str]]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        found: list[str] = []
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if str(key).lower() in SENSITIVE_KEYS and item not in (None, ""):
                out[key] = REDACTED
                found.append(where)
                continue
            out[key], inner = _redacted(item, where)
            found.extend(inner)
        return out, found
    if isinstance(value, list):
        items: list[Any] = []
        found = []
        for index, item in enumerate(value):
            clean, inner = _redacted(item, f"{path}[{index}]")
            items.append(clean)
            found.extend(inner)
        return items, found
    if isinstance(value, str) and _sensitive_string(value):
        return REDACTED, [path]
    return value, []
