"""The brand's accent colour (billing.settings.branding): WCAG 2.1 contrast, and a colour too light for white
text darkened just enough, keeping its hue."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from billing.settings.branding import MIN_CONTRAST, WHITE, contrast_ratio, readable_accent, relative_luminance

colours = st.integers(0, 0xFFFFFF).map(lambda value: f"#{value:06x}")


def test_contrast_as_wcag_defines_it() -> None:
    # WCAG 2.1: black on white is 21:1; #767676 is the lightest grey passing AA (4.54:1), #777777 fails (4.48:1).
    assert round(contrast_ratio("#000000", WHITE), 2) == 21.0
    assert relative_luminance(WHITE) == 1.0
    assert round(contrast_ratio("#767676", WHITE), 2) == 4.54
    assert round(contrast_ratio("#777777", WHITE), 2) == 4.48
    assert readable_accent("#767676") == "#767676"
    assert readable_accent("#777777") == "#767676"
    assert readable_accent("#0B5CAD") == "#0b5cad"


@given(colours)
def test_the_accent_always_reads_and_is_kept_when_it_already_did(colour: str) -> None:
    accent = readable_accent(colour)
    assert contrast_ratio(accent, WHITE) >= MIN_CONTRAST
    if contrast_ratio(colour, WHITE) >= MIN_CONTRAST:
        assert accent == colour


@given(colours)
def test_a_darkened_accent_keeps_its_hue_and_is_no_darker_than_needed(colour: str) -> None:
    accent = readable_accent(colour)
    before = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    after = [int(accent[i : i + 2], 16) for i in (1, 3, 5)]
    assert all(a <= b for a, b in zip(after, before, strict=True))
    # Every channel scaled by one factor (within rounding): the channels keep their order.
    for i in range(3):
        for j in range(3):
            if before[i] > before[j]:
                assert after[i] >= after[j]
    if accent != colour:
        # One step lighter would not read: the darkening stops as soon as the contrast is reached.
        lighter = "#" + "".join(f"{min(255, round(c * 1.02) + 1):02x}" for c in after)
        assert contrast_ratio(lighter, WHITE) < MIN_CONTRAST or lighter == colour
