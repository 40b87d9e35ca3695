"""Kubernetes mode end to end: the real `hms` CLI (subprocesses) against an emulated Kubernetes API.

With ``execution.mode: kubernetes`` every deploy, promote and rollback commits the registry first,
then makes each environment's ConfigMap ``hms-policy-<protocol>`` (namespace ``hms-<env>``) hold
what the registry says and restarts ``hms-api`` (hms.targets.sync). The API is kmock's emulator
(tests/kmock_helpers.py, with the API server's resourceVersion checks) served on 127.0.0.1 and
reached through a kubeconfig file, as `kubectl` would. kmock limits, as in the unit tests: Deployments
are seeded objects (only patched here), no pods restart for real, and a failing API is simulated
by answering an error (kmock rules) or by a kubeconfig naming a closed port.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import kmock
import pytest
import pytest_asyncio
from sqlalchemy import select

from hms import clock, deployments, protocol
from hms.chaos import free_port
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry
from tests.conftest import WILDFIRE
from tests.deploy_helpers import pin_file, ready, record, write_config
from tests.kmock_helpers import CM, CONFIGMAPS, DEPLOYMENTS, Cluster, running_cluster

HMS = str(Path(sys.executable).parent / "hms")
PID = "wildfire-aid-2024"
ENVS = ("staging", "preprod", "prod")
NAMESPACES = tuple(f"hms-{e}" for e in ENVS)


def kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: kmock, cluster: {{server: '{server}'}}}}]\n"
        "users: [{name: ops, user: {token: test-token}}]\n"
        "contexts: [{name: kmock, context: {cluster: kmock, user: ops}}]\n"
        "current-context: kmock\n"
    )
    return path


@dataclass
class Setup:
    cluster: Cluster
    env: dict[str, str]
    tmp: Path

    async def hms(self, *args: str, expect: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        r = await asyncio.to_thread(
            subprocess.run, [HMS, *args], env={**self.env, **env}, capture_output=True, text=True, timeout=120
        )
        assert r.returncode == expect, f"hms {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}"
        return r

    def data(self, env: str) -> dict[str, str]:
        return self.cluster.configmap(CM, f"hms-{env}")["data"]

    def writes(self) -> int:
        return sum(self.cluster.count(m, r) for m in ("POST", "PATCH", "DELETE") for r in (CONFIGMAPS, DEPLOYMENTS))

    def v4_file(self) -> Path:
        p = self.tmp / "wildfire-v4.yml"
        text = WILDFIRE.read_text().replace("version: 3", "version: 4")
        p.write_text(text.replace("max_payment: 5000", "max_payment: 3000"))
        return p

    async def push_and_approve(self, path: Path) -> str:
        """Recorded, checked and approved in-process (the CLI under test here is deploy / promote / rollback)."""
        b = record(protocol.load(path))
        ready(b, load_pipeline_config(self.env["HMS_PIPELINE_CONFIG"]))
        return b.sha256

    async def deploy_everywhere(self, sha: str, *extra: str) -> None:
        for env in ENVS:
            await self.hms("rule", "deploy", sha, "--env", env, *extra)


@pytest_asyncio.fixture
async def k8s(hms_home: Path, tmp_path: Path) -> AsyncIterator[Setup]:
    execution = {"mode": "kubernetes", "namespace": "hms-pipeline", "image": "hms:test", "in_cluster": False}
    env = {
        **os.environ,
        "HMS_HOME": str(hms_home),
        "HMS_PIPELINE_CONFIG": str(pin_file(write_config(tmp_path / "pipeline.yml", execution=execution))),
    }
    env.pop("HMS_DATABASE_URL", None)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    async with running_cluster(NAMESPACES) as (cluster, url):
        env["KUBECONFIG"] = str(kubeconfig(tmp_path / "kubeconfig", url))
        yield Setup(cluster, env, tmp_path)


def audit(action: str) -> list[dict[str, Any]]:
    with session_scope(read_only=True) as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)).all()
        return [json.loads(r.details) for r in rows]


def in_force_version(env: str) -> int | None:
    with session_scope(read_only=True) as s:
        d = deployments.in_force(s, env, PID)
        return d.version if d else None


@pytest.mark.asyncio
async def test_deploy_writes_each_namespaces_configmap_and_restarts_hms_api(k8s: Setup) -> None:
    sha = await k8s.push_and_approve(WILDFIRE)

    await k8s.deploy_everywhere(sha)

    for env in ENVS:
        assert k8s.data(env)["current"] == sha and k8s.data(env)["current_version"] == "3"
        assert k8s.data(env)["previous"] == ""
        assert k8s.cluster.restarted_at(f"hms-{env}") is not None
    applied = audit("target.applied")
    assert [(a["environment"], a["action"], a["restarted"]) for a in applied] == [
        ("staging", "created", True), ("preprod", "created", True), ("prod", "created", True)
    ]


@pytest.mark.asyncio
async def test_reapplying_the_same_deploy_changes_nothing_in_kubernetes(k8s: Setup) -> None:
    sha = await k8s.push_and_approve(WILDFIRE)
    await k8s.deploy_everywhere(sha)
    writes, restarted_at = k8s.writes(), k8s.cluster.restarted_at("hms-prod")

    r = await k8s.hms("rule", "deploy", sha, "--env", "prod", "--json")

    assert json.loads(r.stdout)["kubernetes"]["action"] == "unchanged"
    assert k8s.writes() == writes and k8s.cluster.restarted_at("hms-prod") == restarted_at


@pytest.mark.asyncio
async def test_rollback_swaps_current_and_previous_in_the_configmap(k8s: Setup) -> None:
    v3 = await k8s.push_and_approve(WILDFIRE)
    await k8s.deploy_everywhere(v3)
    v4 = await k8s.push_and_approve(k8s.v4_file())
    await k8s.deploy_everywhere(v4)
    assert (k8s.data("prod")["current"], k8s.data("prod")["previous"]) == (v4, v3)
    restarted_before = k8s.cluster.restarted_at("hms-prod")

    r = await k8s.hms("rule", "rollback", PID, "--env", "prod")

    assert "hms-prod/hms-policy-wildfire-aid-2024 updated (hms-api restarted)" in r.stdout
    prod = k8s.data("prod")
    assert (prod["current"], prod["current_version"], prod["previous"], prod["previous_version"]) == (v3, "3", v4, "4")
    assert k8s.cluster.restarted_at("hms-prod") != restarted_before
    assert in_force_version("prod") == 3 and k8s.data("preprod")["current"] == v4  # only prod moved


@pytest.mark.asyncio
async def test_a_scheduled_prod_deploy_carries_its_activation_time_and_the_version_served_until_then(
    k8s: Setup,
) -> None:
    v3 = await k8s.push_and_approve(WILDFIRE)
    await k8s.deploy_everywhere(v3)
    v4 = await k8s.push_and_approve(k8s.v4_file())
    for env in ("staging", "preprod"):
        await k8s.hms("rule", "deploy", v4, "--env", env)

    at = (clock.now() + timedelta(days=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    r = await k8s.hms("rule", "deploy", v4, "--env", "prod", "--schedule", at.isoformat(), "--json")

    assert json.loads(r.stdout)["state"] == "pending"
    prod = k8s.data("prod")
    assert (prod["current"], prod["previous"], prod["activate_at"]) == (v4, v3, at.strftime("%Y-%m-%dT%H:%M:%SZ"))

    await k8s.hms("rule", "rollback", PID, "--env", "prod")  # cancels the pending activation

    prod = k8s.data("prod")
    assert prod["current"] == v3 and in_force_version("prod") == 3


@pytest.mark.asyncio
async def test_an_unreachable_api_fails_loudly_after_the_commit_and_a_rerun_finishes_without_rolling_back_twice(
    k8s: Setup,
) -> None:
    v3 = await k8s.push_and_approve(WILDFIRE)
    await k8s.deploy_everywhere(v3)
    v4 = await k8s.push_and_approve(k8s.v4_file())
    await k8s.deploy_everywhere(v4)
    dead = str(kubeconfig(k8s.tmp / "dead-kubeconfig", f"http://127.0.0.1:{free_port()}"))

    failed = await k8s.hms("rule", "rollback", PID, "--env", "prod", expect=1, KUBECONFIG=dead)

    assert "the registry is committed (prod serves v3" in failed.stderr
    assert "Run the same command again" in failed.stderr
    assert in_force_version("prod") == 3 and k8s.data("prod")["current"] == v4  # registry moved, Kubernetes not
    assert [(f["environment"], f["command"]) for f in audit("target.failed")] == [("prod", "rollback")]

    rerun = await k8s.hms("rule", "rollback", PID, "--env", "prod")

    assert "finished the earlier rollback" in rerun.stdout
    assert in_force_version("prod") == 3  # not rolled back a second time (that would be v4 again)
    assert (k8s.data("prod")["current"], k8s.data("prod")["previous"]) == (v3, v4)
    assert (await k8s.hms("audit", "verify")).returncode == 0

    # The newest change is a rollback again: with the API down we cannot tell whether it reached Kubernetes,
    # so a further rollback stops before the registry (which would otherwise undo v3 → v4).
    blind = await k8s.hms("rule", "rollback", PID, "--env", "prod", expect=1, KUBECONFIG=dead)
    assert "nothing was changed" in blind.stderr and in_force_version("prod") == 3


@pytest.mark.asyncio
async def test_a_failed_restart_is_exit_1_and_rerunning_the_deploy_finishes_it(k8s: Setup) -> None:
    sha = await k8s.push_and_approve(WILDFIRE)
    k8s.cluster.emulator[kmock.method.PATCH, DEPLOYMENTS][:1] << 403

    failed = await k8s.hms("rule", "deploy", sha, "--env", "staging", expect=1)

    assert "restart of hms-api failed" in failed.stderr and "403" in failed.stderr
    assert in_force_version("staging") == 3  # the registry holds the deploy
    assert k8s.cluster.configmap(CM, "hms-staging")["metadata"]["annotations"]["hms/restart-pending"] == "true"

    rerun = json.loads((await k8s.hms("rule", "deploy", sha, "--env", "staging", "--json")).stdout)

    assert rerun["kubernetes"]["action"] == "unchanged" and rerun["kubernetes"]["restarted"] is True
    assert "hms/restart-pending" not in k8s.cluster.configmap(CM, "hms-staging")["metadata"]["annotations"]


@pytest.mark.asyncio
async def test_without_a_kubernetes_configuration_the_deploy_is_refused_before_the_registry_changes(
    k8s: Setup,
) -> None:
    sha = await k8s.push_and_approve(WILDFIRE)

    r = await k8s.hms("rule", "deploy", sha, "--env", "staging", expect=2,
                      KUBECONFIG=str(k8s.tmp / "missing"), HOME=str(k8s.tmp))

    assert "no Kubernetes configuration" in r.stderr
    assert in_force_version("staging") is None and k8s.writes() == 0


@pytest.mark.asyncio
async def test_promote_mirrors_each_environment_and_rollback_of_the_run_puts_them_all_back(k8s: Setup) -> None:
    v3 = await k8s.push_and_approve(WILDFIRE)
    await k8s.deploy_everywhere(v3)
    v4 = await k8s.push_and_approve(k8s.v4_file())

    promoted = await k8s.hms("promote", str(k8s.v4_file()), "--run-id", "run-1")

    assert [line.split(":")[0] for line in promoted.stdout.splitlines() if line.startswith("[k8s]")] == [
        "[k8s] staging", "[k8s] preprod", "[k8s] prod"
    ]
    assert {k8s.data(e)["current"] for e in ENVS} == {v4}

    r = await k8s.hms("rule", "rollback", "--run", "run-1", "--json")

    assert [k["environment"] for k in json.loads(r.stdout)["kubernetes"]] == ["prod", "preprod", "staging"]
    assert {k8s.data(e)["current"] for e in ENVS} == {v3}
    assert {in_force_version(e) for e in ENVS} == {3}


@pytest.mark.asyncio
async def test_withdrawing_a_first_deployment_deletes_its_configmap_and_a_second_rollback_is_refused(
    k8s: Setup,
) -> None:
    sha = await k8s.push_and_approve(WILDFIRE)
    await k8s.hms("rule", "deploy", sha, "--env", "staging")

    r = await k8s.hms("rule", "rollback", PID, "--env", "staging")

    assert "withdrawn" in r.stdout and "hms-staging/hms-policy-wildfire-aid-2024 removed" in r.stdout
    assert k8s.cluster.emulator.objects[CONFIGMAPS, "hms-staging", CM].deleted
    writes = k8s.writes()
    again = await k8s.hms("rule", "rollback", PID, "--env", "staging", expect=2)
    assert "no version of wildfire-aid-2024 is live in staging" in again.stderr and k8s.writes() == writes
