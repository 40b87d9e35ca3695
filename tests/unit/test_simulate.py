"""The simulation: budget gate, baseline diff, fairness figures and exact money."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from hms import bundle, protocol
from hms import population as P
from hms.cli import main
from hms.errors import BadInput, EvaluationError
from hms.simulate import exact_weighted_sum, format_money, simulate
from tests.conftest import CHIP, WILDFIRE


def _write_variant(tmp_path: Path, source: Path, name: str, change) -> Path:
    data = yaml.safe_load(source.read_text())
    data["budget"]["cap"] = float(data["budget"]["cap"])  # PyYAML 1.1 reads 1.0e9 as a string
    change(data)
    out = tmp_path / f"{name}.json"
    out.write_text(json.dumps(data))
    return out


def _pack(tmp_path: Path, source: Path, name: str = "pkg") -> str:
    out = tmp_path / f"{name}.tgz"
    bundle.write_atomic(out, bundle.build(protocol.load(source)))
    return str(out)


# ---- the budget gate -------------------------------------------------------------------------


@pytest.mark.parametrize("path", [WILDFIRE, CHIP], ids=["wildfire", "chip"])
def test_both_samples_are_within_budget(tmp_path, capsys, path):
    rc = main(["policy", "simulate", _pack(tmp_path, path)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[simulate] ✅ cost $" in out and " of cap $" in out


def test_sample_json_has_the_figures_the_pipeline_reads(tmp_path, capsys):
    assert main(["policy", "simulate", _pack(tmp_path, WILDFIRE), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is True and out["over_budget"] is False
    assert out["cap"] == 1e9 and 0 < out["cost"] < 1e9 and out["cost_cents"] == round(out["cost"] * 100)
    assert out["population"]["source"].startswith("wildfire-affected")
    assert out["eligible"] > 0 and len(out["sha256"]) == 64
    json.dumps(out, allow_nan=False)


def test_tiny_cap_fails_with_exit_1_naming_both_amounts(tmp_path, capsys):
    src = _write_variant(tmp_path, WILDFIRE, "tiny", lambda d: d["budget"].update(cap=1000.0))
    pkg = _pack(tmp_path, src)
    expected = simulate(protocol.load(src))
    rc = main(["policy", "simulate", pkg])
    out = capsys.readouterr().out
    assert rc == 1
    line = next(x for x in out.splitlines() if "over budget" in x)
    assert f"cost {format_money(expected.cost_cents)} > cap $1,000" in line
    assert main(["policy", "simulate", pkg, "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is False and payload["over_budget"] is True and payload["cap"] == 1000.0


def test_policy_test_runs_cases_then_the_simulation(tmp_path, capsys):
    pkg = _pack(tmp_path, WILDFIRE)
    assert main(["policy", "test", pkg]) == 0
    out = capsys.readouterr().out
    assert out.index("[test] ✅") < out.index("[simulate] ✅ cost")
    assert main(["policy", "test", pkg, "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["ok"] is True and payload["simulation"]["over_budget"] is False and payload["failed"] == 0


def test_policy_test_fails_when_over_budget_and_no_simulate_skips_it(tmp_path, capsys):
    pkg = _pack(tmp_path, _write_variant(tmp_path, WILDFIRE, "tiny", lambda d: d["budget"].update(cap=1.0)))
    assert main(["policy", "test", pkg]) == 1
    assert "[test] ✅" in (out := capsys.readouterr().out) and "over budget" in out
    assert main(["policy", "test", pkg, "--no-simulate", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["simulation"] is None


def test_policy_test_with_a_rule_failing_on_a_population_row_fails_naming_the_row(tmp_path, capsys):
    def change(d):
        d["rules"]["share"] = "1000 / (household_size - 3)"
        d["outputs"].append("share")
        d["tests"] = [t for t in d["tests"] if t["input"]["household_size"] != 3]

    pkg = _pack(tmp_path, _write_variant(tmp_path, WILDFIRE, "div", change))
    assert main(["policy", "test", pkg]) == 1
    out = capsys.readouterr().out
    assert "[simulate] ❌ rule 'share', row" in out and "division by zero" in out


def test_protocol_without_budget_needs_a_population(tmp_path, capsys):
    src = _write_variant(tmp_path, WILDFIRE, "nobudget", lambda d: d.pop("budget"))
    pkg = _pack(tmp_path, src)
    assert main(["policy", "simulate", pkg]) == 2
    assert "--population" in capsys.readouterr().err
    assert main(["policy", "simulate", pkg, "--population", "synthetic:1000:1"]) == 0
    assert "(no budget cap)" in capsys.readouterr().out
    assert main(["policy", "test", pkg]) == 0
    assert "skipped: the protocol has no budget" in capsys.readouterr().out


# ---- baseline diff ----------------------------------------------------------------------------


def _wildfire_amount(pop: P.Population, max_payment: float, income_pct: float = 4.0) -> np.ndarray:
    hs = pop.columns["household_size"].astype(float)
    inc = pop.columns["household_income"]
    eligible = pop.columns["county_fire_declared"] & (inc <= income_pct * (15060 + 5380 * (hs - 1)))
    return np.where(eligible, np.minimum(max_payment, 1000 * hs), 0)


def test_baseline_diff_of_a_raised_max_payment_matches_an_independent_computation(tmp_path, capsys):
    raised = _write_variant(tmp_path, WILDFIRE, "raised", lambda d: d["parameters"].update(max_payment=6500))
    new, old = _pack(tmp_path, raised, "new"), _pack(tmp_path, WILDFIRE, "old")
    assert main(["policy", "simulate", new, "--baseline", old, "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["baseline"]
    pop = P.resolve("wildfire-affected")
    w = pop.weight.astype(np.int64)
    diff = (_wildfire_amount(pop, 6500) - _wildfire_amount(pop, 5000)).astype(np.int64)
    assert b["cost_delta_cents"] == int((diff * w).sum()) * 100 > 0
    assert b["winners"] == int(w[diff > 0].sum()) and b["losers"] == 0
    assert b["newly_eligible"] == 0 and b["losing_eligibility"] == 0
    assert sum(x["gains"] for x in b["by_income_decile"]) == int((diff * w).sum())
    assert b["protocol"]["version"] == 3 and b["label"] == old


def test_baseline_diff_counts_newly_eligible_and_losers_by_decile():
    pop = P.resolve("synthetic:50000:11")
    new = protocol.from_data(_edit(WILDFIRE, lambda d: d["parameters"].update(income_limit_pct=3.0)))
    old = protocol.load(WILDFIRE)
    r = simulate(new, pop, baseline=old)
    a_new, a_old = _wildfire_amount(pop, 5000, 3.0), _wildfire_amount(pop, 5000)
    assert r.baseline["losing_eligibility"] == np.count_nonzero((a_old > 0) & (a_new == 0)) > 0
    assert r.baseline["newly_eligible"] == 0 and r.baseline["winners"] == 0
    assert r.baseline["losses_cents"] == 100 * (a_old - a_new).sum() == -r.baseline["cost_delta_cents"]
    deciles = r.baseline["by_income_decile"]
    assert sum(x["losing_eligibility"] for x in deciles) == r.baseline["losing_eligibility"]
    assert deciles[0]["losses"] == 0 < deciles[7]["losses"]  # cutting 400% -> 300% FPL hits upper deciles only


def _edit(path: Path, change) -> dict:
    data = protocol.load(path).data
    data = json.loads(json.dumps(data))
    change(data)
    return data


def test_baseline_live_uses_the_prod_version_or_says_there_is_none(tmp_path, capsys, monkeypatch):
    import hms.deployments as deployments

    calls = []
    monkeypatch.setattr(deployments, "live_bundle", lambda pid, env="prod": calls.append((pid, env)) or None)
    pkg = _pack(tmp_path, WILDFIRE)
    assert main(["policy", "simulate", pkg, "--baseline", "live"]) == 0
    assert "no live baseline" in capsys.readouterr().out and calls == [("wildfire-aid-2024", "prod")]
    live = bundle.read(pkg)
    monkeypatch.setattr(deployments, "live_bundle", lambda pid, env="prod": live)
    assert main(["policy", "simulate", pkg, "--baseline", "live", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["baseline"]
    assert b["label"] == "live in prod" and b["cost_delta_cents"] == 0 and b["protocol"]["sha256"] == live.sha256


# ---- fairness --------------------------------------------------------------------------------


def test_four_fifths_ratio_on_a_hand_built_population():
    # Group A: 10 households, 6 selected (0.6). Group B: 10 households, 3 selected (0.3). Ratio 0.5.
    income = [1000] * 6 + [10**7] * 4 + [1000] * 3 + [10**7] * 7
    pop = P.from_columns(
        {
            "household_size": [1] * 20,
            "household_income": income,
            "county_fire_declared": [True] * 20,
            "race_ethnicity": ["A"] * 10 + ["B"] * 10,
            "sex": ["f", "m"] * 10,
            "weight": [2] * 20,
        }
    )
    r = simulate(protocol.load(WILDFIRE), pop)
    race = r.fairness["attributes"]["race_ethnicity"]
    assert race == {"rates": {"A": 0.6, "B": 0.3}, "ratio": 0.5, "reference_group": "A", "lowest_group": "B"}
    sex = r.fairness["attributes"]["sex"]
    assert sex["rates"] == {"f": 0.5, "m": 0.4} and sex["ratio"] == pytest.approx(0.8)
    assert r.fairness["outcome"] == "eligible" and r.fairness["amount"] == "amount"
    # Each selected household gets 1,000: the mean amount per household is 600 in A and 300 in B.
    assert r.fairness["amount_attributes"]["race_ethnicity"] == {
        "means": {"A": 600.0, "B": 300.0}, "ratio": 0.5, "reference_group": "A", "lowest_group": "B"
    }
    assert r.eligible == 18 and r.groups["race_ethnicity"]["B"] == {"households": 20.0, "selected": 6.0}
    assert any("⚠️ fairness race_ethnicity: four-fifths ratio 0.500" in line for line in r.lines())


def test_fairness_json_shape_is_what_the_compliance_scan_reads(tmp_path, capsys):
    main(["policy", "simulate", _pack(tmp_path, CHIP), "--json"])
    f = json.loads(capsys.readouterr().out)["fairness"]
    assert f["outcome"] == "eligible" and set(f["attributes"]) == {"race_ethnicity", "sex"}
    for a in f["attributes"].values():
        assert set(a) == {"rates", "ratio", "reference_group", "lowest_group"}
        assert a["ratio"] == min(a["rates"].values()) / max(a["rates"].values()) >= 0.8
        assert a["rates"][a["lowest_group"]] == min(a["rates"].values())


def test_population_without_demographics_has_empty_fairness():
    pop = P.from_columns({"household_size": [1, 2], "household_income": [0, 0], "county_fire_declared": [True, False]})
    r = simulate(protocol.load(WILDFIRE), pop)
    assert r.fairness == {
        "attributes": {}, "outcome": "eligible", "amount": "amount", "amount_attributes": {},
        "declared": {}, "declared_skipped": [],
    }
    assert r.cost_cents == 100_000


# ---- money is exact -----------------------------------------------------------------------


def test_money_total_on_a_million_rows_equals_the_integer_sum_and_beats_float32(tmp_path):
    rng = np.random.default_rng(5)
    n = 1_000_000
    cents = rng.integers(0, 500_000, n)  # amounts with cents, up to $5,000
    weights = rng.integers(1, 40, n)
    src = _write_variant(
        tmp_path,
        WILDFIRE,
        "passthrough",
        lambda d: d["rules"].update(amount="household_income if eligible else 0", eligible="household_income >= 0"),
    )
    pop = P.from_columns(
        {
            "household_size": np.ones(n, dtype=np.int64),
            "household_income": cents / 100,
            "county_fire_declared": np.ones(n, dtype=bool),
            "weight": weights,
        }
    )
    r = simulate(protocol.load(src), pop, chunk_rows=300_000)
    exact = sum(int(c) * int(w) for c, w in zip(cents.tolist(), weights.tolist(), strict=True))
    assert isinstance(r.cost_cents, int) and r.cost_cents == exact
    assert r.cost == math.fsum((cents * weights / 100).tolist())  # the float64 figure is the correctly rounded one
    f32 = np.float32(0)
    for part in np.array_split((cents / 100).astype(np.float32) * weights.astype(np.float32), 100):
        f32 += part.sum(dtype=np.float32)
    assert abs(float(f32) - exact / 100) > 1  # what float32 (OpenFisca's storage) would have reported
    assert r.eligible == int(weights.sum())


def test_exact_weighted_sum_stays_exact_past_float64_and_int64_bounds():
    v = np.array([2.0**52, 3.0, -1.0])
    w = np.array([3.0, 2.0**40, 7.0])
    assert exact_weighted_sum(v, w, True) == 2**52 * 3 + 3 * 2**40 - 7
    big = np.array([2.0**60, 1.0])
    assert exact_weighted_sum(big, np.array([2.0**10, 1.0]), True) == 2**70 + 1
    assert exact_weighted_sum(np.array([1.0, 2.0]), np.array([0.1, 0.2]), False) == math.fsum([0.1, 0.4])


def test_per_record_amounts_are_rounded_to_the_cent():
    src = _edit(WILDFIRE, lambda d: d["rules"].update(amount="household_income / 3 if eligible else 0"))
    pop = P.from_columns({"household_size": [1, 1], "household_income": [100, 200], "county_fire_declared": [True] * 2})
    assert simulate(protocol.from_data(src), pop).cost_cents == 3333 + 6667


# ---- chunks and progress ----------------------------------------------------------------------


def test_chunked_run_gives_the_same_result_and_reports_progress():
    proto = protocol.load(WILDFIRE)
    pop = P.resolve("synthetic:100000:3")
    seen: list[tuple[int, int]] = []
    a = simulate(proto, pop, detail=True)
    b = simulate(proto, pop, progress=lambda d, t: seen.append((d, t)), detail=True, chunk_rows=3_000,
                 batch_rows=7_000)
    da, db = a.to_dict(), b.to_dict()
    da.pop("seconds"), db.pop("seconds")
    assert da == db
    assert (
        seen[-1] == (100_000, 100_000) and len(seen) == 15 and all(x < y for (x, _), (y, _) in itertools.pairwise(seen))
    )


def test_evaluation_error_in_a_later_chunk_names_the_population_row():
    src = _edit(WILDFIRE, lambda d: d["rules"].update(poverty_line="fpl_base / (household_size - 7)"))
    pop = P.resolve("synthetic:20000:4")
    first = int(np.argmax(pop.columns["household_size"] == 7))
    with pytest.raises(EvaluationError) as e:
        simulate(protocol.from_data(src), pop, chunk_rows=5)
    assert e.value.row == first and first >= 5  # not in the first chunk and f"row {first}" in str(e.value)
    assert str(e.value).count("; record") == 1


def test_progress_is_not_shown_with_json_or_off_a_terminal(tmp_path, capsys):
    pkg = _pack(tmp_path, WILDFIRE)
    main(["policy", "simulate", pkg, "--population", "synthetic:1100000:1", "--json"])
    assert capsys.readouterr().err == ""


def test_progress_is_shown_on_a_terminal_for_long_runs(tmp_path, capsys, monkeypatch):
    import sys

    from hms import progress

    pkg = _pack(tmp_path, WILDFIRE)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(progress, "AFTER", 0.0)  # every run is "long"
    assert main(["policy", "simulate", pkg, "--population", "synthetic:1100000:1"]) == 0
    err = capsys.readouterr().err
    assert "100.0 % of 1,100,000 rows" in err and "█" in err


def test_unknown_population_for_the_baseline_is_bad_input():
    with pytest.raises(BadInput):
        simulate(protocol.load(WILDFIRE), "no-such-population")


# ---- the default baseline: prod's live version --------------------------------------------------


def test_without_a_registry_the_default_is_no_baseline_and_no_registry_is_created(tmp_path, capsys, monkeypatch):
    from hms.registry import location

    monkeypatch.setenv("HMS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HMS_DATABASE_URL", raising=False)
    pkg = _pack(tmp_path, WILDFIRE)
    assert main(["policy", "simulate", pkg, "--population", "synthetic:2000:1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] is None
    assert not location.registry_present() and not (tmp_path / "home" / "registry.db").exists()


def test_by_default_simulate_and_test_compare_with_the_version_live_in_prod(tmp_path, capsys, monkeypatch):
    import hms.deployments as deployments
    from hms.registry import location

    live = bundle.read(_pack(tmp_path, WILDFIRE, "live"))
    raised = _pack(tmp_path, _write_variant(tmp_path, WILDFIRE, "raised", lambda d: (
        d["parameters"].update(max_payment=6500), d.update(tests=d["tests"][:1]))), "new")
    monkeypatch.setattr(location, "registry_present", lambda: True)
    monkeypatch.setattr(deployments, "live_bundle", lambda pid, env="prod": live)
    assert main(["policy", "simulate", raised, "--population", "synthetic:5000:2", "--json"]) == 0
    b = json.loads(capsys.readouterr().out)["baseline"]
    assert b["label"] == "live in prod" and b["protocol"]["sha256"] == live.sha256 and b["cost_delta_cents"] > 0
    assert all(d["average_change"] >= 0 for d in b["by_income_decile"])
    assert main(["policy", "test", raised, "--population", "synthetic:5000:2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["simulation"]["baseline"]["cost_delta_cents"] == b["cost_delta_cents"]
    assert main(["policy", "simulate", raised, "--population", "synthetic:5000:2", "--baseline", "none",
                 "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["baseline"] is None


def test_a_live_baseline_that_cannot_run_on_the_population_is_left_out_saying_why(tmp_path, capsys, monkeypatch):
    import hms.deployments as deployments
    from hms.registry import location

    # prod's version reads a column the file lacks; the candidate does not
    needs = _write_variant(tmp_path, WILDFIRE, "needs", lambda d: (
        d["inputs"].update(insured={"type": "boolean", "data_class": "personal", "purpose": "Insured households are "
                                    "paid less because their insurer pays part of the loss"}),
        d["rules"].update(eligible="county_fire_declared and not insured and household_income <= "
                                   "income_limit_pct * poverty_line"),
        d.update(tests=[{"name": "uninsured family in a declared county", "input": {"household_size": 4,
            "household_income": 40000, "county_fire_declared": True, "insured": False}, "expect": {"amount": 4000}}])))
    live = bundle.read(_pack(tmp_path, needs, "live"))
    pop = P.synthetic(P.SyntheticSpec(n=500, seed=1))
    P.write_csv(P.Population(pop.source, "", {k: v for k, v in pop.columns.items() if k != "insured"},
                             pop.attributes, pop.weight), tmp_path / "p.csv")
    monkeypatch.setattr(location, "registry_present", lambda: True)
    monkeypatch.setattr(deployments, "live_bundle", lambda pid, env="prod": live)
    pkg = _pack(tmp_path, WILDFIRE)
    assert main(["policy", "simulate", pkg, "--population", str(tmp_path / "p.csv"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["baseline"] is None and any("prod's v3 cannot run" in n and "insured" in n for n in out["notes"])
    assert main(["policy", "simulate", pkg, "--population", str(tmp_path / "p.csv"), "--baseline", "live"]) == 2
