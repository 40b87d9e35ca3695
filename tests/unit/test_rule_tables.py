"""Tables with several keys, with defaults, and has() (issue 17, item 4).

A statute's table by household size *and* region is ``standard[size, region]``
(nested maps in the parameters); ``{entries: …, default: …}`` says what applies to
a key the entries lack; ``has(t, k)`` tests for a key. Without a default a
missing key is an error naming the table and the key, in both backends.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import yaml

from hms import protocol
from hms.column_synthesis import string_domain
from hms.errors import BadInput, EvaluationError, RuleError
from hms.rules import RuleSet, tables
from tests.dated_protocols import data

INPUTS = {"size": {"type": "integer", "minimum": 0}, "region": {"type": "string"}, "income": {"type": "number"}}
STANDARD = {1: {"north": 100, "south": 90}, 2: {"north": 180, "south": 160}, 3: {"north": 250}}
PARAMS = {
    "standard": STANDARD,
    "bonus": {"entries": {1: 10, 2: 20}, "default": 0},
    "zone_rate": {"entries": {"north": {1: 0.5}, "south": {1: 0.25, 2: 0.3}}, "default": 0.1},
}


def rules(**rs: str) -> RuleSet:
    return RuleSet(INPUTS, PARAMS, rs, [next(iter(rs))])


def both(rs: RuleSet, recs: list[dict]) -> tuple[list, list]:
    """The first rule's values record by record, and over the columns."""
    name = rs.outputs[0]
    per = [rs.evaluate(r)[name] for r in recs]
    cols = {k: np.asarray([r[k] for r in recs]) for k in INPUTS}
    return per, rs.evaluate_columns(cols)[name].tolist()


def rec(size: int, region: str, income: float = 0.0) -> dict:
    return {"size": size, "region": region, "income": income}


def test_a_two_key_table_is_read_as_table_of_both_keys_in_both_backends():
    per, vec = both(rules(r="standard[size, region]"), [rec(1, "south"), rec(2, "north"), rec(3, "north")])
    assert per == vec == [90.0, 180.0, 250.0]


def test_a_missing_pair_of_keys_names_the_table_and_both_keys_on_the_same_row_in_both_backends():
    rs = rules(r="standard[size, region]")
    with pytest.raises(EvaluationError, match=r"table 'standard' has no key \(3, 'south'\)") as one:
        rs.evaluate(rec(3, "south"))
    recs = [rec(1, "north"), rec(3, "south"), rec(9, "north")]
    with pytest.raises(EvaluationError, match=r"table 'standard' has no key \(3, 'south'\)") as many:
        rs.evaluate_columns({k: np.asarray([r[k] for r in recs]) for k in INPUTS})
    assert (one.value.rule, many.value.rule, many.value.row) == ("r", "r", 1)
    assert "has(standard, …, …)" in str(one.value)  # says how to avoid it


def test_a_table_with_a_default_gives_it_for_every_key_its_entries_lack():
    per, vec = both(rules(r="bonus[size]"), [rec(1, "x"), rec(2, "x"), rec(7, "x"), rec(0, "x")])
    assert per == vec == [10.0, 20.0, 0.0, 0.0]


def test_a_default_covers_a_missing_key_on_any_level_of_a_two_key_table():
    recs = [rec(1, "north"), rec(2, "north"), rec(2, "south"), rec(1, "west")]
    per, vec = both(rules(r="zone_rate[region, size]"), recs)
    assert per == vec == [0.5, 0.1, 0.3, 0.1]


def test_has_tells_whether_the_entries_hold_a_key_whatever_the_default():
    recs = [rec(1, "north"), rec(3, "south"), rec(7, "north")]
    assert both(rules(r="has(standard, size, region)"), recs) == ([True, False, False], [True, False, False])
    assert both(rules(r="has(bonus, size)"), recs) == ([True, False, False], [True, False, False])


def test_has_guards_a_lookup_so_an_absent_key_is_not_an_error():
    per, vec = both(rules(r="standard[size, region] if has(standard, size, region) else 0"), [rec(3, "south")] * 2)
    assert per == vec == [0.0, 0.0]


@pytest.mark.parametrize(
    ("expr", "says"),
    [
        ("standard[size]", r"table 'standard' takes 2 keys \(standard\[a, b\]\), standard\[…\] gives 1"),
        ("bonus[size, region]", r"table 'bonus' takes 1 key \(bonus\[a\]\), bonus\[…\] gives 2"),
        ("has(standard, size)", r"table 'standard' takes 2 keys .*has\(\) gives 1"),
        ("standard[size, size]", "key 2 of table 'standard' must be a string, got a number"),
        ("standard[region, region]", "key 1 of table 'standard' must be a number, got a string"),
        ("has(income, 1)", "'income' is not a lookup table"),
        ("has(standart, 1, 'a')", "did you mean 'standard'"),
        ("has(1, 2)", r"has\(\) takes a table and its keys"),
        ("has", "has is a function"),
    ],
)
def test_a_lookup_or_has_with_the_wrong_keys_is_refused_at_load_naming_the_rule(expr, says):
    with pytest.raises(RuleError, match=says) as e:
        rules(benefit=expr)
    assert e.value.rule == "benefit"


@pytest.mark.parametrize(
    ("table", "says", "where"),
    [
        ({"entries": {1: 2}, "default": "none"}, "default of table 't' must be a number like its values", "t.default"),
        ({1: 1, 2: {"a": 1}}, "mixes values under 1 and under 2 keys", "t.2.a"),
        ({1: {"a": 1, "b": "x"}}, "values of table 't' must all be one type", "t"),
        ({1: {2: {3: {4: {5: 1}}}}}, "more than 4 keys", "t.1.2.3.4"),
    ],
)
def test_a_malformed_table_is_refused_naming_the_place_inside_it(table, says, where):
    with pytest.raises(tables.TableError, match=says) as e:
        RuleSet(INPUTS, {"t": table}, {"r": "1"}, ["r"])
    assert e.value.where == f"parameters.{where}"


def test_entries_and_default_are_reserved_as_a_tables_top_level_keys():
    with pytest.raises(tables.TableError, match="reserved keys of a table") as e:
        RuleSet(INPUTS, {"t": {"entries": {1: 2}, "north": 3}}, {"r": "1"}, ["r"])
    assert e.value.path == ("t", "north")
    nested = RuleSet(INPUTS, {"t": {"a": {"default": 1, "entries": 2}}}, {"r": "t[region, 'default']"}, ["r"])
    assert nested.evaluate(rec(0, "a"))["r"] == 1.0  # below the top level they are keys like any other


def test_the_missing_key_error_names_the_period_the_parameters_are_for_in_both_backends():
    undated = rules(r="standard[size, region]")
    with pytest.raises(EvaluationError, match=r"has no key \(3, 'south'\) \(give"):
        undated.evaluate(rec(3, "south"))
    dated = RuleSet(INPUTS, PARAMS, {"r": "standard[size, region]"}, ["r"], period="2027-01-01")
    says = r"table 'standard' has no key \(3, 'south'\) in period 2027-01-01"
    with pytest.raises(EvaluationError, match=says):
        dated.evaluate(rec(3, "south"))
    with pytest.raises(EvaluationError, match=says):
        dated.evaluate_columns({"size": np.array([3]), "region": np.array(["south"]), "income": np.array([0.0])})


def _sample_with(parameters: dict, rules_: dict) -> dict:
    d = copy.deepcopy(data(3))
    d["parameters"].update(parameters)
    d["rules"].update(rules_)
    return d


def test_a_protocol_file_with_nested_and_defaulted_tables_loads_and_decides(tmp_path):
    d = _sample_with(
        {"supplement": {"entries": {1: {"true": 50}, 2: {"true": 75}}, "default": 25}},
        {"extra": "supplement[household_size, 'true' if county_fire_declared else 'false']"},
    )
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    rs = protocol.load(path).ruleset
    base = {"household_income": 1000.0, "county_fire_declared": True}
    assert [rs.evaluate({**base, "household_size": n})["extra"] for n in (1, 2, 3)] == [50.0, 75.0, 25.0]


def test_a_bad_table_in_a_protocol_file_names_the_file_the_line_and_the_path(tmp_path):
    d = _sample_with({"supplement": {1: {"a": 50}, 2: 75}}, {})
    path = tmp_path / "p.yml"
    path.write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(BadInput, match="mixes values under") as e:
        protocol.load(path)
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if t.strip() == "2: 75")
    assert e.value.where == f"{path}:{line} at $.parameters.supplement.2"  # the value unlike the first


@pytest.mark.parametrize(
    ("table", "says", "where"),
    [
        ({"entries": {1: 2}, "north": 3}, "unknown field 'north'; allowed: default, entries", "$.parameters.t.north"),
        ({"default": 0}, "'entries' is required", "$.parameters.t"),
        ({"entries": {1: {}}}, "0 entries; at least 1", "$.parameters.t.entries.1"),
    ],
)
def test_the_schema_refuses_a_malformed_defaulted_table_naming_the_path(table, says, where):
    with pytest.raises(BadInput, match=says) as e:
        protocol.from_data(_sample_with({"t": table}, {}), "p.yml")
    assert e.value.where == f"p.yml at {where}"


def test_a_string_input_indexing_a_tables_second_level_is_synthesized_from_that_levels_keys():
    rs = rules(r="standard[size, region]")
    values, how = string_domain(rs, "region")
    assert set(values) == {"north", "south"} and "keys of the table" in how


def test_the_readmes_table_example_loads_and_decides():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("### Tables") : readme.index("### Legal rounding")]
    example = yaml.safe_load(section.split("```yaml")[1].split("```")[0])
    inputs = {"household_size": {"type": "integer"}, "region": {"type": "string"}, "county": {"type": "string"}}
    rs = RuleSet(inputs, example["parameters"], {**example["rules"], "bonus": "hardship_bonus[county]"}, ["base"])
    got = [rs.evaluate({"household_size": n, "region": "south", "county": c}) for n, c in ((2, "c07"), (3, "c99"))]
    assert [(g["base"], g["bonus"]) for g in got] == [(492.0, 90.0), (0.0, 0.0)]


def test_keys_that_are_the_same_number_on_any_level_of_a_table_are_refused_naming_both() -> None:
    d = sample_data_for_collisions()
    d["parameters"]["t"] = {"entries": {"1": {"a": 1}, "01": {"a": 2}}, "default": 0}
    with pytest.raises(tables.TableError) as e:
        protocol.from_data(d, "x.yml")
    assert "table 't' has keys ('1', 'a') and ('01', 'a'), which are the same key (1, 'a')" in e.value.message


def sample_data_for_collisions() -> dict:
    from datetime import timedelta

    from tests.dated_protocols import data

    return data(3, offset=timedelta(days=1))
