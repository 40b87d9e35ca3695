"""Populations of households with their members: a person table linked by household_id, simulated exactly."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import yaml

from hms import population, protocol
from hms.cli import main
from hms.errors import BadInput
from hms.simulate import simulate
from tests import dated_protocols
from tests.unit.test_entities import SAMPLE

HOUSEHOLDS = [  # household_id, rent, weight
    (10, 500, 3),
    (20, 1500, 1),
    (30, 1800, 2),
]
PERSONS = [  # household_id, age, disabled, earned_income, role — households interleaved on purpose
    (20, 40, "false", 2000, "head"),
    (10, 70, "false", 0, "head"),
    (30, 31, "false", 2000, "head"),
    (20, 38, "false", 1500, "spouse"),
    (20, 10, "true", 0, "child"),
    (30, 4, "false", 0, "child"),
    (20, 7, "false", 0, "child"),
]


def write(path: Path, header: list[str], rows: list[tuple]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    hh = write(tmp_path / "households.csv", ["household_id", "rent", "weight"], HOUSEHOLDS)
    pp = write(tmp_path / "persons.csv", ["household_id", "age", "disabled", "earned_income", "role"], PERSONS)
    return hh, pp


def per_record_cost(proto: protocol.Protocol) -> float:
    """The budget the slow way: each household through the per-record backend, times its weight."""
    total = 0.0
    for hid, rent, weight in HOUSEHOLDS:
        members = [
            {"age": a, "disabled": d == "true", "earned_income": e, "role": r}
            for h, a, d, e, r in PERSONS
            if h == hid
        ]
        total += weight * proto.ruleset.evaluate({"household": {"rent": rent}, "members": members})["amount"]
    return total


def test_a_file_population_with_a_person_table_costs_what_each_household_costs_per_record(files):
    proto = protocol.load(SAMPLE)
    pop = population.load_file(*files)
    result = simulate(proto, pop)
    assert result.cost_cents == round(per_record_cost(proto) * 100) == (3 * 292 + 135 + 2 * 258) * 100
    assert result.population["households"] == 6
    assert result.synthesized_columns == []


def test_the_simulation_gives_the_same_figures_whatever_the_chunk_size(files):
    proto = protocol.load(SAMPLE)
    pop = population.load_file(*files)
    whole = simulate(proto, pop)
    assert simulate(proto, pop, chunk_rows=1).cost_cents == simulate(proto, pop, chunk_rows=2).cost_cents
    assert simulate(proto, pop, chunk_rows=1).cost_cents == whole.cost_cents


@pytest.mark.parametrize(
    ("persons", "says"),
    [
        ([*PERSONS, (99, 5, "false", 0, "child")], "person row 7: household_id 99 is no household's"),
        ([p for p in PERSONS if p[0] != 30], r"household row 2 \(household_id 30\) has no members"),
    ],
)
def test_a_person_table_that_does_not_link_is_refused_naming_the_row(tmp_path, files, persons, says):
    pp = write(tmp_path / "p2.csv", ["household_id", "age", "disabled", "earned_income", "role"], persons)
    with pytest.raises(BadInput, match=says) as e:
        population.load_file(files[0], pp)
    assert e.value.where == str(pp)


def test_a_household_id_on_two_rows_is_refused(tmp_path, files):
    hh = write(tmp_path / "h2.csv", ["household_id", "rent"], [(10, 1), (10, 2)])
    with pytest.raises(BadInput, match="household_id 10 appears on more than one household row"):
        population.load_file(hh, files[1])


def test_a_file_population_without_members_is_refused_saying_how_to_add_them(files):
    with pytest.raises(BadInput, match=r"no person table: give its catalog entry `persons: FILE`"):
        simulate(protocol.load(SAMPLE), population.load_file(files[0]))


def test_a_person_table_lacking_a_column_the_rules_read_names_it(tmp_path, files):
    pp = write(tmp_path / "p3.csv", ["household_id", "age", "role"], [(h, a, r) for h, a, _, _, r in PERSONS])
    with pytest.raises(BadInput, match="missing columns 'disabled', 'earned_income'") as e:
        simulate(protocol.load(SAMPLE), population.load_file(files[0], pp))
    assert e.value.where == str(pp)


def test_a_catalog_entry_names_its_person_table(tmp_path, files, monkeypatch):
    catalog = tmp_path / "catalog.yml"
    entry = {"source": "households.csv", "persons": "persons.csv"}
    catalog.write_text(yaml.safe_dump({"populations": {"town": entry}}))
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(catalog))
    pop = population.resolve("town")
    assert pop.persons is not None and pop.persons.m == len(PERSONS)
    assert simulate(protocol.load(SAMPLE), pop).cost_cents == (3 * 292 + 135 + 2 * 258) * 100


def test_a_synthetic_population_makes_household_size_members_and_says_it_drew_them():
    proto = protocol.load(SAMPLE)
    pop = population.complete_for(population.resolve("synthetic:5000:3"), [proto])
    assert pop.persons is not None
    assert np.array_equal(np.bincount(pop.persons.member_of, minlength=pop.n), pop.columns["household_size"])
    first = np.r_[True, pop.persons.member_of[1:] != pop.persons.member_of[:-1]]
    assert set(pop.persons.columns["role"][first]) == {"head"}
    names = [c.name for c in pop.synthesized]
    assert names == ["rent", "person.age", "person.disabled", "person.earned_income", "person.role"]
    same = simulate(proto, "synthetic:5000:3").cost_cents
    assert same == simulate(proto, "synthetic:5000:3").cost_cents != simulate(proto, "synthetic:5000:4").cost_cents


def test_a_synthetic_household_size_matches_the_rules_count_of_members():
    """count(person) over the synthesized members is the generator's household_size, row for row."""
    proto = protocol.load(SAMPLE)
    pop = population.complete_for(population.resolve("synthetic:2000:9"), [proto])
    got = proto.ruleset.evaluate_groups(
        {"rent": pop.columns["rent"]}, pop.persons.columns, pop.persons.member_of, n=pop.n
    )
    assert np.array_equal(got.group["size"], pop.columns["household_size"].astype(float))


def test_a_budget_amount_about_each_member_is_refused_at_load():
    data = yaml.safe_load(SAMPLE.read_text())
    data["budget"] = {"cap": 1.0, "population": "synthetic:10", "amount": "member_share"}
    with pytest.raises(BadInput, match="is a rule about each person; the cost is per household"):
        protocol.from_data(data)


def test_the_sample_goes_through_pack_test_and_scan_on_the_command_line(tmp_path, capsys):
    pkg = dated_protocols.packed_for_later(SAMPLE, tmp_path)
    capsys.readouterr()
    rc = main(["policy", "test", str(pkg), "--no-record"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[test] ✅ 7 tests (household-food-benefit v1, both backends)" in out
    assert "[simulate]   synthesized person.age: " in out
    rc = main(["scan", str(pkg), "--rules", "privacy,ethics,legal", "--no-record"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert out.startswith("[scan] privacy(0) ethics(0) legal(0) ✅ household-food-benefit v1")
