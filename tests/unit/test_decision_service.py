"""The decision service: answers under the law in force, switches by the clock, refuses bad requests clearly."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from hms import deployments
from hms.registry.db import session_scope
from hms.service.app import MAX_BODY_BYTES
from tests.deploy_helpers import prod_replica, promote_all, ready, record, variant

FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}


@pytest.fixture
def prod(hms_home):
    """prod serving wildfire v3, and a client on a prod replica."""
    with prod_replica() as replica:
        yield replica


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


DECIDE = "/v1/protocols/wildfire-aid-2024/decide"


def _with(field: str, literal: bytes) -> bytes:
    """FAMILY as JSON text with one field's value replaced by raw JSON ``literal`` (json.dumps cannot write NaN
    as a client would, nor a 5,000-digit number without building it)."""
    others = {k: v for k, v in FAMILY.items() if k != field}
    return b'{"input": {"%s": %s, ' % (field.encode(), literal) + json.dumps(others).encode()[1:] + b"}"


@pytest.mark.parametrize("literal", [b"9" * 5000, b"-" + b"9" * 5000, b"9007199254740993", b"-9007199254740993",
                                     b"1e300", b"1e999", b"NaN", b"Infinity", b"-Infinity", b"1" + b"0" * 400 + b".5"])
def test_numbers_past_2_53_and_non_finite_ones_are_422_naming_the_field(prod, literal):
    client, _, _ = prod
    r = client.post(DECIDE, content=_with("household_income", literal))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", "input", "household_income"]
    assert "within ±2**53" in detail["msg"] and len(detail["msg"]) < 300


def test_numbers_up_to_2_53_reach_the_rules(prod):
    client, _, _ = prod
    r = client.post(DECIDE, content=_with("household_income", str(2**53).encode()))
    assert r.status_code == 200 and r.json()["outputs"] == {"eligible": False, "amount": 0}, r.text


def test_a_huge_number_in_a_batch_names_its_index(prod):
    client, _, _ = prod
    body = b'{"inputs": [%s, %s]}' % (json.dumps(FAMILY).encode(), _with("household_size", b"9" * 5000)[10:-1])
    r = client.post(DECIDE + "/batch", content=body)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "inputs", 1, "household_size"], r.text


@pytest.mark.parametrize(("body", "loc"), [
    (b'{"input": {"\\ud800": 1}}', ["body", "input", "\\ud800"]),
    (b'{"\\udfff": 1, "input": {}}', ["body", "\\udfff"]),
    (b'{"input": {"household_size": "\\ud83d"}}', ["body", "input", "household_size"]),
    (b'{"input": {}, "as_of": "2026-01-01T00:00:00\\udc00Z"}', ["body", "as_of"]),
    (b'{"inputs": [{"\\ud800x": 1}]}', ["body", "inputs", 0, "\\ud800x"]),
])
def test_lone_surrogates_are_422_with_the_value_escaped(prod, body, loc):
    client, _, _ = prod
    r = client.post(DECIDE + ("/batch" if b"inputs" in body else ""), content=body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == loc and "lone surrogate" in detail["msg"] and "\\u" in detail["msg"], detail


def test_a_long_unknown_field_is_quoted_cut_to_200_characters(prod):
    client, _, _ = prod
    r = client.post(DECIDE, json={"input": {**FAMILY, "x" * 100_000: 1}})
    detail = r.json()["detail"][0]
    assert r.status_code == 422 and detail["loc"] == ["body", "input", "x" * 199 + "…"], r.text[:300]
    assert len(detail["msg"]) <= 4 * 200


@pytest.mark.parametrize(("headers", "status", "loc"), [
    ({"x-big": "a" * 9000}, 431, ["header", "x-big"]),
    ({f"x-h{i}": "a" * 1000 for i in range(20)}, 431, ["header"]),
])
def test_header_lines_over_8_kib_or_heads_over_16_kib_are_431_naming_the_header(prod, headers, status, loc):
    client, _, _ = prod
    r = client.post(DECIDE, json={"input": FAMILY}, headers=headers)
    assert r.status_code == status and r.json()["detail"][0]["loc"] == loc, r.text
    assert client.post(DECIDE, json={"input": FAMILY}, headers={"x-fits": "a" * 8000}).status_code == 200


def test_a_request_target_over_8_kib_is_414(prod):
    client, _, _ = prod
    r = client.post(DECIDE + "?" + "q" * 9000, json={"input": FAMILY})
    assert r.status_code == 414 and r.json()["detail"][0]["loc"] == ["path"], r.text


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
