"""The merchant's brand as customers see it (portal, hosted invoices, PDFs, emails), and the colour rule that
keeps it readable. No I/O.

An accent colour is used for buttons with white text and for links on white, so it must reach WCAG 2.1's 4.5:1
contrast against white (AA for normal text). A lighter colour is darkened, keeping its hue: every channel is
scaled by the same factor, the largest factor that reaches the ratio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

HEX_COLOUR: Final = re.compile(r"#[0-9a-fA-F]{6}")
WHITE: Final = "#ffffff"
MIN_CONTRAST: Final = 4.5
DEFAULT_ACCENT: Final = "#0b5cad"


@dataclass(frozen=True)
class Branding:
    """What a page or email shows of the merchant: the name, the logo's URL, the accent colour (already
    readable on white), and where customers write for help."""

    name: str
    logo_url: str | None
    accent_color: str
    support_email: str | None


def _channel(value: int) -> float:
    """sRGB channel (0-255) to linear light, as WCAG 2.1 defines relative luminance."""
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def _rgb(colour: str) -> tuple[int, int, int]:
    if not HEX_COLOUR.fullmatch(colour):
        raise ValueError(f"not a #rrggbb colour: {colour!r}")
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def relative_luminance(colour: str) -> float:
    r, g, b = _rgb(colour)
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2.1 contrast ratio of two colours, from 1 (same) to 21 (black on white)."""
    a, b = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _scaled(rgb: tuple[int, int, int], factor: Fraction) -> str:
    # Half-up rounding of each scaled channel; factor <= 1 keeps every channel within 0..255.
    return "#" + "".join(f"{int(channel * factor + Fraction(1, 2)):02x}" for channel in rgb)


def readable_accent(colour: str, minimum: float = MIN_CONTRAST) -> str:
    """`colour` in lower case if white text on it (and it on white) reaches `minimum` contrast; otherwise the
    same hue darkened just enough (black in the limit, which always reaches it)."""
    colour = colour.lower()
    if contrast_ratio(colour, WHITE) >= minimum:
        return colour
    rgb = _rgb(colour)
    # The largest factor k/1000 whose scaled colour is readable; contrast only grows as k shrinks.
    low, high = 0, 1000
    while low < high:
        middle = (low + high + 1) // 2
        if contrast_ratio(_scaled(rgb, Fraction(middle, 1000)), WHITE) >= minimum:
            low = middle
        else:
            high = middle - 1
    return _scaled(rgb, Fraction(low, 1000))


def text_on(colour: str) -> str:
    """Black or white, whichever reads better on `colour`."""
    return "#000000" if contrast_ratio(colour, "#000000") > contrast_ratio(colour, WHITE) else WHITE
