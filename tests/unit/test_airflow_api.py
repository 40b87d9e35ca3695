"""hms.airflow_api.AirflowApi reads what the local stack waits on and shows: the DAGs, import errors and logs.

An httpx.MockTransport answers as Airflow's REST API (v2) does; the run calls (trigger, runs, notes) are
tested against a real HTTP server in test_run_ids and test_rollback_notes.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from hms import airflow_api
from hms.airflow_api import AirflowApi, Dag, DagImportError
from hms.errors import BadInput


def _api(handle: Callable[[httpx.Request], httpx.Response]) -> AirflowApi:
    http = httpx.Client(base_url="http://airflow", transport=httpx.MockTransport(handle))
    return AirflowApi("http://airflow", "admin", "pw", http=http)


def test_dags_and_import_errors_are_read_and_a_5xx_is_asked_again(monkeypatch):
    monkeypatch.setattr(airflow_api.time, "sleep", lambda s: None)
    answers = iter([503, 200])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/importErrors":
            return httpx.Response(200, json={"import_errors": [{"filename": "dags/x.py", "stack_trace": "boom"}]})
        dags = [{"dag_id": "policy_a", "tags": [{"name": "policy"}]}, {"dag_id": "hms_intake", "tags": []}]
        return httpx.Response(next(answers), json={"dags": dags, "total_entries": 2})

    api = _api(handle)
    assert api.dags() == [Dag("policy_a", frozenset({"policy"})), Dag("hms_intake", frozenset())]
    assert api.import_errors() == [DagImportError("dags/x.py", "boom")]


def test_a_task_log_is_its_structured_lines_joined_and_a_refusal_names_the_task():
    content = [
        {"timestamp": "2026-01-15T12:00:00Z", "level": "info", "event": "deferring until", "logger": "task"},
        {"level": "error", "event": "❌ failed", "error": "disk full"},
        "a plain line",
    ]

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/logs/2"):
            return httpx.Response(404, json={"detail": "no such try"})
        assert request.headers["accept"] == "application/json"
        return httpx.Response(200, json={"content": content})

    api = _api(handle)
    assert api.task_log("policy_a", "r1", "flip.wait") == (
        "info deferring until\nerror ❌ failed {'error': 'disk full'}\na plain line"
    )
    with pytest.raises(BadInput, match="log of policy_a/r1/flip.wait: 404"):
        api.task_log("policy_a", "r1", "flip.wait", try_number=2)


def test_token_returns_the_jwt_and_login_sends_it():
    seen: list[str | None] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            return httpx.Response(201, json={"access_token": "jwt-1"})
        seen.append(request.headers.get("authorization"))
        return httpx.Response(200, json={"state": "running"})

    api = _api(handle)
    assert api.token() == "jwt-1"
    api.login()
    assert api.run_state("policy_a", "r1") == "running"
    assert seen == ["Bearer jwt-1"]
