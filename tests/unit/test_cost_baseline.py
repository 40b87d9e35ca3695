"""Cost against prod's, and a chart axis that fits cap, cost and baseline without doubling."""

from __future__ import annotations

from hms.cost_baseline import CostComparison, axis_max, compare, nice_ceiling
from hms.simulate import SimulationResult


def _result(cost_cents: float, *, version: int = 4, baseline: dict | None = None) -> SimulationResult:
    return SimulationResult(
        protocol_id="wildfire-aid-2024", version=version, title="t", sha256="b" * 64,
        population={"source": "synthetic:10", "rows": 10, "households": 10}, outcome="amount",
        amount_rule="amount", currency="USD", cap=1e9, cost_cents=cost_cents, eligible=10, eligible_rows=10,
        fairness={}, groups={}, seconds=0.0, baseline=baseline,
    )


def test_a_one_billion_cap_gives_an_axis_just_above_it_not_two_billion():
    assert axis_max(1e9, 5e8) == 1.2e9
    assert axis_max(1e9, 1.3e9, 9e8) == 1.5e9
    assert axis_max(None, None) == 1.0


def test_nice_ceiling_rounds_up_to_a_round_number():
    assert [nice_ceiling(x) for x in (1.0, 1.1, 2.2, 7, 9.1, 0.034)] == [1.0, 1.2, 2.5, 8.0, 10.0, 0.04]


def test_the_simulations_own_baseline_is_used_when_it_is_prods_bundle():
    base = {"protocol": {"id": "wildfire-aid-2024", "version": 3, "sha256": "a" * 64}, "cost_cents": 40_000_00}
    c = compare(_result(50_000_00, baseline=base), prod_sha256="a" * 64)
    assert (c.baseline_cents, c.delta_cents, c.same_run, c.baseline_version) == (40_000_00, 10_000_00, True, 3)
    assert c.delta_pct == 25.0
    assert c.sentence == "prod (v3) costs $40,000; this costs $50,000 per year, +$10,000 (+25.0 %)"


def test_prods_recorded_simulation_is_the_baseline_otherwise_and_marked_as_another_run():
    c = compare(_result(50_000_00), _result(60_000_00, version=3), prod_sha256="a" * 64, prod_version=3)
    assert (c.baseline_cents, c.same_run) == (60_000_00, False)
    assert c.sentence.endswith("-$10,000 (-16.7 %)")


def test_nothing_in_prod_says_so_and_has_no_delta():
    c = compare(_result(50_000_00))
    assert c.delta_cents is None and c.delta_pct is None
    assert c.sentence == "nothing in prod to compare with; this costs $50,000 per year"
    assert c.to_dict()["axis_max_cents"] == axis_max(1e11, 50_000_00)


def test_a_prod_that_costs_nothing_has_a_delta_but_no_percentage():
    c = CostComparison("USD", 100, None, 0, 3)
    assert c.delta_cents == 100 and c.delta_pct is None
