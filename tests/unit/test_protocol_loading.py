"""Protocol loading: samples load, every refusal names file, line and JSON path."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hms import prescan, protocol
from hms.errors import BadInput
from tests.conftest import CHIP, WILDFIRE


def write(tmp_path: Path, text: str, name: str = "p.yml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_samples_load_with_their_ids_and_cases():
    w, c = protocol.load(WILDFIRE), protocol.load(CHIP)
    assert (w.id, w.version) == ("wildfire-aid-2024", 3)
    assert c.id == "chip-income-cap"
    assert len(w.tests) >= 8 and len(c.tests) >= 8
    assert w.effective_at.utcoffset() is not None


def test_json_protocol_loads_like_yaml(tmp_path):
    import json

    data = protocol.load(WILDFIRE).data
    p = write(tmp_path, json.dumps(data, indent=2), "p.json")
    assert protocol.load(p).canonical_json() == protocol.load(WILDFIRE).canonical_json()


def test_yaml_12_scalars_keep_yes_as_string_and_parse_unsigned_exponent(tmp_path):
    text = WILDFIRE.read_text().replace("title: Wildfire relief payment", "title: yes").replace("1.0e9", "2.5e9")
    p = protocol.load(write(tmp_path, text))
    assert p.title == "yes"
    assert p.budget["cap"] == 2.5e9


@pytest.mark.parametrize(
    ("old", "new", "where", "says"),
    [
        ("id: wildfire-aid-2024", "id: wildfire.aid", ":6 at $.metadata.id", "DNS label"),
        ("id: wildfire-aid-2024", "id: -wildfire", ":6 at $.metadata.id", "DNS label"),
        ("id: wildfire-aid-2024", f"id: {'a' * 64}", ":6 at $.metadata.id", "DNS label"),
        ('"2026-12-01T00:00:00-05:00"', '"2026-12-01 00:00"', "$.metadata.effective_at", "timezone"),
        ("version: 3", "version: 0", "$.metadata.version", "minimum"),
        ("outputs: [eligible, amount]", "outputs: [eligible, amount, payout]", "outputs", "did you mean 'amount'"),
        ("max_payment: 5000", "max_payment: [1, 2]", "$.parameters.max_payment", ""),
        ("household_size: {type: integer,", "household_size: {type: int,", "$.inputs.household_size.type", ""),
        ("  author: drafting-office\n", "", "$.metadata", "'author' is required"),
        (
            "expect: {eligible: true, amount: 4000}",
            "expect: {eligible: true, amont: 4000}",
            "$.tests[0].expect.amont",
            "",
        ),
        (
            "expect: {eligible: true, amount: 4000}",
            "expect: {eligible: 1, amount: 4000}",
            "$.tests[0].expect.eligible",
            "",
        ),
        (
            "input: {household_size: 4, household_income: 40000, county_fire_declared: true}",
            "input: {household_size: 4.5, household_income: 40000, county_fire_declared: true}",
            "$.tests[0].input.household_size",
            "integer",
        ),
    ],
)
def test_schema_and_semantic_errors_name_the_place(tmp_path, old, new, where, says):
    text = WILDFIRE.read_text()
    assert old in text
    p = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(BadInput) as e:
        protocol.load(p)
    msg = str(e.value)
    assert str(p) in msg and where in msg and says in msg


def test_unknown_top_level_key_is_rejected_with_allowed_keys(tmp_path):
    p = write(tmp_path, WILDFIRE.read_text() + "extras: {a: 1}\n")
    with pytest.raises(BadInput, match=r"at \$\.extras: unknown field 'extras'; allowed: .*approvals"):
        protocol.load(p)


def test_ten_megabyte_file_is_refused_before_parsing(tmp_path):
    p = tmp_path / "huge.yml"
    p.write_text("# " + "x" * 10_000_000 + "\n")
    with pytest.raises(BadInput, match="limit is 1000000"):
        protocol.load(p)


def test_deeply_nested_json_is_refused(tmp_path):
    p = write(tmp_path, "[" * 100_000 + "]" * 100_000, "deep.json")
    with pytest.raises(BadInput):
        protocol.load(p)


def test_binary_tag_is_refused(tmp_path):
    p = write(tmp_path, WILDFIRE.read_text().replace("title: Wildfire relief payment", "title: !!binary aGVsbG8="))
    with pytest.raises(BadInput, match="binary"):
        protocol.load(p)


def test_python_object_tags_are_refused(tmp_path):
    p = write(tmp_path, "!!python/object/apply:os.system ['id']\n")
    with pytest.raises(BadInput, match="tag .*python/object/apply:os.system.* is not allowed"):
        protocol.load(p)


def test_canonical_json_is_independent_of_key_order(tmp_path):
    text = WILDFIRE.read_text()
    moved = text.replace("  max_payment: 5000\n  per_member: 1000\n", "  per_member: 1000\n  max_payment: 5000\n")
    assert moved != text
    assert protocol.load(write(tmp_path, moved)).canonical_json() == protocol.load(WILDFIRE).canonical_json()


def test_every_command_group_is_reachable_through_the_fast_path():
    from hms.cli import COMMANDS, GROUPS, build_parser

    assert set(COMMANDS.values()) == set(GROUPS)
    names = set(build_parser()._subparsers._group_actions[0].choices)
    assert names == set(COMMANDS)


# ---- hostile text (issue 16): refused before any parser recurses or converts, naming the line ---------------
def _max_event_depth(text: str) -> int:
    """How deep PyYAML's composer goes on ``text`` before it parses to the end or fails."""
    import yaml

    from hms import yamlsafe

    depth = deepest = 0
    with contextlib.suppress(yaml.YAMLError):
        for ev in yaml.parse(text, Loader=yamlsafe._Loader):
            if isinstance(ev, yaml.MappingStartEvent | yaml.SequenceStartEvent):
                depth += 1
                deepest = max(deepest, depth)
            elif isinstance(ev, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                depth -= 1
    return deepest


def _scan_depth(text: str) -> int:
    return prescan.scan_yaml(text, "t.yml", 10**9, 10**9).depth


# Pieces of YAML where the pre-scan could lose track: quotes inside plain scalars, block scalars, comments,
# tags with ',[]' and quotes, anchors, flow pairs ([a: b]), indentless and compact sequences, line breaks.
_PIECES = ["- ", "-", "? ", ": ", ":", "a", "b: ", "key: ", "[", "]", "{", "}", ", ", "'", "''", '"', '\\"', "\\",
           "|", ">", "|2", ">-", "#", " #", "&x ", "*x", "!t ", "!<a,'b> ", "\n", "\n", "\n  ", "\n    ", "  ", "\t",
           "---", "...", "--- ", "x y", "it's", "a:b", "?x", "-1", "\ufeff", "\r\n", "\u2028", "[a: ", "- - ", "]: "]


# Each once counted too shallow by a first version of the scan (found by this test with more examples).
_FOUND = ["&x :\n- ", "!t :   \n- ", "{!t &x ]b: ", "[[?   ,]: \n", "- [- - !<a,'b> ]: {a: !<a,'b> \n]",
          "::{a:  \n  b: ", "---\"?x]][a: \n  b: '? ", "!t {a: b: ]: x"]


@settings(max_examples=600, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=40))
@example(pieces=_FOUND[0:1])
@example(pieces=_FOUND[1:2])
@example(pieces=_FOUND[2:3])
@example(pieces=_FOUND[3:4])
@example(pieces=_FOUND[4:5])
@example(pieces=_FOUND[5:6])
@example(pieces=_FOUND[6:7])
@example(pieces=_FOUND[7:8])
def test_the_yaml_pre_scan_never_counts_less_nesting_than_pyyaml_composes(pieces):
    text = "".join(pieces)
    assert _scan_depth(text) >= _max_event_depth(text), repr(text)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.recursive(st.sampled_from([1, "a", "it's", "a: b", "[x]", "- y", "#c", "|", "multi\nline", None, 1.5]),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(["k", "a b", "[k]"]),
                                                                                inner, max_size=3), max_leaves=25),
       st.sampled_from([None, True, False]))
def test_the_yaml_pre_scan_counts_dumped_documents_exactly(value, flow):
    import yaml

    text = yaml.safe_dump({"root": value}, default_flow_style=flow)
    assert _scan_depth(text) == _max_event_depth(text), text


@pytest.mark.parametrize("text", [
    "x: " + "[" * 70 + "]" * 70 + "\n",  # flow
    "x:\n" + "".join("  " * i + "- \n" for i in range(1, 70)),  # block, by indentation
    "- " * 70 + "x\n",  # compact block sequences
    "".join(" " * i + "a:\n" for i in range(70)),  # nested mappings
    "x: [" + "{a: " * 70 + "}" * 70 + "]\n",
])
def test_deep_yaml_is_refused_by_the_pre_scan_before_pyyaml_composes_it(tmp_path, monkeypatch, text):
    import yaml

    def compose_all(*_a, **_k):
        raise AssertionError("PyYAML's composer was reached")

    monkeypatch.setattr(yaml, "compose_all", compose_all)
    with pytest.raises(BadInput, match=r"deep\.yml:\d+: nesting deeper than 64 levels"):
        protocol.load(write(tmp_path, text, "deep.yml"))


def test_the_samples_pre_scan_as_deep_as_they_are():
    for path in (WILDFIRE, CHIP):
        assert _scan_depth(path.read_text()) == _max_event_depth(path.read_text()) == 4


@pytest.mark.parametrize(("value", "says"), [
    (str(2**53), None),
    (str(-(2**53)), None),
    ("1.0e9", None),
    ("0x1F", None),
    (str(2**53 + 1), "is beyond ±2**53"),
    ("1e16", "is beyond ±2**53"),
    ("1e400", "1e400 is beyond ±2**53"),
    ("0x" + "f" * 20, "is beyond ±2**53"),
    ("9" * 5000, "(5000 chars) is too long: at most 100 characters"),
    (".inf", "NaN and infinity"),
    ("-.inf", "NaN and infinity"),
    (".nan", "NaN and infinity"),
    ("!!int 1.5", "is not a valid int"),
])
def test_numbers_are_bounded_on_their_text_with_the_line(tmp_path, value, says):
    p = write(tmp_path, WILDFIRE.read_text().replace("  max_payment: 5000\n", f"  max_payment: {value}\n"))
    if says is None:
        assert protocol.load(p).data["parameters"]["max_payment"] is not None
        return
    with pytest.raises(BadInput) as e:
        protocol.load(p)
    assert f"p.yml:{_line(p, 'max_payment:')} at $.parameters.max_payment" in str(e.value) and says in str(e.value)


@pytest.mark.parametrize(("text", "says"), [
    ('{"a": 1e400}', "p.json:1 at $.a: 1e400 is beyond ±2**53"),
    ('{"a": [1,\n ' + "9" * 5000 + "]}", "p.json:2 at $.a[1]: number 99999999999999999999… (5000 chars) is too long"),
    ('{"a": NaN}', "p.json:1 at $.a: NaN is not allowed"),
    ('{"a": -Infinity}', "at $.a: -Infinity is not allowed"),
    ('{"a": {"b": 1,\n "b": 2}}', "p.json:2: duplicate key 'b' in $.a (first on line 1)"),
    ('{"a": {"\\u0062": 1, "b": 2}}', "duplicate key 'b' in $.a"),
    ("[" * 65 + "]" * 65, "p.json:1: nesting deeper than 64 levels"),
])
def test_hostile_json_is_refused_by_the_pre_scan_naming_line_and_path(tmp_path, text, says):
    with pytest.raises(BadInput) as e:
        protocol.load(write(tmp_path, text, "p.json"))
    assert says in str(e.value)


@pytest.mark.parametrize(("table", "keys"), [
    ('{"1": 15060, "01": 99999,', "keys '1' and '01', which are the same number 1"),
    ('{0: 15060, "-0": 99999,', "keys '0' and '-0', which are the same number 0"),
    ('{1: 15060, "1": 99999,', "keys 1 and '1' in $.parameters.fpl.value are the same key '1'"),
    ("{1: 15060, 1.0: 99999,", "duplicate key 1.0 in $.parameters.fpl.value, the same key as 1 (first on line"),
])
def test_colliding_table_keys_are_refused_naming_the_table_both_keys_and_the_line(tmp_path, table, keys):
    text = CHIP.read_text().replace("fpl: {value: {1: 15060,", "fpl: {value: " + table, 1)  # a referenced table
    with pytest.raises(BadInput) as e:
        protocol.load(write(tmp_path, text))
    assert f"p.yml:{_line(write(tmp_path, text), 'fpl:')}" in str(e.value) and keys in str(e.value)


def test_schema_errors_about_a_large_value_quote_it_clipped(tmp_path):
    import json

    data = json.loads(protocol.load(WILDFIRE).canonical_json())
    many = dict(data, inputs={f"x{i}": {**data["inputs"]["household_size"]} for i in range(201)})
    long_title = dict(data, metadata={**data["metadata"], "title": "T" * 5000})
    for bad, says in ((many, "at $.inputs: 201 entries; at most 200"),
                      (long_title, "at $.metadata.title: 'TTTT")):
        with pytest.raises(BadInput) as e:
            protocol.from_data(bad, "p.json")
        assert says in str(e.value) and len(str(e.value)) < 300, str(e.value)[:400]


def test_an_echoed_value_is_clipped_saying_how_long_it_was():
    from hms.errors import BadInput as Refusal
    from hms.errors import clip, shown

    assert clip("x" * 10) == "x" * 10
    assert clip("9" * 5000) == "9" * 200 + "… (5000 chars)"
    assert shown("a\nb") == "'a\\nb'"
    assert len(str(Refusal("y" * 10**6, where="z" * 10**6))) < 3000


def test_a_yaml_file_over_its_limit_is_refused_and_json_may_be_larger(tmp_path):
    from hms.yamlsafe import MAX_YAML_BYTES

    big = WILDFIRE.read_text() + "#" * MAX_YAML_BYTES + "\n"
    with pytest.raises(BadInput, match="YAML file is .* bytes; the limit is 262144"):
        protocol.load(write(tmp_path, big))


def test_no_schema_allows_more_entries_than_a_mapping_or_list_may_hold():
    import json

    from hms.yamlsafe import MAX_ENTRIES

    limits = []

    def walk(node):
        if isinstance(node, dict):
            limits.extend(v for k, v in node.items() if k in ("maxItems", "maxProperties"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(json.loads(protocol.SCHEMA_PATH.read_text()))
    assert limits and max(limits) <= MAX_ENTRIES


def _line(path: Path, needle: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)
