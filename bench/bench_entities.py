"""Entities (issue 17): the household food benefit over 1,000,000 households and their ~2.5M members;
the household work credit (two group levels: tax units inside households) over 1,000,000 households.

The food benefit's members are a synthetic population's (household_size persons each, drawn from the
declarations). The work credit's households have one to five members; the fourth and fifth form a
second tax unit, so a household rule reduces over tax units (``sum(unit_credit, over=tax_units)``)
as well as members.
Vectorized: one ``evaluate_groups`` over the sorted person table (segment reductions, no loop per
household); per-record: households through the decision service's backend (validation included, as a
request pays it), extrapolated from 20,000.
Best of a few runs (the 2-CPU box is shared).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.table import Row
from bench.timing import best_of
from hms import population, protocol
from hms.rules import RuleSet, SubgroupTable

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "tests" / "data" / "protocols" / "household-food-benefit.yml"
TWO_LEVELS = ROOT / "tests" / "data" / "protocols" / "household-work-credit.yml"
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
        *_two_levels(),
        Row("entities", f"vectorized food benefit, 1M households ({persons.m / 1e6:.1f}M members)",
            f"{vec:.2f} s ({N / vec / 1e6:.2f} M households/s)", "< 2 s", vec < 2),
        Row("entities", "per-record food benefit, 1M households (from 20k)", f"{per:.1f} s ({N / per / 1e3:.0f} k/s)",
            "> 10 k households/s (< 100 µs a decision)", N / per > 10_000),
    ]


def _two_levels() -> list[Row]:
    rs = protocol.load(TWO_LEVELS).ruleset
    rng = np.random.default_rng(7)
    member_of = np.repeat(np.arange(N), rng.integers(1, 6, N))
    m = len(member_of)
    number = np.arange(m) - np.searchsorted(member_of, member_of)  # each member's number in its household
    second = number >= 3
    _, of_person = np.unique(member_of * 2 + second, return_inverse=True)  # rows in household order
    n_units = int(of_person.max()) + 1
    persons = {
        "age": rng.integers(0, 80, m),
        "earnings": np.minimum(np.round(rng.lognormal(np.log(18000), 1.0, m), 2), 1_000_000),
        "tax_unit_role": np.where((number == 0) | (number == 3), "filer", "dependent"),
    }
    units = SubgroupTable({"filing_status": rng.choice(["single", "joint"], n_units)}, of_person)
    group = {"resident": rng.random(N) < 0.9}
    vec = best_of(lambda: rs.evaluate_groups(group, persons, member_of, n=N, subgroups={"tax_unit": units}), 3)
    per = best_of(lambda: [rs.evaluate(hh) for hh in _requests(rs, group, persons, member_of, units, 20_000)], 2)
    per *= N / 20_000
    return [
        Row("entities",
            f"vectorized work credit, 1M households ({m / 1e6:.1f}M members, {n_units / 1e6:.1f}M tax units)",
            f"{vec:.2f} s ({N / vec / 1e6:.2f} M households/s)", "< 3 s", vec < 3),
        # 12 rules over three levels (members, tax units, the household) and the nested request's validation.
        Row("entities", "per-record work credit, 1M households (from 20k)", f"{per:.1f} s ({N / per / 1e3:.1f} k/s)",
            "> 5 k households/s (< 200 µs a decision)", N / per > 5_000),
    ]


def _requests(
    rs: RuleSet, group: dict, persons: dict, member_of: np.ndarray, units: SubgroupTable, k: int
) -> list[dict]:
    """The first ``k`` households as decision requests (members name their tax unit by row)."""
    stop = int(np.searchsorted(member_of, k))
    out = [{"household": {"resident": bool(group["resident"][h])}, "members": [], "tax_units": []} for h in range(k)]
    seen: set[int] = set()
    for p in range(stop):
        hh, row = out[int(member_of[p])], int(units.of_person[p])
        hh["members"].append({name: col[p].item() for name, col in persons.items()} | {"tax_unit": row})
        if row not in seen:
            seen.add(row)
            hh["tax_units"].append({"id": row, "filing_status": str(units.columns["filing_status"][row])})
    return out
