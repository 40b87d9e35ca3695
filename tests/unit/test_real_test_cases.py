"""Test cases written the way published microsimulation suites write them (issue 17, item 5).

Tolerances, parameter values "for this case only" and pinned intermediate values, and a result for every
case even when one case's rules fail.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from hms import bundle, protocol
from hms.cases import run_cases
from hms.cli import main as cli_main
from hms.errors import BadInput
from hms.registry import store
from hms.registry.db import session_scope
from tests.dated_protocols import data as sample_data

FAMILY_OF_FOUR = {"household_size": 4, "household_income": 30000, "county_fire_declared": True}


def _protocol(*cases: dict[str, Any], **rules: str) -> protocol.Protocol:
    d = sample_data(3, offset=timedelta(days=1))
    d["rules"].update(rules)
    d["tests"] = list(cases)
    return protocol.from_data(d, "case-test.yml")


def _case(name: str, expect: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "input": dict(FAMILY_OF_FOUR), "expect": expect, **extra}


def _results(p: protocol.Protocol) -> dict[str, list[str]]:
    return {r.name: r.mismatches for r in run_cases(p)}


def test_an_absolute_tolerance_accepts_a_published_figure_within_it_and_names_it_when_outside() -> None:
    p = _protocol(
        _case("within 5", {"amount": 4003}, tolerance={"absolute": 5}),
        _case("outside 5", {"amount": 4006}, tolerance={"absolute": 5}),
        _case("exact by default", {"amount": 4001}),
    )
    got = _results(p)
    assert got["within 5"] == []
    assert got["outside 5"] == ["amount: expected 4006, got 4000 (tolerance ±5)"]
    assert got["exact by default"] == ["amount: expected 4001, got 4000"]


def test_a_relative_tolerance_is_a_fraction_of_the_expected_value() -> None:
    p = _protocol(
        _case("1 % of 4040", {"amount": 4040}, tolerance={"relative": 0.01}),
        _case("not 0.1 % of 4040", {"amount": 4040}, tolerance={"relative": 0.001}),
    )
    got = _results(p)
    assert got["1 % of 4040"] == []
    assert got["not 0.1 % of 4040"] and "tolerance" in got["not 0.1 % of 4040"][0]


def test_a_case_with_its_own_parameter_values_runs_them_and_the_others_run_the_protocols() -> None:
    p = _protocol(
        _case("with last year's rate", {"amount": 3200}, parameters={"per_member": 800}),
        _case("with the law in force", {"amount": 4000}),
    )
    assert _results(p) == {"with last year's rate": [], "with the law in force": []}
    assert [c["name"] for c in p.service_cases] == ["with the law in force"]


def test_a_pinned_intermediate_value_replaces_its_rule_in_both_backends() -> None:
    # A published case states the poverty line instead of the guideline it came from.
    income = {"household_size": 4, "household_income": 90000, "county_fire_declared": True}
    p = _protocol(
        {"name": "pinned line", "input": income, "pin": {"poverty_line": 20000}, "expect": {"eligible": False}},
        {"name": "computed line", "input": income, "expect": {"eligible": False}},
    )
    got = _results(p)
    assert got["pinned line"] == []  # 90,000 > 4 × 20,000
    assert got["computed line"] == ["eligible: expected False, got True"]  # 90,000 <= 4 × 31,200


@pytest.mark.parametrize(
    ("extra", "message", "path"),
    [
        ({"parameters": {"per_membr": 800}}, "parameter 'per_membr' is not a parameter of the protocol", "parameters"),
        (
            {"parameters": {"per_member": {"1": 2}}},
            "parameter 'per_member' is a single value in the protocol",
            "parameters",
        ),
        ({"pin": {"no_such_rule": 1}}, "'no_such_rule' is not a rule (only rules can be pinned)", "pin"),
        ({"pin": {"eligible": 3}}, "rule 'eligible' is a bool; cannot pin it to 3", "pin"),
    ],
)
def test_a_bad_override_or_pin_is_refused_at_load_naming_the_case_and_line(
    tmp_path: Path, extra: dict[str, Any], message: str, path: str
) -> None:
    d = sample_data(3, offset=timedelta(days=1))
    d["tests"] = [_case("ok", {"amount": 4000}), _case("bad one", {"amount": 4000}, **extra)]
    f = tmp_path / "p.yml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    with pytest.raises(BadInput) as e:
        protocol.load(f)
    assert message in e.value.message and "'bad one'" in e.value.message
    assert e.value.where is not None and e.value.where.startswith(f"{f}:") and f"tests[1].{path}" in e.value.where


def test_one_case_whose_rule_fails_does_not_fail_the_other_cases_in_either_backend() -> None:
    single = {"household_size": 1, "household_income": 1000, "county_fire_declared": True}
    p = _protocol(
        _case("a family of four", {"amount": 4000, "per_other": 5000 / 3}),
        {"name": "one person divides by zero", "input": single, "expect": {"amount": 1000}},
        _case("another family", {"eligible": True}),
        per_other="max_payment / (household_size - 1)",
    )
    results = {r.name: r for r in run_cases(p)}
    assert results["a family of four"].ok and results["another family"].ok
    bad = results["one person divides by zero"]
    assert not bad.ok and bad.mismatches[0].startswith("error: ") and "division by zero" in bad.mismatches[0]


def test_policy_test_reports_every_case_before_a_population_problem_exits_2_and_records_nothing(
    tmp_path: Path, hms_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    d = sample_data(3, offset=timedelta(days=1))
    d["tests"] = [_case("family of four", {"amount": 4000}), _case("wrong on purpose", {"amount": 1})]
    d["budget"]["population"] = str(_population_without(tmp_path, "county_fire_declared"))
    src = tmp_path / "p.yml"
    src.write_text(yaml.safe_dump(d, sort_keys=False))
    pkg = tmp_path / "p.tgz"
    assert cli_main(["policy", "pack", str(src), "--out", str(pkg)]) == 0
    capsys.readouterr()

    d["tests"] = d["tests"][:1]
    d["metadata"]["version"] = 4
    src.write_text(yaml.safe_dump(d, sort_keys=False))
    good = tmp_path / "good.tgz"
    assert cli_main(["policy", "pack", str(src), "--out", str(good)]) == 0
    capsys.readouterr()
    assert cli_main(["policy", "test", str(good), "--json"]) == 2
    payload = json.loads(capsys.readouterr().out)
    assert payload["cases"] == [{"name": "family of four", "ok": True, "mismatches": []}]
    assert "missing column 'county_fire_declared'" in payload["simulation"]["error"]
    with session_scope() as s:
        assert store.latest_checks(s, bundle.read(good).sha256) == {}

    assert cli_main(["policy", "test", str(pkg), "--json"]) == 1  # a failed case is a failed check
    payload = json.loads(capsys.readouterr().out)
    assert [c["ok"] for c in payload["cases"]] == [True, False]


def _population_without(tmp_path: Path, column: str) -> Path:
    rows = [{"household_size": 3, "household_income": 20000.0, "county_fire_declared": True, "weight": 1}]
    f = tmp_path / "pop.csv"
    keys = [k for k in rows[0] if k != column]
    f.write_text(",".join(keys) + "\n" + "\n".join(",".join(str(r[k]).lower() for k in keys) for r in rows) + "\n")
    return f
