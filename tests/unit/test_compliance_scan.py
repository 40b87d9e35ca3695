"""The compliance scan end to end in-process: samples clean, each rule set's findings with their field paths."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hms import bundle
from hms.approvals import ApprovalPolicy
from hms.ci import StageLines, TaskEvent
from hms.compliance import Settings, build_input, scan, scan_many
from hms.compliance.input import weekly_occurrence
from hms.errors import BadInput
from hms.pipeline_config import parse_pipeline_config
from tests.unit.compliance_helpers import NOW, SETTINGS, add_input, decl, sample, variant


def paths(result, rule_set=None):
    return {f.path for f in result.findings if rule_set in (None, f.rule_set)}


@pytest.mark.parametrize("name", ["wildfire", "chip"])
def test_both_samples_scan_clean_on_every_rule_set(name):
    result = scan(bundle.read_bytes(bundle.build(sample(name))), settings=SETTINGS, now=NOW)
    assert result.ok, result.findings
    assert result.counts == {"privacy": 0, "ethics": 0, "legal": 0}
    assert result.summary().startswith("[scan] privacy(0) ethics(0) legal(0)")


@pytest.mark.parametrize("name", ["wildfire", "chip"])
def test_both_samples_scan_clean_with_the_repository_pipeline_settings(name):
    # settings=None reads .hms-ci/policy-pipeline.yml: its freeze windows and approval policy.
    assert scan(sample(name), now=NOW).ok


def test_ssn_input_declared_public_fails_privacy_at_its_data_class():
    proto = variant("wildfire", lambda d: add_input(d, "ssn", decl("string", "public"), "000-00-0000"))
    result = scan(proto, ["privacy", "ethics"], settings=SETTINGS, now=NOW)
    assert not result.ok
    assert paths(result, "privacy") == {"inputs.ssn.data_class"}
    assert {f.rule_set for f in result.findings} == {"privacy"}


def test_ssn_input_declared_sensitive_with_synthetic_fixtures_passes_privacy():
    proto = variant("wildfire", lambda d: add_input(d, "ssn", decl("string", "sensitive"), "000-00-0000"))
    assert scan(proto, ["privacy"], settings=SETTINGS, now=NOW).ok


def test_email_in_test_fixture_fails_privacy_at_its_fixture_path():
    def change(d):
        add_input(d, "contact", decl("string", "personal"), "someone@example.org")
        d["tests"][2]["input"]["contact"] = "jane.doe@gmail.com"

    result = scan(variant("wildfire", change), ["privacy"], settings=SETTINGS, now=NOW)
    assert paths(result) == {"tests[2].input.contact"}
    assert "email" in result.findings[0].message


def _reads_race(d):
    add_input(d, "race", decl("string", "protected", protected_characteristic="race", enum=["a", "b"]), "a")
    d["rules"]["eligible"]["formula"] += ' and race != "b"'


def test_rule_reading_race_fails_ethics_naming_the_rules():
    result = scan(variant("wildfire", _reads_race), ["privacy", "ethics"], settings=SETTINGS, now=NOW)
    assert paths(result) == {"inputs.race"}
    (finding,) = result.findings
    assert finding.rule_set == "ethics"
    assert "eligible" in finding.message and "amount" in finding.message  # amount uses eligible


def test_exemption_citing_law_turns_chips_age_into_a_warning_for_the_legal_role():
    # CHIP reads age under 42 U.S.C. 1397jj: the legitimate exception, still shown to the reviewers.
    result = scan(sample("chip"), ["ethics"], settings=SETTINGS, now=NOW)
    assert result.ok
    assert [w.path for w in result.warnings] == ["inputs.age.exemption"]
    assert "legal role must approve" in result.warnings[0].message
    assert result.to_dict()["warnings"][0]["path"] == "inputs.age.exemption"
    bare = variant("chip", lambda d: d["inputs"]["age"].pop("exemption"))
    assert paths(scan(bare, ["ethics"], settings=SETTINGS, now=NOW)) == {"inputs.age"}


def test_four_fifths_breach_in_fairness_figures_fails_ethics():
    fairness = {
        "outcome": "eligible",
        "attributes": {
            "race_ethnicity": {
                "rates": {"a": 0.5, "b": 0.35},
                "ratio": 0.7,
                "reference_group": "a",
                "lowest_group": "b",
            },
            "sex": {"rates": {"f": 0.49, "m": 0.5}, "ratio": 0.98, "reference_group": "m", "lowest_group": "f"},
        },
    }
    result = scan(sample("wildfire"), ["ethics"], fairness=fairness, settings=SETTINGS, now=NOW)
    assert paths(result) == {"fairness.attributes.race_ethnicity"}
    assert result.fairness_used
    fairness["attributes"]["race_ethnicity"]["ratio"] = 0.8
    assert scan(sample("wildfire"), ["ethics"], fairness=fairness, settings=SETTINGS, now=NOW).ok


def test_missing_authority_fails_legal():
    proto = variant("wildfire", lambda d: d["metadata"].pop("authority"))
    result = scan(proto, ["legal"], settings=SETTINGS, now=NOW)
    assert paths(result) == {"metadata.authority"}


def test_effective_time_in_the_past_is_no_legal_finding_by_itself():
    late = sample("wildfire").effective_at + timedelta(days=400)  # approved long after its effective date
    assert scan(sample("wildfire"), ["legal"], settings=SETTINGS, now=late).ok


def test_late_activation_inside_a_freeze_window_fails_legal():
    """Once the effective time has passed the bundle would come into force now: the freeze is checked at now."""
    late = sample("wildfire").effective_at + timedelta(days=400)
    window = {"reason": "audit freeze", "start": late - timedelta(hours=1), "end": late + timedelta(hours=1),
              "environments": ["prod"]}
    settings = Settings((window,), ApprovalPolicy(2, ("legal", "budget")))
    result = scan(sample("wildfire"), ["legal"], settings=settings, now=late)
    assert paths(result) == {"metadata.effective_at"}
    assert "audit freeze" in result.findings[0].message


def weekly(days: str, tz: str = "America/New_York"):
    return parse_pipeline_config(
        f"version: 1\ntimezone: {tz}\nenvironments: [{{name: preprod}}, {{name: prod}}]\n"
        f"freeze_windows: [{{reason: midnight freeze, weekly: {{days: [{days}], from: '23:00', to: '01:00'}}}}]\n"
    ).freeze_windows


def test_effective_time_inside_a_weekly_freeze_window_fails_legal():
    # wildfire takes effect Tuesday 2026-12-01 00:00 in New York: inside Monday's 23:00–01:00 window.
    settings = Settings(weekly("mon"), ApprovalPolicy(2, ("legal", "budget")))
    result = scan(sample("wildfire"), ["legal"], settings=settings, now=NOW)
    assert paths(result) == {"metadata.effective_at"}
    assert "midnight freeze" in result.findings[0].message
    # Tuesday's window starts at 23:00 that day: the effective time is outside it.
    settings = Settings(weekly("tue"), ApprovalPolicy(2, ("legal", "budget")))
    assert scan(sample("wildfire"), ["legal"], settings=settings, now=NOW).ok


def test_weekly_window_resolves_to_the_occurrence_containing_or_following_the_time():
    (w,) = weekly("sun", tz="UTC")
    inside = datetime(2026, 11, 30, 0, 30, tzinfo=UTC)  # Monday 00:30: Sunday's window runs to 01:00
    assert weekly_occurrence(w, inside) == (
        datetime(2026, 11, 29, 23, tzinfo=UTC),
        datetime(2026, 11, 30, 1, tzinfo=UTC),
    )
    after = datetime(2026, 11, 30, 2, tzinfo=UTC)
    assert weekly_occurrence(w, after) == (datetime(2026, 12, 6, 23, tzinfo=UTC), datetime(2026, 12, 7, 1, tzinfo=UTC))


def test_single_role_approval_policy_fails_legal():
    settings = Settings((), ApprovalPolicy(2, ("legal",)))
    assert paths(scan(sample("wildfire"), ["legal"], settings=settings, now=NOW)) == {"approvals.roles"}


def test_unknown_rule_set_is_bad_input_listing_the_known_ones():
    with pytest.raises(BadInput) as e:
        scan(sample("wildfire"), ["privacy", "bias"], settings=SETTINGS, now=NOW)
    assert "'bias'" in e.value.message and "ethics, legal, privacy" in e.value.message


def test_input_document_carries_fields_read_from_the_rule_ast():
    doc = build_input(sample("chip"), now=NOW)
    assert doc["fields_read"]["income_limit"] == ["household_size"]
    assert doc["fields_read"]["amount"] == ["age", "household_income", "household_size", "insured"]
    assert doc["effective_at"] == "2026-07-01T00:00:00-04:00"
    assert doc["activation_at"] == doc["now"]  # its effective time has passed at NOW: it would come in force now
    assert doc["approval_policy"] == {"required": 2, "roles": ["legal", "budget"]}
    assert doc["lookups"] == [{"rule": "income_limit", "table": "fpl", "keys": ["household_size"]}]


def test_a_lookup_keyed_by_a_location_code_is_a_proxy_warning_not_a_finding():
    def change(d):
        add_input(d, "zip5", decl("integer", "personal"), 90001)
        d["parameters"]["zip_bonus"] = {90001: 100, 90002: 0}
        amount = d["rules"]["amount"]
        amount["formula"] = amount["formula"].replace(" if eligible", " + zip_bonus[zip5] if eligible")

    result = scan(variant("wildfire", change), ["privacy", "ethics"], settings=SETTINGS, now=NOW)
    assert result.ok, result.findings
    assert [w.path for w in result.warnings] == ["parameters.zip_bonus"]
    assert "proxy" in result.warnings[0].message and "⚠ 1 for review" in result.summary()


def test_batch_scan_keeps_order_and_matches_single_scans():
    raw = [bundle.build(sample("wildfire")), bundle.build(variant("wildfire", _reads_race))] * 5
    results = scan_many(raw, ["privacy", "ethics"], settings=SETTINGS, now=NOW, workers=2)
    assert [r.ok for r in results] == [True, False] * 5
    assert (
        results[1].findings
        == scan(bundle.read_bytes(raw[1]), ["privacy", "ethics"], settings=SETTINGS, now=NOW).findings
    )


def test_process_pool_batch_scan_matches_the_thread_pool():
    raw = [bundle.build(sample("chip")), bundle.build(variant("wildfire", _reads_race))] * 3
    by_threads = scan_many(raw, ["privacy", "ethics"], settings=SETTINGS, now=NOW, workers=2)
    by_processes = scan_many(raw, ["privacy", "ethics"], settings=SETTINGS, now=NOW, workers=2, processes=True)
    assert [r.to_dict() for r in by_processes] == [r.to_dict() for r in by_threads]


def test_the_pipeline_stage_line_counts_the_warnings_for_review():
    lines = StageLines(environments=["staging", "prod"])
    chip = scan(sample("chip"), settings=SETTINGS, now=NOW).to_dict()
    wildfire = scan(sample("wildfire"), settings=SETTINGS, now=NOW).to_dict()
    assert lines.line(TaskEvent("compliance.scan", "success", chip)) == (
        "[comp] ✅ privacy(0) ethics(0) legal(0) ⚠ 1 for review"
    )
    assert lines.line(TaskEvent("compliance.scan", "success", wildfire)) == "[comp] ✅ privacy(0) ethics(0) legal(0)"
