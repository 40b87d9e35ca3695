"""Dated parameters and periods (issue 17, item 2): amounts that change on dates, rules evaluated for a period.

The sample's ``per_member`` becomes 800 from 2024-10-01 and 1,000 from 2025-10-01 (fiscal years). A family of
four is paid ``min(5000, per_member × 4)``: 3,200 a month in FY2025, 4,000 from FY2026.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from hms import population as P
from hms import protocol
from hms.cases import run_cases
from hms.errors import BadInput
from hms.periods import parse as period
from hms.service.app import create_app
from hms.service.source import RegistrySource
from hms.simulate import simulate
from tests.dated_protocols import data as sample_data
from tests.deploy_helpers import config, promote_all, ready, record

FAMILY = {"household_size": 4, "household_income": 30000, "county_fire_declared": True}
PER_MEMBER = {
    "values": [
        {"from": "2024-10-01", "value": 800, "reference": "Aid Act FY2025 schedule"},
        {"from": "2025-10-01", "value": 1000, "reference": "Aid Act FY2026 schedule"},
    ]
}


def _data(unit: str = "month", straddle: str | None = None, **extra: Any) -> dict[str, Any]:
    d = sample_data(3, offset=timedelta(days=1))
    d["period"] = {"unit": unit, **({"straddle": straddle} if straddle else {})}
    d["parameters"]["per_member"] = copy.deepcopy(PER_MEMBER)
    d.update(extra)
    return d


def _case(name: str, expect: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": name, "input": dict(FAMILY), "expect": expect, **extra}


def _load(tmp_path: Path, d: dict[str, Any]) -> protocol.Protocol:
    f = tmp_path / "dated.yml"
    f.write_text(yaml.safe_dump(d, sort_keys=False))
    return protocol.load(f)


def test_a_case_is_evaluated_with_the_values_in_force_in_its_period(tmp_path: Path) -> None:
    d = _data(tests=[
        _case("FY2025", {"amount": 3200}, period="2025-03"),
        _case("FY2026", {"amount": 4000}, period="2025-10"),
        _case("the effective period", {"amount": 4000}),
    ])
    results = run_cases(_load(tmp_path, d))
    assert [(r.name, r.mismatches) for r in results] == [("FY2025", []), ("FY2026", []), ("the effective period", [])]


def test_a_period_before_a_parameters_first_value_is_refused_naming_the_parameter_the_period_and_the_line(
    tmp_path: Path,
) -> None:
    d = _data(tests=[_case("fine", {"amount": 4000}), _case("too early", {"amount": 3200}, period="2024-05")])
    with pytest.raises(BadInput) as e:
        _load(tmp_path, d)
    assert "parameter 'per_member' has no value for period 2024-05 (its first value is from 2024-10-01)" in (
        e.value.message
    )
    assert "'too early'" in e.value.message and "tests[1].period" in (e.value.where or "")


def test_a_value_changing_inside_a_period_is_an_error_naming_the_parameter_date_and_rules(tmp_path: Path) -> None:
    d = _data("year", tests=[_case("calendar 2025", {"amount": 1}, period="2025")])
    with pytest.raises(BadInput) as e:
        _load(tmp_path, d)
    assert "parameter 'per_member' changes on 2025-10-01, inside period 2025: rules amount" in e.value.message


def test_straddle_sum_months_evaluates_each_month_with_its_values_and_adds_the_amounts(tmp_path: Path) -> None:
    # Nine months at 3,200 (to September) and three at 4,000: 40,800. Eligibility is the same every month.
    d = _data("year", "sum_months", tests=[_case("calendar 2025", {"amount": 40800, "eligible": True}, period="2025")])
    p = _load(tmp_path, d)
    assert [r.mismatches for r in run_cases(p)] == [[]]
    assert p.decide(FAMILY, period("2025", "year", where="t"))["amount"] == 40800


def test_a_boolean_that_differs_between_the_months_it_sums_is_an_error_naming_the_rule(tmp_path: Path) -> None:
    d = _data("year", "sum_months", tests=[_case("2025", {"amount": 40800}, period="2025")])
    d["parameters"]["income_limit_pct"] = {"values": [{"from": "2024-01-01", "value": 4.0},
                                                      {"from": "2025-06-01", "value": 0.5}]}
    results = run_cases(_load(tmp_path, d))
    assert "rule 'eligible' is not the same in every month of 2025" in results[0].mismatches[0]


def test_a_missing_table_key_names_the_table_the_key_and_the_period(tmp_path: Path) -> None:
    d = _data()
    d["parameters"]["bonus"] = {"values": [{"from": "2024-10-01", "value": {1: 10, 2: 20}}]}
    d["rules"]["extra"] = "bonus[household_size]"
    d["tests"] = [_case("no bonus for four", {"extra": 0}, period="2025-03")]
    results = run_cases(_load(tmp_path, d))
    assert "table 'bonus' has no key 4 in period 2025-03" in results[0].mismatches[0]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda d: d.pop("period"), "parameter 'per_member' has dated values: the protocol must state the period"),
        (lambda d: d["parameters"]["per_member"]["values"].reverse(), "values must be in date order"),
        (lambda d: d["parameters"]["per_member"]["values"][1].update(value={"1": 2}), "same shape and type"),
        (lambda d: d["parameters"]["per_member"]["values"][1].update({"from": "2025-13-01"}), "is not a date"),
    ],
)
def test_a_malformed_dated_parameter_is_refused_at_load_naming_it(tmp_path: Path, change: Any, says: str) -> None:
    d = _data()
    change(d)
    with pytest.raises(BadInput) as e:
        _load(tmp_path, d)
    assert says in e.value.message and "per_member" in (e.value.message + (e.value.where or ""))


def test_the_simulation_names_the_period_it_evaluated_and_uses_its_values() -> None:
    p = protocol.from_data(_data(), "dated.yml")
    pop = P.from_columns({**{k: [v] for k, v in FAMILY.items()}, "weight": [1]})
    fy25 = simulate(p, pop, period=period("2025-03", "month", where="t"))
    assert fy25.evaluated_period == "2025-03" and fy25.cost_cents == 320_000
    assert "rules evaluated for 2025-03" in fy25.lines()[0]
    effective = p.default_period()
    assert effective is not None and simulate(p, pop).evaluated_period == effective.label


def test_the_decision_service_answers_for_the_period_asked_or_the_one_holding_as_of(hms_home: Path) -> None:
    cfg = config()
    d = _data()
    d["metadata"]["effective_at"] = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    p = protocol.from_data(d, "dated.yml")
    b = record(p)
    ready(b, cfg)
    promote_all(b, cfg)
    url = f"/v1/protocols/{p.id}/decide"
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02)) as client:
        r = client.post(url, json={"input": FAMILY, "period": "2025-03"})
        assert r.status_code == 200 and r.json()["outputs"]["amount"] == 3200 and r.json()["period"] == "2025-03"
        r = client.post(url, json={"input": FAMILY})
        now = p.default_period(datetime.now(UTC))
        assert now is not None and r.json()["outputs"]["amount"] == 4000 and r.json()["period"] == now.label
        r = client.post(url, json={"input": FAMILY, "period": "2024-05"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "period"]
        assert "no value for period 2024-05" in r.json()["detail"][0]["msg"]
        r = client.post(url, json={"input": FAMILY, "period": "March"})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "period"]
