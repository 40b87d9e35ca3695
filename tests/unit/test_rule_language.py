"""The rule language: allow-list, types, names, cycles and defined failures."""

from __future__ import annotations

import numpy as np
import pytest

from hms.errors import EvaluationError, RuleError
from hms.rules import RuleSet

INPUTS = {
    "income": {"type": "number", "minimum": 0},
    "size": {"type": "integer", "minimum": 0},
    "flag": {"type": "boolean"},
    "county": {"type": "string"},
}
PARAMS = {"cap": 5000, "rate": 0.5, "fpl": {1: 100, 2: 200, 3: 300}, "zone": {"north": 1, "south": 2}}


def rules(**rs: str) -> RuleSet:
    return RuleSet(INPUTS, PARAMS, rs, [next(iter(rs))])


def rec(**kw):
    return {"income": 10.0, "size": 1, "flag": True, "county": "north", **kw}


@pytest.mark.parametrize(
    ("expr", "says", "column"),
    [
        ("incom * 2", "did you mean 'income'?", 1),
        ("income + caps", "did you mean 'cap'?", 10),
        ("mn(income, 1)", "unknown function 'mn'; did you mean 'min'?", 1),
        ("income.real", "attribute access", 1),
        ("income ** 2", "'**'", 1),
        ("[x for x in (1, 2)]", "comprehensions", 1),
        ("lambda: 1", "lambda", 1),
        ("__import__('os')", "unknown function '__import__'", 1),
        ("open('x')", "unknown function 'open'", 1),
        ("(y := 1)", "':='", 2),
        ("f'{income}'", "f-strings", 1),
        ("income if flag", "syntax error", None),
        ("income + flag", "right side of '+' must be a number, got a boolean", 10),
        ("flag and income", "operand of 'and' must be a boolean", 10),
        ("county < 'x'", "only for numbers", 1),
        ("income in (1, 'a')", "items of the tuple after 'in' must be a number", 15),
        ("income in (1, size)", "literals only", 15),
        ("fpl[county]", "index of table 'fpl' must be a number", 5),
        ("zone[size]", "index of table 'zone' must be a string", 6),
        ("fpl", "must be indexed", 1),
        ("cap[1]", "is not a lookup table", 1),
        ("min(income)", "min() takes 2 to 50 arguments", 1),
        ("round(income, size)", "digits must be a literal", 1),
        ("income if flag else county", "both branches must have one type", 1),
        ("(1, 2)", "tuples are only allowed after 'in'", 1),
        ("income is size", "'is' is not allowed", 1),
        ("~size", "'~'", 1),
        ("{'a': 1}", "dict literals", 1),
        ("None", "constant None", 1),
        ("income[1:2]", "slices", 8),
    ],
)
def test_forbidden_or_wrong_expressions_are_refused_with_rule_and_column(expr, says, column):
    with pytest.raises(RuleError) as e:
        rules(r=expr)
    assert says in str(e.value)
    assert e.value.rule == "r"
    if column is not None:
        assert e.value.column == column, str(e.value)


def test_huge_expression_is_refused_not_crashing():
    with pytest.raises(RuleError, match="nodes|nested"):
        rules(r=" + ".join(["income"] * 2000))
    with pytest.raises(RuleError):
        rules(r="(" * 5000 + "income" + ")" * 5000)


def test_rules_may_use_rules_declared_later():
    rs = RuleSet(INPUTS, PARAMS, {"out": "base * 2", "base": "income + 1"}, ["out"])
    assert rs.decide(rec(income=4)) == {"out": 10.0}
    assert [r.name for r in rs.rules] == ["base", "out"]


def test_cycle_is_rejected_naming_the_cycle():
    with pytest.raises(RuleError, match="rule cycle: a -> b -> c -> a"):
        rules(a="b + 1", b="c + 1", c="a + 1")


def test_self_reference_is_a_cycle():
    with pytest.raises(RuleError, match="rule cycle: a -> a"):
        rules(a="a + 1")


def test_rule_named_like_an_input_is_refused():
    with pytest.raises(RuleError, match="clashes"):
        RuleSet(INPUTS, PARAMS, {"income": "1"}, ["income"])


def test_division_by_zero_names_rule_and_record_in_both_backends():
    rs = rules(r="income / size")
    with pytest.raises(EvaluationError) as e:
        rs.decide(rec(size=0))
    assert e.value.rule == "r" and e.value.record["size"] == 0 and "division by zero" in str(e.value)
    cols = {"income": np.array([1.0, 2.0, 3.0]), "size": np.array([1, 0, 0]), "flag": np.array([True] * 3)}
    with pytest.raises(EvaluationError) as e:
        rs.evaluate_columns(cols)
    assert e.value.rule == "r" and e.value.row == 1 and e.value.record == {"income": 2.0, "size": 0.0}


def test_missing_table_key_is_an_error_never_a_default():
    rs = rules(r="fpl[size]")
    with pytest.raises(EvaluationError, match="table 'fpl' has no key 7"):
        rs.decide(rec(size=7))
    with pytest.raises(EvaluationError, match="has no key 9") as e:
        rs.evaluate_columns({"size": np.array([1, 2, 9, 3])})
    assert e.value.row == 2


def test_string_table_lookup_and_missing_key():
    rs = rules(r="zone[county] * 10")
    assert rs.decide(rec(county="south")) == {"r": 20.0}
    with pytest.raises(EvaluationError, match="no key 'east'"):
        rs.decide(rec(county="east"))
    out = rs.evaluate_columns({"county": np.array(["north", "south"])})
    assert out["r"].tolist() == [10.0, 20.0]


def test_untaken_branch_does_not_fail_in_either_backend():
    rs = rules(r="income / size if size > 0 else 0", s="size > 0 and income / size > 1", t="size == 0 or fpl[size] > 0")
    r = {"income": np.array([4.0, 5.0]), "size": np.array([0, 2]), "flag": np.array([True, False])}
    out = rs.evaluate_columns(r)
    assert out["r"].tolist() == [0.0, 2.5]
    assert rs.evaluate(rec(size=0))["r"] == 0.0


def test_chained_comparison_short_circuits_like_python():
    rs = rules(r="size > 0 < income / size")
    assert rs.decide(rec(size=0)) == {"r": False}
    assert rs.evaluate_columns({"size": np.array([0, 2]), "income": np.array([1.0, 1.0])})["r"].tolist() == [
        False,
        True,
    ]


def test_overflow_is_an_error_not_infinity():
    rs = rules(r="income * 1e300 * 1e300")
    with pytest.raises(EvaluationError, match="finite"):
        rs.decide(rec(income=1))
    with pytest.raises(EvaluationError, match="finite"):
        rs.evaluate_columns({"income": np.array([0.0, 1.0])})


def test_record_type_mismatch_names_the_field():
    rs = rules(r="income * 2")
    for bad, says in [
        ({"income": "10"}, "expected a number, got str"),
        ({"flag": 1}, "expected a boolean"),
        ({"size": 1.5}, "expected an integer"),
        ({"size": True}, "got bool"),
    ]:
        with pytest.raises(Exception, match=says) as e:
            rs.decide(rec(**bad))
        assert f"input.{next(iter(bad))}" in str(e.value)


def test_missing_and_extra_record_fields_are_refused():
    rs = rules(r="income * 2")
    r = rec()
    del r["income"]
    with pytest.raises(Exception, match=r"input\.income: missing field"):
        rs.decide(r)
    with pytest.raises(Exception, match="unknown field 'incom'; did you mean 'income'"):
        rs.decide(rec(incom=1))


def test_column_with_wrong_type_names_the_column():
    rs = rules(r="income * 2")
    with pytest.raises(Exception, match="column 'income'.*expected numbers"):
        rs.evaluate_columns({"income": np.array(["a", "b"])})
    with pytest.raises(Exception, match="missing column 'income'"):
        rs.evaluate_columns({"size": np.array([1])})


def test_fields_read_follows_rules_transitively():
    rs = RuleSet(INPUTS, PARAMS, {"a": "b and flag", "b": "income > cap"}, ["a"])
    assert rs.fields_read("a") == {"flag", "income"}
    assert rs.fields_read("b") == {"income"}
