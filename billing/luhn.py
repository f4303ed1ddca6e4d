"""The Luhn (mod 10) check digit test of card numbers: a pure function, used by the vault (validating a card
number), the sandboxes and the redaction of event payloads and logs."""

from __future__ import annotations


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
