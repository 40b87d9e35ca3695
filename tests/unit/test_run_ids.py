"""A policy run triggered from Airflow's form with a pushed bundle picked gets an id naming that bundle
(hms_operators.run_ids, a root middleware of the api-server); every other request passes untouched."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from hms_operators.run_ids import MAX_BODY, BundleRunIds

from hms.ci import bundle_prefix_of_run

SHA = "ab12" * 16


@pytest.fixture
def client() -> TestClient:
    """What Airflow's trigger route would receive, echoed: the body and its declared length."""
    app = FastAPI()

    @app.post("/api/v2/dags/{dag_id}/dagRuns")
    @app.post("/other")
    async def echo(request: Request) -> dict:
        body = await request.body()
        return {"body": body.decode(), "length": request.headers.get("content-length")}

    app.add_middleware(BundleRunIds)
    return TestClient(app)


def form(**changes) -> dict:
    """The body Airflow 3.3's trigger form posts (no run id)."""
    return {"logical_date": None, "conf": {"bundle": SHA, "effective_at": None}, **changes}


def test_a_form_trigger_of_a_picked_bundle_gets_a_stamped_id_that_names_it(client):
    r = client.post("/api/v2/dags/policy_wildfire-aid-2024/dagRuns", json=form()).json()
    sent = json.loads(r["body"])
    assert bundle_prefix_of_run(sent["dag_run_id"]) == SHA[:12] and sent["dag_run_id"] != f"bundle-{SHA[:12]}"
    assert sent["conf"] == form()["conf"] and int(r["length"]) == len(r["body"].encode())


@pytest.mark.parametrize("path, body", [
    ("/api/v2/dags/policy_wildfire-aid-2024/dagRuns", form(dag_run_id="mine")),  # an id of its own stays
    ("/api/v2/dags/policy_wildfire-aid-2024/dagRuns", form(conf={"bundle": None})),  # no pick: Airflow's id
    ("/api/v2/dags/policy_wildfire-aid-2024/dagRuns", form(conf={"bundle": "ab12ab12"})),  # not a full hash
    ("/api/v2/dags/hms_intake/dagRuns", form()),  # not a policy DAG
    ("/other", form()),
], ids=["own-id", "no-pick", "prefix", "other-dag", "other-path"])
def test_every_other_request_reaches_airflow_byte_for_byte(client, path, body):
    raw = json.dumps(body, separators=(",", ":"))
    r = client.post(path, content=raw, headers={"content-type": "application/json"}).json()
    assert r["body"] == raw and r["length"] == str(len(raw))


def test_a_body_that_is_not_json_or_is_oversized_is_passed_on_unchanged(client):
    for raw in ("{not json", '{"conf": {"bundle": "' + SHA + '"}, "pad": "' + "x" * MAX_BODY + '"}'):
        r = client.post("/api/v2/dags/policy_x/dagRuns", content=raw, headers={"content-type": "application/json"})
        assert r.json()["body"] == raw
