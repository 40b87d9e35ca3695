"""An input declared ``public`` to evade the scans is still found (issue 16, item 2).

tests/data/compliance/declared-public-evasion.yml reproduces every name found on main: each one is
a finding at its own path, with the rule set that owns it; ``justification`` alone silences nothing.
"""

from __future__ import annotations

import copy

import pytest

from hms import protocol
from hms.compliance import scan
from hms.errors import BadInput
from tests.conftest import ROOT
from tests.unit.compliance_helpers import NOW, SETTINGS

EVASION = ROOT / "tests" / "data" / "compliance" / "declared-public-evasion.yml"


@pytest.fixture(scope="module")
def result():  # type: ignore[no-untyped-def]
    return scan(protocol.load(EVASION), settings=SETTINGS, now=NOW)


def _paths(result, rule_set):  # type: ignore[no-untyped-def]
    return {f.path for f in result.findings if f.rule_set == rule_set}


@pytest.mark.parametrize(
    "field", ["soc_sec_num", "tax_id", "emailaddr", "applicant_nm", "addr_line1", "birth_yr", "yob", "dob", "ssn_last4"]
)
def test_an_identifier_declared_public_is_a_privacy_finding(result, field):
    assert f"inputs.{field}.data_class" in _paths(result, "privacy")


@pytest.mark.parametrize(
    ("field", "characteristic"),
    [("hisp", "ethnicity"), ("gndr", "gender"), ("relig_code", "religion"), ("grp", "race"),
     ("ethnicity_code", "ethnicity"), ("birth_yr", "age"), ("yob", "age"), ("dob", "age")],
)
def test_a_protected_characteristic_declared_public_is_an_ethics_finding_and_its_reading_denied(
    result, field, characteristic
):
    found = {f.path: f.message for f in result.findings if f.rule_set == "ethics"}
    assert f"({characteristic}," in found[f"inputs.{field}.data_class"]
    assert f"inputs.{field}" in found  # read by eligible/amount without an exemption


def test_grp_is_found_by_its_description_and_its_enum_of_race_categories(result):
    (msg,) = [f.message for f in result.findings if f.path == "inputs.grp.data_class"]
    assert "its description" in msg and "its enum" in msg


@pytest.mark.parametrize(
    ("field", "kind"),
    [("soc_sec_num", "social security number"), ("tax_id", "taxpayer identification number"),
     ("emailaddr", "email address"), ("applicant_nm", "person's name"), ("addr_line1", "street address")],
)
def test_a_pii_shaped_fixture_value_is_a_privacy_finding(result, field, kind):
    (msg,) = [f.message for f in result.findings if f.path == f"tests[0].input.{field}"]
    assert kind in msg


def test_the_location_keyed_lookup_is_a_proxy_warning_for_review(result):
    assert [w.path for w in result.warnings] == ["parameters.zip_rate"]
    assert "zip5" in result.warnings[0].message and "proxy" in result.warnings[0].message


def test_declaring_the_truth_with_synthetic_fixtures_leaves_only_what_needs_an_exemption():
    data = copy.deepcopy(protocol.load(EVASION).data)
    truth = {"soc_sec_num": "sensitive", "tax_id": "sensitive", "ssn_last4": "sensitive", "emailaddr": "personal",
             "applicant_nm": "personal", "addr_line1": "personal"}
    for field, cls in truth.items():
        data["inputs"][field]["data_class"] = cls
    for field, c in {"birth_yr": "age", "yob": "age", "dob": "age", "hisp": "ethnicity", "gndr": "gender",
                     "relig_code": "religion", "grp": "race", "ethnicity_code": "ethnicity"}.items():
        data["inputs"][field].update(data_class="protected", protected_characteristic=c)
    data["tests"][0]["input"].update(soc_sec_num="000000000", tax_id="00-0000000", emailaddr="a@example.org",
                                     applicant_nm="applicant a", addr_line1="address a")
    result = scan(protocol.from_data(data), settings=SETTINGS, now=NOW)
    assert _paths(result, "privacy") == set()
    assert {f.path for f in result.findings} == {
        f"inputs.{f}" for f in ("birth_yr", "yob", "dob", "hisp", "gndr", "relig_code", "grp", "ethnicity_code")
    }


def test_justification_alone_is_refused_at_pack_and_silences_nothing():
    data = copy.deepcopy(protocol.load(EVASION).data)
    data["inputs"]["soc_sec_num"]["justification"] = "sec. 1"
    with pytest.raises(BadInput) as e:
        protocol.from_data(data)
    assert "never silences a finding" in e.value.message
