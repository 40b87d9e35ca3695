"""Protocol loading: samples load, every refusal names file, line and JSON path."""

from __future__ import annotations

from pathlib import Path

import pytest

from hms import protocol
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
