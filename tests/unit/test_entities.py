"""Entities: rules over a household's members — what is refused at load, what a request looks like, answers."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from hms import clock, protocol
from hms.cases import run_cases
from hms.errors import BadInput, EvaluationError, RuleError
from hms.rules import RuleSet
from hms.service.app import create_app
from hms.service.timeline import Entry, Snapshot
from tests.conftest import ROOT

SAMPLE = ROOT / "tests" / "data" / "protocols" / "household-food-benefit.yml"
ENTITIES = {"person": {"plural": "members", "roles": ["head", "spouse", "child"]}, "household": {"group_of": "person"}}
INPUTS = {
    "age": {"type": "integer", "entity": "person", "minimum": 0, "maximum": 130},
    "earned_income": {"type": "number", "entity": "person", "minimum": 0},
    "rent": {"type": "number", "minimum": 0},
}
RULES = {
    "elderly": {"entity": "person", "formula": "age >= 60"},
    "size": "count(person)",
    "gross_income": "sum(earned_income)",
    "any_elderly": "any(elderly)",
    "all_adults": "all(age >= 18)",
    "youngest": "min(age)",
    "oldest": "max(age)",
    "children": 'count(role == "child")',
    "rent_share": {"entity": "person", "formula": "rent / size"},
    "capped": {"entity": "person", "formula": "min(earned_income, 1000)"},
}
FAMILY = {
    "household": {"rent": 900},
    "members": [
        {"age": 70, "earned_income": 0, "role": "head"},
        {"age": 40, "earned_income": 1500, "role": "spouse"},
        {"age": 8, "earned_income": 0, "role": "child"},
    ],
}


def ruleset(rules: dict | None = None, inputs: dict | None = None, entities: dict | None = ENTITIES) -> RuleSet:
    rules = RULES if rules is None else rules
    return RuleSet(inputs or INPUTS, {}, rules, [next(iter(rules))], entities=entities)


def test_a_household_rule_aggregates_members_and_a_person_rule_reads_household_values():
    got = ruleset().evaluate(FAMILY)
    assert got["size"] == 3 and got["gross_income"] == 1500 and got["children"] == 1
    assert (got["any_elderly"], got["all_adults"], got["youngest"], got["oldest"]) == (True, False, 8, 70)
    assert got["elderly"] == [True, False, False]
    assert got["rent_share"] == [300, 300, 300]  # rent / size: both household values, projected to each member
    assert got["capped"] == [0, 1000, 0]  # min with two arguments stays the scalar one


def test_the_vectorized_backend_gives_the_same_answers_from_a_person_table_in_any_order():
    rs = ruleset()
    people = FAMILY["members"] + [{"age": 30, "earned_income": 10, "role": "head"}]
    order = [3, 0, 1, 2]  # the second household's member first: persons need not be sorted
    cols = {k: np.asarray([people[i][k] for i in order]) for k in ("age", "earned_income", "role")}
    got = rs.evaluate_groups({"rent": np.asarray([900.0, 100.0])}, cols, np.asarray([1, 0, 0, 0]))
    assert got.group["size"].tolist() == [3, 1]
    assert got.group["gross_income"].tolist() == [1500, 10]
    assert got.group["youngest"].tolist() == [8, 30]
    assert got.person["rent_share"].tolist() == [100, 300, 300, 300]  # in the person table's order


@pytest.mark.parametrize(
    ("rules", "says", "column"),
    [
        ({"x": "age > 3"}, "'age' is a person value and 'x' is a household rule: aggregate it", 1),
        ({"x": "rent + earned_income"}, "e.g. sum(earned_income)", 8),
        ({"x": {"entity": "person", "formula": "sum(age)"}}, "only allowed in a household rule", 1),
        ({"x": {"entity": "person", "formula": "max(age)"}}, "only allowed in a household rule", 1),
        ({"x": "sum(sum(age))"}, "inside another aggregation", 5),
        ({"x": "count(age)"}, "count() must be a boolean per member, got a number", 7),
        ({"x": "sum(age > 3)"}, "sum() must be a number per member, got a boolean", 5),
        ({"x": "any(age, rent)"}, "any() takes one expression over the members", 1),
        ({"x": 'count(role == "chld")'}, "'chld' is not a role; roles: head, spouse, child; did you mean 'child'?", 7),
        ({"x": "sum + 1"}, "sum is an aggregation", 1),
        ({"x": "members + 1"}, "count them with count(person)", 1),
        ({"x": "cuont(person)"}, "unknown function 'cuont'; did you mean 'count'?", 1),
        ({"x": {"entity": "person", "formula": "role"}, "y": "x == 'a'"}, "'x' is a person value", 1),
    ],
)
def test_rules_mixing_the_levels_wrongly_are_refused_naming_rule_and_column(rules, says, column):
    with pytest.raises(RuleError) as e:
        ruleset(rules)
    assert says in str(e.value)
    assert e.value.column == column, str(e.value)


@pytest.mark.parametrize(
    ("inputs", "rules", "entities", "where", "says"),
    [
        (INPUTS, {"x": "count(person)"}, {"person": {}, "household": {}}, "entities", "exactly one person entity"),
        (INPUTS, {"x": "1"}, {"person": {}, "household": {"group_of": "people"}}, "entities.household.group_of",
         "must name the person entity"),
        ({**INPUTS, "rent": {"type": "number", "entity": "flat"}}, {"x": "1"}, ENTITIES, "inputs.rent.entity",
         "unknown entity 'flat'"),
        ({**INPUTS, "role": {"type": "string"}}, {"x": "1"}, ENTITIES, "inputs.role", "reserved"),
        (INPUTS, {"count": "1"}, ENTITIES, "rules.count", "reserved"),
        ({"rent": {"type": "number"}}, {"x": {"entity": "person", "formula": "1"}}, None, "rule 'x'",
         "needs the protocol to declare"),
        ({"age": {"type": "integer", "entity": "person"}}, {"x": "1"}, None, "inputs.age.entity",
         "needs the protocol to declare entities"),
    ],
)
def test_bad_entity_declarations_are_refused_naming_the_field(inputs, rules, entities, where, says):
    with pytest.raises(RuleError) as e:
        RuleSet(inputs, {}, rules, ["x"] if "x" in rules else list(rules), entities=entities)
    assert says in e.value.message
    assert e.value.where == where


def test_role_needs_roles_on_the_person_entity():
    plain = {"person": {}, "household": {"group_of": "person"}}
    with pytest.raises(RuleError, match=r"'role' needs roles on the person entity \(entities.person.roles\)"):
        ruleset({"x": "count(role == 'head')"}, entities=plain)


@pytest.mark.parametrize(
    ("rec", "where", "says"),
    [
        ({"members": FAMILY["members"]}, "input.household", "missing field"),
        ({"household": {"rent": 1}}, "input.members", "missing field"),
        ({"household": {"rent": 1}, "members": []}, "input.members", "at least one member"),
        ({"household": {"rent": 1}, "members": {"age": 3}}, "input.members", "must be a list"),
        ({**FAMILY, "rent": 3}, "input.rent", "'rent' belongs in 'household'"),
        ({**FAMILY, "age": 3}, "input.age", "'age' belongs in each of 'members'"),
        ({"household": {"rent": 1, "age": 4}, "members": FAMILY["members"]}, "input.household.age",
         "declared for the other entity"),
        ({"household": {"rent": 1}, "members": [FAMILY["members"][0], {"age": 3, "role": "child"}]},
         "input.members.1.earned_income", "missing field"),
        ({"household": {"rent": 1}, "members": [{"age": 3, "earned_income": 0, "role": "kid"}]},
         "input.members.0.role", "'kid' is not one of"),
        ({"household": {"rent": 1}, "members": [{"age": 300, "earned_income": 0, "role": "head"}]},
         "input.members.0.age", "above the maximum"),
    ],
)
def test_a_bad_household_is_refused_naming_the_field(rec, where, says):
    with pytest.raises(BadInput) as e:
        ruleset().evaluate(rec)
    assert e.value.where == where
    assert says in e.value.message


def test_a_failure_inside_a_member_names_the_rule_and_the_member():
    rs = ruleset({"x": "sum(rent / age)"})
    rec = {"household": {"rent": 1}, "members": [{"age": 3, "earned_income": 0, "role": "head"},
                                                 {"age": 0, "earned_income": 0, "role": "child"}]}
    with pytest.raises(EvaluationError, match=r"division by zero \(member 1\)") as e:
        rs.evaluate(rec)
    assert e.value.rule == "x"
    cols = {"age": np.asarray([3, 0]), "earned_income": np.asarray([0, 0]), "role": np.asarray(["head", "child"])}
    with pytest.raises(EvaluationError, match=r"division by zero \(member 1\)") as v:
        rs.evaluate_groups({"rent": np.asarray([1.0])}, cols, np.asarray([0, 0]))
    assert (v.value.rule, v.value.row) == ("x", 0)


def test_a_household_table_row_without_members_or_a_person_without_household_is_refused():
    rs = ruleset()
    cols = {"age": np.asarray([3]), "earned_income": np.asarray([0]), "role": np.asarray(["head"])}
    with pytest.raises(BadInput, match="household row 1 has no members"):
        rs.evaluate_groups({"rent": np.asarray([1.0, 2.0])}, cols, np.asarray([0]))
    with pytest.raises(BadInput, match="person row 0 belongs to household row 5, which does not exist"):
        rs.evaluate_groups({"rent": np.asarray([1.0])}, cols, np.asarray([5]))


def test_the_sample_protocol_loads_and_its_cases_pass_through_both_backends():
    results = run_cases(protocol.load(SAMPLE))
    assert results and all(r.ok for r in results), [r.line() for r in results if not r.ok]


def test_a_wrong_expected_member_list_fails_its_case(tmp_path: Path):
    data = yaml.safe_load(SAMPLE.read_text())
    data["tests"][0]["expect"]["member_share"] = [291]
    results = run_cases(protocol.from_data(data))
    assert not results[0].ok and "member_share: expected [291], got [292]" in results[0].line()


def test_a_case_expecting_one_value_for_a_member_rule_is_refused_at_load_naming_the_line(tmp_path: Path):
    text = SAMPLE.read_text().replace("member_share: [292]", "member_share: 292")
    path = tmp_path / "p.yml"
    path.write_text(text)
    with pytest.raises(BadInput) as e:
        protocol.load(path)
    assert "expect a list of 1 values, one per member" in e.value.message
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "member_share: 292" in t)
    assert e.value.where.startswith(f"{path}:{line} at $.tests[0].expect.member_share")


def test_a_case_with_a_bad_member_is_refused_at_load_naming_the_member_line(tmp_path: Path):
    text = SAMPLE.read_text().replace("{age: 70, disabled: false", "{age: 170, disabled: false")
    path = tmp_path / "p.yml"
    path.write_text(text)
    with pytest.raises(BadInput) as e:
        protocol.load(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "age: 170" in t)
    assert e.value.where == f"{path}:{line} at $.tests[0].input.members[0].age"


def test_an_unknown_entity_in_the_protocol_file_names_its_line(tmp_path: Path):
    text = SAMPLE.read_text().replace("  rent:\n    type: number\n", "  rent:\n    type: number\n    entity: flat\n")
    path = tmp_path / "p.yml"
    path.write_text(text)
    with pytest.raises(RuleError) as e:
        protocol.load(path)
    line = next(i for i, t in enumerate(text.splitlines(), 1) if "entity: flat" in t)
    assert e.value.where == f"{path}:{line} at $.inputs.rent.entity"


class _OneProtocol:
    """A decision-service source serving one protocol (no registry needed)."""

    environment = "test"

    def __init__(self, proto: protocol.Protocol) -> None:
        self.proto = proto

    def generation(self) -> int:
        return 1

    def load(self) -> Snapshot:
        entry = Entry(1, self.proto.id, 1, "f" * 64, "live", clock.now().replace(year=2000))
        bundle = SimpleNamespace(protocol=self.proto)
        return Snapshot.build("test", 1, [entry], {"f" * 64: bundle})  # type: ignore[dict-item]


@pytest.fixture
def food_service():
    with TestClient(create_app(_OneProtocol(protocol.load(SAMPLE)))) as client:
        yield client


def test_the_decision_service_answers_a_household_with_a_list_per_member_rule(food_service):
    body = {"input": yaml.safe_load(SAMPLE.read_text())["tests"][2]["input"]}
    r = food_service.post("/v1/protocols/household-food-benefit/decide", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"] == {"eligible": True, "amount": 135, "member_share": [33.75] * 4}
    assert json.dumps(r.json()["outputs"]["amount"]) == "135"


def test_the_decision_service_refuses_a_bad_member_with_422_naming_it(food_service):
    body = {"input": {"household": {"rent": 1}, "members": [{"age": 3, "disabled": False, "role": "child"}]}}
    r = food_service.post("/v1/protocols/household-food-benefit/decide", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "input", "members", 0, "earned_income"]


@pytest.mark.parametrize(
    ("rule", "where", "says"),
    [
        (5, "$.rules.size", "a rule is a formula (a string) or {entity, formula}"),
        ({"formula": "1", "entiy": "person"}, "$.rules.size.entiy", "unknown field 'entiy'; allowed: description,"),
        ({"entity": "person"}, "$.rules.size", "'formula' is required"),
    ],
)
def test_a_malformed_rule_declaration_is_refused_naming_it(rule, where, says):
    data = yaml.safe_load(SAMPLE.read_text())
    data["rules"]["size"] = rule
    with pytest.raises(BadInput) as e:
        protocol.from_data(data)
    assert says in e.value.message
    assert e.value.where.endswith(f"at {where}")


def test_a_batch_of_households_is_answered_in_order(food_service):
    cases = yaml.safe_load(SAMPLE.read_text())["tests"]
    r = food_service.post("/v1/protocols/household-food-benefit/decide/batch",
                          json={"inputs": [cases[0]["input"], cases[3]["input"]]})
    assert r.status_code == 200, r.text
    assert [x["outputs"]["member_share"] for x in r.json()["results"]] == [[292], [129, 129]]
