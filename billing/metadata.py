"""Metadata: the string map every object carries (SPEC §3), with Stripe's limits and update rule."""

from __future__ import annotations

import re

from billing.errors import InvalidRequest
from billing.luhn import looks_like_card_number

# Stripe's limits: 50 keys, keys up to 40 characters without square brackets, values up to 500.
METADATA_MAX_KEYS = 50
METADATA_MAX_KEY_LENGTH = 40
METADATA_MAX_VALUE_LENGTH = 500
_BAD_KEY = re.compile(r"[\[\]]")


def validate_metadata(metadata: dict[str, str], *, param: str = "metadata") -> dict[str, str]:
    """Check metadata against the limits, and refuse a value holding a card number; values of "" are kept here
    (an update treats them as deletions)."""
    if len(metadata) > METADATA_MAX_KEYS:
        raise InvalidRequest(
            f"metadata can have at most {METADATA_MAX_KEYS} keys; this one has {len(metadata)}.", param=param
        )
    for key, value in metadata.items():
        if not key or len(key) > METADATA_MAX_KEY_LENGTH or _BAD_KEY.search(key):
            raise InvalidRequest(
                f"metadata key {key[:60]!r} is invalid: keys must be 1 to {METADATA_MAX_KEY_LENGTH} characters "
                "and cannot contain square brackets.",
                param=f"{param}[{key[:60]}]",
            )
        if len(value) > METADATA_MAX_VALUE_LENGTH:
            raise InvalidRequest(
                f"metadata value for {key!r} is {len(value)} characters; the limit is {METADATA_MAX_VALUE_LENGTH}.",
                param=f"{param}[{key}]",
            )
        if looks_like_card_number(value):
            # Metadata is stored and answered as given: a card number there would be one in clear text at rest.
            raise InvalidRequest(
                f"metadata value for {key!r} looks like a card number. Never put card numbers in metadata: "
                "collect the card with POST /v1/payment_methods (or the hosted card page) and keep the payment "
                "method's id instead.",
                param=f"{param}[{key}]",
            )
    return metadata


def merge_metadata(
    current: dict[str, str], update: dict[str, str], *, param: str = "metadata"
) -> dict[str, str]:
    """Stripe's update rule: keys in `update` are set, a value of "" removes the key, others stay."""
    validate_metadata(update, param=param)
    merged = dict(current)
    for key, value in update.items():
        if value == "":
            merged.pop(key, None)
        else:
            merged[key] = value
    return validate_metadata(merged, param=param)
