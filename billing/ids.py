"""Prefixed random identifiers (SPEC §3): `cus_` + 24 base62 characters, about 143 bits of randomness."""

from __future__ import annotations

import re
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_RANDOM_LENGTH = 24

PREFIXES = frozenset(
    {
        "mer",
        "key",
        "cus",
        "pm",
        "tok",
        "plan",
        "mtr",
        "feat",
        "sub",
        "si",
        "in",
        "il",
        "pay",
        "re",
        "cn",
        "cnli",
        "cpn",
        "txr",
        "evt",
        "we",
        "wd",
        "wda",
        "clk",
        "ps",
        "psl",
        "task",
        "ue",
        "usr",
        "cbt",
        "ii",
        "vlt",
        "em",
        "dc",
        "ub",
        "cs",
        "aud",
        "rsk",
        "rcn",
        "wlt",
        "wtx",
    }
)
_ID_PATTERN = re.compile(rf"^(?P<prefix>[a-z]+)_[0-9A-Za-z]{{{_RANDOM_LENGTH}}}$")


def new_id(prefix: str) -> str:
    """A new random id for an object of the type named by `prefix`."""
    if prefix not in PREFIXES:
        raise ValueError(f"unknown id prefix {prefix!r}")
    return prefix + "_" + random_token(_RANDOM_LENGTH)


# Bytes below this are used (each maps to one character, b % 62, uniformly), the others drawn again: 248 = 4 × 62.
_UNBIASED = 256 - 256 % len(_ALPHABET)


def random_token(length: int) -> str:
    """A base62 secret of `length` characters (API keys, portal links): uniform characters from the operating
    system's random bytes (one read for the whole token, as `secrets.choice` per character would give, faster)."""
    chars: list[str] = []
    while len(chars) < length:
        chars += [_ALPHABET[b % len(_ALPHABET)] for b in secrets.token_bytes(length + 8) if b < _UNBIASED]
    return "".join(chars[:length])


def is_valid_id(value: str, prefix: str) -> bool:
    """Whether `value` has the shape of an id of type `prefix` (it may still not exist)."""
    match = _ID_PATTERN.match(value)
    return match is not None and match.group("prefix") == prefix
