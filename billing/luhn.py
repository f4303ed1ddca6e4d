"""Card numbers recognised: the Luhn (mod 10) check digit test, used by the vault (validating a card number), the
sandboxes and the redaction of logs, and `looks_like_card_number`, used where free text must never hold one (event
payloads, metadata). Pure functions."""

from __future__ import annotations

import re


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check digit test."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


# 13 to 19 digits, optionally grouped by spaces or dashes, as card numbers are written, standing alone: a run of
# digits inside a hex fingerprint or a base62 id is not a card number.
_CARD_CANDIDATE = re.compile(r"(?<![0-9A-Za-z])(?:[0-9][ -]?){12,18}[0-9](?![0-9A-Za-z])")
# Issuer prefixes of the card networks (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay, Maestro):
# a long number that is Luhn-valid but starts elsewhere (an order id, a snowflake id) is left alone.
_CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|35|6011|64[4-9]|65|62|5018|5020|5038|6304|67)")


def looks_like_card_number(text: str) -> bool:
    """Whether `text` contains a card number: 13-19 digits, Luhn-valid, with a card network's prefix."""
    if len(text) < 13 or sum(map(text.count, "0123456789")) < 13:
        return False  # fewer than 13 digits in all: no card number (most ids, names, amounts as text)
    for match in _CARD_CANDIDATE.finditer(text):
        digits = re.sub(r"[ -]", "", match.group())
        if 13 <= len(digits) <= 19 and _CARD_PREFIX.match(digits) and luhn_valid(digits):
            return True
    return False
