"""``hms policy decide``: one record decided as the decision service decides it, and with ``--explain`` the
service's explanation — a caseworker's notice of action without a running service."""

from __future__ import annotations

import json

import pytest

from hms import bundle, protocol
from hms.cli import main
from hms.service import explanation
from tests.conftest import PROTOCOLS, WILDFIRE


def _pkg(tmp_path, path=WILDFIRE):
    pkg = tmp_path / "pkg.tgz"
    bundle.write_atomic(pkg, bundle.build(protocol.load(path)))
    return pkg


def _decide(capsys, *argv: str) -> tuple[int, dict, str]:
    code = main(["policy", "decide", *argv, "--json"])
    out = capsys.readouterr()
    return code, json.loads(out.out.splitlines()[-1]), out.err


@pytest.mark.parametrize("name", ["wildfire-aid-2024", "snap-texas-fy2026", "federal-eitc-2026"])
def test_every_test_case_decides_as_it_expects(tmp_path, capsys, name):
    path = PROTOCOLS / f"{name}.yml"
    pkg, p = _pkg(tmp_path, path), protocol.load(path)
    decided = 0
    for case in p.tests:
        if "parameters" in case or "pin" in case:  # its own parameter or pinned values: no bundle has those
            continue
        argv = [str(pkg), "--input", json.dumps(case["input"])]
        period = p.case_period(case)
        if period is not None:
            argv += ["--period", period.label]
        code, out, _ = _decide(capsys, *argv)
        assert code == 0, case["name"]
        tolerance = case.get("tolerance", {}).get("absolute", 1e-9)
        for k, v in case["expect"].items():
            if k in out["outputs"]:
                assert out["outputs"][k] == pytest.approx(v, abs=tolerance), (case["name"], k)
        decided += 1
    assert decided >= 5


def test_explain_names_the_deciding_comparison_and_its_provisions(tmp_path, capsys):
    rec = {"household_size": 4, "household_income": 124801, "county_fire_declared": True}
    code = main(["policy", "decide", str(_pkg(tmp_path)), "--input", json.dumps(rec), "--explain"])
    out = capsys.readouterr().out
    assert code == 0
    assert "eligible = False: not eligible: household_income 124,801 > income_limit_pct 4 × poverty_line " \
           "31,200 = 124,800 — Pub. L. 118-XX, sec. 3(b)" in out
    assert "poverty_line = 31200 (fpl_base + fpl_per_person * (household_size - 1); fpl_base = 15,060" in out


def test_the_json_explanation_is_the_decision_services(tmp_path, capsys):
    pkg = _pkg(tmp_path, PROTOCOLS / "snap-texas-fy2026.yml")
    p = bundle.read(pkg).protocol  # as the service has it: from the bundle
    rec = p.service_cases[0]["input"]
    code, out, _ = _decide(capsys, str(pkg), "--input", json.dumps(rec), "--explain")
    assert code == 0
    assert out["explanation"] == json.loads(json.dumps(explanation.answer(p, p.default_period(), rec)))


def test_every_invalid_field_is_named_and_exits_2(tmp_path, capsys):
    code = main(["policy", "decide", str(_pkg(tmp_path)), "--input", '{"household_size": 0, "household_income": -1}'])
    err = capsys.readouterr().err
    assert code == 2
    for where in ("input.household_size", "input.household_income", "input.county_fire_declared"):
        assert f"hms: error: {where}:" in err


@pytest.mark.parametrize(("given", "says"), [
    ('{"household_size": 4,', "--input: not JSON: Expecting property name enclosed in double quotes (line 1, "
                              "column 22)"),
    ("[1, 2]", "--input: a record is a JSON object of inputs, not list"),
    ("@/nonexistent/record.json", "/nonexistent/record.json: cannot read it (No such file or directory)"),
])
def test_a_record_that_is_not_one_exits_2_saying_why(tmp_path, capsys, given, says):
    code = main(["policy", "decide", str(_pkg(tmp_path)), "--input", given])
    assert code == 2
    assert capsys.readouterr().err == f"hms: error: {says}\n"


def test_a_record_from_a_file(tmp_path, capsys):
    record = tmp_path / "record.json"
    record.write_text(json.dumps({"household_size": 1, "household_income": 0, "county_fire_declared": True}))
    code, out, _ = _decide(capsys, str(_pkg(tmp_path)), "--input", f"@{record}")
    assert code == 0 and out["outputs"] == {"eligible": True, "amount": 1000}
