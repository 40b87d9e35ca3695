"""The semantic protocol diff: what changed, in plain words, parameters first, no number noise."""

from __future__ import annotations

import copy
from pathlib import Path

from hms import protocol
from hms.protocol_diff import diff, diff_data, same, show

ROOT = Path(__file__).resolve().parents[2]
WILDFIRE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"


def _base() -> dict:
    return protocol.load(WILDFIRE).data


def test_a_changed_scalar_parameter_reads_old_arrow_new():
    old, new = _base(), _base()
    new["parameters"]["per_member"] = 1100
    new["parameters"]["max_payment"] = 5500
    got = [c.sentence for c in diff_data(old, new)]
    assert "parameters.per_member: 1000 → 1100" in got
    assert "parameters.max_payment: 5000 → 5500" in got


def test_numbers_compare_by_value_so_a_float_spelling_is_no_change():
    old, new = _base(), _base()
    new["parameters"]["per_member"] = 1000.0
    new["budget"]["cap"] = 1_000_000_000
    assert diff_data(old, new) == []
    assert same(3200.0, 3200) and not same(True, 1)
    assert show(3200.0) == "3200"


def test_changes_are_ordered_parameters_rules_inputs_tests_then_the_rest():
    old, new = _base(), _base()
    new["metadata"]["version"] = 4
    new["budget"]["cap"] = 2e9
    new["tests"][0]["expect"]["amount"] = 4400
    new["inputs"]["household_size"]["maximum"] = 30
    new["rules"]["amount"]["formula"] = "min(max_payment, per_member * household_size) if eligible else 1"
    new["parameters"]["per_member"] = 1100
    sections = [c.section for c in diff_data(old, new)]
    assert sections == ["parameters", "rules", "inputs", "tests", "other", "other"]
    assert [c.path for c in diff_data(old, new)][-2:] == ["budget.cap", "metadata.version"]


def test_a_rule_change_shows_the_old_and_new_formula():
    old, new = _base(), _base()
    new["rules"]["amount"]["formula"] = "per_member * household_size if eligible else 0"
    (c,) = diff_data(old, new)
    assert c.kind == "formula" and c.path == "amount"
    assert c.sentence == ("rule amount: min(max_payment, per_member * household_size) if eligible else 0 → "
                          "per_member * household_size if eligible else 0")


def test_inputs_added_removed_and_bounds_changed():
    old, new = _base(), _base()
    new["inputs"]["household_size"]["maximum"] = 30
    del new["inputs"]["county_fire_declared"]
    new["inputs"]["zip"] = {"type": "string"}
    got = {c.path: c.kind for c in diff_data(old, new) if c.section == "inputs"}
    assert got == {"inputs.household_size.maximum": "changed", "inputs.zip": "added",
                   "inputs.county_fire_declared": "removed"}


def test_test_cases_are_matched_by_name():
    old, new = _base(), _base()
    new["tests"][0]["expect"]["amount"] = 4400
    removed = new["tests"].pop(1)
    new["tests"].append({"name": "new case", "input": {}, "expect": {"amount": 0}})
    got = [c for c in diff_data(old, new) if c.section == "tests"]
    assert [c.kind for c in got] == ["case_removed", "expect_changed", "case_added"]
    assert got[0].key == removed["name"]
    assert got[1].sentence == ("test case 'family of four in a declared county' expects "
                               "{eligible: true, amount: 4000} → {eligible: true, amount: 4400}")


def test_dated_values_are_matched_by_their_from_date():
    old = {"parameters": {"sd": {"values": [{"from": "2023-10-01", "value": 198},
                                            {"from": "2024-10-01", "value": 204}]}}}
    new = copy.deepcopy(old)
    new["parameters"]["sd"]["values"][1]["value"] = 209
    new["parameters"]["sd"]["values"].append({"from": "2025-10-01", "value": 215})
    got = [c.sentence for c in diff_data(old, new)]
    assert got == ["parameters.sd from 2024-10-01: 204 → 209", "parameters.sd: new value from 2025-10-01: 215"]


def test_table_entries_are_compared_by_key():
    old = {"parameters": {"fpl": {1: 15060, 2: 20440}, "std": {"entries": {1: {"north": 100}}, "default": 0}}}
    new = {"parameters": {"fpl": {1: 15060.0, 2: 20500, 3: 25820},
                          "std": {"entries": {1: {"north": 110}}, "default": 5}}}
    got = [c.sentence for c in diff_data(old, new)]
    assert got == ["parameters.fpl[2]: 20440 → 20500", "parameters.fpl[3] added: 25820",
                   "parameters.std[1, north]: 100 → 110", "parameters.std.default: 0 → 5"]


def test_nothing_to_compare_with_is_no_changes_and_a_protocol_against_itself_is_none():
    p = protocol.load(WILDFIRE)
    assert diff(None, p) == [] and diff(p, p) == []


def test_change_to_dict_carries_the_sentence():
    old, new = _base(), _base()
    new["parameters"]["per_member"] = 1100
    (c,) = diff_data(old, new)
    assert c.to_dict()["sentence"] == c.sentence and c.to_dict()["old"] == 1000
