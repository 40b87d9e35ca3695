"""Explanations say what both backends computed, name what was read, and cite the provisions.

The explanation derives its values with its own interpreter (hms.rules.explain), so it is held to the two
backends like they are held to each other: over random expressions from the whole grammar and random
records (flat) or households (entities), every rule value an explanation states equals the per-record
backend's and the vectorized one's, bit for bit, and it needs no note saying it could not.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms import protocol
from hms.errors import BadInput, EvaluationError
from hms.protocol_diff import diff_data
from hms.rules import RuleSet
from hms.rules.explain import Explanation, RuleStep, explain
from tests.unit import test_entity_backends as entity_backends
from tests.unit.test_rule_backends import INPUTS, PARAMS, bool_expr, num_expr, records

ROOT = Path(__file__).resolve().parents[2]
WILDFIRE = ROOT / "include" / "protocols" / "wildfire-aid-2024.yml"
CHIP = ROOT / "include" / "protocols" / "chip-income-cap.yml"
SNAP = ROOT / "include" / "protocols" / "snap-texas-fy2026.yml"
EITC = ROOT / "include" / "protocols" / "federal-eitc-2026.yml"


def steps(e: Explanation) -> dict[str, RuleStep]:
    """Every rule step an explanation states, by rule (an output's own and those it depends on)."""
    out: dict[str, RuleStep] = {}
    for o in e.outputs:
        for s in (o.rule, *o.depends_on):
            assert out.setdefault(s.name, s) is s or out[s.name] == s
    return out


def assert_reads_are_what_was_read(rs: RuleSet, rec: dict, e: Explanation) -> None:
    for s in steps(e).values():
        for r in s.reads:
            if r.kind == "input":
                assert r.value == rs.coerce_record(rec)[r.name]
            elif r.kind == "parameter":
                assert r.value == rs.params[r.name]
            else:
                t = rs.tables[r.name]
                assert r.value == t.entries.get(r.key, t.default)
                assert r.from_default == (r.key not in t.entries)


# ---- both backends agree with what the explanation says ----------------------------------------------------


def assert_explanations_agree(rs: RuleSet, recs: list[dict]) -> None:
    explained, ok = [], []
    for rec in recs:
        try:
            values = rs.evaluate(rec)
        except EvaluationError as failed:
            with pytest.raises(EvaluationError) as e:
                explain(rs, rec)
            assert e.value.message == failed.message  # an explanation fails exactly as the decision does
            continue
        e = explain(rs, rec)
        assert e.notes == ()
        said = steps(e)
        for name, step in said.items():
            assert step.value == values[name] and type(step.value) is type(values[name]), name
        for o in e.outputs:
            assert (o.notice is not None) == (rs.type_of(o.name) == "bool")
        assert_reads_are_what_was_read(rs, rec, e)
        explained.append(said)
        ok.append(rec)
    if not ok:
        return
    cols = rs.evaluate_columns({k: np.asarray([r[k] for r in ok]) for k in INPUTS})
    for name in explained[0]:
        assert np.array_equal(np.asarray([s[name].value for s in explained]), cols[name]), name


FLAT_RULES = {
    "x": None,  # num_expr
    "y": None,  # bool_expr
    "out": "(x + a) if y else b",
    "ok": "y and x >= k or flag",
    "chained": "x < b <= a",
}


def flat(num: str, boolean: str) -> RuleSet:
    rules = {**FLAT_RULES, "x": num, "y": boolean}
    return RuleSet(INPUTS, PARAMS, rules, ["out", "ok", "chained", "x"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num=num_expr(3), boolean=bool_expr(2), recs=records)
def test_explanations_state_the_values_both_backends_compute(num, boolean, recs):
    assert_explanations_agree(flat(num, boolean), recs)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(e1=num_expr(2), e2=entity_backends.group_expr(1), e3=bool_expr(1), hhs=entity_backends.households,
       seed=st.integers(0, 2**32))
def test_household_explanations_state_the_values_both_backends_compute(e1, e2, e3, hhs, seed):
    rules = {
        "out": "sum(q) + hv if any(ok) else hv",
        "decided": "any(ok) and hv > b or count(person) > 3",
        "p": {"entity": "person", "formula": e1},
        "hv": f"({e2}) + max(p)",
        "ok": {"entity": "person", "formula": f'{e3} and role == "head"'},
        "q": {"entity": "person", "formula": "p / hv if hv != 0 else p"},
    }
    rs = RuleSet(entity_backends.INPUTS, PARAMS, rules, ["out", "decided", "ok"], entities=entity_backends.ENTITIES)
    expected, first_error = entity_backends.per_record(rs, hhs)
    fine = hhs[: len(expected)]
    explained = []
    for hh, values in zip(fine, expected, strict=True):
        e = explain(rs, hh)
        assert e.notes == ()
        said = steps(e)
        for name, step in said.items():
            assert step.value == values[name], name
            if rs.entity_of(name) == "person":
                assert step.who == tuple(f"member {k}" for k in range(len(hh["members"])))
        explained.append(said)
    if first_error is not None:
        with pytest.raises(EvaluationError):
            explain(rs, hhs[len(expected)])
    if not fine:
        return
    cols, member_of, rows = entity_backends.interleaved(fine, seed)
    got = rs.evaluate_groups({"b": np.asarray([hh["household"]["b"] for hh in fine])}, cols, member_of)
    for name in explained[0]:
        if rs.entity_of(name) == "household":
            assert np.array_equal(np.asarray([s[name].value for s in explained]), got.group[name]), name
        else:
            want = np.asarray([explained[h][name].value[k] for h, k in rows])
            assert np.array_equal(want, got.person[name]), name


# ---- what an explanation names ------------------------------------------------------------------------------

FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}


def test_a_denial_names_the_deciding_comparison_and_its_provisions():
    p = protocol.load(WILDFIRE)
    e = explain(p.ruleset, {**FAMILY, "household_income": 124801}, authority=p.authority)
    eligible = e.outputs[0]
    assert eligible.value is False
    assert eligible.notice.startswith(
        "not eligible: household_income 124,801 > income_limit_pct 4 × poverty_line 31,200 = 124,800 — "
    )
    assert eligible.references[0] == p.ruleset.references["eligible"]
    assert f"income_limit_pct: {p.ruleset.references['income_limit_pct']}" in eligible.references


def test_an_or_is_decided_by_its_first_succeeding_alternative_and_a_false_input_is_named():
    p = protocol.load(WILDFIRE)
    e = explain(p.ruleset, {**FAMILY, "county_fire_declared": False}, authority=p.authority)
    assert e.outputs[0].notice.startswith("not eligible: county_fire_declared is false — ")
    rs = RuleSet(INPUTS, PARAMS, {"r": "a > 10 or flag or b > 1"}, ["r"])
    assert explain(rs, {"a": 1, "b": 5, "n": 0, "flag": True, "s": "x"}).outputs[0].notice == "r: flag is true"
    both = explain(rs, {"a": 1, "b": 0, "n": 0, "flag": False, "s": "x"}).outputs[0].notice
    assert both == "not r: a 1 <= 10; flag is false; b 0 <= 1"


def test_a_table_lookup_shows_the_key_looked_up_the_value_found_and_the_tables_reference():
    p = protocol.load(CHIP)
    e = explain(p.ruleset, {"age": 4, "household_size": 4, "household_income": 70000, "insured": False},
                authority=p.authority)
    limit = steps(e)["income_limit"]
    fpl = next(r for r in limit.reads if r.name == "fpl")
    assert (fpl.key, fpl.value, fpl.text) == ((4.0,), 31200.0, "fpl[4] = 31,200")
    assert fpl.reference == p.ruleset.references["fpl"]
    assert "household_income 70,000 > income_limit = income_limit_pct 2 × fpl[4] = 62,400" in e.outputs[0].notice


def test_a_tables_default_is_said_to_be_the_default():
    rs = RuleSet(INPUTS, PARAMS, {"r": "d[n]"}, ["r"])
    read = next(r for r in explain(rs, {"a": 0, "b": 0, "n": 3, "flag": True, "s": "x"}).outputs[0].rule.reads
                if r.kind == "table")
    assert (read.value, read.from_default) == (-1, True)
    assert read.text == "d[3] = -1 (the table's default: no entry for this key)"


def test_an_untaken_branch_reads_nothing():
    p = protocol.load(WILDFIRE)
    amount = explain(p.ruleset, {**FAMILY, "county_fire_declared": False}).outputs[1]
    assert amount.rule.reads == () and amount.rule.rules_read == ("eligible",)
    paid = explain(p.ruleset, FAMILY).outputs[1]
    assert {r.name for r in paid.rule.reads} == {"max_payment", "per_member", "household_size"}


def test_an_output_lists_every_rule_it_depends_on_in_evaluation_order_with_its_value():
    p = protocol.load(WILDFIRE)
    amount = explain(p.ruleset, FAMILY).outputs[1]
    assert [(s.name, s.value) for s in amount.depends_on] == [("poverty_line", 31200.0), ("eligible", True)]
    assert amount.rule.expression == "min(max_payment, per_member * household_size) if eligible else 0"
    assert amount.notice is None  # a number is explained by its steps, not a sentence


def test_a_household_explanation_shows_each_members_values_and_each_aggregation():
    p = protocol.load(SNAP)
    case = copy.deepcopy(p.tests[4]["input"])
    case["members"][1]["age"] = 70
    e = explain(p.ruleset, case, authority=p.authority)
    said = steps(e)
    assert said["elderly_or_disabled"].value == [False, True, False]
    assert said["elderly_or_disabled"].who == ("member 0", "member 1", "member 2")
    (ages,) = [r for r in said["elderly_or_disabled"].reads if r.name == "age"]  # one read, each member's value
    assert (ages.who, ages.value) == (("member 0", "member 1", "member 2"), [35.0, 70.0, 5.0])
    assert ages.text == "age: member 0 = 35, member 1 = 70, member 2 = 5"
    # disabled is read only where age did not decide (age >= elderly_age or disabled): the others' ages are < 60
    (disabled,) = [r for r in said["elderly_or_disabled"].reads if r.name == "disabled"]
    assert disabled.who == ("member 0", "member 2")
    (agg,) = said["any_elderly_or_disabled"].aggregations
    assert (agg.expression, agg.values, agg.result) == ("any(in_unit and elderly_or_disabled)", (False, True, False),
                                                         True)
    housing = [r for r in said["excess_shelter_uncapped"].reads if r.name == "housing_cost"]
    assert [r.who for r in housing] == [None]  # a household value is read once, not per member
    assert e.outputs[0].notice.startswith("not eligible: ")
    said_net = "net_income = max(net_before_shelter 2,802.87 - excess_shelter 543.57, 0) = 2,259.30 > "
    assert said_net in e.outputs[0].notice


def test_a_person_outcome_gets_a_notice_per_member():
    rs = RuleSet(entity_backends.INPUTS, PARAMS, {"ok": {"entity": "person", "formula": "a > b"}}, ["ok"],
                 entities=entity_backends.ENTITIES)
    hh = {"household": {"b": 1.0}, "members": [{"a": 2.0, "n": 0, "flag": True, "s": "x", "role": "head"},
                                               {"a": 0.5, "n": 0, "flag": True, "s": "x", "role": "child"}]}
    assert explain(rs, hh).outputs[0].notice == "member 0: ok: a 2 > b 1; member 1: not ok: a 0.5 <= b 1"


def test_a_sub_group_rule_is_explained_per_sub_group_and_a_record_rule_over_them():
    p = protocol.load(ROOT / "tests" / "data" / "protocols" / "household-work-credit.yml")
    rs = p.ruleset
    for case in p.service_cases:
        e = explain(rs, case["input"])
        values = rs.evaluate(case["input"])
        assert e.notes == ()
        said = steps(e)
        for name, s in said.items():
            assert s.value == values[name], (case["name"], name)
            if rs.entity_of(name) == "tax_unit":
                assert len(s.who) == len(values[name]) and all(w.startswith("tax_unit ") for w in s.who)
        over = [a for a in said["unit_credits"].aggregations if a.over == "tax_unit"]
        assert over and over[0].values == tuple(values["unit_credit"]) and over[0].who == said["unit_credit"].who


# ---- references in the protocol -------------------------------------------------------------------------------


def _wildfire() -> dict:
    return copy.deepcopy(protocol.load(WILDFIRE).data)


def test_a_dated_parameter_cites_the_reference_of_the_value_in_force():
    d = _wildfire()
    d["period"] = {"unit": "year"}
    d["parameters"]["per_member"] = {"values": [
        {"from": "2020-01-01", "value": 800, "reference": "Pub. L. 116-1"},
        {"from": "2026-01-01", "value": 1000, "reference": "Pub. L. 118-XX, sec. 3(a)"},
    ]}
    p = protocol.from_data(d)
    assert p.ruleset.references["per_member"] == "Pub. L. 118-XX, sec. 3(a)"
    paid = explain(p.ruleset, FAMILY).outputs[1]
    assert next(r for r in paid.rule.reads if r.name == "per_member").reference == "Pub. L. 118-XX, sec. 3(a)"
    from hms.periods import parse as parse_period

    earlier = p.plan(parse_period("2021", "year", where="period"))[0][1]
    assert earlier.references["per_member"] == "Pub. L. 116-1"


def test_a_rule_of_a_flat_protocol_may_carry_its_reference():
    d = _wildfire()
    d["rules"]["eligible"] = {"formula": "county_fire_declared", "reference": "sec. 3(b)"}
    assert protocol.from_data(d).ruleset.references["eligible"] == "sec. 3(b)"
    d["rules"]["eligible"] = {"formula": "county_fire_declared", "entity": "household"}
    with pytest.raises(BadInput, match="needs the protocol to declare entities"):
        protocol.from_data(d)


@pytest.mark.parametrize(("edit", "where", "says"), [
    (lambda d: d["parameters"].update(max_payment={"value": 5000, "reference": 7}),
     "parameters.max_payment.reference", "7 is not of type 'string'"),
    (lambda d: d["parameters"].update(max_payment={"value": 5000, "reference": ""}), "parameters.max_payment.reference",
     "at least 1"),
    (lambda d: d["parameters"].update(max_payment={"value": 5000, "reference": "x", "note": 1}),
     "parameters.max_payment.note", "unknown field 'note'"),
    (lambda d: d["rules"].update(amount={"formula": "0", "reference": "x", "cite": "y"}), "rules.amount.cite",
     "unknown field 'cite'; allowed: description, entity, formula, reference"),
])
def test_a_malformed_reference_is_refused_naming_the_field(edit, where, says):
    d = _wildfire()
    edit(d)
    with pytest.raises(BadInput) as e:
        protocol.from_data(d)
    assert e.value.where.endswith(f"$.{where}"), e.value.where
    assert says in e.value.message


def test_a_referenced_tables_bad_key_is_refused_at_its_place_inside_value():
    d = copy.deepcopy(protocol.load(CHIP).data)
    d["parameters"]["fpl"] = {"value": {"1": 1, "01": 2}, "reference": "HHS"}
    with pytest.raises(BadInput) as e:
        protocol.from_data(d)
    assert "parameters.fpl.value" in e.value.where, e.value.where


def test_a_changed_reference_is_a_change_of_its_own_and_the_value_compares_by_value():
    old = _wildfire()
    new = copy.deepcopy(old)
    before = old["parameters"]["income_limit_pct"]
    new["parameters"]["income_limit_pct"] = {"value": 3.5, "reference": "Pub. L. 118-YY"}
    changes = {(c.kind, c.path): (c.old, c.new) for c in diff_data(old, new)}
    assert changes[("changed", "parameters.income_limit_pct")] == (before["value"], 3.5)
    assert changes[("changed", "parameters.income_limit_pct.reference")] == (before["reference"], "Pub. L. 118-YY")
    new["parameters"]["income_limit_pct"] = before["value"]
    assert [c.sentence for c in diff_data(old, new)] == [
        f"parameters.income_limit_pct.reference removed (was {before['reference']})"]


def test_two_households_through_one_rule_sets_kept_plan_are_explained_each_on_its_own():
    """What explanations share is prepared once per rule set and kept (hms.rules.explain._plan): explaining one
    household must leave nothing in it that changes the next one's explanation."""
    from hms.rules.explain import _plan

    p = protocol.load(SNAP)
    denied, granted = copy.deepcopy(p.tests[4]["input"]), p.service_cases[0]["input"]
    rs = p.ruleset
    kept = [explain(rs, r, authority=p.authority) for r in (granted, denied, granted)]
    assert _plan(rs) is _plan(rs)
    assert kept[0] == kept[2] and kept[0] != kept[1]
    for rec, got in ((granted, kept[0]), (denied, kept[1])):
        fresh = protocol.load(SNAP).ruleset  # a plan of its own, built for this one explanation
        assert explain(fresh, rec, authority=p.authority) == got
    assert kept[1].outputs[0].notice.startswith("not eligible: ")
    assert kept[0].outputs[0].notice.startswith("eligible: ")
