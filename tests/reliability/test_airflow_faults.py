"""Faults in a REAL Airflow (devtools.airflow_stack): SIGKILL the scheduler — and with it the LocalExecutor task
process running a step (the worker) — or the triggerer, in the middle of a promotion, of the activation wait
and of a rollback. After a restart the run must resume (the orphaned task is reset and runs again) or fail
cleanly; every environment's registry state must match what a replica serves; no deployment is duplicated;
`hms audit verify` passes.

The stack gets short failure-detection settings (a killed scheduler is declared dead after 5 s and its
orphaned tasks reset at once) so a scenario takes a minute or two, not Airflow's default five minutes.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from hms import deployments, protocol
from hms.pipeline_config import load_pipeline_config
from hms.registry import audit, db
from hms.registry.db import session_scope
from hms.registry.models import Deployment
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import pin_file, promote_all, ready, record, variant, write_config
from tests.reliability.conftest import FAMILY, PID, serve

pytestmark = [pytest.mark.airflow, pytest.mark.slow]

DAG = "policy_wildfire-aid-2024"
ENVS = ("staging", "preprod", "prod")
FAST_FAILURE_DETECTION = {
    "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "5",
    "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "5",
    "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "30",
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devtools.airflow_stack import AirflowStack

    home = tmp_path_factory.mktemp("airflow-faults")
    approvals = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())["approvals"]
    config = write_config(home / "pipeline.yml", approvals={**approvals, "poll_seconds": 2})
    s = AirflowStack(home, env={"HMS_HOME": str(home / "hms-unused"), "HMS_PIPELINE_CONFIG": str(config),
                                **FAST_FAILURE_DETECTION})
    s.start()
    yield s
    s.stop()


@pytest.fixture
def airflow(stack: Any, hms_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The module's stack pointed at this test's registry (scheduler and triggerer restarted with it)."""
    config = Path(stack.env["HMS_PIPELINE_CONFIG"])
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(config))
    db.upgrade()
    stack.reconfigure({"HMS_HOME": str(hms_home)}, components=("scheduler", "triggerer"))
    return stack


def wait_for(stack: Any, run_id: str, want: dict[str, set[str]], timeout: float = 240, every: float = 0.25) -> str:
    """Poll until one of the tasks in ``want`` is in one of its states; returns that task id."""
    deadline = time.monotonic() + timeout
    while True:
        states = stack.task_states(DAG, run_id)
        for task, wanted in want.items():
            if states.get(task) in wanted:
                return task
        if stack.run_state(DAG, run_id) in ("success", "failed") or time.monotonic() > deadline:
            pytest.fail(f"none of {want} happened: {states}")
        time.sleep(every)


def crash_and_restart(stack: Any, *components: str, down: float = 2.0) -> None:
    for c in components:
        stack.kill(c, signal.SIGKILL)
    time.sleep(down)
    for c in components:
        stack.restart(c)


def rows(env: str) -> list[Deployment]:
    with session_scope(read_only=True) as s:
        out = list(s.scalars(select(Deployment).where(Deployment.environment == env).order_by(Deployment.id)))
        s.expunge_all()
        return out


def registry_matches_what_replicas_serve(hms_env: dict[str, str]) -> dict[str, int | None]:
    """Per environment: the version in force by the registry == the version a fresh replica answers with."""
    seen = {}
    for env in ENVS:
        with session_scope(read_only=True) as s:
            d = deployments.in_force(s, env, PID)
        with serve(hms_env, env) as (url, _):
            deadline = time.monotonic() + 10
            while (r := httpx.post(f"{url}/v1/protocols/{PID}/decide", json={"input": FAMILY})).status_code == 503:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        if d is None:
            assert r.status_code == 404, (env, r.text)
        else:
            assert r.status_code == 200 and r.json()["bundle_sha256"] == d.bundle_sha256, (env, r.text)
        live = [x for x in rows(env) if x.state == "live"]
        assert len(live) <= 1, (env, [(x.version, x.state) for x in rows(env)])  # no duplicate deployment
        seen[env] = d.version if d else None
    with session_scope(read_only=True) as s:
        assert audit.verify(s).ok
    return seen


def _approved_v3() -> str:
    cfg = load_pipeline_config()
    b = record(protocol.load(WILDFIRE))  # the bytes the run's build step packs: the same hash
    ready(b, cfg)
    return b.sha256


def test_scheduler_and_worker_killed_mid_promotion_the_run_resumes_and_the_fleet_matches_the_registry(
    airflow, env
):
    sha = _approved_v3()
    run_id = airflow.trigger(DAG, {"effective_at": "+5s", "chaos_window": "3s"})
    hit = wait_for(airflow, run_id, {t: {"running"} for t in ("staging.deploy", "staging.smoke", "preprod.deploy",
                                                                  "preprod.smoke", "preprod.chaos")})
    crash_and_restart(airflow, "scheduler")  # the task process dies with the scheduler's process group
    state = airflow.wait_for_run(DAG, run_id, timeout=400)
    states = airflow.task_states(DAG, run_id)
    served = registry_matches_what_replicas_serve(env)
    tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(DAG, run_id)}
    print(f"\n[airflow-faults] killed during {hit} (now try {tries[hit]}); run {state}; serving {served}")
    if state == "success":
        assert served == {"staging": 3, "preprod": 3, "prod": 3}
        assert [d.bundle_sha256 for d in rows("prod")] == [sha]
    else:  # failed cleanly: whatever the run deployed was undone
        assert states["rollback"] == "success", states
        assert served == {"staging": None, "preprod": None, "prod": None}


def test_scheduler_and_triggerer_killed_during_the_activation_wait_the_flip_still_happens_once_on_time(
    airflow, env
):
    sha = _approved_v3()
    run_id = airflow.trigger(DAG, {"effective_at": "+40s", "chaos_window": "2s"})
    wait_for(airflow, run_id, {"flip.wait_for_effective_time": {"deferred"}}, timeout=300)
    crash_and_restart(airflow, "triggerer", "scheduler")
    assert airflow.wait_for_run(DAG, run_id, timeout=300) == "success", airflow.task_states(DAG, run_id)
    prod = rows("prod")
    assert [(d.bundle_sha256, d.state) for d in prod] == [(sha, "live")]
    verify = next(ti for ti in airflow.task_instances(DAG, run_id) if ti["task_id"] == "flip.verify_live")
    assert datetime.fromisoformat(verify["start_date"].replace("Z", "+00:00")) >= prod[0].activate_at
    assert registry_matches_what_replicas_serve(env) == {"staging": 3, "preprod": 3, "prod": 3}


def test_scheduler_and_worker_killed_during_the_rollback_the_run_still_ends_failed_and_rolled_back(
    airflow, env
):
    cfg = load_pipeline_config()
    v2 = record(variant(2))
    ready(v2, cfg)
    promote_all(v2, cfg)
    _approved_v3()
    conf = {"chaos_window": "3s", "chaos_replicas": 1, "chaos_min_health": 1.0, "effective_at": "+1h"}
    run_id = airflow.trigger(DAG, conf)
    hit = wait_for(airflow, run_id, {"rollback": {"queued", "running"}}, timeout=300, every=0.1)
    crash_and_restart(airflow, "scheduler")
    assert airflow.wait_for_run(DAG, run_id, timeout=400) == "failed"
    states = airflow.task_states(DAG, run_id)
    tries = {ti["task_id"]: ti["try_number"] for ti in airflow.task_instances(DAG, run_id)}
    print(f"\n[airflow-faults] killed with {hit} queued/running (now try {tries[hit]}); tasks {states}")
    assert states["rollback"] == "success" and states["fail_run"] == "failed", states
    assert registry_matches_what_replicas_serve(env) == {"staging": 2, "preprod": 2, "prod": 2}
    undone = {d.environment: d.state for d in rows("staging") + rows("preprod") if d.run_id == run_id
              and d.version == 3}
    assert undone == {"staging": "rolled_back", "preprod": "rolled_back"}


@pytest.mark.postgres
def test_the_registry_password_never_appears_in_airflow_logs_of_a_whole_run(stack, hms_home, monkeypatch):
    """A full run on a PostgreSQL registry whose URL carries a password: every component log and every
    task log (as the REST API serves it to ops) is searched for the password."""
    from tests.fixtures_registry import _postgres_database

    secret = "Pg-S3cret-in-url"
    databases = _postgres_database()
    from sqlalchemy.engine import make_url

    url = make_url(next(databases)).set(password=secret).render_as_string(hide_password=False)
    try:
        monkeypatch.setenv("HMS_DATABASE_URL", url)
        monkeypatch.setenv("HMS_PIPELINE_CONFIG", stack.env["HMS_PIPELINE_CONFIG"])
        db.reset_engines()
        db.upgrade()
        pin_file(Path(stack.env["HMS_PIPELINE_CONFIG"]))  # a shared registry is never bootstrapped from a file
        stack.reconfigure({"HMS_HOME": str(hms_home), "HMS_DATABASE_URL": url}, components=("scheduler", "triggerer"))
        _approved_v3()
        run_id = stack.trigger(DAG, {"effective_at": "+5s", "chaos_window": "2s"})
        assert stack.wait_for_run(DAG, run_id, timeout=300) == "success", stack.task_states(DAG, run_id)
        tis = [ti for ti in stack.task_instances(DAG, run_id) if ti["state"] == "success"]
        task_logs = "\n".join(stack.task_log(DAG, run_id, ti["task_id"], max(1, ti["try_number"])) for ti in tis)
        files = "\n".join(f.read_text(errors="replace") for f in (Path(stack.env["AIRFLOW_HOME"]) / "logs").rglob("*")
                          if f.is_file())
        assert "deploy" in task_logs and len(files) > 1000  # the logs were really read
        assert secret not in task_logs and secret not in files
    finally:
        stack.reconfigure({"HMS_DATABASE_URL": ""}, components=("scheduler", "triggerer"))
        db.reset_engines()
        next(databases, None)
