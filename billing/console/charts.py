"""Charts as server-rendered SVG: pure functions from numbers to markup, no script, no external file, colours
as presentation attributes (so the console's strict Content-Security-Policy needs no inline style). Every value
is escaped. Each chart is an image with a title and a description for screen readers; the console prints the
figures in a table beside it.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from dataclasses import dataclass

PALETTE = ("#0969da", "#1a7f37", "#8250df", "#bc4c00", "#cf222e", "#57606a", "#9a6700", "#1b7c83")
POSITIVE = ("#1a7f37", "#0969da", "#8250df")
NEGATIVE = ("#cf222e", "#bc4c00")
_INK = "#1f2328"
_MUTED = "#59636e"
_GRID = "#d1d9e0"
_FONT = "-apple-system, Segoe UI, Helvetica, Arial, Noto Sans CJK SC, PingFang SC, sans-serif"


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[int]
    color: str | None = None


def nice_step(span: int, count: int = 4) -> int:
    """A round step (1, 2 or 5 × 10^k) so that `count` steps cover `span`."""
    if span <= 0:
        return 1
    raw = span / count
    magnitude = 1
    while magnitude * 10 <= raw:
        magnitude *= 10
    for factor in (1, 2, 5, 10):
        if magnitude * factor >= raw:
            return magnitude * factor
    return magnitude * 10


def nice_ticks(low: int, high: int, count: int = 4) -> list[int]:
    """Round tick values from at most `low` (0 included) to at least `high`, evenly spaced."""
    low, high = min(low, 0), max(high, 0)
    if low == high:
        high = low + 1
    step = nice_step(high - low, count)
    start = -(-low // step) * step if low >= 0 else (low // step) * step
    ticks = []
    value = start
    while True:
        ticks.append(value)
        if value >= high:
            break
        value += step
    return ticks


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _open(title: str, description: str, width: int, height: int) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-label="{_esc(title)}" font-family="{_esc(_FONT)}" font-size="12">',
        f"<title>{_esc(title)}</title><desc>{_esc(description)}</desc>",
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]


def text_width(text: str) -> int:
    """About how wide `text` is at 12px: CJK characters are full-width, Latin ones about half."""
    return sum(12 if ord(char) > 0x2E80 else 7 for char in text)


def _legend(series: Sequence[tuple[str, str]], x: int, y: int) -> list[str]:
    parts, cursor = [], x
    for name, color in series:
        parts.append(f'<rect x="{cursor}" y="{y - 9}" width="10" height="10" rx="2" fill="{_esc(color)}"/>')
        parts.append(f'<text x="{cursor + 14}" y="{y}" fill="{_INK}">{_esc(name)}</text>')
        cursor += 28 + text_width(name)
    return parts


def _axes(
    ticks: list[int], fmt: Callable[[int], str], left: int, top: int, plot_w: int, plot_h: int
) -> tuple[list[str], Callable[[int], float]]:
    low, high = ticks[0], ticks[-1]

    def y_of(value: int) -> float:
        return top + plot_h - (value - low) / (high - low) * plot_h

    parts = []
    for tick in ticks:
        y = y_of(tick)
        stroke = _MUTED if tick == 0 else _GRID
        parts.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="{stroke}"/>')
        parts.append(
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="{_MUTED}">{_esc(fmt(tick))}</text>'
        )
    return parts, y_of


def _x_labels(labels: Sequence[str], centers: Sequence[float], y: float) -> list[str]:
    every = max(1, -(-len(labels) // 12))
    return [
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle" fill="{_MUTED}">{_esc(label)}</text>'
        for index, (label, x) in enumerate(zip(labels, centers, strict=True))
        if index % every == 0
    ]


def line_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[int], str],
    *,
    width: int = 900,
    height: int = 280,
) -> str:
    """One line per series over the labels (months), y from the smallest to the largest value (0 included)."""
    left, right, top, bottom = 92, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for s in series for v in s.values] or [0]
    ticks = nice_ticks(min(values), max(values))
    parts = _open(title, _describe(labels, series, fmt), width, height)
    grid, y_of = _axes(ticks, fmt, left, top, plot_w, plot_h)
    parts += grid
    n = max(len(labels), 1)
    xs = [left + (plot_w * (i + 0.5) / n) for i in range(n)]
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for s, color in zip(series, colors, strict=True):
        points = " ".join(f"{x:.1f},{y_of(v):.1f}" for x, v in zip(xs, s.values, strict=False))
        parts.append(f'<polyline points="{points}" fill="none" stroke="{_esc(color)}" stroke-width="2.5"/>')
        for x, v in zip(xs, s.values, strict=False):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y_of(v):.1f}" r="3.5" fill="{_esc(color)}">'
                f"<title>{_esc(s.name)}: {_esc(fmt(v))}</title></circle>"
            )
    parts += _x_labels(labels, xs, height - bottom + 18)
    parts += _legend([(s.name, c) for s, c in zip(series, colors, strict=True)], left, 16)
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[int], str],
    *,
    stacked: bool = True,
    width: int = 900,
    height: int = 280,
) -> str:
    """Bars per label: stacked (positive values up from 0, negative down) or side by side."""
    left, right, top, bottom = 92, 16, 28, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(labels), 1)
    if stacked:
        ups = [sum(max(s.values[i], 0) for s in series) for i in range(len(labels))] or [0]
        downs = [sum(min(s.values[i], 0) for s in series) for i in range(len(labels))] or [0]
        ticks = nice_ticks(min(downs), max(ups))
    else:
        values = [v for s in series for v in s.values] or [0]
        ticks = nice_ticks(min(values), max(values))
    parts = _open(title, _describe(labels, series, fmt), width, height)
    grid, y_of = _axes(ticks, fmt, left, top, plot_w, plot_h)
    parts += grid
    slot = plot_w / n
    colors = [s.color or PALETTE[i % len(PALETTE)] for i, s in enumerate(series)]
    for i in range(len(labels)):
        x0 = left + slot * i + slot * 0.15
        bar_w = slot * 0.7
        up, down = 0, 0
        for j, (s, color) in enumerate(zip(series, colors, strict=True)):
            value = s.values[i]
            if value == 0:
                continue
            if stacked:
                base = up if value > 0 else down
                y1, y2 = y_of(base), y_of(base + value)
                x, w = x0, bar_w
                if value > 0:
                    up += value
                else:
                    down += value
            else:
                w = bar_w / len(series)
                x = x0 + w * j
                y1, y2 = y_of(0), y_of(value)
            top_y, h = min(y1, y2), abs(y2 - y1)
            parts.append(
                f'<rect x="{x:.1f}" y="{top_y:.1f}" width="{w:.1f}" height="{max(h, 0.5):.1f}" '
                f'fill="{_esc(color)}"><title>{_esc(labels[i])} · {_esc(s.name)}: {_esc(fmt(value))}</title></rect>'
            )
    parts += _x_labels(labels, [left + slot * (i + 0.5) for i in range(len(labels))], height - bottom + 18)
    parts += _legend([(s.name, c) for s, c in zip(series, colors, strict=True)], left, 16)
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(
    title: str,
    rows: Sequence[tuple[str, int]],
    fmt: Callable[[int], str],
    *,
    color: str = PALETTE[0],
    width: int = 900,
) -> str:
    """One horizontal bar per (label, value), longest = the largest value."""
    row_h, left, right, top = 30, 160, 130, 12
    height = top * 2 + row_h * max(len(rows), 1)
    parts = _open(title, "; ".join(f"{label}: {fmt(value)}" for label, value in rows), width, height)
    largest = max((value for _, value in rows), default=0) or 1
    plot_w = width - left - right
    for index, (label, value) in enumerate(rows):
        y = top + index * row_h
        w = plot_w * max(value, 0) / largest
        parts.append(
            f'<text x="{left - 8}" y="{y + 19}" text-anchor="end" fill="{_INK}">{_esc(label)}</text>'
            f'<rect x="{left}" y="{y + 6}" width="{max(w, 0.5):.1f}" height="{row_h - 12}" rx="2" '
            f'fill="{_esc(color)}"/>'
            f'<text x="{left + w + 6:.1f}" y="{y + 19}" fill="{_INK}">{_esc(fmt(value))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _describe(labels: Sequence[str], series: Sequence[Series], fmt: Callable[[int], str]) -> str:
    return "; ".join(
        f"{s.name}: " + ", ".join(f"{label} {fmt(v)}" for label, v in zip(labels, s.values, strict=False))
        for s in series
    )
