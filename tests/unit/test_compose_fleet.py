"""The compose chaos fleet's choices, against an engine that answers over HTTP as Docker's does (the real engine
runs in tests/docker/test_compose_stack.py::test_the_chaos_job_kills_real_preprod_containers_…)."""

from __future__ import annotations

import json
import random

import httpx
import pytest

from hms.compose_fleet import ComposeFleet, engine_client
from hms.errors import BadInput

PROJECT, SERVICE = "hms-x", "hms-api-preprod"


class Engine:
    """Containers by id; records every kill and start it is asked for."""

    def __init__(self, containers: dict[str, dict[str, str]]) -> None:
        self.containers = containers  # id → labels
        self.calls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/containers/json":
            self.filters = json.loads(request.url.params["filters"])
            rows = [{"Id": i, "Names": [f"/{i}"], "Labels": labels} for i, labels in self.containers.items()]
            return httpx.Response(200, json=rows)  # a careless engine: it ignores the filter
        cid = path.split("/")[2]
        if path.endswith("/json"):
            ip = f"10.0.0.{list(self.containers).index(cid) + 2}"
            return httpx.Response(200, json={"NetworkSettings": {"Networks": {"n": {"IPAddress": ip}}}})
        self.calls.append(f"{path.rsplit('/', 1)[1]} {cid}")
        return httpx.Response(204)


def fleet(engine: Engine) -> ComposeFleet:
    return ComposeFleet(PROJECT, SERVICE, engine=httpx.Client(transport=httpx.MockTransport(engine),
                                                              base_url="http://docker"), restart_delay=0.01)


def labels(project: str = PROJECT, service: str = SERVICE) -> dict[str, str]:
    return {"com.docker.compose.project": project, "com.docker.compose.service": service}


def test_only_the_services_own_containers_are_the_fleet_whatever_the_engine_lists():
    engine = Engine({"a": labels(), "b": labels(), "db": labels(service="postgres"), "other": labels("x"), "c": {}})
    f = fleet(engine)
    try:
        assert engine.filters == {"label": [f"com.docker.compose.project={PROJECT}",
                                            f"com.docker.compose.service={SERVICE}"]}
        assert [r.id for r in f.replicas] == ["a", "b"]
        assert f.urls() == ["http://10.0.0.2:8000", "http://10.0.0.3:8000"]
        killed = f.kill(0.1, random.Random(1))  # 10 % of two: one, never zero
        assert len(killed) == 1 and f.kills == 1
    finally:
        f.stop()
    assert [c.split()[0] for c in engine.calls] == ["kill", "start"]  # what was killed was started again
    assert {c.split()[1] for c in engine.calls} <= {"a", "b"} and f.restarts == 1


def test_a_project_without_the_service_running_is_bad_input_naming_it():
    with pytest.raises(BadInput, match="has no running hms-api-preprod container"):
        fleet(Engine({"db": labels(service="postgres")}))


def test_an_engine_address_other_than_unix_or_tcp_is_refused():
    with pytest.raises(BadInput, match="DOCKER_HOST 'ssh://host'"):
        engine_client("ssh://host")
