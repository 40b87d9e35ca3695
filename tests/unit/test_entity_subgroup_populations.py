"""Populations whose households hold sub-groups (tax units): each person names its tax unit, a table
per sub-group entity carries the unit's inputs, and the simulation costs what each household costs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from hms import population, protocol
from hms.cli import main
from hms.errors import BadInput
from hms.service.app import create_app
from hms.simulate import simulate
from tests import dated_protocols
from tests.unit.test_entities import _OneProtocol
from tests.unit.test_entity_populations import write

SAMPLE = Path(__file__).parents[1] / "data" / "protocols" / "household-energy-rebate.yml"
HOUSEHOLDS = [(10, "gas", 2), (20, "oil", 1), (30, "electric", 3)]  # household_id, heating_fuel, weight
PERSONS = [  # household_id, role, income, tax_unit: households interleaved, a unit's members apart
    (20, "filer", 43000, 2),
    (10, "filer", 30000, 1),
    (20, "filer", 30000, 1),
    (30, "dependent", 0, 1),
    (10, "spouse", 20000, 1),
    (20, "dependent", 0, 1),
    (30, "filer", 10000, 2),
]
TAX_UNITS = [(30, 2, "single"), (10, 1, "joint"), (20, 1, "joint"), (20, 2, "single"), (30, 1, "single")]
# Per household: 10 one joint unit, 400 (x2); 20 units 100 + 500, oil +150 (x1); 30 units 0 + 250 (x3).
COST_CENTS = (2 * 400 + 750 + 3 * 250) * 100


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path, Path]:
    hh = write(tmp_path / "households.csv", ["household_id", "heating_fuel", "weight"], HOUSEHOLDS)
    pp = write(tmp_path / "persons.csv", ["household_id", "role", "income", "tax_unit"], PERSONS)
    tu = write(tmp_path / "tax_units.csv", ["household_id", "tax_unit", "filing_status"], TAX_UNITS)
    return hh, pp, tu


def load(files: tuple[Path, Path, Path], **changes: Path) -> population.Population:
    hh, pp, tu = files
    return population.load_file(changes.get("hh", hh), changes.get("pp", pp), {"tax_unit": changes.get("tu", tu)})


def per_record_cost(proto: protocol.Protocol) -> float:
    """The budget the slow way: each household, as a decision request, through the per-record backend."""
    total = 0.0
    for hid, fuel, weight in HOUSEHOLDS:
        members = [{"role": r, "income": i, "tax_unit": t} for h, r, i, t in PERSONS if h == hid]
        units = [{"id": t, "filing_status": f} for h, t, f in TAX_UNITS if h == hid]
        request = {"household": {"heating_fuel": fuel}, "members": members, "tax_units": units}
        total += weight * proto.ruleset.evaluate(request)["rebate"]
    return total


def test_a_file_population_with_tax_units_costs_what_each_household_costs_per_record(files):
    proto = protocol.load(SAMPLE)
    result = simulate(proto, load(files))
    assert result.cost_cents == round(per_record_cost(proto) * 100) == COST_CENTS
    assert result.synthesized_columns == []


@pytest.mark.parametrize("chunk_rows", [1, 2, 3])
def test_tax_units_cost_the_same_whatever_the_chunk_size(files, chunk_rows):
    proto = protocol.load(SAMPLE)
    assert simulate(proto, load(files), chunk_rows=chunk_rows).cost_cents == COST_CENTS


def test_string_ids_link_a_tax_unit_table_as_integer_ids_do(tmp_path, files):
    pp = write(
        tmp_path / "p.csv", ["household_id", "role", "income", "tax_unit"], [(*p[:3], f"u{p[3]}") for p in PERSONS]
    )
    tu = write(
        tmp_path / "t.csv", ["household_id", "tax_unit", "filing_status"], [(h, f"u{t}", s) for h, t, s in TAX_UNITS]
    )
    assert simulate(protocol.load(SAMPLE), load(files, pp=pp, tu=tu)).cost_cents == COST_CENTS


def test_a_person_table_without_the_tax_unit_column_is_refused_naming_it(tmp_path, files):
    pp = write(tmp_path / "p.csv", ["household_id", "role", "income"], [p[:3] for p in PERSONS])
    with pytest.raises(BadInput, match="the person table needs a 'tax_unit' column") as e:
        simulate(protocol.load(SAMPLE), load(files, pp=pp))
    assert e.value.where == str(pp)


def test_tax_unit_inputs_without_a_tax_unit_table_say_how_to_give_one(files):
    pop = population.load_file(files[0], files[1])
    with pytest.raises(BadInput, match=r"reads the tax_unit input\(s\) filing_status.*`subgroups: \{tax_unit: FILE\}`"):
        simulate(protocol.load(SAMPLE), pop)


@pytest.mark.parametrize(
    ("rows", "says"),
    [
        ([*TAX_UNITS, (99, 1, "single")], "row 5: household_id 99 is no household's"),
        ([*TAX_UNITS, (10, 1, "single")], "row 1: household_id 10, tax_unit 1 appears on more than one row"),
        ([*TAX_UNITS, (10, 7, "single")], r"row 5: household_id 10, tax_unit 7 has no members"),
        (TAX_UNITS[1:], "household_id 30: tax_unit 2, named by its members, has no row here"),
    ],
)
def test_a_tax_unit_table_that_does_not_link_is_refused_naming_the_row(tmp_path, files, rows, says):
    tu = write(tmp_path / "t.csv", ["household_id", "tax_unit", "filing_status"], rows)
    with pytest.raises(BadInput, match=says) as e:
        simulate(protocol.load(SAMPLE), load(files, tu=tu))
    assert e.value.where == str(tu)


def test_a_tax_unit_value_outside_its_declaration_is_refused_naming_the_table_and_column(tmp_path, files):
    tu = write(
        tmp_path / "t.csv",
        ["household_id", "tax_unit", "filing_status"],
        [(*TAX_UNITS[0][:2], "married"), *TAX_UNITS[1:]],
    )
    with pytest.raises(
        BadInput, match=r"row 0: 'married' is not one of \['single', 'joint', 'head_of_household'\]"
    ) as e:
        simulate(protocol.load(SAMPLE), load(files, tu=tu))
    assert e.value.where == f"{tu}: column 'filing_status'"


def test_a_catalog_entry_names_its_tax_unit_table(tmp_path, files, monkeypatch):
    catalog = tmp_path / "catalog.yml"
    entry = {"source": "households.csv", "persons": "persons.csv", "subgroups": {"tax_unit": "tax_units.csv"}}
    catalog.write_text(yaml.safe_dump({"populations": {"town": entry}}))
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(catalog))
    assert simulate(protocol.load(SAMPLE), population.resolve("town")).cost_cents == COST_CENTS


def test_a_catalog_entry_with_tax_units_but_no_persons_is_refused(tmp_path, monkeypatch):
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(
        yaml.safe_dump({"populations": {"town": {"source": "h.csv", "subgroups": {"tax_unit": "t.csv"}}}})
    )
    monkeypatch.setenv("HMS_POPULATION_CATALOG", str(catalog))
    with pytest.raises(BadInput, match="subgroups need a persons file"):
        population.resolve("town")


def test_a_synthetic_population_puts_each_household_in_one_tax_unit_and_says_so():
    proto = protocol.load(SAMPLE)
    pop = population.complete_for(population.resolve("synthetic:3000:5"), [proto])
    assert pop.persons is not None
    units = pop.persons.subs["tax_unit"]
    assert np.array_equal(units.record_of, np.arange(pop.n))
    assert np.array_equal(units.of_person, pop.persons.member_of)
    names = [c.name for c in pop.synthesized]
    assert "person.tax_unit" in names and "tax_unit.filing_status" in names
    assert "filing_status" not in names  # a tax unit's input, not the household's
    once = simulate(proto, "synthetic:3000:5").cost_cents
    assert once == simulate(proto, "synthetic:3000:5", chunk_rows=7).cost_cents > 0


def test_the_tax_unit_sample_passes_its_cases_in_both_backends_on_the_command_line(tmp_path, capsys):
    pkg = dated_protocols.packed_for_later(SAMPLE, tmp_path)
    capsys.readouterr()
    rc = main(["policy", "test", str(pkg), "--no-record"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[test] ✅ 6 tests (household-energy-rebate v1, both backends)" in out
    assert "[simulate]   synthesized tax_unit.filing_status: " in out


def test_a_sub_group_expectation_of_the_wrong_length_is_refused_at_load(tmp_path):
    data = yaml.safe_load(SAMPLE.read_text())
    data["tests"][0]["expect"]["unit_rebate"] = [500]
    with pytest.raises(BadInput, match="a rule about each tax_unit: expect a list of 2 values") as e:
        protocol.loads(json.dumps(data), source="p.json")
    assert e.value.where.startswith("p.json")


def test_the_decision_service_answers_a_household_of_two_tax_units_with_a_list_per_unit():
    cases = yaml.safe_load(SAMPLE.read_text())["tests"]
    with TestClient(create_app(_OneProtocol(protocol.load(SAMPLE)))) as client:
        r = client.post("/v1/protocols/household-energy-rebate/decide", json={"input": cases[1]["input"]})
        assert r.status_code == 200, r.text
        assert r.json()["outputs"] == {"eligible": True, "rebate": 750, "unit_rebate": [100, 500]}
        bad = {**cases[1]["input"], "tax_units": [{"id": 1, "filing_status": "joint"}]}
        r = client.post("/v1/protocols/household-energy-rebate/decide", json={"input": bad})
        assert r.status_code == 422, r.text
        assert "tax_unit" in r.text
