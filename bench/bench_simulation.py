"""Simulation speed on one 1,000,000-household synthetic population (issue 9).

Three implementations of the same job — the wildfire rule, its weighted total cost and
eligible count, and the selection rate per race/ethnicity and sex group — on the same
columns: (a) ``hms.simulate`` (validation + rules + exact money + fairness), (b) the rule
hand-written in NumPy, (c) OpenFisca (a minimal tax-benefit system written here, the
simulation build included), skipped if openfisca-core is not installed. Totals must be
identical. The issue's ">= 10x OpenFisca" target assumed a slow OpenFisca build (0.35 s);
fed with ``set_input`` arrays, as here, OpenFisca is only a few times slower than hand NumPy,
so that row reports honestly rather than being relaxed. Times are the best of several
interleaved repeats, so a noisy machine slows both sides alike; the 2-CPU CI box is noisy.
"""

from __future__ import annotations

import contextlib
import gc
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.table import Row
from hms import protocol
from hms.population import Population, SyntheticSpec, synthetic
from hms.simulate import simulate

ROOT = Path(__file__).resolve().parents[1]
WILDFIRE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
N = 1_000_000
REPEATS = 15


def hand_numpy(pop: Population) -> tuple[float, float, dict[str, np.ndarray]]:
    """The wildfire rule, totals and group rates as someone would write them in NumPy."""
    hs = pop.columns["household_size"]
    inc = pop.columns["household_income"]
    fire = pop.columns["county_fire_declared"]
    w = pop.weight
    poverty_line = 15060.0 + 5380.0 * (hs - 1)
    eligible = fire & (inc <= 4.0 * poverty_line)
    amount = np.where(eligible, np.minimum(5000.0, 1000.0 * hs), 0.0)
    total = float((amount * w).sum())
    we = w * eligible
    count = float(we.sum())
    rates = {}
    for name, cat in pop.attributes.items():
        k = len(cat.labels)
        rates[name] = np.bincount(cat.codes, weights=we, minlength=k) / np.bincount(cat.codes, weights=w, minlength=k)
    return total, count, rates


def _openfisca_system() -> Any:
    from openfisca_core import periods
    from openfisca_core.entities import build_entity
    from openfisca_core.taxbenefitsystems import TaxBenefitSystem
    from openfisca_core.variables import Variable

    household = build_entity("household", "households", "A household", is_person=True)

    def var(name: str, value_type: type, formula: Callable | None = None) -> type:
        attrs: dict[str, Any] = {"value_type": value_type, "entity": household, "definition_period": periods.YEAR}
        if formula is not None:
            attrs["formula"] = formula
        return type(name, (Variable,), attrs)

    def poverty_line(h: Any, period: Any) -> Any:
        return 15060 + 5380 * (h("household_size", period) - 1)

    def eligible(h: Any, period: Any) -> Any:
        return h("county_fire_declared", period) * (h("household_income", period) <= 4.0 * h("poverty_line", period))

    def amount(h: Any, period: Any) -> Any:
        return h("eligible", period) * np.minimum(5000, 1000 * h("household_size", period))

    tbs = TaxBenefitSystem([household])
    tbs.add_variables(
        var("household_size", int),
        var("household_income", float),
        var("county_fire_declared", bool),
        var("poverty_line", float, poverty_line),
        var("eligible", bool, eligible),
        var("amount", float, amount),
    )
    return tbs


def openfisca_run(tbs: Any, pop: Population) -> tuple[float, float]:
    """Build the simulation from the columns and compute the totals (float64 sums of OpenFisca's arrays)."""
    from openfisca_core.simulations import SimulationBuilder

    sb = SimulationBuilder()
    sb.create_entities(tbs)
    sb.declare_person_entity("household", np.arange(pop.n))
    sim = sb.build(tbs)
    period = "2024"
    sim.set_input("household_size", period, pop.columns["household_size"])
    sim.set_input("household_income", period, pop.columns["household_income"])
    sim.set_input("county_fire_declared", period, pop.columns["county_fire_declared"])
    amount = sim.calculate("amount", period)
    eligible = sim.calculate("eligible", period)
    w = pop.weight
    return float((amount.astype(np.float64) * w).sum()), float((w * eligible).sum())


def _best(fns: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            gc.collect()
            t = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t)
    return best


def _peak(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def run() -> list[Row]:
    proto = protocol.load(WILDFIRE)
    spec = SyntheticSpec(n=N, seed=2024, weight=2, fire_declared_share=0.25)
    t = time.perf_counter()
    pop = synthetic(spec)
    gen = time.perf_counter() - t
    gen = min(gen, *(_time(lambda: synthetic(spec)) for _ in range(2)))

    ours = simulate(proto, pop)
    total, count, rates = hand_numpy(pop)
    fns: dict[str, Callable[[], Any]] = {"hms": lambda: simulate(proto, pop), "numpy": lambda: hand_numpy(pop)}
    tbs = None
    with contextlib.suppress(ImportError):  # openfisca-core is optional: its rows are skipped
        tbs = _openfisca_system()
    if tbs is not None:
        of_total, of_count = openfisca_run(tbs, pop)
        fns["openfisca"] = lambda: openfisca_run(tbs, pop)
    best = _best(fns, REPEATS)
    ratio = best["hms"] / best["numpy"]
    same = ours.cost == total and ours.eligible == count
    fair_same = all(
        np.allclose([ours.fairness["attributes"][a]["rates"][g] for g in pop.attributes[a].labels], r, rtol=1e-12)
        for a, r in rates.items()
    )
    peak_hms = _peak(lambda: simulate(proto, pop))
    peak_np = _peak(lambda: hand_numpy(pop))
    rows = [
        Row("simulation", "synthetic population, 1M households", f"{gen * 1e3:.0f} ms", "< 1 s", gen < 1.0),
        Row(
            "simulation",
            "hms simulate wildfire, 1M (rules+money+fairness)",
            f"{best['hms'] * 1e3:.1f} ms",
            "-",
            True,
        ),
        Row("simulation", "hand-written NumPy, same job, 1M", f"{best['numpy'] * 1e3:.1f} ms", "-", True),
        Row("simulation", "hms / hand NumPy", f"{ratio:.2f}x", "<= 2x", ratio <= 2.0),
        Row(
            "simulation",
            "totals hms vs NumPy (cost, eligible, rates)",
            f"{_money(ours.cost)} / {count:,.0f}",
            "identical",
            same and fair_same,
        ),
        Row("simulation", "peak memory hms vs NumPy, 1M", f"{peak_hms:.0f} MiB / {peak_np:.0f} MiB", "-", True),
    ]
    if tbs is not None:
        of_ratio = best["openfisca"] / best["hms"]
        rows += [
            Row("simulation", "OpenFisca same rule, 1M (build incl.)", f"{best['openfisca'] * 1e3:.1f} ms", "-", True),
            Row("simulation", "OpenFisca / hms", f"{of_ratio:.1f}x", ">= 10x", of_ratio >= 10),
            Row(
                "simulation",
                "totals hms vs OpenFisca",
                f"{_money(of_total)} / {of_count:,.0f}",
                "identical",
                of_total == ours.cost and of_count == ours.eligible,
            ),
        ]
    else:
        rows.append(Row("simulation", "OpenFisca comparison", "skipped: openfisca-core not installed", "-", True))
    return rows


def _time(fn: Callable[[], Any]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _money(x: float) -> str:
    return f"${x:,.0f}"
