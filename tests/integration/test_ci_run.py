"""``hms ci run``: the pipeline as CI runs it — stage lines, the run's outcome as exit code, bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from hms import bundle
from hms.ci import StageLines, TaskEvent, run_id_for
from hms.protocol import load
from hms.registry import models
from hms.registry.db import session_scope, upgrade
from tests.conftest import CHIP, ROOT
from tests.deploy_helpers import review_as

HMS = str(Path(sys.executable).with_name("hms"))
CONFIG = str(ROOT / ".hms-ci" / "policy-pipeline.yml")


def _env(home: Path) -> dict[str, str]:
    return {
        **os.environ,
        "HMS_HOME": str(home),
        "HMS_CI_AIRFLOW_HOME": str(home / "airflow"),
        "HMS_AIRFLOW_URL": "",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }


Review = tuple[str, str, str, str]  # user, role, decision, comment


def _recorded(sha: str) -> bool:
    with session_scope(read_only=True) as s:
        return s.get(models.Bundle, sha) is not None


def _review_when_pushed(sha: str, reviews: list[Review], stop: threading.Event, errors: list[Exception]) -> None:
    """Act as the clerks: once the run has recorded the bundle, give the reviews. In-process, each as its
    clerk: a CLI call here is this process's OS account, one person, and the clerks are two."""
    while not stop.is_set() and not _recorded(sha):
        time.sleep(1)
    for user, role, decision, comment in reviews:
        if stop.is_set():
            return
        try:
            review_as(sha, user, role, decision, comment)
        except Exception as e:  # reported by _ci: the run would otherwise only time out waiting
            errors.append(e)
            return


def _ci(home: Path, reviews: list[Review], *extra: str) -> subprocess.CompletedProcess[str]:
    """``hms ci run`` on the registry under ``home`` (this test's HMS_HOME: the clerks review in-process)."""
    assert os.environ["HMS_HOME"] == str(home), "the in-process clerks review this test's registry"
    env = _env(home)
    sha = bundle.sha256_hex(bundle.build(load(CHIP)))
    upgrade()  # the schema first: the clerks' polling never races the run's own migration
    stop = threading.Event()
    errors: list[Exception] = []
    clerks = threading.Thread(target=_review_when_pushed, args=(sha, reviews, stop, errors), daemon=True)
    clerks.start()
    try:
        r = subprocess.run(
            [HMS, "ci", "run", CONFIG, "--protocol", "chip-income-cap", "--local", "--timeout", "240", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        clerks.join(timeout=30)
    assert not errors, f"a clerk's review failed: {errors!r}"
    return r


@pytest.mark.airflow
@pytest.mark.slow
def test_ci_run_without_airflow_server_runs_the_dag_here_and_prints_each_stage(hms_home: Path) -> None:
    approvals = [
        ("alice", "legal", "approve", "authority checked"),
        ("bob", "budget", "approve", "within budget"),
    ]
    r = _ci(hms_home, approvals, "--effective-at", "+5s", "--chaos-window", "2s")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    expected = [
        "[build] 📦 chip-income-cap@1",
        "[test] ✅ 9 tests",
        "[replay] ✅ no decisions logged in prod since",
        "[comp] ✅ privacy(0) ethics(0) legal(0)",
        "[review] ✅ approved by alice (legal), bob (budget)",
        "[chaos] ✅ survived faults",
        "[deploy] staging ✅ preprod ✅ prod SCHEDULED@",
        "[flip] prod ✅ live: serves v1",
        "[publish] ✅ released",
        "[ci] ✅ policy_chip-income-cap run",
    ]
    at = [next((i for i, line in enumerate(lines) if line.startswith(e)), None) for e in expected]
    assert None not in at, (expected, lines)
    assert at == sorted(at), lines  # in pipeline order
    served = subprocess.run(
        [HMS, "rule", "status", "chip-income-cap", "--json"],
        env=_env(hms_home),
        capture_output=True,
        text=True,
        check=True,
    )
    envs = {e["environment"]: e for e in json.loads(served.stdout)["environments"]}
    assert envs["prod"]["live"] == {"sha256": bundle.sha256_hex(bundle.build(load(CHIP))), "version": 1}


@pytest.mark.airflow
@pytest.mark.slow
def test_ci_run_exits_1_when_a_clerk_rejects_and_nothing_is_deployed(hms_home: Path) -> None:
    reject = [("bob", "budget", "reject", "cost exceeds the appropriation")]
    r = _ci(hms_home, reject)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[review] ❌ review.approvals failed" in r.stdout
    assert "[deploy]" not in r.stdout
    assert r.stdout.rstrip().splitlines()[-1].startswith("[ci] ❌ policy_chip-income-cap run")


def test_ci_run_refuses_an_unknown_protocol_with_exit_2_before_starting_anything(tmp_path: Path) -> None:
    r = subprocess.run(
        [HMS, "ci", "run", CONFIG, "--protocol", "no-such-rule", "--local"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert "--protocol no-such-rule: no such protocol" in r.stderr and "chip-income-cap" in r.stderr
    assert not (tmp_path / "airflow").exists()


def test_ci_run_refuses_a_broken_pipeline_config_naming_the_field(tmp_path: Path) -> None:
    bad = tmp_path / ".hms-ci" / "policy-pipeline.yml"
    bad.parent.mkdir()
    bad.write_text(Path(CONFIG).read_text().replace("required: 2", "required: two"))
    r = subprocess.run([HMS, "ci", "run", str(bad), "--local"], env=_env(tmp_path), capture_output=True, text=True)
    assert r.returncode == 2
    assert "required" in r.stderr and str(bad) in r.stderr


def test_ci_run_with_an_unreachable_airflow_url_is_bad_input(tmp_path: Path) -> None:
    from hms.chaos import free_port

    url = f"http://127.0.0.1:{free_port()}"
    r = subprocess.run(
        [HMS, "ci", "run", CONFIG, "--airflow-url", url], env=_env(tmp_path), capture_output=True, text=True
    )
    assert r.returncode == 2
    assert f"no Airflow API server answers at {url}" in r.stderr


def test_run_id_is_one_per_bundle_hash() -> None:
    sha = bundle.sha256_hex(bundle.build(load(CHIP)))
    assert run_id_for(sha) == run_id_for(sha) == "bundle-" + sha[:12]
    assert run_id_for("0" * 64) != run_id_for(sha)


def test_stage_lines_report_failures_and_stay_quiet_for_tasks_that_never_ran() -> None:
    lines = StageLines(["staging", "preprod", "prod"])
    assert lines.line(TaskEvent("compliance.scan", "failed")) == "[comp] ❌ compliance.scan failed"
    assert lines.line(TaskEvent("staging.deploy", "upstream_failed")) is None
    assert lines.line(TaskEvent("fail_run", "failed")) is None
    assert lines.line(TaskEvent("rollback", "success", [])).startswith("[rollback] ✅")


@pytest.mark.airflow
@pytest.mark.slow
def test_ci_run_through_a_running_airflow_follows_the_run_and_never_starts_a_bundle_twice(tmp_path: Path) -> None:
    import httpx

    from devtools.airflow_stack import AirflowStack

    home = tmp_path / "registry"
    env = {**_env(home), "HMS_AIRFLOW_URL": ""}
    sha = bundle.sha256_hex(bundle.build(load(CHIP)))
    with AirflowStack(tmp_path / "airflow", env={"HMS_HOME": str(home)}) as stack:
        env["HMS_AIRFLOW_PASSWORD"] = stack.users["admin"]
        stop = threading.Event()

        def clerks() -> None:  # approve through the HMS REST API inside Airflow, as the clerk page does
            for user, role in (("alice", "legal"), ("bob", "budget")):
                while not stop.is_set():
                    with httpx.Client(
                        base_url=stack.url, headers={"Authorization": f"Bearer {stack.token(user)}"}
                    ) as c:
                        r = c.post(f"/hms/api/reviews/{sha}/approve", json={"comment": "ok", "role": role})
                    if r.status_code == 200:
                        break
                    time.sleep(1)

        t = threading.Thread(target=clerks, daemon=True)
        t.start()
        cmd = [
            HMS,
            "ci",
            "run",
            CONFIG,
            "--protocol",
            "chip-income-cap",
            "--airflow-url",
            stack.url,
            "--effective-at",
            "+5s",
            "--chaos-window",
            "2s",
            "--timeout",
            "300",
        ]
        try:
            first = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=360)
        finally:
            stop.set()
            t.join(timeout=30)
        assert first.returncode == 0, first.stdout + first.stderr + stack.log_tail("scheduler")
        assert f"run {run_id_for(sha)} started on Airflow at {stack.url}" in first.stdout
        for stage in (
            "[build] 📦",
            "[test] ✅",
            "[comp] ✅",
            "[review] ✅",
            "[chaos] ✅",
            "[deploy] staging ✅ preprod ✅ prod SCHEDULED@",
            "[flip] prod ✅ live",
            "[ci] ✅",
        ):
            assert stage in first.stdout, (stage, first.stdout)

        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "already took this bundle through (success); following it" in again.stdout
        with stack.client() as c:
            runs = c.get("/api/v2/dags/policy_chip-income-cap/dagRuns").json()
        assert runs["total_entries"] == 1
