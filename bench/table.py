"""The one row type every benchmark returns, and the Markdown table `make bench` prints."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    area: str  # e.g. "rules", "simulation", "compliance"
    what: str  # what was measured, with its size: "vectorized wildfire, 1M rows"
    figure: str  # the measurement with its unit: "12.4 ms"
    target: str  # the promise: "< 2x hand NumPy"
    ok: bool


def render(rows: list[Row]) -> str:
    head = ["area", "what", "figure", "target", "met"]
    body = [[r.area, r.what, r.figure, r.target, "yes" if r.ok else "NO"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=False)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, body)])
