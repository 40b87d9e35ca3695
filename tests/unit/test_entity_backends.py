"""Both backends agree exactly on entity protocols: random households, random member rules.

The per-record backend evaluates one household and its members at a time; the vectorized one
sorts a person table by household and reduces segments. Hypothesis draws member expressions
from the whole flat grammar (division, lookups with missing keys, untaken branches), wraps
them in every aggregation, projects group values back to members, and feeds households of
one to five members whose persons arrive interleaved in the person table. Values must be
bit-identical; a failure must be reported on the same household, by the same rule, with the
same message (which names the member).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms.errors import EvaluationError
from hms.rules import RuleSet
from tests.unit.test_rule_backends import PARAMS, bool_expr, num_expr

ENTITIES = {"person": {"plural": "members", "roles": ["head", "child"]}, "household": {"group_of": "person"}}
INPUTS = {
    "a": {"type": "number", "entity": "person"},
    "n": {"type": "integer", "entity": "person"},
    "flag": {"type": "boolean", "entity": "person"},
    "s": {"type": "string", "entity": "person"},
    "b": {"type": "number"},  # a household value, read by member expressions through projection
}
# The flat grammar's parameters: its expressions read one- and two-key tables, defaults and has().

member = st.fixed_dictionaries(
    {
        "a": st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-1e6, 1e6, allow_nan=False)),
        "n": st.integers(0, 6),
        "flag": st.booleans(),
        "s": st.sampled_from(["x", "y", "z", "w"]),
        "role": st.sampled_from(["head", "child"]),
    }
)
households = st.lists(
    st.fixed_dictionaries(
        {
            "household": st.fixed_dictionaries(
                {"b": st.one_of(st.sampled_from([0.0, 2.0, 3.0]), st.floats(-1e3, 1e3, allow_nan=False))}
            ),
            "members": st.lists(member, min_size=1, max_size=5),
        }
    ),
    min_size=1,
    max_size=12,
)


def group_expr(depth: int) -> st.SearchStrategy[str]:
    """A household expression: aggregations of member expressions, combined with household values."""
    num_agg = st.tuples(st.sampled_from(["sum", "min", "max"]), num_expr(depth)).map(lambda x: f"{x[0]}({x[1]})")
    bool_agg = st.tuples(st.sampled_from(["any", "all"]), bool_expr(depth)).map(lambda x: f"{x[0]}({x[1]})")
    count = st.one_of(st.just("count(person)"), bool_expr(depth).map(lambda x: f"count({x})"))
    term = st.one_of(num_agg, count, bool_agg.map(lambda x: f"(1 if {x} else b)"), st.just("b"))
    return st.one_of(
        term,
        st.tuples(term, st.sampled_from(["+", "-", "*", "/"]), term).map(lambda x: f"({x[0]} {x[1]} {x[2]})"),
        st.tuples(bool_agg, term, term).map(lambda x: f"({x[1]} if {x[0]} else {x[2]})"),
        st.tuples(term, term).map(lambda x: f"max({x[0]}, {x[1]})"),
    )


def interleaved(hhs: list[dict], seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, list[tuple[int, int]]]:
    """A person table with households' members mixed together, each household's in its own order."""
    slots = [h for h, hh in enumerate(hhs) for _ in hh["members"]]
    random.Random(seed).shuffle(slots)
    taken = [0] * len(hhs)
    rows = []
    for h in slots:
        rows.append((h, taken[h]))
        taken[h] += 1
    people = [hhs[h]["members"][k] for h, k in rows]
    cols = {name: np.asarray([p[name] for p in people]) for name in ("a", "n", "flag", "s", "role")}
    return cols, np.asarray([h for h, _ in rows]), rows


def per_record(rs: RuleSet, hhs: list[dict]) -> tuple[list[dict], tuple[int, str, str] | None]:
    """The per-record backend's answers up to its first error, and that error as (row, rule, message): what the
    vectorized backend must reproduce exactly."""
    expected: list[dict] = []
    for i, hh in enumerate(hhs):
        try:
            expected.append(rs.evaluate(hh))
        except EvaluationError as e:
            return expected, (i, e.rule, e.message.split("; record")[0])
    return expected, None


def vectorized(evaluate: Callable[[], Any], first_error: tuple[int, str, str] | None) -> Any | None:
    """The vectorized backend's result, or None when it failed exactly as the per-record one did (same row, rule
    and message); a failure on one side only fails the test."""
    try:
        got = evaluate()
    except EvaluationError as e:
        assert first_error is not None, f"vectorized failed ({e}) where per-record did not"
        assert (e.row, e.rule, e.message.split("; record")[0]) == first_error
        return None
    assert first_error is None, f"per-record failed at household {first_error}, vectorized did not"
    return got


def assert_agree(rs: RuleSet, hhs: list[dict], seed: int) -> None:
    expected, first_error = per_record(rs, hhs)
    cols, member_of, rows = interleaved(hhs, seed)
    group = {"b": np.asarray([hh["household"]["b"] for hh in hhs])}
    got = vectorized(lambda: rs.evaluate_groups(group, cols, member_of), first_error)
    if got is None:
        return  # both failed, alike
    for r in rs.rules:
        if rs.entity_of(r.name) == "household":
            assert np.array_equal(np.asarray([x[r.name] for x in expected]), got.group[r.name]), r.name
        else:
            want = np.asarray([expected[h][r.name][k] for h, k in rows])
            assert np.array_equal(want, got.person[r.name]), r.name


def ruleset(rules: dict) -> RuleSet:
    return RuleSet(INPUTS, PARAMS, rules, [next(iter(rules))], entities=ENTITIES)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=group_expr(2), hhs=households, seed=st.integers(0, 2**32))
def test_household_aggregations_agree_between_backends(expr, hhs, seed):
    assert_agree(ruleset({"r": expr}), hhs, seed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(e1=num_expr(2), e2=group_expr(1), e3=bool_expr(1), hhs=households, seed=st.integers(0, 2**32))
def test_person_rules_group_rules_and_projection_agree_between_backends(e1, e2, e3, hhs, seed):
    rules = {
        "out": "sum(q) + hv if any(ok) else hv",
        "p": {"entity": "person", "formula": e1},  # a member rule over member and household values
        "hv": f"({e2}) + max(p)",  # a household rule aggregating the member rule
        "ok": {"entity": "person", "formula": f'{e3} and role == "head"'},
        "q": {"entity": "person", "formula": "p / hv if hv != 0 else p"},  # a household value projected
    }
    assert_agree(ruleset(rules), hhs, seed)


def test_a_sum_is_added_member_by_member_like_the_per_record_backend():
    """Pairwise summation (np.sum) would round 0.1 * 10 differently from adding left to right."""
    rs = ruleset({"total": "sum(a)"})
    member = {"n": 0, "flag": True, "s": "x", "role": "head"}
    hh = {"household": {"b": 0.0}, "members": [{"a": x, **member} for x in [0.1] * 10]}
    per_record = rs.evaluate(hh)["total"]
    cols, member_of, _ = interleaved([hh], 0)
    assert rs.evaluate_groups({"b": np.asarray([0.0])}, cols, member_of).group["total"][0] == per_record
    assert per_record == sum([0.1] * 10)
