"""Every input declares its data class and purpose, or the protocol is refused at pack (exit 2, nothing written).

Also: free-text ``lawful_purpose`` / ``justification`` are refused with how to declare instead, a protected
input names its characteristic, an exemption needs an authority, and an exemption adds the legal role to the
protocol's effective approval policy (every gate reads that one function).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hms import approvals, declarations, protocol
from hms.approvals import Review
from hms.cli import main
from hms.errors import BadInput
from hms.pipeline_config import effective_approval_policy, parse_pipeline_config
from hms.registry import audit
from hms.registry.db import session_scope
from tests.conftest import CHIP, WILDFIRE


def _write(tmp_path: Path, change) -> Path:  # type: ignore[no-untyped-def]
    data = yaml.safe_load(WILDFIRE.read_text())
    change(data["inputs"]["household_income"])
    p = tmp_path / "p.yml"
    p.write_text(yaml.safe_dump(data, sort_keys=False))
    return p


def _pack(capsys: pytest.CaptureFixture[str], p: Path, tmp_path: Path) -> tuple[int, str]:
    out = tmp_path / "pkg.tgz"
    code = main(["policy", "pack", str(p), "--out", str(out)])
    err = capsys.readouterr().err
    assert not out.exists(), "a refused protocol left a bundle file"
    with session_scope(read_only=True) as s:
        assert audit.entries(s) == [], "a refused protocol left registry rows"
    return code, err


def test_an_input_without_data_class_is_refused_at_pack_saying_how_to_declare(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.pop("data_class")), tmp_path)
    assert code == 2
    assert "p.yml:" in err and "$.inputs.household_income" in err
    assert "declares no data_class" in err and "data_class: public|personal|sensitive|protected" in err
    assert "purpose:" in err and "protected_characteristic:" in err


def test_an_input_without_purpose_is_refused_at_pack(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.pop("purpose")), tmp_path)
    assert code == 2 and "'household_income' declares no purpose" in err


def test_a_purpose_too_short_to_say_anything_is_refused(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.update(purpose="needed")), tmp_path)
    assert code == 2 and "$.inputs.household_income.purpose" in err


@pytest.mark.parametrize("retired", ["lawful_purpose", "justification"])
def test_free_text_reasons_are_refused_with_how_to_declare_instead(capsys, tmp_path, retired):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.update({retired: "sec. 1"})), tmp_path)
    assert code == 2
    assert f"$.inputs.household_income.{retired}" in err
    assert "never silences a finding" in err and "exemption: {authority:" in err


def test_an_unknown_data_class_is_refused_listing_the_classes(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.update(data_class="secret")), tmp_path)
    assert code == 2 and "'secret' is not one of public, personal, sensitive, protected" in err


def test_a_protected_input_must_name_its_characteristic(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.update(data_class="protected")), tmp_path)
    assert code == 2 and "must name its protected_characteristic" in err and "race" in err


def test_a_characteristic_or_exemption_on_an_unprotected_input_is_refused(capsys, tmp_path):
    code, err = _pack(capsys, _write(tmp_path, lambda spec: spec.update(protected_characteristic="race")), tmp_path)
    assert code == 2 and "belongs to a protected input only" in err


def test_an_exemption_without_an_authority_is_refused(capsys, tmp_path):
    def change(spec):  # type: ignore[no-untyped-def]
        spec.update(data_class="protected", protected_characteristic="age", exemption={"reason": "because"})

    code, err = _pack(capsys, _write(tmp_path, change), tmp_path)
    assert code == 2 and "$.inputs.household_income.exemption" in err and "authority" in err


def test_the_schema_states_the_same_requirements_for_other_readers_of_it():
    spec = protocol.schema()["$defs"]["input"]
    assert set(spec["required"]) == {"type", "data_class", "purpose"}
    assert spec["properties"]["data_class"]["enum"] == list(declarations.DATA_CLASSES)
    characteristics = protocol.schema()["$defs"]["protected_characteristic"]["enum"]
    assert characteristics == list(declarations.PROTECTED_CHARACTERISTICS)
    assert not set(declarations.RETIRED) & set(spec["properties"])


def test_the_schema_alone_refuses_an_undeclared_input():
    """The schema is the second net: a reader that skips hms.declarations still refuses."""
    from hms.schema_check import validator_class

    data = protocol.load(WILDFIRE).data
    del data["inputs"]["household_size"]["data_class"]
    cls = validator_class()
    assert list(cls(protocol.schema()).iter_errors(data))


CONFIG = parse_pipeline_config(
    "version: 1\nenvironments: [{name: preprod}, {name: prod}]\napprovals: {required: 2, roles: [budget, program]}\n"
)


def test_an_exemption_adds_the_legal_role_to_the_effective_approval_policy():
    chip = protocol.load(CHIP)  # its age input carries an exemption
    assert declarations.required_review_roles(chip) == ("legal",)
    policy = effective_approval_policy(CONFIG, chip)
    assert "legal" in policy.roles and policy.required >= len(policy.roles)
    # budget and program approve: without a legal approver the gate stays shut
    reviews = [Review("h", "bob", "budget", "approve"), Review("h", "pat", "program", "approve")]
    status = approvals.evaluate(policy, reviews, bundle_sha256="h", author=chip.author)
    assert not status.satisfied and status.missing_roles == ["legal"]
    status = approvals.evaluate(policy, [*reviews, Review("h", "alice", "legal", "approve")], bundle_sha256="h",
                                author=chip.author)
    assert status.satisfied


def test_no_exemption_adds_no_role():
    wildfire = protocol.load(WILDFIRE)
    data = dict(wildfire.data, approvals={})
    assert declarations.required_review_roles(wildfire) == ()
    bare = protocol.from_data(data)
    assert effective_approval_policy(CONFIG, bare).roles == ("budget", "program")


def test_check_inputs_leaves_shapes_it_does_not_know_to_the_schema():
    declarations.check_inputs(["not", "a", "mapping"], lambda p: "x")
    declarations.check_inputs({"Bad Name": {"type": "string"}}, lambda p: "x")
    with pytest.raises(BadInput):
        declarations.check_inputs({"ok_name": {"type": "string"}}, lambda p: "x")
