"""docker-compose.yaml brought up for real: PostgreSQL, airflow-init, Airflow's four components and a decision
service per environment reach healthy; a protocol runs through its DAG to prod inside the containers, approved
by two clerks through the HMS API with their own Airflow logins; what Airflow and the registry keep survives
``down`` and ``up``; no secret appears in any container's log.

The stack runs under its own compose project name, on host ports picked free on 127.0.0.1, with secrets made
for this test; it is removed with its volumes at the end. Where no image registry is reachable, PostgreSQL is
Debian's, in an image made from Debian's packages (scripts/postgres-image.sh).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import ROOT
from tests.docker.conftest import docker
from tests.docker.stack import CLERKS, SECRETS, Stack, make_stack, until, why

pytestmark = pytest.mark.docker

SERVICES = {
    "postgres",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "hms-api-staging",
    "hms-api-preprod",
    "hms-api-prod",
}


PID = "wildfire-aid-2024"
DAG = f"policy_{PID}"
PREPROD_REPLICAS = 3  # the chaos job's fleet: 10 % of three kills one container per round


@pytest.fixture(scope="module")
def stack(image: str, postgres_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = make_stack(tmp_path_factory.mktemp("compose"), image, postgres_image, project=f"hms-test-{os.getpid()}",
                   preprod_replicas=PREPROD_REPLICAS)
    try:
        s.up()
        yield s
    finally:
        s.down()


def test_every_service_is_healthy_and_airflow_sees_its_components_and_the_policy_dags(stack):
    running = stack.states()
    assert {s: running.get(s) for s in SERVICES} == dict.fromkeys(SERVICES, "healthy")
    assert running["airflow-init"] == "exited"
    init = json.loads(docker("inspect", f"{stack.project}-airflow-init-1").stdout)[0]["State"]
    assert init["ExitCode"] == 0
    health = stack.get("HMS_AIRFLOW_PORT", "/api/v2/monitor/health")
    assert {k: v["status"] for k, v in health.items()} == dict.fromkeys(
        ("metadatabase", "scheduler", "triggerer", "dag_processor"), "healthy"
    )
    for env in ("staging", "preprod", "prod"):
        ready = stack.get(f"HMS_{env.upper()}_PORT", "/readyz")
        assert ready["ready"] is True and ready["environment"] == env
    dags = stack.exec("airflow-scheduler", "airflow dags list --output json 2>/dev/null")
    listing = next(line for line in dags.splitlines() if line.startswith("["))  # Airflow logs warnings to stdout
    ids = {d["dag_id"] for d in json.loads(listing)}
    protocols = {p.stem for p in (ROOT / "include" / "protocols").glob("*.yml")}
    assert "hms_intake" in ids and {f"policy_{p}" for p in protocols} <= ids


def test_a_protocol_runs_to_prod_in_the_containers_approved_by_two_clerks_through_the_api(stack):
    stack.apply_policy()  # a shared registry needs the policy applied first, by an admin, through the API
    run_id = f"compose-{secrets.token_hex(4)}"
    with stack.airflow("admin") as admin:
        assert admin.trigger(DAG, run_id, {"effective_at": "+30s"})
        clerks = {c: stack.hms_api(c) for c in CLERKS}
        try:
            def waiting() -> str | None:  # the bundle this run built, as alice's review board shows it
                assert admin.run_state(DAG, run_id) in ("queued", "running"), why(admin, DAG, run_id)
                r = clerks["alice"].get("/reviews")
                assert r.status_code == 200, r.text
                return next((b["sha256"] for b in r.json()["pending"] if b["protocol_id"] == PID), None)

            sha = until("the bundle on alice's review board", waiting, 420)
            for clerk in CLERKS:
                r = clerks[clerk].post(f"/reviews/{sha}/approve", json={"comment": f"checked by {clerk}"})
                assert r.status_code == 200, r.text
        finally:
            for c in clerks.values():
                c.close()
        final = until("the run to end", lambda: (s := admin.run_state(DAG, run_id)) in ("success", "failed") and s,
                      600, 3)
        assert final == "success", why(admin, DAG, run_id)

    live = until("prod's decision service serving the bundle",
                 lambda: (now := stack.live_in_prod(PID)) and now["bundle_sha256"] == sha and now, 60)
    assert live["version"] == 3
    r = httpx.post(f"http://127.0.0.1:{stack.env['HMS_PROD_PORT']}/v1/protocols/{PID}/decide",
                   json={"input": {"household_size": 4, "household_income": 30000, "county_fire_declared": True}},
                   timeout=30)
    assert r.status_code == 200 and r.json()["version"] == 3, r.text


def started(stack: Stack, service: str) -> dict[str, str]:
    """Each container of ``service`` (running or not): its id → when it last started."""
    ids = docker("ps", "-aq", "--no-trunc", "--filter", f"label=com.docker.compose.project={stack.project}",
                 "--filter", f"label=com.docker.compose.service={service}").stdout.split()
    rows = json.loads(docker("inspect", *ids).stdout) if ids else []
    return {c["Id"]: c["State"]["StartedAt"] for c in rows if c["State"]["Running"]}


def test_the_chaos_job_kills_real_preprod_containers_and_every_answer_stays_right(stack):
    """The seed's "randomly deletes 10 % of pods", with containers (hms.compose_fleet): preprod scaled to three,
    the chaos job (the compose file's hms-chaos one-off, the only service given the engine's socket) kills one
    with SIGKILL every few seconds and starts it again, while it asks every golden decision of what preprod has
    in force — the v3 the run above put there — and checks each answer against the registry's timeline."""
    stack.compose("up", "-d", "--no-build", "--no-recreate", "--no-deps", "--wait", "--scale",
                  f"hms-api-preprod={PREPROD_REPLICAS}", "hms-api-preprod")
    before = started(stack, "hms-api-preprod")
    assert len(before) == PREPROD_REPLICAS
    r = stack.compose("--profile", "chaos", "run", "--rm", "hms-chaos", "--target", "preprod", "--time", "20s",
                      "--json", check=False, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    report = json.loads(r.stdout[r.stdout.index("{"):])
    assert report["ok"] is True and report["replicas"] == PREPROD_REPLICAS, report
    assert report["wrong_answers"] == 0 and report["requests"] > 100, report
    assert report["kills"] >= 1 and report["restarts"] == report["kills"], report
    after = started(stack, "hms-api-preprod")
    assert set(after) == set(before)  # the same containers, every one running again
    assert sum(after[c] != before[c] for c in before) >= 1  # and the killed ones really went down and came back
    for port in range(int(stack.env["HMS_PREPROD_PORT"]), int(stack.env["HMS_PREPROD_PORT"]) + PREPROD_REPLICAS):
        answer = httpx.post(f"http://127.0.0.1:{port}/v1/protocols/{PID}/decide", timeout=30, json={
            "input": {"household_size": 4, "household_income": 30000, "county_fire_declared": True}})
        assert answer.status_code == 200 and answer.json()["version"] == 3, answer.text


def test_airflow_state_and_the_hms_home_survive_down_and_up(stack):
    stack.exec(
        "airflow-scheduler", "airflow variables set hms_probe survives >/dev/null && echo kept > /var/lib/hms/probe"
    )
    passwords = stack.exec("airflow-apiserver", "cat /opt/airflow/auth/passwords.json")
    served = stack.get("HMS_PROD_PORT", "/v1/protocols")["protocols"]  # what the registry has put in force
    stack.compose("down")  # the containers go; the named volumes stay
    stack.up()
    assert stack.get("HMS_PROD_PORT", "/v1/protocols")["protocols"] == served
    assert stack.exec("airflow-scheduler", "airflow variables get hms_probe 2>/dev/null").strip() == "survives"
    assert stack.exec("hms-api-prod", "cat /var/lib/hms/probe").strip() == "kept"
    assert stack.exec("airflow-apiserver", "cat /opt/airflow/auth/passwords.json") == passwords


def test_no_secret_appears_in_any_containers_log(stack):
    logs = stack.compose("logs", "--no-color").stdout
    assert len(logs) > 1000  # the services did log
    for name in SECRETS:
        assert stack.env[name] not in logs, f"{name} appears in the logs"
