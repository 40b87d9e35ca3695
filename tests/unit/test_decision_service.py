"""The decision service: answers under the law in force, switches by the clock, refuses bad requests clearly."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from hms import deployments
from hms.registry.db import session_scope
from hms.service.app import MAX_BODY_BYTES, create_app
from hms.service.source import RegistrySource
from tests.deploy_helpers import config, promote_all, ready, record, variant

FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}


@pytest.fixture
def prod(hms_home):
    """prod serving wildfire v3, and a client on a prod replica."""
    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02)) as client:
        yield client, cfg, b


def test_health_readiness_and_the_protocol_list(prod):
    client, _, b = prod
    assert client.get("/healthz").json()["ok"] is True
    assert client.get("/readyz").status_code == 200
    listed = client.get("/v1/protocols").json()["protocols"]
    assert listed == [{"id": "wildfire-aid-2024", "pending": [], "live": {
        "version": 3, "bundle_sha256": b.sha256, "activate_at": listed[0]["live"]["activate_at"], "state": "live"}}]


def test_a_decision_names_its_version_bundle_and_a_unique_id(prod):
    client, _, b = prod
    r1 = client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()
    r2 = client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()
    assert r1["outputs"] == {"eligible": True, "amount": 4000}
    assert (r1["version"], r1["bundle_sha256"]) == (3, b.sha256)
    assert r1["decision_id"] != r2["decision_id"]


def test_batch_decisions_answer_each_input_in_order(prod):
    client, _, _ = prod
    inputs = [FAMILY, {**FAMILY, "county_fire_declared": False}]
    r = client.post("/v1/protocols/wildfire-aid-2024/decide/batch", json={"inputs": inputs}).json()
    assert [x["outputs"]["amount"] for x in r["results"]] == [4000, 0]


@pytest.mark.parametrize(("body", "status", "loc"), [
    ({"input": {"household_size": 4, "household_income": 1}}, 422, ["body", "input", "county_fire_declared"]),
    ({"input": {**FAMILY, "ssn": "1"}}, 422, ["body", "input", "ssn"]),
    ({"input": {**FAMILY, "household_size": "four"}}, 422, ["body", "input", "household_size"]),
    ({"input": {**FAMILY, "household_size": 0}}, 422, ["body", "input", "household_size"]),
    ({"inputs": [FAMILY]}, 422, ["body", "inputs"]),
    ({"input": FAMILY, "as_of": "2026-01-01T00:00:00"}, 422, ["body", "as_of"]),
    ({}, 422, ["body", "input"]),
])
def test_invalid_requests_are_422_naming_the_field(prod, body, status, loc):
    client, _, _ = prod
    r = client.post("/v1/protocols/wildfire-aid-2024/decide", json=body)
    assert r.status_code == status, r.text
    assert r.json()["detail"][0]["loc"] == loc


def test_unknown_protocol_is_404_malformed_json_400_oversized_413(prod):
    client, _, _ = prod
    assert client.post("/v1/protocols/nope/decide", json={"input": FAMILY}).status_code == 404
    bad = client.post("/v1/protocols/wildfire-aid-2024/decide", content=b'{"input": {', headers={
        "content-type": "application/json"})
    assert bad.status_code == 400
    nested = b'{"input":' + b"[" * 5000 + b"]" * 5000 + b"}"
    deep = client.post("/v1/protocols/wildfire-aid-2024/decide", content=nested)
    assert deep.status_code == 400
    huge = client.post("/v1/protocols/wildfire-aid-2024/decide", content=b" " * (MAX_BODY_BYTES + 1))
    assert huge.status_code == 413


def test_as_of_answers_under_the_law_in_force_at_that_time(prod):
    client, cfg, _ = prod
    v4 = record(variant(4, max_payment=3000))
    ready(v4, cfg)
    at = datetime.now(UTC) + timedelta(days=30)
    promote_all(v4, cfg, activate_at=at)
    time.sleep(0.2)
    url = "/v1/protocols/wildfire-aid-2024/decide"
    before = client.post(url, json={"input": FAMILY, "as_of": (at - timedelta(seconds=1)).isoformat()}).json()
    after = client.post(url, json={"input": FAMILY, "as_of": at.isoformat()}).json()
    assert (before["version"], before["outputs"]["amount"]) == (3, 4000)
    assert (after["version"], after["outputs"]["amount"]) == (4, 3000)
    pending = client.get("/v1/protocols").json()["protocols"][0]["pending"]
    assert [p["version"] for p in pending] == [4]


def test_replicas_switch_by_the_clock_at_activate_at_without_any_flip(prod):
    client, cfg, _ = prod
    v4 = record(variant(4, max_payment=3000))
    ready(v4, cfg)
    at = datetime.now(UTC) + timedelta(seconds=1.0)
    promote_all(v4, cfg, activate_at=at)
    versions = []
    while datetime.now(UTC) < at + timedelta(seconds=0.5):
        t0 = datetime.now(UTC)
        r = client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()
        t1 = datetime.now(UTC)
        versions.append((t0, t1, r["version"]))
    # No settle ran: every answer started after the instant is v4, every answer finished before it is v3.
    assert all(v == 4 for t0, _, v in versions if t0 >= at)
    assert all(v == 3 for _, t1, v in versions if t1 < at)
    assert {v for *_, v in versions} == {3, 4}


def test_a_rollback_is_served_without_restart(prod):
    client, cfg, _ = prod
    v4 = record(variant(4, max_payment=3000))
    ready(v4, cfg)
    promote_all(v4, cfg)
    deadline = time.monotonic() + 5
    while client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()["version"] != 4:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with session_scope() as s:
        deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)
    deadline = time.monotonic() + 5
    while client.post("/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()["version"] != 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
