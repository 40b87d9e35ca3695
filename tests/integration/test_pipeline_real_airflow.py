"""The policy DAG through a REAL Airflow: api-server, scheduler (LocalExecutor), dag-processor and triggerer
as separate processes (devtools.airflow_stack), driven over the REST API like ops would.

One stack for the module (starting Airflow costs ~15–30 s); each scenario gets its own registry: the
stack's scheduler and triggerer are restarted with the scenario's HMS_HOME (and pipeline settings). Clerks act through
the core (``deployments.record_review``), exactly as the CLI and the clerk page do, while the run waits.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from hms import deployments, protocol
from hms.pipeline_config import load_pipeline_config
from hms.registry import db, store
from hms.registry.db import session_scope
from hms.registry.models import Deployment
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import approve, promote_all, ready, record, serving, variant, write_config

pytestmark = pytest.mark.airflow

DAG = "policy_wildfire-aid-2024"
PID = "wildfire-aid-2024"


def pipeline_config(path: Path, **changes: Any) -> Path:
    """The repository's pipeline settings, no freeze windows, registry polls every 2 s (not 30 s)."""
    approvals = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())["approvals"]
    return write_config(path, approvals={**approvals, "poll_seconds": 2}, **changes)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devtools.airflow_stack import AirflowStack

    home = tmp_path_factory.mktemp("airflow")
    config = pipeline_config(home / "pipeline.yml")  # the dag-processor bakes poll intervals into the DAG
    s = AirflowStack(home, env={"HMS_HOME": str(home / "hms-unused"), "HMS_PIPELINE_CONFIG": str(config)})
    s.start()
    yield s
    s.stop()


@pytest.fixture
def use_stack(stack: Any, hms_home: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Point the module's stack at this test's registry (HMS_HOME from the autouse fixture) and, optionally,
    other pipeline settings or another copy of include/ (HMS_REPO): the scheduler (its task processes) and
    the triggerer restart with them, the dag-processor too when the protocol files change."""

    def use(config: Path | None = None, repo: Path = ROOT, api_server: bool = False, parse: bool = False) -> Any:
        config = config or Path(stack.env["AIRFLOW_HOME"]) / "pipeline.yml"
        monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(config))
        db.upgrade()
        components = ("scheduler", "triggerer")
        if api_server:  # its listeners (a run marked failed through the REST API) must write to this registry
            components += ("api-server",)
        if parse or stack.env.get("HMS_REPO", str(ROOT)) != str(repo):  # the DAGs change (files, bundle lists)
            components += ("dag-processor",)
        stack.reconfigure(
            {"HMS_HOME": str(hms_home), "HMS_PIPELINE_CONFIG": str(config), "HMS_REPO": str(repo)},
            components=components,
        )
        return stack

    return use


def wait_for_task(stack: Any, run_id: str, task_id: str, states: set[str], timeout: float = 180) -> str:
    """Poll until ``task_id`` reaches one of ``states``; fail early (with all states) if the run ends first."""
    deadline = time.monotonic() + timeout
    while True:
        tis = stack.task_states(DAG, run_id)
        if tis.get(task_id) in states:
            return tis[task_id]
        if stack.run_state(DAG, run_id) in ("success", "failed") or time.monotonic() > deadline:
            pytest.fail(f"{task_id} never reached {states}: {tis}")
        time.sleep(1)


def review(sha256: str, user: str, role: str, decision: str, comment: str) -> None:
    with session_scope() as s:
        deployments.record_review(
            s,
            deployments.load_bundle(s, sha256),
            user=user,
            role=role,
            decision=decision,
            comment=comment,
            config=load_pipeline_config(),
        )


def deployment_rows() -> list[Deployment]:
    with session_scope() as s:
        rows = list(s.scalars(select(Deployment).order_by(Deployment.id)))
        s.expunge_all()
        return rows


def test_approved_by_two_clerks_while_waiting_the_bundle_goes_live_in_prod_at_its_effective_time(use_stack):
    airflow = use_stack()
    run_id = airflow.trigger(DAG, {"effective_at": "+12s", "chaos_window": "3s"})
    wait_for_task(airflow, run_id, "review.approvals", {"deferred"})
    with session_scope() as s:
        sha = deployments.resolve_bundle_row(s, f"{PID}@3").sha256
    review(sha, "alice", "legal", "approve", "citation checked")
    review(sha, "bob", "budget", "approve", "within the cap")

    assert airflow.wait_for_run(DAG, run_id, timeout=300) == "success", airflow.task_states(DAG, run_id)
    states = airflow.task_states(DAG, run_id)
    assert states["publish"] == "success" and states["rollback"] == "skipped", states
    assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 3, "preprod": 3, "prod": 3}
    prod = [d for d in deployment_rows() if d.environment == "prod"]
    assert len(prod) == 1 and prod[0].bundle_sha256 == sha and prod[0].run_id == run_id
    # The flip waited in the triggerer (deferred) and verified only once the effective time had come.
    assert "deferring until" in airflow.task_log(DAG, run_id, "flip.wait_for_effective_time")
    verify = next(ti for ti in airflow.task_instances(DAG, run_id) if ti["task_id"] == "flip.verify_live")
    assert datetime.fromisoformat(verify["start_date"].replace("Z", "+00:00")) >= prod[0].activate_at
    # Every deploy was the pipeline's principal acting for this run, on behalf of whoever triggered it (admin).
    with session_scope() as s:
        deploys = [json.loads(e.details)["principal"] for e in audit_entries(s) if e.action.startswith("deploy.")]
    assert len(deploys) == 3 and all(
        p == {"name": "airflow", "via": "pipeline", "run_id": run_id, "on_behalf_of": "admin"} for p in deploys
    ), deploys


def test_a_compliance_violation_stops_the_run_before_anything_is_deployed(use_stack):
    airflow = use_stack()
    data = protocol.load(WILDFIRE).data
    data["metadata"]["version"] = 4
    data["metadata"]["authority"] = ""
    bad = record(protocol.from_data(data, "no-authority.yml"))

    run_id = airflow.trigger(DAG, {"sha256": bad.sha256})
    assert airflow.wait_for_run(DAG, run_id, timeout=180) == "failed"
    states = airflow.task_states(DAG, run_id)
    assert states["test.cases_and_simulation"] == "success" and states["compliance.scan"] == "failed", states
    assert states["review.approvals"] == "upstream_failed" and states["staging.deploy"] == "upstream_failed"
    assert "metadata.authority" in airflow.task_log(DAG, run_id, "compliance.scan")
    assert deployment_rows() == []


def test_chaos_failing_in_preprod_rolls_staging_and_preprod_back_and_the_run_fails(use_stack):
    airflow = use_stack()
    cfg = load_pipeline_config()
    v2 = record(variant(2))  # what every environment serves before this run
    ready(v2, cfg)  # passing checks and approvals: what its own earlier run would have recorded
    promote_all(v2, cfg)
    v3 = record(protocol.load(WILDFIRE))
    approve(v3, cfg)

    # One replica, killed during the window, and no failed request tolerated: the hypothesis cannot hold.
    conf = {"chaos_window": "3s", "chaos_replicas": 1, "chaos_min_health": 1.0, "effective_at": "+1h"}
    run_id = airflow.trigger(DAG, conf)
    assert airflow.wait_for_run(DAG, run_id, timeout=240) == "failed"
    states = airflow.task_states(DAG, run_id)
    assert states["preprod.chaos"] == "failed" and states["prod.schedule"] == "upstream_failed", states
    assert states["rollback"] == "success" and states["fail_run"] == "failed", states
    assert "hypothesis failed" in airflow.task_log(DAG, run_id, "preprod.chaos")
    assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 2, "preprod": 2, "prod": 2}
    undone = {d.environment: d.state for d in deployment_rows() if d.run_id == run_id and d.version == 3}
    assert undone == {"staging": "rolled_back", "preprod": "rolled_back"}


def test_a_clerk_rejecting_the_bundle_fails_the_review_with_the_comment_and_nothing_is_deployed(use_stack):
    airflow = use_stack()
    run_id = airflow.trigger(DAG, {})
    wait_for_task(airflow, run_id, "review.approvals", {"deferred"})
    with session_scope() as s:
        sha = deployments.resolve_bundle_row(s, f"{PID}@3").sha256
    review(sha, "alice", "legal", "reject", "the income test cites the 2023 poverty line")

    assert airflow.wait_for_run(DAG, run_id, timeout=120) == "failed"
    states = airflow.task_states(DAG, run_id)
    assert states["review.approvals"] == "failed" and states["staging.deploy"] == "upstream_failed", states
    assert "the income test cites the 2023 poverty line" in airflow.task_log(DAG, run_id, "review.approvals")
    assert deployment_rows() == []


def test_a_prod_replica_not_serving_the_new_version_after_the_flip_rolls_every_environment_back(use_stack, tmp_path):
    from hms.chaos import free_port

    dead = f"http://127.0.0.1:{free_port()}"  # prod's only replica: nothing answers there
    prod_urls = [{"name": "staging"}, {"name": "preprod"}, {"name": "prod", "urls": [dead]}]
    airflow = use_stack(pipeline_config(tmp_path / "prod-urls.yml", environments=prod_urls))
    cfg = load_pipeline_config()
    v2 = record(variant(2))
    ready(v2, cfg)  # passing checks and approvals: what its own earlier run would have recorded
    promote_all(v2, cfg)
    approve(record(protocol.load(WILDFIRE)), cfg)

    run_id = airflow.trigger(DAG, {"effective_at": "+3s", "chaos_window": "2s"})
    assert airflow.wait_for_run(DAG, run_id, timeout=240) == "failed"
    states = airflow.task_states(DAG, run_id)
    assert states["flip.wait_for_effective_time"] == "success" and states["flip.verify_live"] == "failed", states
    assert states["rollback"] == "success" and states["fail_run"] == "failed", states
    assert dead.removeprefix("http://") in airflow.task_log(DAG, run_id, "flip.verify_live")
    assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 2, "preprod": 2, "prod": 2}


def test_ops_marking_the_run_failed_while_the_flip_waits_rolls_every_environment_back(use_stack):
    """Issue 14 item 4: PATCH dagRuns state=failed (what the UI's "Mark failed" sends) while prod is pending.

    Airflow skips the DAG's rollback task then (its trigger rule sees no failed upstream); the listener
    (hms_operators.run_listener, on_dag_run_failed in the api-server) aborts the run in the core instead.
    """
    airflow = use_stack(api_server=True)
    cfg = load_pipeline_config()
    v2 = record(variant(2))
    ready(v2, cfg)
    promote_all(v2, cfg)
    v3 = record(protocol.load(WILDFIRE))
    approve(v3, cfg)

    run_id = airflow.trigger(DAG, {"effective_at": "+1h", "chaos_window": "2s"})
    wait_for_task(airflow, run_id, "flip.wait_for_effective_time", {"deferred"}, timeout=240)
    assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 3, "preprod": 3, "prod": 2}
    with session_scope() as s:
        (pending,) = deployments.pending(s, "prod", PID)
        at = pending.activate_at
        assert pending.run_id == run_id and deployments.in_force(s, "prod", PID, at).version == 3

    with airflow.client() as c:
        r = c.patch(f"/api/v2/dags/{DAG}/dagRuns/{run_id}", json={"state": "failed"})
    assert r.status_code == 200, r.text
    assert airflow.run_state(DAG, run_id) == "failed"
    assert airflow.task_states(DAG, run_id)["rollback"] in ("skipped", "none", "removed")  # the DAG did not undo it

    assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 2, "preprod": 2, "prod": 2}
    with session_scope() as s:
        assert deployments.pending(s, "prod", PID) == []
        assert deployments.in_force(s, "prod", PID, at).version == 2  # at its instant prod stays on v2
    undone = {d.environment: d.state for d in deployment_rows() if d.run_id == run_id and d.version == 3}
    assert undone == {"staging": "rolled_back", "preprod": "rolled_back", "prod": "cancelled"}
    with session_scope() as s:
        entries = [e for e in audit_entries(s) if e.action == "run.aborted" and e.subject == run_id]
        assert len(entries) == 1 and entries[0].actor == "airflow"
        assert "manually set to `failed`" in json.loads(entries[0].details)["reason"]


def wait_for_pick(stack: Any, sha256: str, timeout: float = 60) -> None:
    """Until the trigger form's bundle list (the DAG's ``bundle`` param, read at parse time) offers ``sha256``."""
    deadline = time.monotonic() + timeout
    while True:
        with stack.client() as c:
            params = c.get(f"/api/v2/dags/{DAG}/details").json().get("params") or {}
        enum = ((params.get("bundle") or {}).get("schema") or {}).get("enum") or []
        if sha256 in enum:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"the bundle field never offered {sha256[:12]}: {params.get('bundle')}")
        time.sleep(1)


def test_a_bundle_picked_in_the_trigger_form_runs_again_under_a_new_id_and_a_rollback_outside_notes_its_run(
    use_stack,
):
    """Issue 18: run a pushed bundle from the UI; run ids never burn; a rollback outside a run tells its run."""
    from hms import identity
    from hms.airflow_api import AirflowApi
    from hms.ci import choose_run, run_id_for

    airflow = use_stack(parse=True)  # the dag-processor reads this registry's bundles into the trigger form
    cfg = load_pipeline_config()
    v2 = record(variant(2))
    ready(v2, cfg)
    promote_all(v2, cfg)  # prod serves v2, deployed by hand
    v4 = record(variant(4))  # a pushed bundle that is not the repository file (v3)
    approve(v4, cfg)
    wait_for_pick(airflow, v4.sha256)

    # Its first run fails at build, before any environment: fail_run says so instead of claiming a rollback.
    first, again = run_id_for(v4.sha256), None
    try:
        airflow.trigger(DAG, {"bundle": v4.sha256, "effective_at": "2020-01-01T00:00:00+00:00"}, run_id=first)
        assert airflow.wait_for_run(DAG, first, timeout=120) == "failed"
        assert airflow.task_states(DAG, first)["build.schedule_check"] == "failed"
        assert "build.schedule_check failed; no environment was touched; nothing to roll back" in airflow.task_log(
            DAG, first, "fail_run"
        )

        # The same bundle again: a new id that still names it, and it starts (no 409) and deploys the pick.
        api = AirflowApi(airflow.url, "admin", airflow.users["admin"], timeout=30)
        api.login()
        again, followed = choose_run(api, DAG, v4.sha256)
        assert followed is None and again.startswith(first + "-") and again != first
        assert api.trigger(DAG, again, {"bundle": v4.sha256, "effective_at": "+3s", "chaos_window": "2s"}) is True
        assert airflow.wait_for_run(DAG, again, timeout=240) == "success", airflow.task_states(DAG, again)
        assert {env: serving(env) for env in ("staging", "preprod", "prod")} == {"staging": 4, "preprod": 4, "prod": 4}
        assert {d.environment for d in deployment_rows() if d.run_id == again and d.bundle_sha256 == v4.sha256} == {
            "staging",
            "preprod",
            "prod",
        }

        # Rolled back from a shell: the run that had deployed v4 says so in Airflow, read back through the REST API.
        env = {
            **os.environ,
            "HMS_AIRFLOW_URL": airflow.url,
            "HMS_AIRFLOW_USER": "admin",
            "HMS_AIRFLOW_PASSWORD": airflow.users["admin"],
        }
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("hms")),
                "rule",
                "rollback",
                PID,
                "--env",
                "prod",
                "--reason",
                "wrong poverty table",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert serving("prod") == 2
        note = api.run(DAG, again)["note"]
        assert note.startswith("prod rolled back to v2 at ") and "(America/New_York)" in note, note
        assert note.endswith(f" by {identity.os_account()}: wrong poverty table"), note
        assert f"note on Airflow run {DAG}/{again}: {note}" in done.stdout
    finally:  # the intake test below counts the bundle- runs of this DAG
        with airflow.client() as c:
            for run_id in filter(None, (first, again)):
                c.delete(f"/api/v2/dags/{DAG}/dagRuns/{run_id}")


def audit_entries(s: Any) -> list[Any]:
    from hms.registry.models import AuditEntry

    return list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def bundle_runs(stack: Any, dag_id: str) -> dict[str, dict[str, Any]]:
    with stack.client() as c:
        runs = c.get(f"/api/v2/dags/{dag_id}/dagRuns", params={"limit": 100}).json()["dag_runs"]
    return {r["dag_run_id"]: r for r in runs if r["dag_run_id"].startswith("bundle-")}


def run_intake(stack: Any) -> None:
    run_id = stack.trigger("hms_intake")  # unpauses it too: from now on it also runs every minute
    assert stack.wait_for_run("hms_intake", run_id, timeout=180) == "success", stack.task_states("hms_intake", run_id)


def test_intake_starts_exactly_one_pipeline_run_per_new_bundle_hash(use_stack, tmp_path):
    from devtools.airflow_stack import StackError

    repo = tmp_path / "repo"  # a copy of include/ whose protocol files this test may change
    shutil.copytree(ROOT / "include", repo / "include")
    for other in (repo / "include" / "protocols").iterdir():  # the two samples only: their runs are cleaned up below
        if other.name not in (WILDFIRE.name, "chip-income-cap.yml"):
            other.unlink()
    extra = repo / "include" / "protocols" / "wildfire-aid-2025.yml"
    data = protocol.load(WILDFIRE).data
    data["metadata"].update(id="wildfire-aid-2025", version=1)
    extra.write_text(yaml.safe_dump(data))
    airflow = use_stack(repo=repo)
    airflow.wait_for_dags(["policy_wildfire-aid-2025", "hms_intake"], timeout=120)
    try:
        run_intake(airflow)  # records the three protocol files: three new bundles, one run each
        with session_scope() as s:
            first = {
                pid: [b.sha256 for b in store.find_bundles(s, pid)]
                for pid in (PID, "chip-income-cap", "wildfire-aid-2025")
            }
        assert all(len(shas) == 1 for shas in first.values()), first
        for pid, (sha,) in first.items():
            runs = bundle_runs(airflow, f"policy_{pid}")
            assert list(runs) == [f"bundle-{sha[:12]}"] and runs[f"bundle-{sha[:12]}"]["conf"] == {"sha256": sha}

        run_intake(airflow)  # nothing new: no second run for the same bundles
        assert list(bundle_runs(airflow, DAG)) == [f"bundle-{first[PID][0][:12]}"]
        with pytest.raises(StackError, match="409"):  # and Airflow itself refuses a second run with that id
            airflow.trigger(DAG, {"sha256": first[PID][0]}, run_id=f"bundle-{first[PID][0][:12]}")

        data["metadata"].update(version=2, title="Wildfire relief payment, 2025 rates")
        extra.write_text(yaml.safe_dump(data))  # a changed protocol file with a new version …
        v4 = protocol.load(WILDFIRE).data  # … and version 4 of the other one, pushed with `hms rule push`
        v4["metadata"]["version"] = 4
        (tmp_path / "wildfire-v4.yml").write_text(yaml.safe_dump(v4))
        subprocess.run(
            [str(Path(sys.executable).with_name("hms")), "rule", "push", str(tmp_path / "wildfire-v4.yml")],
            check=True,
            env={**os.environ},
            capture_output=True,
            timeout=60,
        )
        run_intake(airflow)
        with session_scope() as s:
            new = {
                pid: deployments.resolve_bundle_row(s, ref).sha256
                for pid, ref in ((PID, f"{PID}@4"), ("wildfire-aid-2025", "wildfire-aid-2025@2"))
            }
        for pid, sha in new.items():
            assert set(bundle_runs(airflow, f"policy_{pid}")) == {f"bundle-{first[pid][0][:12]}", f"bundle-{sha[:12]}"}
        assert list(bundle_runs(airflow, "policy_chip-income-cap")) == [f"bundle-{first['chip-income-cap'][0][:12]}"]
    finally:
        with airflow.client() as c:
            c.patch("/api/v2/dags/hms_intake", json={"is_paused": True})
            for pid in (PID, "chip-income-cap", "wildfire-aid-2025"):
                for run_id in bundle_runs(airflow, f"policy_{pid}"):
                    c.patch(f"/api/v2/dags/policy_{pid}/dagRuns/{run_id}", json={"state": "failed"})
