"""``explain: true`` on the decision service: each answer says why, under which provision, and agrees with itself.

Over real HTTP (FastAPI's TestClient), as the decision service's other tests: prod serving wildfire from a
registry, and a household protocol (SNAP Texas) and a month-by-month one served from a one-protocol source.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from pydantic import TypeAdapter

from hms import clock, protocol
from hms.service import schema
from hms.service.app import create_app
from hms.service.timeline import Entry, Snapshot
from tests.dated_protocols import data as dated_data
from tests.deploy_helpers import prod_replica

ROOT = Path(__file__).resolve().parents[2]
SNAP = ROOT / "include" / "protocols" / "snap-texas-fy2026.yml"
FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
DECIDE = "/v1/protocols/wildfire-aid-2024/decide"


@pytest.fixture
def prod(hms_home):
    """prod serving wildfire v3 from the registry, and a client on a prod replica."""
    with prod_replica() as (client, _, _):
        yield client


class _OneProtocol:
    """A decision-service source serving one protocol (no registry needed)."""

    environment = "test"

    def __init__(self, proto: protocol.Protocol) -> None:
        self.proto = proto

    def generation(self) -> int:
        return 1

    def load(self) -> Snapshot:
        entry = Entry(1, self.proto.id, 1, "f" * 64, "live", clock.now() - timedelta(days=3650))
        return Snapshot.build("test", 1, [entry], {"f" * 64: SimpleNamespace(protocol=self.proto)})  # type: ignore[dict-item]


def _serve(p: protocol.Protocol) -> TestClient:
    return TestClient(create_app(_OneProtocol(p)))


def test_a_denial_explained_names_the_deciding_comparison_and_the_provision(prod):
    r = prod.post(DECIDE, json={"input": {**FAMILY, "household_income": 124801}, "explain": True})
    assert r.status_code == 200, r.text
    answer = r.json()
    eligible, amount = answer["explanation"]["outputs"]
    assert (eligible["name"], eligible["value"], amount["value"]) == ("eligible", False, 0)
    assert eligible["notice"] == (
        "not eligible: household_income 124,801 > income_limit_pct 4 × poverty_line 31,200 = 124,800"
        " — Pub. L. 118-XX, sec. 3(b); Pub. L. 118-XX, sec. 2(4); income_limit_pct: Pub. L. 118-XX, sec. 3(b)(2)"
    )
    assert eligible["reference"] == "Pub. L. 118-XX, sec. 3(b)"
    formula = "county_fire_declared and household_income <= income_limit_pct * poverty_line"
    assert eligible["expression"] == formula
    assert eligible["depends_on"] == ["poverty_line"] and amount["depends_on"] == ["poverty_line", "eligible"]
    rules = answer["explanation"]["rules"]  # each step once, in evaluation order
    assert [(s["name"], s["value"]) for s in rules] == [("poverty_line", 31200), ("eligible", False), ("amount", 0)]
    poverty = rules[0]
    cited = {r["name"]: r.get("reference") for r in poverty["reads"]}
    assert cited["fpl_base"].startswith("HHS 2024 poverty guidelines") and cited["household_size"] is None
    assert answer["explanation"]["authority"] == "Pub. L. 118-XX, sec. 3"
    assert {o["name"]: o["value"] for o in answer["explanation"]["outputs"]} == answer["outputs"]


def test_without_explain_an_answer_carries_no_explanation(prod):
    for body in ({"input": FAMILY}, {"input": FAMILY, "explain": False}):
        r = prod.post(DECIDE, json=body)
        assert r.status_code == 200 and "explanation" not in r.json() and r.json()["outputs"]["amount"] == 4000


def test_a_batch_explains_each_answer(prod):
    inputs = [FAMILY, {**FAMILY, "county_fire_declared": False}]
    r = prod.post(DECIDE + "/batch", json={"inputs": inputs, "explain": True})
    assert r.status_code == 200, r.text
    notices = [x["explanation"]["outputs"][0]["notice"] for x in r.json()["results"]]
    assert notices[0].startswith("eligible: county_fire_declared is true; household_income 40,000 <= ")
    assert notices[1].startswith("not eligible: county_fire_declared is false — Pub. L. 118-XX, sec. 3(b)")


@pytest.mark.parametrize("flag", ["yes", 1, 0, None, [True], {"on": True}])
@pytest.mark.parametrize("batch", [False, True])
def test_explain_that_is_not_a_boolean_is_422_naming_the_field(prod, flag, batch):
    body = {"inputs": [FAMILY], "explain": flag} if batch else {"input": FAMILY, "explain": flag}
    r = prod.post(DECIDE + ("/batch" if batch else ""), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["body", "explain"]
    assert r.json()["detail"][0]["msg"] == "explain must be true or false"


def test_a_household_explanation_shows_each_members_values_and_the_aggregations():
    p = protocol.load(SNAP)
    case = copy.deepcopy(p.tests[4]["input"])  # a family of three over the gross limits
    with _serve(p) as client:
        r = client.post(f"/v1/protocols/{p.id}/decide", json={"input": case, "explain": True})
    assert r.status_code == 200, r.text
    e = r.json()["explanation"]
    eligible = e["outputs"][0]
    assert eligible["notice"].startswith("not eligible: not categorical_tanf (tanf_cash 0 <= 0); not bbce (")
    assert "7 CFR 273.2(j)(2); Texas broad-based categorical eligibility" in eligible["references"]
    steps = {s["name"]: s for s in e["rules"]}
    assert set(eligible["depends_on"]) <= set(steps)
    assert steps["in_unit"]["who"] == ["member 0", "member 1", "member 2"]
    assert steps["in_unit"]["value"] == [True, True, True]
    (size,) = steps["size"]["aggregations"]
    assert (size["expression"], size["who"], size["result"]) == ("count(in_unit)", steps["in_unit"]["who"], 3)
    assert {o["name"]: o["value"] for o in e["outputs"]} == r.json()["outputs"]
    assert e["notes"] == []


def test_a_period_decided_month_by_month_is_explained_month_by_month():
    d = dated_data(3, offset=timedelta(days=1))
    d["period"] = {"unit": "year", "straddle": "sum_months"}
    d["parameters"]["per_member"] = {"values": [
        {"from": "2024-10-01", "value": 800, "reference": "Aid Act FY2025 schedule"},
        {"from": "2025-10-01", "value": 1000, "reference": "Aid Act FY2026 schedule"},
    ]}
    d["tests"] = [{"name": "2025", "input": FAMILY, "expect": {"amount": 40800}, "period": "2025"}]
    p = protocol.from_data(d, "dated.yml")
    with _serve(p) as client:
        r = client.post(f"/v1/protocols/{p.id}/decide", json={"input": FAMILY, "period": "2025", "explain": True})
    assert r.status_code == 200, r.text
    e = r.json()["explanation"]
    assert r.json()["outputs"]["amount"] == 40800 and e["outputs"] == []
    assert "evaluated month by month" in e["notes"][0]
    assert [m["period"] for m in e["months"]] == [f"2025-{k:02d}" for k in range(1, 13)]
    amounts = [m["outputs"][1]["value"] for m in e["months"]]
    assert sum(amounts) == 40800
    refs = {m["period"]: next(x for x in m["rules"][-1]["reads"] if x["name"] == "per_member")["reference"]
            for m in e["months"]}
    assert (refs["2025-09"], refs["2025-10"]) == ("Aid Act FY2025 schedule", "Aid Act FY2026 schedule")


def test_the_openapi_documents_the_explain_flag_and_the_explanation():
    p = protocol.load(SNAP)
    with _serve(p) as client:
        spec = client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    answer = schemas["Answer"]["properties"]["explanation"]
    assert "Explanation" in str(answer)
    assert {"outputs", "notes", "months", "authority"} <= set(schemas["Explanation"]["properties"])
    bodies = [op["requestBody"]["content"]["application/json"]["schema"]
              for path, ops in spec["paths"].items() if path.endswith(("/decide", "/decide/batch"))
              for op in ops.values()]
    assert len(bodies) == 2 and all(b["properties"]["explain"]["type"] == "boolean" for b in bodies)


EITC = ROOT / "include" / "protocols" / "federal-eitc-2026.yml"


@pytest.mark.parametrize("path", [SNAP, EITC])
@pytest.mark.parametrize("explain", [False, True])
def test_an_answer_is_byte_for_byte_what_its_response_model_writes(path, explain):
    """The service serializes its answers itself (FastAPI does not re-validate them): each body must still be
    exactly what the route's response_model would have written, unset fields left out."""
    p = protocol.load(path)
    rec = p.service_cases[0]["input"]
    with _serve(p) as client:
        one = client.post(f"/v1/protocols/{p.id}/decide", json={"input": rec, "explain": explain})
        batch = client.post(f"/v1/protocols/{p.id}/decide/batch", json={"inputs": [rec, rec], "explain": explain})
        spec = client.get("/openapi.json").json()
    for r, model in ((one, schema.Decision), (batch, schema.BatchDecision)):
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json"
        adapter = TypeAdapter(model)
        assert adapter.dump_json(adapter.validate_json(r.content), exclude_unset=True) == r.content
    assert ("explanation" in one.json()) == explain
    documented = spec["paths"]["/v1/protocols/{pid}/decide"]["post"]["responses"]["200"]
    assert documented["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Decision"}
