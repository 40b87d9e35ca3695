"""This bundle's simulated cost against prod's, and a chart axis that fits both and the cap.

A clerk reads a cost only against something: "prod costs $X; this costs $Y, +$Z (+N %)". The figure for
prod is, in order of preference, the baseline the simulation itself ran (same population, same run: the
``baseline`` of ``SimulationResult`` when it is prod's bundle), else the simulation recorded with prod's own
bundle (its ``test`` check) — then ``same_run`` is False, and the page should say the figures come from two
runs (possibly two populations). Pure: ``hms.web.reviews`` finds the results and fills ``BundleView.cost``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hms.simulate import SimulationResult, format_money

NICE_STEPS = (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)


@dataclass(frozen=True)
class CostComparison:
    """Costs in cents (per ``per_period``); ``baseline_cents`` None when prod has no simulated cost to show."""

    currency: str
    cost_cents: float
    cap_cents: float | None
    baseline_cents: float | None = None
    baseline_version: int | None = None
    same_run: bool = False
    per_period: str = "per year"

    @property
    def delta_cents(self) -> float | None:
        return None if self.baseline_cents is None else self.cost_cents - self.baseline_cents

    @property
    def delta_pct(self) -> float | None:
        """The change in per cent of prod's cost; None without a baseline or when prod costs nothing."""
        if self.baseline_cents is None or not self.baseline_cents:
            return None
        return 100 * (self.cost_cents - self.baseline_cents) / self.baseline_cents

    @property
    def axis_max_cents(self) -> float:
        return axis_max(self.cap_cents, self.cost_cents, self.baseline_cents)

    @property
    def sentence(self) -> str:
        """``prod (v3) costs $X; this costs $Y, +$Z (+N %)`` — or the cost alone when prod has none."""
        money = lambda c, sign=False: format_money(c, self.currency, sign=sign)  # noqa: E731
        this = f"this costs {money(self.cost_cents)} {self.per_period}"
        if self.baseline_cents is None:
            return f"nothing in prod to compare with; {this}"
        pct = "" if self.delta_pct is None else f" ({self.delta_pct:+.1f} %)"
        where = f"prod (v{self.baseline_version})" if self.baseline_version is not None else "prod"
        return f"{where} costs {money(self.baseline_cents)}; {this}, {money(self.delta_cents, sign=True)}{pct}"

    def to_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "cost_cents": self.cost_cents, "cap_cents": self.cap_cents,
                "baseline_cents": self.baseline_cents, "baseline_version": self.baseline_version,
                "same_run": self.same_run, "delta_cents": self.delta_cents, "delta_pct": self.delta_pct,
                "axis_max_cents": self.axis_max_cents, "per_period": self.per_period, "sentence": self.sentence}


def nice_ceiling(x: float) -> float:
    """The smallest "round" number ≥ x: 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × a power of ten."""
    if x <= 0 or not math.isfinite(x):
        return 1.0
    exp = math.floor(math.log10(x))
    base = 10.0 ** exp
    for step in NICE_STEPS:
        if step * base >= x * (1 - 1e-12):
            return step * base
    return 10 * base


def axis_max(cap: float | None, cost: float | None, baseline: float | None = None, *, headroom: float = 1.1) -> float:
    """A chart's maximum: the largest of cap, cost and baseline, plus ~10 %, rounded up to a nice number.

    So a $1B cap gives a $1.2B axis (not $2B), and a cost over the cap still fits on the chart.
    """
    top = max((v for v in (cap, cost, baseline) if v is not None and v > 0), default=0.0)
    return nice_ceiling(top * headroom) if top else 1.0


def compare(this: SimulationResult, prod: SimulationResult | None = None, *, prod_sha256: str | None = None,
            prod_version: int | None = None) -> CostComparison:
    """This result's cost against prod's: the simulation's own baseline when it is prod's bundle, else ``prod``."""
    base = this.baseline
    if base is not None and prod_sha256 is not None and (base.get("protocol") or {}).get("sha256") == prod_sha256:
        return CostComparison(this.currency, this.cost_cents, this.cap_cents, base["cost_cents"],
                              base["protocol"].get("version", prod_version), True, this.per_period)
    if prod is not None and prod.currency == this.currency:
        return CostComparison(this.currency, this.cost_cents, this.cap_cents, prod.cost_cents,
                              prod_version if prod_version is not None else prod.version, False, this.per_period)
    return CostComparison(this.currency, this.cost_cents, this.cap_cents, per_period=this.per_period)
