"""Several group entities: a household (the record) holding tax units (sub-groups), per record."""

import pytest

from hms.errors import BadInput, RuleError
from hms.rules import RuleSet

ENTITIES = {"person": {}, "household": {"group_of": "person"}, "tax_unit": {"group_of": "person"}}
INPUTS = {
    "income": {"type": "number", "entity": "person", "minimum": 0},
    "joint": {"type": "boolean", "entity": "tax_unit"},
    "rent": {"type": "number"},
}
RULES = {
    "tu_income": {"entity": "tax_unit", "formula": "sum(income)"},
    "tu_tax": {"entity": "tax_unit", "formula": "tu_income * (0.1 if joint else 0.2)"},
    "share": {"entity": "person", "formula": "tu_tax + rent * 0"},
    "size": "count(person)",
}


def _rs(rules=RULES):
    return RuleSet(INPUTS, {}, rules, list(rules)[:1], entities=ENTITIES)


def test_tax_unit_rules_aggregate_their_own_members_and_persons_read_their_tax_unit():
    out = _rs().evaluate(
        {
            "household": {"rent": 5},
            "members": [{"income": 10, "tax_unit": 1}, {"income": 20, "tax_unit": 2}, {"income": 30, "tax_unit": 1}],
            "tax_units": [{"id": 2, "joint": False}, {"id": 1, "joint": True}],
        }
    )
    assert out == {"tu_income": [40.0, 20.0], "tu_tax": [4.0, 4.0], "share": [4.0, 4.0, 4.0], "size": 3.0}


def test_a_household_rule_aggregating_a_tax_unit_value_is_refused_as_double_counting():
    with pytest.raises(RuleError, match="count it once per member"):
        _rs({**RULES, "bad": "sum(tu_tax)"})


def test_a_member_without_its_tax_unit_id_is_refused_naming_the_field():
    with pytest.raises(BadInput) as e:
        _rs().evaluate({"household": {"rent": 5}, "members": [{"income": 1}], "tax_units": []})
    assert e.value.where == "input.members.0.tax_unit"
