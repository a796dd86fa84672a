"""Small inline SVG charts for audit reports: a line chart and a grouped bar chart.

Plain strings, no dependencies and no scripts, so a report stays one self-contained page
that any browser shows offline. Every label is escaped here: series, group and axis
names come from audit logs, which another institution wrote.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from html import escape

Point = tuple[float, float]

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000")
"""Okabe-Ito colours: told apart by colour-blind readers too."""

_W, _H = 720, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 70, 190, 34, 50  # the legend sits in the right margin
_MARKERS_UP_TO = 60  # points per series drawn as dots too; more would clutter the line


def nice_ticks(lo: float, hi: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values covering ``[lo, hi]``: steps of 1, 2, 2.5 or 5 times a power of 10."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        lo, hi = lo - (abs(lo) * 0.1 or 1.0), hi + (abs(hi) * 0.1 or 1.0)
    raw = (hi - lo) / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, float(math.ceil(step)))
    first, last = math.floor(lo / step), math.ceil(hi / step)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_label(value: float, ticks: Sequence[float]) -> str:
    """``value`` with as many decimals as the tick step needs."""
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    if step * 10**decimals % 1:  # steps such as 0.25 need one more
        decimals += 1
    return f"{value:.{decimals}f}"


class _Frame:
    """Maps data coordinates to the plot area and draws the axes, ticks and labels."""

    def __init__(self, xticks: Sequence[float], yticks: Sequence[float]) -> None:
        self.x0, self.x1 = xticks[0], xticks[-1]
        self.y0, self.y1 = yticks[0], yticks[-1]
        self.width = _W - _LEFT - _RIGHT
        self.height = _H - _TOP - _BOTTOM

    def x(self, value: float) -> float:
        return _LEFT + (value - self.x0) / ((self.x1 - self.x0) or 1.0) * self.width

    def y(self, value: float) -> float:
        return _TOP + self.height - (value - self.y0) / ((self.y1 - self.y0) or 1.0) * self.height

    def y_axis(self, ticks: Sequence[float], label: Callable[[float], str]) -> list[str]:
        parts = []
        for tick in ticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{_LEFT}" y1="{y:.1f}" x2="{_LEFT + self.width}" y2="{y:.1f}" '
                'stroke="#ddd"/>'
                f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                f"{escape(label(tick))}</text>"
            )
        return parts

    def box(self, x_title: str, y_title: str) -> str:
        bottom = _TOP + self.height
        return (
            f'<line x1="{_LEFT}" y1="{_TOP}" x2="{_LEFT}" y2="{bottom}" stroke="#333"/>'
            f'<line x1="{_LEFT}" y1="{bottom}" x2="{_LEFT + self.width}" y2="{bottom}" '
            'stroke="#333"/>'
            f'<text x="{_LEFT + self.width / 2:.1f}" y="{_H - 8}" text-anchor="middle">'
            f"{escape(x_title)}</text>"
            f'<text x="14" y="{_TOP + self.height / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {_TOP + self.height / 2:.1f})">{escape(y_title)}</text>'
        )


def line_chart(
    series: Mapping[str, Sequence[Point]],
    *,
    svg_id: str,
    css_class: str = "",
    title: str,
    x_title: str,
    y_title: str,
) -> str:
    """One polyline per series (x ascending), with integer x ticks and a legend.

    Non-finite points are left out: a NaN loss must not break the page.
    """
    clean = {
        name: sorted((x, y) for x, y in points if math.isfinite(x) and math.isfinite(y))
        for name, points in series.items()
    }
    xs = [x for points in clean.values() for x, _ in points] or [0.0]
    ys = [y for points in clean.values() for _, y in points] or [0.0]
    xticks = nice_ticks(min(xs), max(xs), 8, integer=True)
    yticks = nice_ticks(min(ys), max(ys), 5)
    frame = _Frame(xticks, yticks)
    parts = frame.y_axis(yticks, lambda v: tick_label(v, yticks))
    for tick in xticks:
        parts.append(
            f'<text x="{frame.x(tick):.1f}" y="{_TOP + frame.height + 16}" '
            f'text-anchor="middle">{tick:.0f}</text>'
        )
    for i, (name, points) in enumerate(clean.items()):
        colour = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{frame.x(x):.1f},{frame.y(y):.1f}" for x, y in points)
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" points="{coords}" '
            f'fill="none" stroke="{colour}" stroke-width="2"><title>{escape(name)}</title>'
            "</polyline>"
        )
        if len(points) <= _MARKERS_UP_TO:
            parts.extend(
                f'<circle cx="{frame.x(x):.1f}" cy="{frame.y(y):.1f}" r="2.5" fill="{colour}">'
                f"<title>{escape(name)} {x:g}: {y:.6g}</title></circle>"
                for x, y in points
            )
    parts.append(_legend(list(clean)))
    return _svg(svg_id, css_class, title, [*parts, frame.box(x_title, y_title)])


def bar_chart(
    groups: Sequence[str],
    series: Mapping[str, Sequence[float]],
    *,
    svg_id: str,
    css_class: str = "",
    title: str,
    y_title: str,
    value_label: Callable[[float], str] = lambda v: f"{v:g}",
) -> str:
    """Grouped bars: one group per entry of ``groups``, one bar per series within it.

    ``series[name][i]`` is the bar of series ``name`` in group ``i``; zero bars are left
    out but keep their slot, so a series sits at the same place in every group.
    """
    top = max((v for values in series.values() for v in values), default=0.0)
    yticks = nice_ticks(0.0, top or 1.0, 5)
    frame = _Frame([0.0, float(max(len(groups), 1))], yticks)
    parts = frame.y_axis(yticks, value_label)
    slot = 0.8 / max(len(series), 1)
    for g, group in enumerate(groups):
        parts.append(
            f'<text x="{frame.x(g + 0.5):.1f}" y="{_TOP + frame.height + 16}" '
            f'text-anchor="middle">{escape(group)}</text>'
        )
        for s, (name, values) in enumerate(series.items()):
            value = values[g] if g < len(values) else 0.0
            if value <= 0:
                continue
            left = frame.x(g + 0.1 + s * slot)
            top_y = min(frame.y(value), frame.y(0) - 1)  # a tiny bar still shows
            parts.append(
                f'<rect class="bar" x="{left:.1f}" y="{top_y:.1f}" '
                f'width="{frame.x(slot) - _LEFT:.1f}" height="{frame.y(0) - top_y:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(group)}, {escape(name)}: '
                f"{escape(value_label(value))}</title></rect>"
            )
    parts.append(_legend(list(series)))
    return _svg(svg_id, css_class, title, [*parts, frame.box("phase", y_title)])


def _legend(names: Sequence[str]) -> str:
    x = _W - _RIGHT + 16
    rows = []
    for i, name in enumerate(names):
        y = _TOP + 6 + i * 18
        rows.append(
            f'<rect x="{x}" y="{y - 9}" width="12" height="12" '
            f'fill="{PALETTE[i % len(PALETTE)]}"/>'
            f'<text x="{x + 18}" y="{y + 1}">{escape(name)}</text>'
        )
    return f'<g class="legend">{"".join(rows)}</g>'


def _svg(svg_id: str, css_class: str, title: str, parts: Sequence[str]) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(svg_id)}" '
        f'class="{escape(css_class or svg_id)}" '
        f'viewBox="0 0 {_W} {_H}" width="{_W}" height="{_H}" role="img" '
        f'aria-label="{escape(title)}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title>"
        f'<text x="{_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>'
        f"{''.join(parts)}</svg>"
    )
