"""Faults without Airflow: SIGKILL decision-service replicas and the `hms` commands themselves, mid-change.

Replica kills use chaos.LocalFleet (real `hms serve` processes, restarted by its supervisor). Command
kills stop a real `hms rule deploy` / `hms promote` / `hms rule rollback` *inside* its transaction:
a test-only wrapper (below, never in the product) pauses the first writing commit and reports it,
and the test SIGKILLs the process there — the worst moment: every row written, nothing committed.
After each fault: the registry holds whole changes only, one row in force per environment, the
replicas serve what the registry says, re-running the command finishes the job, `hms audit verify` passes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from hms import chaos, deployments
from hms.registry.db import session_scope
from hms.registry.models import Deployment
from tests.deploy_helpers import promote_all, ready, record, variant
from tests.reliability.conftest import FAMILY, PID, Run, as_json, audit_entries, audit_ok

# Runs `hms ARGV…` with Session.commit paused (and announced on stdout) at the Nth commit that wrote rows.
_PAUSE_AT_COMMIT = """
import sys, time
from sqlalchemy import event
from sqlalchemy.orm import Session
from hms.cli import main
n, argv = int(sys.argv[1]), sys.argv[2:]
writes = {"n": 0}
event.listen(Session, "after_flush", lambda s, ctx: s.info.__setitem__("wrote", True))
commit = Session.commit
def paused(self):
    self.flush()
    if self.info.pop("wrote", False):
        writes["n"] += 1
        if writes["n"] == n:
            print("PAUSED-BEFORE-COMMIT", flush=True)
            time.sleep(600)
    return commit(self)
Session.commit = paused
sys.exit(main(argv))
"""


def kill_inside_commit(env: dict[str, str], argv: list[str], nth: int = 1) -> str:
    """Start `hms argv`, wait until its nth writing transaction is about to commit, SIGKILL it there."""
    p = subprocess.Popen([sys.executable, "-c", _PAUSE_AT_COMMIT, str(nth), *argv], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out = []
    assert p.stdout is not None
    try:
        for line in p.stdout:
            out.append(line)
            if line.strip() == "PAUSED-BEFORE-COMMIT":
                break
        else:
            raise AssertionError(f"hms {argv} never reached commit {nth}: {''.join(out)} {p.stderr.read()}")  # type: ignore[union-attr]
        os.killpg(p.pid, signal.SIGKILL)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(30)
    assert p.returncode == -signal.SIGKILL
    return "".join(out)


def prod_rows(env: str = "prod") -> list[Deployment]:
    with session_scope(read_only=True) as s:
        return list(s.scalars(select(Deployment).where(Deployment.environment == env).order_by(Deployment.id)))


def in_force_sha(env: str = "prod") -> str | None:
    with session_scope(read_only=True) as s:
        d = deployments.in_force(s, env, PID)
        return d.bundle_sha256 if d else None


def one_in_force(env: str = "prod") -> None:
    """No duplicate deployment: at most one live row per environment and protocol."""
    rows = prod_rows(env)
    assert sum(d.state == "live" for d in rows) <= 1, [(d.version, d.state) for d in rows]


def served(urls: list[str], timeout: float = 5.0) -> set[str]:
    """The bundle each replica answers with, once every replica answers (killed ones come back)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as c:
        while True:
            try:
                return {c.post(f"{u}/v1/protocols/{PID}/decide", json={"input": FAMILY}).json()["bundle_sha256"]
                        for u in urls}
            except (httpx.HTTPError, KeyError):
                assert time.monotonic() < deadline, "replicas did not come back"
                time.sleep(0.05)


def fleet_agrees(fleet: chaos.LocalFleet, sha: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (got := served(fleet.urls(), timeout)) != {sha}:
        assert time.monotonic() < deadline, f"replicas serve {got}, the registry says {sha[:12]}"
        time.sleep(0.05)


@pytest.fixture
def two_versions(env, monkeypatch):  # type: ignore[no-untyped-def]
    """v3 then v4 approved and promoted everywhere (v4 live in prod, v3 its previous)."""
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", env["HMS_PIPELINE_CONFIG"])
    from hms.pipeline_config import load_pipeline_config

    cfg = load_pipeline_config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready(record(variant(4, max_payment=3000)), cfg)  # recorded once v3 is out: it supersedes v3
    return cfg, v3, v4


@pytest.fixture
def fleet():  # type: ignore[no-untyped-def]
    f = chaos.LocalFleet("prod", 3)
    f.start()
    try:
        assert f.wait_ready(60)
        yield f
    finally:
        f.stop()


# ---- replicas killed --------------------------------------------------------------------------------------------
def test_replicas_killed_around_a_scheduled_activation_come_back_serving_the_registrys_version(
    two_versions, fleet, sh: Run
):
    cfg, v3, v4 = two_versions
    at = datetime.now(UTC) + timedelta(seconds=3)
    promote_all(v4, cfg, activate_at=at, run_id="run-a")
    fleet_agrees(fleet, v3.sha256)
    rng = random.Random(8)
    while datetime.now(UTC) < at - timedelta(seconds=0.15):
        time.sleep(0.01)
    before = fleet.kill(0.34, rng)  # just before the effective time
    while datetime.now(UTC) < at + timedelta(seconds=0.05):
        time.sleep(0.005)
    after = fleet.kill(0.34, rng)  # just after it
    assert before and after
    fleet_agrees(fleet, v4.sha256)
    assert fleet.restarts >= 2
    status = as_json(sh, "rule", "status", PID)["environments"][2]  # settles the due activation
    assert status["live"]["sha256"] == v4.sha256 == in_force_sha()
    one_in_force()
    assert [e["action"] for e in audit_entries(sh)].count("activation.live") == 1
    audit_ok(sh)


def test_a_replica_killed_during_a_rollback_comes_back_serving_the_restored_version(
    two_versions, env, fleet, sh: Run
):
    cfg, v3, v4 = two_versions
    promote_all(v4, cfg)
    fleet_agrees(fleet, v4.sha256)
    rb = subprocess.Popen([sys.executable, "-m", "hms", "rule", "rollback", PID, "--env", "prod"], env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = []
    while rb.poll() is None:  # keep killing replicas while the rollback runs
        killed += fleet.kill(0.34, random.Random(len(killed)))
        time.sleep(0.05)
    killed += fleet.kill(0.34, random.Random(99))  # and one as it lands
    assert rb.returncode == 0, rb.stderr.read()  # type: ignore[union-attr]
    assert killed
    fleet_agrees(fleet, v3.sha256)
    assert in_force_sha() == v3.sha256
    one_in_force()
    audit_ok(sh)


# ---- commands killed inside their transaction --------------------------------------------------------------------
def test_deploy_killed_before_commit_leaves_nothing_and_a_rerun_deploys_once(two_versions, env, fleet, sh: Run):
    _cfg, v3, v4 = two_versions
    for e in ("staging", "preprod"):  # v4 may enter prod now; prod still serves v3
        sh("rule", "deploy", v4.sha256, "--env", e)
    rows, entries = len(prod_rows()), audit_entries(sh)
    kill_inside_commit(env, ["rule", "deploy", v4.sha256, "--env", "prod"])
    assert len(prod_rows()) == rows and audit_entries(sh) == entries
    assert in_force_sha() == v3.sha256
    fleet_agrees(fleet, v3.sha256)
    audit_ok(sh)
    sh("rule", "deploy", v4.sha256, "--env", "prod")
    sh("rule", "deploy", v4.sha256, "--env", "prod")  # again: idempotent
    assert [d.bundle_sha256 for d in prod_rows()].count(v4.sha256) == 1
    fleet_agrees(fleet, v4.sha256)
    one_in_force()
    audit_ok(sh)


def test_a_scheduled_deploy_killed_before_commit_schedules_nothing(two_versions, env, sh: Run):
    _cfg, _v3, v4 = two_versions
    for e in ("staging", "preprod"):
        sh("rule", "deploy", v4.sha256, "--env", e)
    entries = audit_entries(sh)
    kill_inside_commit(env, ["rule", "deploy", v4.sha256, "--env", "prod", "--schedule", "+30s", "--run-id", "r1"])
    assert audit_entries(sh) == entries
    assert as_json(sh, "rule", "status", PID)["environments"][2]["pending"] == []
    audit_ok(sh)


def test_rollback_killed_before_commit_changes_nothing_and_a_rerun_rolls_back_once(two_versions, env, fleet, sh: Run):
    cfg, v3, v4 = two_versions
    promote_all(v4, cfg)
    fleet_agrees(fleet, v4.sha256)
    entries = audit_entries(sh)
    kill_inside_commit(env, ["rule", "rollback", PID, "--env", "prod"])
    assert audit_entries(sh) == entries and in_force_sha() == v4.sha256
    fleet_agrees(fleet, v4.sha256)
    sh("rule", "rollback", PID, "--env", "prod")
    fleet_agrees(fleet, v3.sha256)
    assert [d.state for d in prod_rows() if d.bundle_sha256 == v4.sha256] == ["rolled_back"]
    one_in_force()
    audit_ok(sh)


def test_promote_killed_between_environments_leaves_whole_environments_and_a_rerun_finishes(
    two_versions, env, sh: Run, tmp_path
):
    _cfg, v3, v4 = two_versions
    pkg = tmp_path / "v4.tgz"
    pkg.write_bytes(v4.content)
    # writing commits of `hms promote`: 1 = staging (the bundle is already recorded), 2 = preprod, 3 = prod
    kill_inside_commit(env, ["promote", str(pkg), "--run-id", "run-k"], nth=2)
    status = {e["environment"]: e for e in as_json(sh, "rule", "status", PID)["environments"]}
    assert status["staging"]["live"]["sha256"] == v4.sha256
    assert status["preprod"]["live"]["sha256"] == v3.sha256 and status["prod"]["live"]["sha256"] == v3.sha256
    audit_ok(sh)
    sh("promote", str(pkg), "--run-id", "run-k")
    for e in ("staging", "preprod", "prod"):
        assert [d.bundle_sha256 for d in prod_rows(e)].count(v4.sha256) == 1, e  # no duplicate deployment
        one_in_force(e)
        assert in_force_sha(e) == v4.sha256
    audit_ok(sh)


@pytest.mark.parametrize("seed", range(3))
def test_commands_killed_at_random_instants_never_leave_a_half_applied_change(two_versions, env, sh: Run, seed):
    cfg, v3, v4 = two_versions
    promote_all(v4, cfg)
    rng = random.Random(seed)
    for _ in range(6):
        argv = rng.choice([["rule", "rollback", PID, "--env", "prod"], ["rule", "deploy", v4.sha256, "--env", "prod"]])
        p = subprocess.Popen([sys.executable, "-m", "hms", *argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.1, 1.2))
        p.send_signal(signal.SIGKILL)
        p.wait()
        one_in_force()
        assert in_force_sha() in (v3.sha256, v4.sha256)
        audit_ok(sh)
    # every committed change has its audit entry and nothing else: one deploy/rollback entry per prod row change
    rows = prod_rows()
    changes = [e for e in audit_entries(sh) if e["action"] in ("deploy.live", "rollback.live")
               and e["details"].get("environment") == "prod"]
    assert len(changes) == len(rows), ([(d.version, d.state) for d in rows], [e["action"] for e in changes])


def test_undoing_a_run_killed_mid_way_or_run_twice_restores_once_and_never_reapplies_the_failed_version(
    two_versions, env, sh: Run
):
    """What the pipeline's rollback task does when its worker dies and Airflow runs it again."""
    cfg, v3, v4 = two_versions
    with session_scope() as s:  # the run got v4 into staging and preprod, then failed
        for e in ("staging", "preprod"):
            deployments.deploy(s, v4, e, activate_at=None, actor="airflow", config=cfg, run_id="run-x")
    entries = audit_entries(sh)
    kill_inside_commit(env, ["rule", "rollback", "--run", "run-x"])
    assert audit_entries(sh) == entries and in_force_sha("staging") == v4.sha256
    for _ in range(3):  # the retried task, then an operator running include/rollback.sh --run, then again
        sh("rule", "rollback", "--run", "run-x")
        for e in ("staging", "preprod", "prod"):
            assert in_force_sha(e) == v3.sha256, e
            one_in_force(e)
    assert [e["action"] for e in audit_entries(sh)].count("rollback.live") == 2
    audit_ok(sh)
