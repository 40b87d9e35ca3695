"""Both backends agree exactly with two group levels: households (the record) holding tax units.

Hypothesis draws households of one to five members, each member in one of up to three tax units
(ids as integers or strings), tax-unit rules aggregating their own members and reading household
values, person rules reading their tax unit and household, and household rules over person rules.
The person table interleaves households and the tax-unit table lists its rows in a random order,
so the vectorized backend's sub-group segments are neither contiguous nor sorted. Values must be
bit-identical; a failure must name the same household, rule and message (member and tax unit).
"""

from __future__ import annotations

import random

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms.errors import EvaluationError
from hms.rules import RuleSet, SubgroupTable
from tests.unit.test_entity_backends import group_expr, interleaved, per_record, vectorized
from tests.unit.test_rule_backends import PARAMS, bool_expr, num_expr

ENTITIES = {
    "person": {"plural": "members", "roles": ["head", "child"]},
    "household": {"group_of": "person", "record": True},
    "tax_unit": {"group_of": "person"},
}
INPUTS = {
    "a": {"type": "number", "entity": "person"},
    "n": {"type": "integer", "entity": "person"},
    "flag": {"type": "boolean", "entity": "person"},
    "s": {"type": "string", "entity": "person"},
    "b": {"type": "number"},
    "c": {"type": "number", "entity": "tax_unit"},
}
number = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-1e6, 1e6, allow_nan=False))
member = st.fixed_dictionaries(
    {
        "a": number,
        "n": st.integers(0, 6),
        "flag": st.booleans(),
        "s": st.sampled_from(["x", "y", "z", "w"]),
        "role": st.sampled_from(["head", "child"]),
        "tax_unit": st.sampled_from([1, 2, "u3"]),
    }
)


@st.composite
def household(draw) -> dict:
    members = draw(st.lists(member, min_size=1, max_size=5))
    ids = list(dict.fromkeys(m["tax_unit"] for m in members))
    units = [{"id": i, "c": draw(number)} for i in ids]
    draw(st.randoms()).shuffle(units)  # the request may list tax units in any order
    return {"household": {"b": draw(number)}, "members": members, "tax_units": units}


households = st.lists(household(), min_size=1, max_size=10)


def ruleset(rules: dict) -> RuleSet:
    return RuleSet(INPUTS, PARAMS, rules, [next(iter(rules))], entities=ENTITIES)


def assert_agree(rs: RuleSet, hhs: list[dict], seed: int) -> None:
    expected, first_error = per_record(rs, hhs)
    cols, member_of, rows = interleaved(hhs, seed)
    cols.pop("tax_unit", None)
    units = [(h, u["id"], u["c"]) for h, hh in enumerate(hhs) for u in hh["tax_units"]]
    random.Random(seed + 1).shuffle(units)
    row_of = {(h, i): j for j, (h, i, _) in enumerate(units)}
    of_person = np.asarray([row_of[h, hhs[h]["members"][k]["tax_unit"]] for h, k in rows])
    table = SubgroupTable(
        {"c": np.asarray([c for *_, c in units])}, of_person, np.asarray([i for _, i, _ in units], dtype=object)
    )
    group = {"b": np.asarray([hh["household"]["b"] for hh in hhs])}
    got = vectorized(lambda: rs.evaluate_groups(group, cols, member_of, subgroups={"tax_unit": table}), first_error)
    if got is None:
        return  # both failed, alike
    for r in rs.rules:
        entity = rs.entity_of(r.name)
        if entity == "household":
            assert np.array_equal(np.asarray([x[r.name] for x in expected]), got.group[r.name]), r.name
        elif entity == "tax_unit":
            for h, hh in enumerate(hhs):
                order = list(dict.fromkeys(m["tax_unit"] for m in hh["members"]))  # first appearance
                got_h = [got.sub["tax_unit"][r.name][row_of[h, i]] for i in order]
                assert np.array_equal(np.asarray(expected[h][r.name]), np.asarray(got_h)), r.name
        else:
            want = np.asarray([expected[h][r.name][k] for h, k in rows])
            assert np.array_equal(want, got.person[r.name]), r.name


def unit_expr(depth: int) -> st.SearchStrategy[str]:
    """A tax-unit expression: the household grammar (aggregations, the household's ``b``) plus ``c``."""
    return st.one_of(
        group_expr(depth),
        st.tuples(group_expr(depth), st.sampled_from(["+", "/", "*"])).map(lambda x: f"({x[0]} {x[1]} c)"),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=unit_expr(2), hhs=households, seed=st.integers(0, 2**32))
def test_tax_unit_aggregations_agree_between_backends(expr, hhs, seed):
    assert_agree(ruleset({"tu": {"entity": "tax_unit", "formula": expr}}), hhs, seed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(e1=unit_expr(1), e2=num_expr(1), e3=bool_expr(1), hhs=households, seed=st.integers(0, 2**32))
def test_persons_read_their_tax_unit_and_households_aggregate_persons_alike_in_both_backends(e1, e2, e3, hhs, seed):
    rules = {
        "out": "sum(p) if any(ok) else b",
        "tu": {"entity": "tax_unit", "formula": f"{e1} + count(person)"},
        "p": {"entity": "person", "formula": f"({e2}) / tu if tu != 0 else {e2}"},
        "ok": {"entity": "person", "formula": f"{e3} or tu > c"},
        "tu2": {"entity": "tax_unit", "formula": "max(p) - c"},  # a tax-unit rule over a person rule
    }
    assert_agree(ruleset(rules), hhs, seed)


def test_a_failing_tax_unit_is_named_with_its_id_and_member_in_both_backends():
    rs = ruleset({"tu": {"entity": "tax_unit", "formula": "sum(1 / a)"}})
    base = {"n": 0, "flag": True, "s": "x", "role": "head"}
    ok = {"household": {"b": 0.0}, "members": [{"a": 1.0, "tax_unit": 1, **base}], "tax_units": [{"id": 1, "c": 0.0}]}
    bad = {
        "household": {"b": 0.0},
        "members": [
            {"a": 1.0, "tax_unit": "x", **base},
            {"a": 2.0, "tax_unit": 7, **base},
            {"a": 0.0, "tax_unit": 7, **base},
        ],
        "tax_units": [{"id": 7, "c": 0.0}, {"id": "x", "c": 0.0}],
    }
    try:
        rs.evaluate(bad)
    except EvaluationError as e:
        assert "(member 2) (tax_unit 7)" in e.message
    else:
        raise AssertionError("per-record did not fail")
    assert_agree(rs, [ok, bad], 3)
