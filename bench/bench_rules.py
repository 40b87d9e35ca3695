"""Foundation (issue 2): pack time and rule throughput, per-record and vectorized, over 1,000,000 records.

The records are random but valid wildfire applicants. Throughput is the best of a few runs (the
2-CPU box is shared). The per-record backend serves single decisions, so its target is modest; the
vectorized one feeds the simulation and is compared with the same rule hand-written in NumPy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bench.table import Row
from bench.timing import best_of
from hms import bundle, protocol

ROOT = Path(__file__).resolve().parents[1]
WILDFIRE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
N = 1_000_000


def run() -> list[Row]:
    proto = protocol.load(WILDFIRE)
    pack = best_of(lambda: bundle.build(protocol.load(WILDFIRE)), 20)
    rs = proto.ruleset
    rng = np.random.default_rng(7)
    cols = {
        "household_size": rng.integers(1, 21, N),
        "household_income": np.round(rng.lognormal(10.6, 0.8, N), 2),
        "county_fire_declared": rng.random(N) < 0.3,
    }
    validated, n = rs.coerce_columns(cols)
    vec = best_of(lambda: rs.evaluate_columns(validated, validated=True, n=n), 5)
    params = proto.data["parameters"]

    def hand() -> None:
        hh, inc, fire = cols["household_size"], cols["household_income"], cols["county_fire_declared"]
        line = float(params["fpl_base"]) + float(params["fpl_per_person"]) * (hh - 1)
        eligible = fire & (inc <= float(params["income_limit_pct"]) * line)
        np.where(eligible, np.minimum(float(params["max_payment"]), float(params["per_member"]) * hh), 0.0)

    hand_s = best_of(hand, 5)
    k = 100_000
    records = [{name: col[i].item() for name, col in cols.items()} for i in range(k)]
    per = best_of(lambda: [rs.evaluate(r, validated=True) for r in records], 2) * (N / k)
    rows = [
        Row("rules", "pack wildfire-aid-2024 (load + build)", f"{pack * 1000:.1f} ms", "< 100 ms", pack < 0.1),
        Row("rules", "vectorized wildfire, 1M records", f"{vec * 1000:.1f} ms ({N / vec / 1e6:.0f} M rec/s)",
            "< 100 ms", vec < 0.1),
        Row("rules", "per-record wildfire, 1M records (from 100k)", f"{per:.2f} s ({N / per / 1e3:.0f} k rec/s)",
            "> 200 k rec/s", N / per > 200_000),
    ]
    rows.append(Row("rules", "vectorized / hand NumPy", f"{vec / hand_s:.2f}x", "<= 2x", vec / hand_s <= 2))
    rows.append(_legal_rounding(cols["household_income"] * 0.035))
    return rows


def _legal_rounding(amounts: np.ndarray) -> Row:
    """round_half_up to the cent, exact on the decimal (hms.rules.money), next to NumPy's binary np.round."""
    from hms.rules import money

    unit = money.unit_of(0.01)
    exact = best_of(lambda: money.round_array("round_half_up", amounts, unit), 5)
    binary = best_of(lambda: np.round(amounts, 2), 5)
    return Row(
        "rules",
        "vectorized round_half_up(x, 0.01), 1M amounts",
        f"{exact * 1000:.1f} ms ({exact / binary:.0f}x np.round)",
        "< 100 ms",
        exact < 0.1,
    )
