"""A rule needing two group levels: an EITC-like credit per tax unit, summed over the household's tax
units (``sum(unit_credit, over=tax_units)``) and paid only to a household passing its own test.

The sample (tests/data/protocols/household-work-credit.yml) runs its cases through both backends,
from the command line as the pipeline's test step does; a file population whose persons carry their
tax unit and their role in it costs what each household costs per record; and the tax unit's roles
(``tax_unit_role``) are checked at load and in requests like the person entity's ``role``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from hms import population, protocol
from hms.cases import run_cases
from hms.cli import main
from hms.errors import BadInput, RuleError
from hms.simulate import simulate
from tests import dated_protocols
from tests.unit.test_entity_populations import write

SAMPLE = Path(__file__).parents[1] / "data" / "protocols" / "household-work-credit.yml"
HOUSEHOLDS = [(1, True, 2), (2, True, 1), (3, False, 5)]  # household_id, resident, weight
PERSONS = [  # household_id, tax_unit, tax_unit_role, age, earnings: households interleaved
    (2, "gran", "filer", 67, 8000),
    (1, 1, "filer", 40, 18000),
    (2, "family", "filer", 40, 18000),
    (1, 1, "spouse", 38, 6000),
    (2, "family", "dependent", 9, 0),
    (1, 1, "dependent", 9, 0),
    (3, 1, "filer", 50, 12000),
    (1, 1, "dependent", 6, 0),
    (1, 2, "filer", 67, 8000),
]
TAX_UNITS = [(2, "family", "single"), (1, 2, "single"), (3, 1, "single"), (1, 1, "joint"), (2, "gran", "single")]
COST_CENTS = (2 * 1718 + 997) * 100  # the sample's first two cases; household 3 lives outside the state


def test_the_sample_passes_every_case_in_both_backends():
    results = run_cases(protocol.load(SAMPLE))
    assert [r.mismatches for r in results if not r.ok] == []
    assert len(results) == 5


def test_the_sample_passes_its_cases_and_simulates_on_the_command_line(tmp_path, capsys):
    pkg = dated_protocols.packed_for_later(SAMPLE, tmp_path)
    capsys.readouterr()
    rc = main(["policy", "test", str(pkg), "--no-record"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "[test] ✅ 5 tests (household-work-credit v1, both backends)" in out
    assert "[simulate]   synthesized person.tax_unit_role: " in out


def test_a_file_population_costs_what_each_household_costs_per_record(tmp_path):
    proto = protocol.load(SAMPLE)
    hh = write(tmp_path / "households.csv", ["household_id", "resident", "weight"], HOUSEHOLDS)
    pp = write(tmp_path / "persons.csv", ["household_id", "tax_unit", "tax_unit_role", "age", "earnings"], PERSONS)
    tu = write(tmp_path / "tax_units.csv", ["household_id", "tax_unit", "filing_status"], TAX_UNITS)
    per_record = 0.0
    for hid, resident, weight in HOUSEHOLDS:
        members = [
            {"tax_unit": t, "tax_unit_role": r, "age": a, "earnings": e} for h, t, r, a, e in PERSONS if h == hid
        ]
        units = [{"id": t, "filing_status": f} for h, t, f in TAX_UNITS if h == hid]
        request = {"household": {"resident": resident}, "members": members, "tax_units": units}
        per_record += weight * proto.ruleset.evaluate(request)["credit"]
    for chunk_rows in (None, 1, 2):
        kwargs = {} if chunk_rows is None else {"chunk_rows": chunk_rows}
        result = simulate(proto, population.load_file(hh, pp, {"tax_unit": tu}), **kwargs)
        assert result.cost_cents == round(per_record * 100) == COST_CENTS


def test_a_synthetic_population_costs_the_same_in_chunks():
    proto = protocol.load(SAMPLE)
    once = simulate(proto, "synthetic:3000:5").cost_cents
    assert once == simulate(proto, "synthetic:3000:5", chunk_rows=7).cost_cents > 0


def test_a_tax_unit_role_that_is_not_declared_is_refused_at_load_with_did_you_mean():
    data = yaml.safe_load(SAMPLE.read_text())
    data["rules"]["qualifying_child"]["formula"] = 'tax_unit_role == "dependant" and age < child_age_limit'
    with pytest.raises(RuleError, match="'dependant' is not a tax_unit role; .* did you mean 'dependent'"):
        protocol.loads(json.dumps(data), source="p.json")


def test_a_member_without_its_tax_unit_role_is_refused_naming_the_field():
    rs = protocol.load(SAMPLE).ruleset
    case = yaml.safe_load(SAMPLE.read_text())["tests"][0]["input"]
    case["members"][2].pop("tax_unit_role")
    with pytest.raises(BadInput) as e:
        rs.evaluate(case)
    assert e.value.where == "input.members.2.tax_unit_role"
    case["members"][2]["tax_unit_role"] = "child"
    with pytest.raises(BadInput, match="child") as e:
        rs.evaluate(case)
    assert e.value.where == "input.members.2.tax_unit_role"
