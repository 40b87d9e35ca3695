"""Both backends agree exactly with several group entities: a household holding tax units and SPM units.

Each member belongs to one tax unit and one SPM unit of its household, and the two kinds need not nest
in each other. Hypothesis draws household rules aggregating *over the tax units*
(``sum(x, over=tax_units)``, the flat grammar over the tax unit's own inputs), tax-unit rules reading
SPM-unit values through their members (an aggregated projection), household rules weighting a tax
unit's value by a member's role in it (``tax_unit_role``), and person rules reading all three groups. The person table
interleaves households and each sub-group table lists its rows in a random order, so no segment is
contiguous or sorted. Values must be bit-identical; a failure must name the same household, rule and
message (member or tax unit).
"""

from __future__ import annotations

import random
import re

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms.errors import EvaluationError, RuleError
from hms.rules import RuleSet, SubgroupTable
from tests.unit.test_entity_backends import interleaved, per_record, vectorized
from tests.unit.test_rule_backends import PARAMS, bool_expr, num_expr

ENTITIES = {
    "person": {"plural": "members", "roles": ["head", "child"]},
    "household": {"group_of": "person", "record": True},
    "tax_unit": {"group_of": "person", "roles": ["filer", "dependent"]},  # tax_unit_role
    "spm_unit": {"group_of": "person"},
}
INPUTS = {
    "a": {"type": "number", "entity": "person"},
    "n": {"type": "integer", "entity": "person"},
    "flag": {"type": "boolean", "entity": "person"},
    "s": {"type": "string", "entity": "person"},
    "b": {"type": "number"},
    "ua": {"type": "number", "entity": "tax_unit"},
    "un": {"type": "integer", "entity": "tax_unit"},
    "uflag": {"type": "boolean", "entity": "tax_unit"},
    "us": {"type": "string", "entity": "tax_unit"},
    "c": {"type": "number", "entity": "spm_unit"},
}
SUBS = {"tax_unit": ("tax_units", ("ua", "un", "uflag", "us")), "spm_unit": ("spm_units", ("c",))}
number = st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]), st.floats(-1e6, 1e6, allow_nan=False))
member = st.fixed_dictionaries(
    {
        "a": number,
        "n": st.integers(0, 6),
        "flag": st.booleans(),
        "s": st.sampled_from(["x", "y", "z", "w"]),
        "role": st.sampled_from(["head", "child"]),
        "tax_unit": st.sampled_from([1, 2, "u3"]),
        "tax_unit_role": st.sampled_from(["filer", "dependent"]),
        "spm_unit": st.sampled_from(["s1", 2]),
    }
)
unit_inputs = {"ua": number, "un": st.integers(0, 6), "uflag": st.booleans(), "us": st.sampled_from(["x", "y", "z"])}


@st.composite
def household(draw) -> dict:
    members = draw(st.lists(member, min_size=1, max_size=5))
    out: dict = {"household": {"b": draw(number)}, "members": members}
    for sub, (plural, _) in SUBS.items():
        ids = list(dict.fromkeys(m[sub] for m in members))
        if sub == "tax_unit":
            rows = [{"id": i, **draw(st.fixed_dictionaries(unit_inputs))} for i in ids]
        else:
            rows = [{"id": i, "c": draw(number)} for i in ids]
        draw(st.randoms()).shuffle(rows)  # the request may list them in any order
        out[plural] = rows
    return out


households = st.lists(household(), min_size=1, max_size=10)
_PERSON_NAMES = re.compile(r"\b(a|n|flag|s)\b")


def per_unit(expr: str) -> str:
    """A flat-grammar expression over a tax unit's inputs instead of a person's (``a`` -> ``ua``)."""
    return _PERSON_NAMES.sub(lambda mo: f"u{mo.group(1)}", expr)


def over_units(depth: int) -> st.SearchStrategy[str]:
    """A household expression aggregating tax-unit expressions over the household's tax units."""
    num = st.tuples(st.sampled_from(["sum", "min", "max"]), num_expr(depth).map(per_unit)).map(
        lambda x: f"{x[0]}({x[1]}, over=tax_units)"
    )
    boolean = st.tuples(st.sampled_from(["any", "all", "count"]), bool_expr(depth).map(per_unit)).map(
        lambda x: f"{x[0]}({x[1]}, over=tax_units)"
    )
    term = st.one_of(
        num,
        boolean.map(lambda x: x if x.startswith("count") else f"(1 if {x} else b)"),
        st.just("count(tax_units)"),
        st.just("sum(tu + b, over=tax_units)"),
    )
    return st.one_of(term, st.tuples(term, st.sampled_from(["+", "-", "*", "/"]), term).map(" ".join))


def ruleset(rules: dict) -> RuleSet:
    return RuleSet(INPUTS, PARAMS, rules, [next(iter(rules))], entities=ENTITIES)


def _table(hhs: list[dict], rows: list[tuple[int, int]], sub: str, seed: int) -> tuple[SubgroupTable, dict]:
    """One sub-group entity's table in a random row order, and (household, id) -> row."""
    plural, columns = SUBS[sub]
    units = [(h, u) for h, hh in enumerate(hhs) for u in hh[plural]]
    random.Random(seed).shuffle(units)
    row_of = {(h, u["id"]): j for j, (h, u) in enumerate(units)}
    of_person = np.asarray([row_of[h, hhs[h]["members"][k][sub]] for h, k in rows])
    cols = {c: np.asarray([u[c] for _, u in units]) for c in columns}
    return SubgroupTable(cols, of_person, np.asarray([u["id"] for _, u in units], dtype=object)), row_of


def assert_agree(rs: RuleSet, hhs: list[dict], seed: int) -> None:
    expected, first_error = per_record(rs, hhs)
    cols, member_of, rows = interleaved(hhs, seed)
    cols["tax_unit_role"] = np.asarray([hhs[h]["members"][k]["tax_unit_role"] for h, k in rows])
    tables, row_of = {}, {}
    for k, sub in enumerate(SUBS):
        tables[sub], row_of[sub] = _table(hhs, rows, sub, seed + 1 + k)
    group = {"b": np.asarray([hh["household"]["b"] for hh in hhs])}
    got = vectorized(lambda: rs.evaluate_groups(group, cols, member_of, subgroups=tables), first_error)
    if got is None:
        return  # both failed, alike
    for r in rs.rules:
        entity = rs.entity_of(r.name)
        if entity == "household":
            assert np.array_equal(np.asarray([x[r.name] for x in expected]), got.group[r.name]), r.name
        elif entity in SUBS:
            for h, hh in enumerate(hhs):
                order = list(dict.fromkeys(m[entity] for m in hh["members"]))  # first appearance
                got_h = [got.sub[entity][r.name][row_of[entity][h, i]] for i in order]
                assert np.array_equal(np.asarray(expected[h][r.name]), np.asarray(got_h)), r.name
        else:
            want = np.asarray([expected[h][r.name][k] for h, k in rows])
            assert np.array_equal(want, got.person[r.name]), r.name


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=over_units(2), hhs=households, seed=st.integers(0, 2**32))
def test_household_rules_over_their_tax_units_agree_between_backends(expr, hhs, seed):
    rules = {"out": expr, "tu": {"entity": "tax_unit", "formula": "sum(a) + ua"}}
    assert_agree(ruleset(rules), hhs, seed)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(e1=num_expr(1), e2=bool_expr(1), hhs=households, seed=st.integers(0, 2**32))
def test_groups_read_each_other_through_their_members_alike_in_both_backends(e1, e2, hhs, seed):
    rules = {
        "out": 'sum(tu if tax_unit_role == "filer" else 0) + max(sp, over=tax_units) - count(poor)',
        "spm": {"entity": "spm_unit", "formula": f"sum({e1}) + c"},
        "poor": {"entity": "spm_unit", "formula": f"any({e2}) or spm < b"},
        "sp": {"entity": "tax_unit", "formula": "max(spm) if any(poor) else ua"},  # SPM values via members
        "tu": {"entity": "tax_unit", "formula": 'sp / count(person) if uflag else min(c + a) + count(role == "head")'},
        "p": {"entity": "person", "formula": "tu + spm + (out if poor else b)"},  # all three groups
    }
    assert_agree(ruleset(rules), hhs, seed)


def test_a_failing_tax_unit_in_a_household_rule_over_tax_units_is_named_in_both_backends():
    rs = ruleset({"out": "sum(1 / ua, over=tax_units)"})
    base = {"a": 1.0, "n": 0, "flag": True, "s": "x", "role": "head", "tax_unit_role": "filer", "spm_unit": 1}
    unit = {"un": 0, "uflag": True, "us": "x"}
    bad = {
        "household": {"b": 0.0},
        "members": [{**base, "tax_unit": "x"}, {**base, "tax_unit": 7}, {**base, "tax_unit": 8}],
        "tax_units": [{"id": 8, "ua": 0.0, **unit}, {"id": 7, "ua": 0.0, **unit}, {"id": "x", "ua": 2.0, **unit}],
        "spm_units": [{"id": 1, "c": 0.0}],
    }
    ok = {**bad, "tax_units": [{**u, "ua": 1.0} for u in bad["tax_units"]]}
    try:
        rs.evaluate(bad)
    except EvaluationError as e:
        assert "division by zero (tax_unit 7)" in e.message  # 7 appears before 8 among the members
    else:
        raise AssertionError("per-record did not fail")
    assert_agree(rs, [ok, bad], 5)


def test_ill_defined_reads_between_groups_are_refused_naming_the_rule_and_column():
    cases = [
        ({"x": "sum(ua)"}, "'ua' is a tax_unit value: summing it over the members of a household would count it"),
        ({"x": "ua"}, "aggregate over them, e.g. sum(ua, over=tax_units)"),
        ({"x": "sum(a, over=tax_units)"}, "'a' is a person value and the aggregation over the tax_units"),
        ({"x": "sum(c, over=tax_units)"}, "a tax_unit may straddle several spm_units"),
        ({"x": {"entity": "tax_unit", "formula": "c"}}, "reads spm_unit values only through its members"),
        ({"x": {"entity": "tax_unit", "formula": "count(spm_units)"}}, "only allowed in a household rule"),
        ({"x": "sum(count(person), over=tax_units)"}, "inside another aggregation"),
        ({"x": "sum(ua, over=households)"}, "or over= one of the sub-groups: tax_units, spm_units"),
    ]
    for rules, message in cases:
        try:
            ruleset(rules)
        except RuleError as e:
            assert e.rule == "x" and e.column is not None and message in str(e), (rules, str(e))
        else:
            raise AssertionError(f"{rules} was not refused")
