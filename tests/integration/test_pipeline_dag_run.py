"""The policy DAG run end to end with Airflow's ``dag.test`` (real operators, deferrable sensors run inline).

Not the scheduler (see ../shared/research/airflow-3.3.md): that run is still to come. Approvals are given
before the run for the exact hash the build step will produce (packing is deterministic), in-process: an
`hms` command here acts as this process's OS account, which is one person, not two clerks.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hms.registry.db import session_scope
from hms.registry.models import AuditEntry
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import pin_file, review_as, write_config

HMS = str(Path(sys.executable).parent / "hms")
AIRFLOW = str(Path(sys.executable).parent / "airflow")

_RUN = textwrap.dedent("""
    import sys
    sys.path.insert(0, "plugins")
    from airflow.dag_processing.dagbag import DagBag
    import json, os
    dag = DagBag(dag_folder="dags").dags["policy_wildfire-aid-2024"]
    r = dag.test(run_conf=json.loads(os.environ.get("RUN_CONF") or '{"effective_at": "+6s", "chaos_window": "3s"}'))
    states = {ti.task_id: str(ti.state) for ti in r.get_task_instances()}
    import json
    print("RESULT " + json.dumps({"state": str(r.state), "tasks": states}))
""")


@pytest.fixture
def airflow_env(tmp_path, hms_home):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "HMS_HOME": str(hms_home),
           # dag.test needs the DAG serialized from the configured folder, not only parsed here.
           "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"), "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins")}
    env.pop("HMS_DATABASE_URL", None)
    subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True, capture_output=True, timeout=300)
    subprocess.run([HMS, "rule", "push", str(WILDFIRE)], env=env, check=True, capture_output=True, timeout=60)
    review_as("wildfire-aid-2024@3", "alice", "legal")
    review_as("wildfire-aid-2024@3", "bob", "budget")
    return env


def _run(env) -> dict:
    r = subprocess.run([sys.executable, "-c", _RUN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    lines = [x for x in r.stdout.splitlines() if x.startswith("RESULT ")]
    assert lines, r.stdout[-3000:] + r.stderr[-3000:]
    return {**json.loads(lines[-1][len("RESULT "):]), "output": r.stdout + r.stderr}


def _frozen_at_the_override(env, tmp_path) -> dict[str, str]:
    """Settings whose prod freeze covers the run's requested time (+1h) but not now: the scan passes (the bundle
    would come into force now), staging and preprod deploy, and prod's schedule is refused — a failure after
    deploying. Applied by ops (an admin; the core call of hms config apply) as the registry's pinned policy: the
    file alone changes no gate."""
    now = datetime.now(UTC)
    cfg = write_config(tmp_path / "frozen.yml", freeze_windows=[{
        "reason": "test freeze", "start": (now + timedelta(minutes=50)).isoformat(),
        "end": (now + timedelta(hours=2)).isoformat(), "environments": ["prod"]}])
    pin_file(cfg)
    return {"HMS_PIPELINE_CONFIG": str(cfg), "RUN_CONF": json.dumps({"effective_at": "+1h", "chaos_window": "3s"})}


def _pushed_with_effective_time(env, tmp_path, at: datetime) -> str:
    """A v4 of the sample whose own effective time is ``at`` (the repository file's has passed), pushed and approved."""
    from hms import protocol

    data = protocol.load(WILDFIRE).data
    data["metadata"].update(version=4, effective_at=at.isoformat())
    path = tmp_path / "wildfire-aid-2024.json"
    path.write_text(json.dumps(data))
    out = subprocess.run([HMS, "rule", "push", str(path), "--json"], env=env, check=True, capture_output=True,
                         text=True, timeout=60).stdout
    sha = json.loads(out.strip().splitlines()[-1])["sha256"]
    review_as(sha, "alice", "legal")
    review_as(sha, "bob", "budget")
    return sha


@pytest.mark.airflow
def test_prod_takes_the_effective_time_of_the_pushed_bundle_not_the_repository_file(airflow_env, tmp_path):
    at = (datetime.now(UTC) + timedelta(seconds=45)).replace(microsecond=0)
    sha = _pushed_with_effective_time(airflow_env, tmp_path, at)
    result = _run({**airflow_env, "RUN_CONF": json.dumps({"sha256": sha, "chaos_window": "3s"})})
    assert result["state"].endswith("success"), result
    with session_scope() as s:
        from hms.registry.models import Deployment

        prod = s.query(Deployment).filter_by(environment="prod", bundle_sha256=sha).one()
        assert prod.activate_at == at and prod.state == "live"  # waited for the bundle's own time


@pytest.mark.airflow
def test_a_trigger_override_before_the_bundles_effective_time_is_refused_before_any_deploy(airflow_env, tmp_path):
    sha = _pushed_with_effective_time(airflow_env, tmp_path, datetime.now(UTC) + timedelta(days=2))
    result = _run({**airflow_env, "RUN_CONF": json.dumps({"sha256": sha, "effective_at": "+20m"})})
    assert result["state"].endswith("failed"), result
    assert result["tasks"]["build.schedule_check"].endswith("failed")
    assert "earlier than the protocol's effective time" in result["output"]
    assert all(e["live"] is None for e in _status(airflow_env).values())


def _status(env) -> dict:
    out = subprocess.run([HMS, "rule", "status", "wildfire-aid-2024", "--json"], env=env, capture_output=True,
                         text=True, check=True).stdout
    return {e["environment"]: e for e in json.loads(out)["environments"]}


@pytest.mark.airflow
def test_an_approved_protocol_goes_all_the_way_to_prod_at_its_time(airflow_env):
    result = _run(airflow_env)
    assert result["state"].endswith("success"), result
    assert result["tasks"]["publish"].endswith("success")
    assert result["tasks"]["rollback"].endswith("skipped")
    assert all(e["live"] and e["live"]["version"] == 3 for e in _status(airflow_env).values())


@pytest.mark.airflow
def test_a_failure_after_deploying_rolls_back_what_the_run_touched_and_the_run_fails(airflow_env, tmp_path):
    result = _run({**airflow_env, **_frozen_at_the_override(airflow_env, tmp_path)})
    assert result["state"].endswith("failed"), result
    assert result["tasks"]["prod.schedule"].endswith("failed")
    assert result["tasks"]["rollback"].endswith("success")
    assert all(e["live"] is None for e in _status(airflow_env).values())
    audit = subprocess.run([HMS, "audit", "verify"], env=airflow_env, capture_output=True, text=True)
    assert audit.returncode == 0


@pytest.mark.airflow
def test_a_rollback_that_itself_fails_is_loud_audited_and_fails_the_run(airflow_env, tmp_path):
    repo = tmp_path / "repo"  # the same protocols, but a rollback script that cannot do its job
    shutil.copytree(ROOT / "include", repo / "include")
    script = repo / "include" / "rollback.sh"
    script.write_text("#!/usr/bin/env bash\necho 'rollback.sh: registry unreachable' >&2\nexit 1\n")
    script.chmod(0o755)
    result = _run({**airflow_env, **_frozen_at_the_override(airflow_env, tmp_path), "HMS_REPO": str(repo)})
    assert result["state"].endswith("failed"), result["tasks"]
    assert result["tasks"]["prod.schedule"].endswith("failed")
    assert result["tasks"]["rollback"].endswith("failed") and result["tasks"]["fail_run"].endswith("upstream_failed")
    loud = [line for line in result["output"].splitlines() if "ROLLBACK FAILED for run" in line]
    assert loud and all("error" in line.lower() for line in loud), loud
    assert "registry unreachable" in result["output"]
    with session_scope() as s:
        failed = s.query(AuditEntry).filter(AuditEntry.action == "rollback.failed").all()
        assert len(failed) == 1 and json.loads(failed[0].details)["exit"] == 1
    # The script undid nothing, but the run ended failed and Airflow's on_dag_run_failed listener aborted it in
    # the core (hms.abort, not the script): staging and preprod withdrawn (v3 was their first version), audited.
    assert {env: (e["live"] or {}).get("version") for env, e in _status(airflow_env).items()} == {
        "staging": None, "preprod": None, "prod": None}
    with session_scope() as s:
        (aborted,) = s.query(AuditEntry).filter(AuditEntry.action == "run.aborted").all()
        assert aborted.actor == "airflow" and len(json.loads(aborted.details)["undone"]) == 2
