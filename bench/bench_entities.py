"""Entities (issue 17): the household food benefit over 1,000,000 households and their ~2.5M members.

The members are a synthetic population's (household_size persons each, drawn from the declarations).
Vectorized: one ``evaluate_groups`` over the sorted person table (segment reductions, no loop per
household); per-record: households through the decision service's backend (validation included, as a
request pays it), extrapolated from 20,000.
Best of a few runs (the 2-CPU box is shared).
"""

from __future__ import annotations

from pathlib import Path

from bench.table import Row
from bench.timing import best_of
from hms import population, protocol

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "protocols" / "household-food-benefit.yml"
N = 1_000_000


def run() -> list[Row]:
    proto = protocol.load(SAMPLE)
    rs = proto.ruleset
    pop = population.complete_for(population.resolve(f"synthetic:{N}:7"), [proto])
    persons = pop.persons
    assert persons is not None
    group = {"rent": pop.columns["rent"]}
    vec = best_of(lambda: rs.evaluate_groups(group, persons.columns, persons.member_of, n=N), 3)
    k = 20_000
    households = []
    for h in range(k):
        a, b = persons.rows_for(h, h + 1)
        members = [{name: col[i].item() for name, col in persons.columns.items()} for i in range(a, b)]
        households.append({"household": {"rent": float(pop.columns["rent"][h])}, "members": members})
    per = best_of(lambda: [rs.evaluate(hh) for hh in households], 2) * (N / k)
    return [
        Row("entities", f"vectorized food benefit, 1M households ({persons.m / 1e6:.1f}M members)",
            f"{vec:.2f} s ({N / vec / 1e6:.2f} M households/s)", "< 2 s", vec < 2),
        Row("entities", "per-record food benefit, 1M households (from 20k)", f"{per:.1f} s ({N / per / 1e3:.0f} k/s)",
            "> 10 k households/s (< 100 µs a decision)", N / per > 10_000),
    ]
