"""``hms scan``: the seed's console line, exit codes 0/1/2, --json, --simulation, --test-policies, --write-input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import hms.cli as cli
from hms import bundle
from hms.compliance import engine
from tests.conftest import ROOT
from tests.unit.compliance_helpers import NOW_ARG, add_input, decl, sample, variant


@pytest.fixture(autouse=True)
def scan_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """Until hms.cli.GROUPS lists hms.cli.scan, register it for these tests."""
    if "hms.cli.scan" not in cli.GROUPS:
        monkeypatch.setattr(cli, "GROUPS", [*cli.GROUPS, "hms.cli.scan"])


def pack(tmp_path: Path, proto, name: str = "pkg.tgz") -> str:
    out = tmp_path / name
    out.write_bytes(bundle.build(proto))
    return str(out)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["wildfire", "chip"])
def test_clean_sample_prints_counts_and_exits_0(tmp_path, capsys, name):
    code, out, _ = run(capsys, "scan", pack(tmp_path, sample(name)), "--rules", "privacy,ethics", "--now", NOW_ARG)
    assert code == 0
    assert out.startswith("[scan] privacy(0) ethics(0) ✅")


def test_default_rule_sets_are_privacy_ethics_legal(tmp_path, capsys):
    code, out, _ = run(capsys, "scan", pack(tmp_path, sample("chip")), "--now", NOW_ARG)
    assert code == 0
    assert out.startswith("[scan] privacy(0) ethics(0) legal(0)")


def test_violation_prints_each_finding_and_exits_1(tmp_path, capsys):
    def change(d):
        add_input(d, "ssn", decl("string", "public"), "000-00-0000")
        d["tests"][0]["input"]["ssn"] = "123-45-6789"

    code, out, _ = run(capsys, "scan", pack(tmp_path, variant("wildfire", change)), "--rules", "privacy,ethics",
                       "--now", NOW_ARG)
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith("[scan] privacy(2) ethics(0) ❌")  # the declaration and the one real-looking fixture
    assert any(ln.startswith("  privacy: inputs.ssn.data_class: ") for ln in lines)
    assert any(ln.startswith("  privacy: tests[0].input.ssn: ") for ln in lines)


def test_warnings_are_printed_and_do_not_fail_the_scan(tmp_path, capsys):
    code, out, _ = run(capsys, "scan", pack(tmp_path, sample("chip")), "--rules", "ethics", "--now", NOW_ARG)
    assert code == 0
    assert any(ln.startswith("  ⚠ ethics: inputs.age.exemption: ") for ln in out.splitlines())


def test_json_output_lists_findings_with_rule_set_message_and_path(tmp_path, capsys):
    proto = variant("wildfire", lambda d: d["metadata"].pop("authority"))
    code, out, _ = run(capsys, "scan", pack(tmp_path, proto), "--rules", "legal", "--json", "--now", NOW_ARG)
    assert code == 1
    payload = json.loads(out)
    assert payload["counts"] == {"legal": 1}
    assert payload["findings"] == [
        {
            "rule_set": "legal",
            "path": "metadata.authority",
            "message": "no authority: cite the law this rule implements (metadata.authority)",
        }
    ]


def test_unknown_rule_set_exits_2_listing_known_ones(tmp_path, capsys):
    code, _, err = run(capsys, "scan", pack(tmp_path, sample("wildfire")), "--rules", "privacy,bias")
    assert code == 2
    assert "unknown rule set 'bias'; known: ethics, legal, privacy" in err


def test_policy_syntax_error_exits_2_with_file_and_line(tmp_path, capsys):
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "include" / "policies", policies)
    broken = policies / "privacy.rego"
    lines = broken.read_text().splitlines()
    lines.insert(30, "oops := )")  # line 31
    broken.write_text("\n".join(lines) + "\n")
    code, _, err = run(capsys, "scan", pack(tmp_path, sample("wildfire")), "--policies", str(policies))
    assert code == 2
    assert f"{broken}:31: " in err, err
    assert "rego_parse_error" in err


def test_simulation_file_feeds_the_four_fifths_rule(tmp_path, capsys):
    path = pack(tmp_path, sample("wildfire"))
    sim = tmp_path / "sim.json"
    fairness = {
        "outcome": "eligible",
        "attributes": {"sex": {"ratio": 0.5, "lowest_group": "f", "reference_group": "m"}},
    }
    # The shape of `hms policy simulate --json`: the bundle hash under "protocol".
    sim.write_text(json.dumps({"ok": True, "protocol": {"sha256": bundle.read(path).sha256}, "fairness": fairness}))
    code, out, _ = run(capsys, "scan", path, "--rules", "ethics", "--simulation", str(sim), "--now", NOW_ARG)
    assert code == 1
    assert "ethics: fairness.attributes.sex: four-fifths rule breached" in out


def test_simulation_of_another_bundle_is_refused(tmp_path, capsys):
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"sha256": "0" * 64, "fairness": {"attributes": {}}}))
    code, _, err = run(capsys, "scan", pack(tmp_path, sample("wildfire")), "--simulation", str(sim))
    assert code == 2
    assert "not of this bundle" in err


def test_test_policies_prints_each_rego_test_and_exits_0(capsys):
    code, out, _ = run(capsys, "scan", "--test-policies")
    assert code == 0
    assert "✅ privacy_test.test_ssn_declared_public_is_a_finding_at_its_data_class (privacy_test.rego:" in out
    assert out.splitlines()[-1].startswith(f"[scan] Rego tests: {len(engine.load().tests())} passed, 0 failed")


def test_test_policies_exits_1_on_a_failing_rego_test(tmp_path, capsys):
    policies = tmp_path / "policies"
    shutil.copytree(ROOT / "include" / "policies", policies)
    with (policies / "ethics_test.rego").open("a") as f:
        f.write("\ntest_wrong if {\n\t1 == 2\n}\n")
    code, out, _ = run(capsys, "scan", "--test-policies", "--policies", str(policies))
    assert code == 1
    assert "❌ ethics_test.test_wrong" in out


def test_write_input_writes_the_opa_input_for_the_pod(tmp_path, capsys):
    out_file = tmp_path / "opa-input.json"
    code, out, _ = run(
        capsys, "scan", pack(tmp_path, sample("chip")), "--write-input", str(out_file), "--json", "--now", NOW_ARG
    )
    assert code == 0
    doc = json.loads(out_file.read_text())
    assert doc["protocol"]["metadata"]["id"] == "chip-income-cap"
    assert doc["now"] == NOW_ARG
    assert json.loads(out)["opa_args"][0] == "eval"


def test_without_simulation_file_the_scan_computes_fairness_itself(tmp_path, capsys, monkeypatch):
    import hms.cli.scan as scan_cli

    breach = {"outcome": "eligible", "attributes": {"race_ethnicity": {"ratio": 0.6}}}
    monkeypatch.setattr(scan_cli, "fairness_for", lambda b: breach)
    code, out, _ = run(capsys, "scan", pack(tmp_path, sample("wildfire")), "--rules", "ethics", "--now", NOW_ARG)
    assert code == 1
    assert "fairness.attributes.race_ethnicity" in out
    assert "fairness (eligible): race_ethnicity 0.60" in out
