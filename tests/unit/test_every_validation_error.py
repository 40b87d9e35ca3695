"""Every invalid field of a request at once: a caller fixes a form in one round trip, not one per field."""

from __future__ import annotations

import pytest

from hms import protocol
from hms.errors import BadInput, BadInputs
from tests.conftest import ROOT
from tests.unit.test_decision_service import prod  # noqa: F401  (the fixture: one way to serve prod)

FOOD = ROOT / "tests" / "data" / "protocols" / "household-food-benefit.yml"
WRONG_EVERYWHERE = {"household_size": "four", "county_fire_declared": 1, "ssn": "123"}  # household_income missing


@pytest.fixture
def client(prod):  # noqa: F811
    """A client on a prod replica serving wildfire v3 (test_decision_service's ``prod``)."""
    return prod[0]


def test_a_decision_request_with_several_invalid_fields_names_each_with_loc_msg_and_type(client):
    r = client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": WRONG_EVERYWHERE})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert detail[0]["loc"] == ["body", "input", "ssn"] and detail[0]["msg"].startswith("unknown field 'ssn'")
    assert {d["loc"][-1]: d["msg"] for d in detail[1:]} == {  # then in the order the protocol declares them
        "household_size": "expected an integer, got str",
        "household_income": "missing field",
        "county_fire_declared": "expected a boolean, got int",
    }
    assert {d["type"] for d in detail} == {"value_error"}


def test_a_batch_names_every_invalid_field_of_its_first_invalid_input(client):
    r = client.post("/v1/protocols/wildfire-aid-2024/decide/batch", json={"inputs": [WRONG_EVERYWHERE]})
    assert r.status_code == 422
    assert len(r.json()["detail"]) == 4 and r.json()["detail"][0]["loc"][:3] == ["body", "inputs", 0]


def test_coerce_record_still_raises_the_first_problem_alone_unless_every_error_is_asked_for():
    rs = protocol.load(ROOT / "include" / "protocols" / "wildfire-aid-2024.yml").ruleset
    with pytest.raises(BadInput) as first:
        rs.coerce_record(WRONG_EVERYWHERE)
    assert not isinstance(first.value, BadInputs) and first.value.where == "input.ssn"
    with pytest.raises(BadInputs) as every:
        rs.coerce_record(WRONG_EVERYWHERE, every_error=True)
    assert [p.where for p in every.value.problems] == [
        "input.ssn", "input.household_size", "input.household_income", "input.county_fire_declared"]
    assert every.value.where == "input.ssn"  # one-line reporters see what they saw before


def test_a_household_reports_each_members_invalid_fields_together():
    rs = protocol.load(FOOD).ruleset
    child = {"age": 3, "disabled": False, "role": "child", "earned_income": 0}
    household = {"household": {"rent": -1}, "members": [{**child, "age": 200}, child, {**child, "disabled": "no"}]}
    with pytest.raises(BadInputs) as every:
        rs.coerce_record(household, every_error=True)
    wheres = [p.where for p in every.value.problems]
    assert "input.household.rent" in wheres and "input.members.0.age" in wheres
    assert "input.members.2.disabled" in wheres and not any(w.startswith("input.members.1") for w in wheres)
