"""Columns a synthetic population draws from a protocol's declared inputs (hms.column_synthesis).

Proves: a column is a function of (seed, column name) only; hints are respected within tolerance
over 100k rows; the defaults are the documented ones and the description says which applied;
a generator column the declaration refuses is replaced and the reason given; a file population
never synthesizes; a bad hint is refused at load (exit 2) naming the field.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hms import column_synthesis as S
from hms import population as P
from hms import protocol
from hms.cli import main
from hms.errors import BadInput
from hms.simulate import SimulationResult, simulate
from tests.conftest import ROOT

DATA = ROOT / "tests" / "data" / "protocols"
ELDERLY = DATA / "elderly-supplement.yml"
CHILDCARE = DATA / "childcare-subsidy.yml"
UTILITY = DATA / "utility-assistance.yml"


def load(path: Path) -> protocol.Protocol:
    return protocol.load(path)


def variant(path: Path, change) -> protocol.Protocol:
    data = copy.deepcopy(load(path).data)
    change(data)
    return protocol.from_data(data, source=f"<{path.stem} variant>")


def with_input(path: Path, name: str, decl: dict[str, Any], rule: str, value: Any) -> protocol.Protocol:
    """``path``'s protocol with one more input, read by one more rule, and a value for it in each case."""

    def change(d: dict[str, Any]) -> None:
        d["inputs"][name] = {"data_class": "personal", "purpose": "read by the rule under test", **decl}
        d["rules"][f"uses_{name}"] = rule
        for case in d["tests"]:
            case["input"][name] = value

    return variant(path, change)


def completed(source: str, *protos: protocol.Protocol) -> P.Population:
    return P.complete_for(P.resolve(source), list(protos))


def how(pop: P.Population, name: str) -> str:
    return next(c.how for c in pop.synthesized if c.name == name)


# ---- determinism -------------------------------------------------------------------------------------


def test_a_synthesized_column_is_the_same_for_the_same_seed_and_protocol():
    a = completed("synthetic:5000:9", load(ELDERLY))
    b = completed("synthetic:5000:9", load(ELDERLY))
    for name in ("has_elderly_member", "county_code"):
        assert np.array_equal(a.columns[name], b.columns[name])
    c = completed("synthetic:5000:10", load(ELDERLY))
    assert not np.array_equal(a.columns["has_elderly_member"], c.columns["has_elderly_member"])


def test_a_synthesized_column_does_not_depend_on_which_other_columns_are_synthesized():
    both = completed("synthetic:5000:9", load(ELDERLY))  # synthesizes county_code and has_elderly_member
    county_only = variant(ELDERLY, lambda d: d["rules"].update(eligible="household_income <= income_limit"))
    alone = completed("synthetic:5000:9", county_only)
    assert [c.name for c in alone.synthesized] == ["county_code"]
    assert np.array_equal(both.columns["county_code"], alone.columns["county_code"])


def test_the_column_stream_is_a_stable_hash_not_pythons_salted_hash():
    code = "from hms.column_synthesis import column_rng; print(column_rng(7, 'county_code').integers(0, 10**9, 3))"
    outs = set()
    for salt in ("1", "2"):
        env = {"PYTHONPATH": str(ROOT / "src"), "PYTHONHASHSEED": salt}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                check=True).stdout)
    assert len(outs) == 1
    assert outs.pop().strip() == str(S.column_rng(7, "county_code").integers(0, 10**9, 3))


def test_the_generators_own_columns_are_kept_and_not_reported():
    plain = P.resolve("synthetic:5000:9")
    pop = P.complete_for(plain, [load(ELDERLY)])
    assert np.array_equal(pop.columns["household_income"], plain.columns["household_income"])
    assert {c.name for c in pop.synthesized} == {"has_elderly_member", "county_code"}


def test_completing_twice_synthesizes_nothing_more():
    once = completed("synthetic:2000:1", load(ELDERLY))
    assert P.complete_for(once, [load(ELDERLY)]) is once


# ---- hints and defaults over 100k rows -------------------------------------------------------------


def test_share_true_hint_is_respected_over_100k_rows():
    pop = completed("synthetic:100000:3", load(UTILITY))
    assert abs(pop.columns["electric_heating"].mean() - 0.3) < 0.01
    assert "true with probability 0.3 (synthetic hint)" in how(pop, "electric_heating")


def test_boolean_without_hint_is_true_half_the_time():
    pop = completed("synthetic:100000:3", load(ELDERLY))
    assert abs(pop.columns["has_elderly_member"].mean() - 0.5) < 0.01
    assert "default" in how(pop, "has_elderly_member")


def test_enum_weights_hint_is_respected_over_100k_rows():
    pop = completed("synthetic:100000:3", load(CHILDCARE))
    col = pop.columns["employment_status"]
    shares = {v: float(np.mean(col == v)) for v in ("employed", "self_employed", "in_training", "not_working")}
    for value, want in {"employed": 0.6, "self_employed": 0.1, "in_training": 0.1, "not_working": 0.2}.items():
        assert abs(shares[value] - want) < 0.01, shares
    assert "'employed' 60.0 %" in how(pop, "employment_status")


def test_integer_without_hint_is_uniform_over_its_declared_bounds():
    pop = completed("synthetic:100000:3", load(CHILDCARE))
    counts = np.bincount(pop.columns["children_under_5"])
    assert len(counts) == 7 and np.all(np.abs(counts / 100_000 - 1 / 7) < 0.01)
    assert how(pop, "children_under_5") == "integer, uniform over [0, 6] (default: no synthetic hint)"


def test_lognormal_hint_gives_its_median_within_the_declared_bounds():
    col = completed("synthetic:100000:3", load(UTILITY)).columns["monthly_energy_cost"]
    assert abs(np.median(col) - 180) < 3
    assert col.min() >= 20 and col.max() <= 900


def test_normal_hint_for_an_integer_is_rounded_and_clipped_to_the_bounds():
    decl = {"type": "integer", "minimum": 0, "maximum": 10, "synthetic": {"distribution": "normal", "mean": 2, "sd": 3}}
    proto = with_input(ELDERLY, "rooms", decl, "rooms > 3", 1)
    pop = completed("synthetic:100000:3", proto)
    col = pop.columns["rooms"]
    assert col.dtype == np.int64 and col.min() == 0 and col.max() == 10
    assert abs(np.mean(col == 0) - 0.309) < 0.01  # P(N(2, 3) < 0.5): the clipped lower tail
    assert how(pop, "rooms") == "integer, normal with mean 2 and sd 3, clipped to [0, 10] (synthetic hint)"


def test_a_number_without_a_maximum_uses_the_default_span_and_says_so():
    proto = with_input(ELDERLY, "savings", {"type": "number", "minimum": 500}, "savings < 2000", 100.0 + 500)
    pop = completed("synthetic:20000:3", proto)
    col = pop.columns["savings"]
    assert col.min() >= 500 and col.max() <= 500 + S.DEFAULT_SPAN["number"]
    assert "no maximum declared: default span 10,000" in how(pop, "savings")


def test_a_string_without_an_enum_draws_the_keys_of_the_table_it_indexes():
    def change(d: dict[str, Any]) -> None:
        d["inputs"]["county_code"] = {"type": "string", "data_class": "public", "purpose": "selects the county's rate"}

    pop = completed("synthetic:20000:3", variant(ELDERLY, change))
    assert set(np.unique(pop.columns["county_code"])) == {"c01", "c02", "c03", "c04"}
    assert "keys of the table it indexes" in how(pop, "county_code")


def test_a_string_without_an_enum_draws_the_compared_literals_and_an_other_value():
    proto = with_input(ELDERLY, "tenure", {"type": "string"}, 'tenure == "renter" or tenure in ("lodger",)', "owner")
    pop = completed("synthetic:20000:3", proto)
    assert set(np.unique(pop.columns["tenure"])) == {"lodger", "renter", "(other)"}


def test_a_generator_column_the_declaration_refuses_is_synthesized_and_the_reason_given():
    # The generator's adults are 18..95; a seniors' rule declares 65..110, so the generator's age is set aside.
    age = {"type": "integer", "minimum": 65, "maximum": 110, "data_class": "protected",
           "protected_characteristic": "age", "exemption": {"authority": "Pub. L. 118-77, sec. 4", "reason": "over 70"}}
    proto = with_input(ELDERLY, "age", age, "age >= 70", 70)
    pop = completed("synthetic:20000:3", proto)
    assert pop.columns["age"].min() >= 65
    assert "replaces the generator's column" in how(pop, "age") and "below the minimum 65" in how(pop, "age")


def test_a_million_rows_synthesize_in_well_under_a_second_per_column():
    pop = P.resolve("synthetic:1M:1")
    started = time.perf_counter()
    done = P.complete_for(pop, [load(ELDERLY), load(CHILDCARE), load(UTILITY)])
    assert len(done.synthesized) == 6
    assert time.perf_counter() - started < 3.0  # measured ~0.2 s: no per-row Python


# ---- file populations -----------------------------------------------------------------------------------


def test_a_file_population_never_synthesizes_a_missing_column(tmp_path):
    f = tmp_path / "households.csv"
    P.write_csv(P.resolve("synthetic:50:1"), f)
    with pytest.raises(BadInput) as e:
        P.complete_for(P.resolve(str(f)), [load(ELDERLY)])
    assert e.value.where == str(f)
    assert "missing columns 'county_code', 'has_elderly_member'" in e.value.message


def test_file_population_missing_a_column_exits_2_naming_it_and_how_to_supply_it(tmp_path, capsys):
    f = tmp_path / "households.csv"
    P.write_csv(P.resolve("synthetic:50:1"), f)
    pkg = tmp_path / "u.tgz"
    assert main(["policy", "pack", str(UTILITY), "--out", str(pkg)]) == 0
    capsys.readouterr()
    rc = main(["policy", "simulate", str(pkg), "--population", str(f)])
    err = capsys.readouterr().err
    assert rc == 2
    assert str(f) in err and "'electric_heating'" in err and "'monthly_energy_cost'" in err
    assert "add them to the file" in err and "synthetic:N[:SEED]" in err and "declared inputs" in err


# ---- hints refused at load -------------------------------------------------------------------------------


def _hinted(tmp_path: Path, inp: str, hint: Any) -> Path:
    data = copy.deepcopy(load(UTILITY).data) if inp != "county_code" else copy.deepcopy(load(ELDERLY).data)
    data["inputs"][inp]["synthetic"] = hint
    out = tmp_path / "p.json"
    out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    ("inp", "hint", "field", "why"),
    [
        ("electric_heating", {"share_true": 1.5}, "electric_heating.synthetic.share_true", "maximum"),
        ("electric_heating", {"share": 0.3}, "electric_heating.synthetic.share", "unknown field 'share'"),
        ("monthly_energy_cost", {"share_true": 0.3}, "monthly_energy_cost.synthetic.share_true", "does not apply"),
        ("monthly_energy_cost", {"distribution": "normal", "mean": 100}, "monthly_energy_cost.synthetic.sd",
         "needs mean and sd"),
        ("monthly_energy_cost", {"mean": 100, "sd": 5}, "monthly_energy_cost.synthetic.mean", "needs 'distribution"),
        ("monthly_energy_cost", {"distribution": "normal", "mean": 5, "sd": 5}, "monthly_energy_cost.synthetic.mean",
         "outside the declared range [20, 900]"),
        ("monthly_energy_cost", {"distribution": "lognormal", "median": 100, "sigma": 0.5, "sd": 1},
         "monthly_energy_cost.synthetic.sd", "applies to distribution normal"),
        ("monthly_energy_cost", {"distribution": "gamma"}, "monthly_energy_cost.synthetic.distribution", "gamma"),
        ("county_code", {"weights": {"c01": 1, "c02": 1, "c03": 1, "c05": 1}}, "county_code.synthetic.weights.c05",
         "not a value of county_code's enum; did you mean 'c04'?"),
        ("county_code", {"weights": {"c01": 1, "c02": 1, "c03": 1}}, "county_code.synthetic.weights",
         "missing: 'c04'"),
        ("county_code", {"weights": {"c01": 0, "c02": 0, "c03": 0, "c04": 0}}, "county_code.synthetic.weights",
         "must not all be 0"),
        ("county_code", {"share_true": 0.5}, "county_code.synthetic.share_true", "use weights"),
    ],
    ids=["share>1", "unknown-key", "share-on-number", "normal-no-sd", "mean-no-distribution", "mean-out-of-range",
         "sd-on-lognormal", "unknown-distribution", "weight-not-in-enum", "weight-missing", "all-zero",
         "share-on-enum"],
)
def test_a_bad_synthetic_hint_exits_2_naming_the_field(tmp_path, capsys, inp, hint, field, why):
    src = _hinted(tmp_path, inp, hint)
    rc = main(["policy", "pack", str(src), "--out", str(tmp_path / "p.tgz")])
    err = capsys.readouterr().err
    assert rc == 2, err
    assert f"$.inputs.{field}" in err and why in err and str(src) in err
    assert not (tmp_path / "p.tgz").exists()


# ---- the result carries them -------------------------------------------------------------------------------


def test_the_simulation_result_keeps_the_synthesized_columns_through_its_json():
    r = simulate(load(CHILDCARE), "synthetic:3000:2")
    assert [c.name for c in r.synthesized_columns] == ["children_under_5", "employment_status"]
    back = SimulationResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.synthesized_columns == r.synthesized_columns
    assert any(line.startswith("[simulate] ⚠️ synthesized data: 2 columns") for line in r.lines())


def test_a_result_without_synthesized_columns_says_nothing_about_them():
    from tests.conftest import WILDFIRE

    r = simulate(protocol.load(WILDFIRE), "synthetic:3000:2")
    assert r.synthesized_columns == [] and r.to_dict()["synthesized_columns"] == []
    assert not any("synthesized" in line for line in r.lines())
