"""``/metrics`` of the decision service: requests, latency, errors, answers per bundle, the snapshot's age."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hms import protocol
from hms.service.app import create_app
from hms.service.source import RegistrySource
from tests.deploy_helpers import config, promote_all, ready, record, variant

FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}
DECIDE = "/v1/protocols/wildfire-aid-2024/decide"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _dividing(version: int) -> protocol.Protocol:
    """wildfire whose amount divides by (income - 1000): an income of 1000 makes its rule fail."""
    data = variant(version).data
    data["rules"]["amount"] = "min(max_payment, per_member * household_size * 1000 / (household_income - 1000))"
    data["tests"] = [t for t in data["tests"] if t["input"]["household_income"] == 40000]
    data["tests"][0]["expect"] = {"eligible": True}
    return protocol.from_data(data, "dividing.yml")


@pytest.fixture
def served(hms_home):
    cfg = config()
    b = record(_dividing(3))
    ready(b, cfg)
    promote_all(b, cfg)
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02)) as client:
        yield client, b


def test_metrics_count_requests_answers_per_bundle_and_evaluation_errors_per_bundle(served):
    client, b = served
    for _ in range(3):
        assert client.post(DECIDE, json={"input": FAMILY}).status_code == 200
    assert client.post(DECIDE + "/batch", json={"inputs": [FAMILY, FAMILY]}).status_code == 200
    failed = client.post(DECIDE, json={"input": {**FAMILY, "household_income": 1000}})
    assert failed.status_code == 422 and "could not be evaluated" in failed.text
    assert client.post(DECIDE, json={"input": {"household_size": "x"}}).status_code == 422
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    m = samples(r.text)
    bundle = (("bundle_sha256", b.sha256), ("protocol", "wildfire-aid-2024"))
    assert m[("hms_decision_answers_total", bundle)] == 5
    assert m[("hms_decision_evaluation_errors_total", bundle)] == 1
    route = "/v1/protocols/{pid}/decide"
    assert m[("hms_decision_requests_total", (("route", route), ("status", "200")))] == 3
    assert m[("hms_decision_requests_total", (("route", route), ("status", "422")))] == 2
    assert m[("hms_decision_request_seconds_count", (("route", route),))] == 5
    assert m[("hms_decision_request_seconds_bucket", (("le", "+Inf"), ("route", route)))] == 5
    assert ("hms_decision_server_errors_total", (("route", route),)) not in m


def test_metrics_show_the_snapshot_generation_its_age_and_that_the_log_is_off(served):
    client, _ = served
    m = samples(client.get("/metrics").text)
    assert m[("hms_snapshot_generation", ())] >= 1
    assert 0 <= m[("hms_snapshot_age_seconds", ())] < 5
    assert m[("hms_snapshot_reloads_total", ())] >= 1
    assert m[("hms_decision_log_enabled", ())] == 0


def test_unknown_paths_are_one_label_not_one_per_path(served):
    client, _ = served
    for i in range(5):
        assert client.get(f"/nope/{i}").status_code == 404
    m = samples(client.get("/metrics").text)
    assert m[("hms_decision_requests_total", (("route", "unmatched"), ("status", "404")))] == 5


def test_two_apps_in_one_process_each_count_only_their_own_requests(hms_home):
    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    with TestClient(create_app(RegistrySource("prod"))) as one, TestClient(create_app(RegistrySource("prod"))) as two:
        one.post(DECIDE, json={"input": FAMILY})
        one.post(DECIDE, json={"input": FAMILY})
        two.post(DECIDE, json={"input": FAMILY})
        key = ("hms_decision_answers_total", (("bundle_sha256", b.sha256), ("protocol", "wildfire-aid-2024")))
        assert samples(one.get("/metrics").text)[key] == 2
        assert samples(two.get("/metrics").text)[key] == 1


def test_the_metrics_route_is_not_in_the_openapi_document(served):
    client, _ = served
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
