"""Ids and tokens (billing/ids.py): 24 base62 characters drawn uniformly from the operating system's random bytes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from billing import ids
from billing.ids import is_valid_id, new_id, random_token

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_an_id_is_its_prefix_and_24_base62_characters() -> None:
    made = {new_id("in") for _ in range(1000)}
    assert len(made) == 1000
    assert all(is_valid_id(value, "in") and len(value) == 3 + 24 for value in made)
    with pytest.raises(ValueError, match="unknown id prefix"):
        new_id("nope")


def test_bytes_248_and_above_are_drawn_again_so_every_character_is_equally_likely(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 248 = 4 × 62: byte b < 248 gives character b % 62; 248..255 would favour '0'..'7' and are skipped.
    draws: Iterator[bytes] = iter([bytes([255, 248, 0, 61, 62, 247, 250, 123]), bytes([5, 249, 10, 11])])
    monkeypatch.setattr(ids.secrets, "token_bytes", lambda n: next(draws))
    # 0 → "0", 61 → "z", 62 → "0", 247 → "z", 123 → "z"; then from the second draw 5 → "5".
    assert random_token(6) == "0z0zz5"


def test_characters_are_spread_evenly() -> None:
    counts = Counter("".join(random_token(62) for _ in range(1000)))
    assert set(counts) == set(ALPHABET)
    # 1,000 expected per character (standard deviation about 31): far outside these bounds never happens.
    assert all(700 < count < 1300 for count in counts.values())
