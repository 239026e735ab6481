"""Small server-side charts: an inline SVG time series and horizontal bars (no JavaScript, no
third-party code).

Readable without scripts, printable, and accessible: each chart carries a title and a
description, and its values are in a table next to it for screen readers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT, PAD = 720, 200, 36


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    value: float
    marked: bool = False  # a value that raised an alert


def time_series(title: str, unit: str, series: Sequence[tuple[str, Sequence[Point]]],
                thresholds: Sequence[tuple[str, float]] = ()) -> Markup:  # fmt: skip
    """An SVG line chart of one or more series sharing a time axis, with horizontal threshold
    lines and alert-raising values ringed."""
    points = [p for _, pts in series for p in pts]
    if not points:
        return Markup("")
    t0, t1 = min(p.at for p in points), max(p.at for p in points)
    span = max((t1 - t0).total_seconds(), 1.0)
    values = [p.value for p in points] + [v for _, v in thresholds]
    lo, hi = min(values), max(values)
    lo, hi = (lo - 1, hi + 1) if lo == hi else (lo - (hi - lo) * 0.05, hi + (hi - lo) * 0.05)

    def x(at: dt.datetime) -> float:
        return PAD + (WIDTH - 2 * PAD) * (at - t0).total_seconds() / span

    def y(value: float) -> float:
        return HEIGHT - PAD - (HEIGHT - 2 * PAD) * (value - lo) / (hi - lo)

    colours = ("#0b5394", "#7c3aed", "#0f766e")
    parts = [
        f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" style="max-width:{WIDTH}px" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f"<desc>{escape(title)}: {len(points)} values from {t0:%Y-%m-%d} to {t1:%Y-%m-%d}, "
        f"{escape(unit)}</desc>",
        f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" height="{HEIGHT - 2 * PAD}" '
        'fill="#fafafa" stroke="#ccc"/>',
        f'<text x="4" y="{PAD - 8}" font-size="12">{escape(unit)}</text>',
        f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{t0:%d/%m}</text>',
        f'<text x="{WIDTH - PAD}" y="{HEIGHT - 8}" font-size="11" text-anchor="end">{t1:%d/%m}</text>',
        f'<text x="4" y="{y(hi) + 4:.1f}" font-size="11">{hi:.0f}</text>',
        f'<text x="4" y="{y(lo) + 4:.1f}" font-size="11">{lo:.0f}</text>',
    ]
    for label, value in thresholds:
        parts.append(
            f'<line x1="{PAD}" x2="{WIDTH - PAD}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#b00020" '
            f'stroke-dasharray="4 3"/><text x="{WIDTH - PAD - 4}" y="{y(value) - 3:.1f}" font-size="11" '
            f'fill="#b00020" text-anchor="end">{escape(label)} {value:g}</text>'
        )
    for k, (name, pts) in enumerate(series):
        colour = colours[k % len(colours)]
        ordered = sorted(pts, key=lambda p: p.at)
        path = " ".join(f"{x(p.at):.1f},{y(p.value):.1f}" for p in ordered)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}">'
                     f"<title>{escape(name)}</title></polyline>")  # fmt: skip
        for p in ordered:
            if p.marked:
                label = f"{p.value:g} {escape(unit)}, {p.at:%Y-%m-%d %H:%M}"
                circle = (
                    f'<circle cx="{x(p.at):.1f}" cy="{y(p.value):.1f}" r="5" fill="none" stroke="#b00020"'
                )
                parts.append(f'{circle} stroke-width="2"><title>{label}</title></circle>')
    parts.append("</svg>")
    # Every text that reached the parts was escaped above; the rest are numbers and constants.
    return Markup("".join(parts))  # noqa: S704


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    text: str | None = None  # shown instead of the value (e.g. "< 10")
    upto: float = 0.0  # how much more the value may be (drawn dashed after the bar)


BAR_HEIGHT, LABEL_WIDTH = 26, 190


def _clip(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


def bar_chart(title: str, unit: str, bars: Sequence[Bar], label_header: str) -> Markup:
    """Horizontal bars, one per label, as an SVG followed by the same values in a table
    (``label_header`` and ``unit`` head its columns). A bar with ``upto`` has a dashed part:
    a value known only as a range (a hidden small count, a sum of such counts)."""
    if not bars:
        return Markup("")

    def shown(b: Bar) -> str:
        return b.text if b.text is not None else f"{b.value:,.0f}"

    top = max(max(b.value + b.upto for b in bars), 1.0)
    room = 12 + 8 * max(len(shown(b)) for b in bars)  # for the value written after the bar
    span = WIDTH - LABEL_WIDTH - 2 * PAD - room
    height = PAD + BAR_HEIGHT * len(bars) + 8

    def w(value: float) -> float:
        return span * max(value, 0.0) / top

    parts = [
        f'<figure class="bars"><svg role="img" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'style="max-width:{WIDTH}px" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f"<desc>{escape(title)} ({escape(unit)}): {escape('; '.join(f'{b.label}: {shown(b)}' for b in bars))}"
        "</desc>",
        f'<text x="{LABEL_WIDTH + PAD}" y="{PAD - 12}" font-size="12" fill="#1a1a1a">{escape(unit)}</text>',
    ]
    x0 = LABEL_WIDTH + PAD
    for k, b in enumerate(bars):
        y = PAD + k * BAR_HEIGHT
        mid = y + BAR_HEIGHT / 2 + 4
        parts.append(
            f"<g><title>{escape(b.label)}: {escape(shown(b))}</title>"
            f'<text x="{x0 - 8}" y="{mid:.1f}" font-size="13" text-anchor="end" fill="#1a1a1a">'
            f"{escape(_clip(b.label, 26))}</text>"
            f'<rect x="{x0}" y="{y + 4}" width="{w(b.value):.1f}" height="{BAR_HEIGHT - 8}" fill="#0b5394"/>'
        )
        end = x0 + w(b.value)
        if b.upto > 0:
            parts.append(
                f'<rect x="{end:.1f}" y="{y + 4}" width="{w(b.upto):.1f}" height="{BAR_HEIGHT - 8}" '
                'fill="#fff" stroke="#4b5563" stroke-dasharray="4 3"/>'
            )
            end += w(b.upto)
        parts.append(
            f'<text x="{end + 6:.1f}" y="{mid:.1f}" font-size="13" fill="#1a1a1a">'
            f"{escape(shown(b))}</text></g>"
        )
    parts.append(
        f'</svg><table><thead><tr><th scope="col">{escape(label_header)}</th>'
        f'<th scope="col">{escape(unit)}</th></tr></thead><tbody>'
    )
    parts += [f'<tr><th scope="row">{escape(b.label)}</th><td>{escape(shown(b))}</td></tr>' for b in bars]
    parts.append("</tbody></table></figure>")
    # Every text that reached the parts was escaped above; the rest are numbers and constants.
    return Markup("".join(parts))  # noqa: S704
