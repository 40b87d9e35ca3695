"""The Rego policies themselves: every Rego test as a pytest test, and broken policies refused with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hms.compliance import engine
from hms.errors import BadInput
from tests.conftest import ROOT

POLICIES = ROOT / "include" / "policies"
REGO_TESTS = engine.load(POLICIES).tests()


@pytest.mark.parametrize("file,line,package,name", REGO_TESTS, ids=[f"{t[2]}.{t[3]}" for t in REGO_TESTS])
def test_rego_test_passes(file, line, package, name):
    result = engine.load(POLICIES).run_test(file, line, package, name)
    assert result.passed, f"{file}:{line} {package}.{name}: {result.error}"


def test_every_rule_set_has_rego_tests():
    ps = engine.load(POLICIES)
    assert ps.rule_sets == ("ethics", "legal", "privacy")
    assert {pkg for _, _, pkg, _ in REGO_TESTS} == {f"{rs}_test" for rs in ps.rule_sets}


@pytest.fixture
def policy_copy(tmp_path: Path) -> Path:
    d = tmp_path / "policies"
    shutil.copytree(POLICIES, d)
    return d


def test_failing_rego_test_is_reported_failed_not_skipped(policy_copy: Path):
    f = policy_copy / "privacy_test.rego"
    f.write_text(f.read_text() + "\ntest_deliberately_wrong if {\n\tcount(privacy.deny) == 1 with input as base\n}\n")
    results = {t.name: t for t in engine.load(policy_copy).run_tests()}
    assert not results["test_deliberately_wrong"].passed
    assert results["test_clean_protocol_has_no_findings"].passed


def test_rego_test_with_a_runtime_error_fails_with_the_error(policy_copy: Path):
    f = policy_copy / "legal_test.rego"
    f.write_text(f.read_text() + '\ntest_bad_time if {\n\ttime.parse_rfc3339_ns("yesterday") > 0\n}\n')
    (bad,) = [t for t in engine.load(policy_copy).run_tests() if t.name == "test_bad_time"]
    assert not bad.passed and bad.error


def test_policy_syntax_error_is_bad_input_with_file_and_line(policy_copy: Path):
    f = policy_copy / "ethics.rego"
    lines = f.read_text().splitlines()
    lines.insert(20, "deny contains x if {")  # line 21: a rule that is never closed
    f.write_text("\n".join(lines) + "\n")
    with pytest.raises(BadInput) as e:
        engine.load(policy_copy).engine()
    assert e.value.exit_code == 2
    assert str(e.value).startswith(f"{f}:")
    assert "rego_parse_error" in str(e.value)


def test_policy_compile_error_is_bad_input_with_file_and_line(policy_copy: Path):
    f = policy_copy / "legal.rego"
    f.write_text(f.read_text() + "\ndeny contains finding if {\n\tfinding := undefined_helper(input)\n}\n")
    n = f.read_text().count("\n") - 1
    with pytest.raises(BadInput) as e:
        engine.load(policy_copy).engine()
    assert e.value.where == f"{f}:{n}"
    assert "undefined function undefined_helper" in e.value.message


def test_compiled_policies_are_cached_by_content_and_rebuilt_when_a_file_changes(policy_copy: Path):
    first = engine.load(policy_copy)
    assert engine.load(policy_copy) is first
    assert first.engine() is first.engine()
    (policy_copy / "data.json").write_text((policy_copy / "data.json").read_text().replace("0.8", "0.75"))
    second = engine.load(policy_copy)
    assert second is not first and second.digest != first.digest


def test_invalid_data_document_is_bad_input_with_line(policy_copy: Path):
    (policy_copy / "data.json").write_text('{\n  "compliance": [,]\n}\n')
    with pytest.raises(BadInput) as e:
        engine.load(policy_copy)
    assert e.value.where == f"{policy_copy / 'data.json'}:2"


def test_opa_container_command_evaluates_the_same_rule_sets_over_the_mounted_files():
    args = engine.opa_container_command(["privacy", "ethics"])
    assert args[:1] == ["eval"]
    assert args[args.index("--data") + 1] == engine.POD_POLICY_DIR
    assert args[args.index("--input") + 1] == engine.POD_INPUT_FILE
    assert args[-1] == (
        '{"privacy": data.privacy.deny, "ethics": data.ethics.deny, '
        '"_warn": {"privacy": {f | some f in data.privacy.warn}, "ethics": {f | some f in data.ethics.warn}}}'
    )
    assert engine.opa_test_command()[-1] == engine.POD_POLICY_DIR
    assert engine.OPA_IMAGE.startswith("openpolicyagent/opa:")
