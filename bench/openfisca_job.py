"""OpenFisca's whole job, run as its own process by bench_microdata: what an OpenFisca user waits for.

The same figures ``hms policy simulate`` prints for the wildfire rule on the same Parquet file: the
weighted total cost and eligible count, and the selection rate and mean amount per race/ethnicity and sex
group. The population is fed with ``set_input`` arrays (OpenFisca's fastest path; a situation dict would
be far slower), the tax-benefit system is the minimal one of bench_simulation. Prints one JSON line.

Usage: python bench/openfisca_job.py POPULATION.parquet
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pyarrow.parquet as pq
from openfisca_core.simulations import SimulationBuilder

from bench.bench_simulation import _openfisca_system


def main(path: str) -> None:
    tbs = _openfisca_system()
    t = pq.read_table(path)
    sb = SimulationBuilder()
    sb.create_entities(tbs)
    sb.declare_person_entity("household", np.arange(t.num_rows))
    sim = sb.build(tbs)
    for c in ("household_size", "household_income", "county_fire_declared"):
        sim.set_input(c, "2024", t.column(c).to_numpy())
    amount = sim.calculate("amount", "2024").astype(np.float64)
    eligible = sim.calculate("eligible", "2024")
    w = t.column("weight").to_numpy().astype(np.float64)
    out = {"cost": float((amount * w).sum()), "eligible": float((w * eligible).sum()), "rates": {}}
    for attr in ("race_ethnicity", "sex"):
        col = t.column(attr).combine_chunks()
        codes = col.dictionary_encode() if not hasattr(col, "indices") else col
        idx = codes.indices.to_numpy().astype(np.intp)
        k = len(codes.dictionary)
        tot = np.bincount(idx, weights=w, minlength=k)
        out["rates"][attr] = (np.bincount(idx, weights=w * eligible, minlength=k) / tot).tolist()
        out.setdefault("means", {})[attr] = (np.bincount(idx, weights=w * amount, minlength=k) / tot).tolist()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
