"""The SVG charts of the simulation report and of the clerk's card: geometry here, markup in a template.

One module for both, so the card's cost chart and the report's are the same picture with the same axis:
a builder turns figures into typed shapes (``Line``, ``Rect``, ``Text``) in drawing order, and the one
macro in ``templates/charts.html`` writes them as SVG (autoescaped: a protocol's group labels are user
input). No HTML or SVG text is built here, and nothing here knows who shows the chart.

The cost axis is ``hms.cost_baseline.axis_max``: the largest of cap, cost and baseline plus ~10 %,
rounded to a nice number — a $1B cap gets a $1.2B axis, not $2B.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from hms.cost_baseline import axis_max
from hms.simulate import format_money

BLUE, GREEN, RED, GREY, AMBER, VIOLET = "#2563eb", "#16a34a", "#dc2626", "#9ca3af", "#d97706", "#7c3aed"


@dataclass(frozen=True)
class Line:
    x1: float
    y1: float
    x2: float
    y2: float
    cls: str  # grid | axis | cap: the stylesheet colours them for the light and the dark theme
    shape: Literal["line"] = "line"


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    width: float
    height: float
    fill: str
    title: str  # the exact figure on hover
    rx: float = 2
    shape: Literal["rect"] = "rect"


@dataclass(frozen=True)
class Text:
    x: float
    y: float
    text: str
    cls: str  # tick | val | lab | barin | capl
    anchor: Literal["start", "middle", "end"] = "middle"
    shape: Literal["text"] = "text"


Shape = Line | Rect | Text


@dataclass(frozen=True)
class Chart:
    """A chart ready to draw: its view box, its accessible name and its shapes, back to front."""

    width: int
    height: int
    label: str
    shapes: list[Shape] = field(default_factory=list)
    axis_max: float = 0.0  # the value at the end of the value axis (tests read it: the axis fits the data)


# ---- axis labels ------------------------------------------------------------------------------


def nice_max(v: float) -> float:
    """A round axis maximum at or above ``v`` whose quarters are round too (1, 2, 4, 6, 8 × 10^k)."""
    if v <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 4, 6, 8, 10):
        if m * exp >= v:
            return m * exp
    return 10 * exp


def money_axis(currency: str) -> Callable[[float], str]:
    """Short money labels for an axis (``$1.2B``), in currency units."""

    def fmt(v: float) -> str:
        sym = "$" if currency == "USD" else f"{currency} "
        for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if abs(v) >= div:
                return f"{sym}{v / div:.3g}{suffix}"
        return f"{sym}{v:,.0f}"

    return fmt


def count_axis(v: float) -> str:
    for div, suffix in ((1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:,.0f}"


def percent_axis(v: float) -> str:
    return f"{100 * v:.0f} %"


# ---- builders ---------------------------------------------------------------------------------


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    fmt: Callable[[float], str],
    color: str = BLUE,
    colors: Sequence[str] | None = None,
    width: int = 560,
    height: int = 260,
    x_title: str = "",
    label: str = "chart",
) -> Chart:
    """Vertical bars with gridlines, tick labels and a value above each bar (when there are few)."""
    left, right, top, bottom = 64, 12, 22, 46 if x_title else 30
    pw, ph = width - left - right, height - top - bottom
    vmax = nice_max(max(values, default=0))
    n = max(len(values), 1)
    slot = pw / n
    bw = max(2.0, slot * 0.7)
    shapes: list[Shape] = []
    for i in range(5):
        y = top + ph - ph * i / 4
        shapes.append(Line(left, y, width - right, y, "grid"))
        shapes.append(Text(left - 6, y + 4, fmt(vmax * i / 4), "tick", "end"))
    for i, (lab, v) in enumerate(zip(labels, values, strict=True)):
        h = ph * (v / vmax) if vmax else 0
        x = left + i * slot + (slot - bw) / 2
        y = top + ph - h
        shapes.append(Rect(x, y, bw, max(h, 0), colors[i] if colors else color, f"{lab}: {fmt(v)}"))
        if n <= 12:
            shapes.append(Text(x + bw / 2, y - 5, fmt(v), "val"))
        if n <= 12 or i % max(1, n // 10) == 0:
            shapes.append(Text(x + bw / 2, top + ph + 16, str(lab), "tick"))
    shapes.append(Line(left, top + ph, width - right, top + ph, "axis"))
    if x_title:
        shapes.append(Text(left + pw / 2, height - 6, x_title, "tick"))
    return Chart(width, height, label, shapes, vmax)


def diverging_chart(
    labels: Sequence[str],
    ups: Sequence[float],
    downs: Sequence[float],
    *,
    fmt: Callable[[float], str],
    width: int = 560,
    height: int = 280,
    x_title: str = "",
    label: str = "chart",
) -> Chart:
    """Gains above the axis (green) and losses below it (red), one pair per category."""
    left, right, top, bottom = 64, 12, 16, 46
    pw, ph = width - left - right, height - top - bottom
    vmax = nice_max(max([*ups, *downs, 0]))
    mid = top + ph / 2
    n = max(len(labels), 1)
    slot = pw / n
    bw = slot * 0.6
    shapes: list[Shape] = []
    for frac in (-1, -0.5, 0.5, 1):
        y = mid - frac * ph / 2
        shapes.append(Line(left, y, width - right, y, "grid"))
        shapes.append(Text(left - 6, y + 4, ("−" if frac < 0 else "+") + fmt(abs(frac) * vmax), "tick", "end"))
    for i, lab in enumerate(labels):
        x = left + i * slot + (slot - bw) / 2
        hu, hd = ph / 2 * ups[i] / vmax, ph / 2 * downs[i] / vmax
        shapes.append(Rect(x, mid - hu, bw, hu, GREEN, f"{lab}: gains {fmt(ups[i])}"))
        shapes.append(Rect(x, mid, bw, hd, RED, f"{lab}: losses {fmt(downs[i])}"))
        shapes.append(Text(x + bw / 2, top + ph + 16, str(lab), "tick"))
    shapes.append(Line(left, mid, width - right, mid, "axis"))
    if x_title:
        shapes.append(Text(left + pw / 2, height - 6, x_title, "tick"))
    return Chart(width, height, label, shapes, vmax)


@dataclass(frozen=True)
class CostBar:
    """One horizontal bar of the cost chart: what it is (``prod v2``, ``v3``) and its cost in cents."""

    label: str
    cents: float
    fill: str


def cost_chart(bars: Sequence[CostBar], cap_cents: float | None, currency: str, *, width: int = 1080) -> Chart:
    """Horizontal bars (prod's cost, this version's) against the cap line, on an axis that fits all three."""
    top_cents = axis_max(cap_cents, max((b.cents for b in bars), default=0.0), None)
    scale = top_cents / 100  # currency units
    left, right, bar_h, gap, top = 110, 64, 34, 14, 26
    pw = width - left - right
    height = top + len(bars) * (bar_h + gap) + 26
    tick = money_axis(currency)

    def money(cents: float) -> str:
        return format_money(cents, currency)

    shapes: list[Shape] = []
    for i in range(5):
        x = left + pw * i / 4
        shapes.append(Line(x, top - 6, x, height - 22, "grid"))
        shapes.append(Text(x, height - 6, tick(scale * i / 4), "tick"))
    for j, b in enumerate(bars):
        y = top + j * (bar_h + gap)
        w = pw * b.cents / top_cents
        shapes.append(Text(left - 8, y + bar_h / 2 + 5, b.label, "lab", "end"))
        shapes.append(Rect(left, y, max(w, 1), bar_h, b.fill, f"{b.label}: {money(b.cents)}", rx=3))
        inside = w > 170
        shapes.append(
            Text(
                left + w - 8 if inside else left + w + 8,
                y + bar_h / 2 + 5,
                money(b.cents),
                "barin" if inside else "lab",
                "end" if inside else "start",
            )
        )
    if cap_cents:
        x = left + pw * cap_cents / top_cents
        shapes.append(Line(x, top - 14, x, height - 22, "cap"))
        shapes.append(Text(x - 4, top - 16, f"cap {money(cap_cents)}", "capl", "end"))
    return Chart(width, height, "cost vs cap", shapes, top_cents)


def cost_fill(cents: float, cap_cents: float | None) -> str:
    """Red over the cap, green within it (or without one)."""
    return RED if cap_cents is not None and cents > cap_cents else GREEN
