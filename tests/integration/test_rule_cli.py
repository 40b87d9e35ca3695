"""The seed's commands end to end as a user runs them: `hms` in a subprocess, include/rollback.sh, `hms serve`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hms.chaos import free_port
from tests.api_helpers import running_api
from tests.conftest import ROOT, WILDFIRE
from tests.deploy_helpers import record_checks_for, review_as, write_config

HMS = str(Path(sys.executable).parent / "hms")
ROLLBACK = ROOT / "include" / "rollback.sh"
FAMILY = {"household_size": 4, "household_income": 40000, "county_fire_declared": True}


@pytest.fixture
def env(hms_home, tmp_path):
    e = {**os.environ, "HMS_HOME": str(hms_home), "HMS_BIN": HMS}  # CLI calls act as the OS account
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    return e


def hms(env, *args, check=True):
    r = subprocess.run([HMS, *args], env=env, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"hms {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _v4(tmp_path: Path) -> Path:
    p = tmp_path / "wildfire-v4.yml"
    text = WILDFIRE.read_text().replace("version: 3", "version: 4")
    p.write_text(text.replace("max_payment: 5000", "max_payment: 3000"))
    return p


def _approve(env, ref):
    """Two clerks through the CLI (the seed's flow), each in a shell where they logged in: the CLI is a client
    of the HMS API on this registry (tests/api_helpers), which takes who acts from each token."""
    with running_api(env) as api:
        hms(api.as_user("alice"), "rule", "review", ref, "--role", "legal", "--approve", "--comment", "cites sec. 3")
        return hms(api.as_user("bob"), "rule", "review", ref, "--role", "budget", "--approve")


def _ready(ref):
    """Passing test, scan and chaos recorded for ``ref`` (as the pipeline's steps would), then two clerks'
    approvals (in-process: the CLI under test is deploy, promote, rollback)."""
    record_checks_for(ref)
    review_as(ref, "alice", "legal", comment="cites sec. 3")
    review_as(ref, "bob", "budget")


def test_rollback_script_is_present_executable_and_strict():
    assert ROLLBACK.exists(), "include/rollback.sh is missing"
    assert os.access(ROLLBACK, os.X_OK), "include/rollback.sh is not executable"
    text = ROLLBACK.read_text()
    assert "set -euo pipefail" in text and len(text.splitlines()) < 40


def test_push_review_deploy_status_rollback_the_seed_2_flow(env, tmp_path):
    pushed = json.loads(hms(env, "rule", "push", str(WILDFIRE), "--json").stdout)
    ref = pushed["id"]
    assert ref == "wildfire-aid-2024@3"
    refused = hms(env, "rule", "deploy", ref, "--env", "staging", check=False)
    assert refused.returncode == 1 and "approval policy not met" in refused.stderr
    hms(env, "policy", "test", ref, "--record")  # the seed's flow: test and scan recorded, two clerks approve
    hms(env, "scan", ref, "--record")
    out = _approve(env, ref).stdout
    assert "approved by alice (legal), bob (budget)" in out
    assert "must be live in preprod" in hms(env, "rule", "deploy", ref, "--env", "prod", check=False).stderr
    for e in ("staging", "preprod"):
        assert "live" in hms(env, "rule", "deploy", ref, "--env", e).stdout
    refused = hms(env, "rule", "deploy", ref, "--env", "prod", check=False)
    assert refused.returncode == 1 and "no recorded passing chaos" in refused.stderr
    record_checks_for(ref, ("chaos",))  # what `hms chaos run --target preprod --record` leaves (test_chaos_run.py)
    assert "live" in hms(env, "rule", "deploy", ref, "--env", "prod").stdout
    hms(env, "rule", "push", str(_v4(tmp_path)))
    _ready("wildfire-aid-2024@4")
    for e in ("staging", "preprod", "prod"):
        hms(env, "rule", "deploy", "wildfire-aid-2024@4", "--env", e)
    assert "prod       live v4" in hms(env, "rule", "status", "wildfire-aid-2024").stdout
    t0 = time.monotonic()
    out = hms(env, "rule", "rollback", "wildfire-aid-2024", "--to", "previous").stdout
    took = time.monotonic() - t0
    assert "prod: wildfire-aid-2024 v3 in force" in out and took < 10
    assert "prod       live v3" in hms(env, "rule", "status", "wildfire-aid-2024").stdout
    assert hms(env, "audit", "verify").returncode == 0


def test_rolling_back_a_protocol_never_deployed_is_exit_2_and_changes_nothing(env):
    hms(env, "rule", "push", str(WILDFIRE))
    before = hms(env, "audit", "log", "--json").stdout
    r = hms(env, "rule", "rollback", "wildfire-aid-2024", "--env", "prod", check=False)
    assert r.returncode == 2 and "never deployed" in r.stderr
    r = subprocess.run([str(ROLLBACK), "wildfire-aid-2024", "prod"], env=env, capture_output=True, text=True)
    assert r.returncode == 2
    assert hms(env, "audit", "log", "--json").stdout == before


@pytest.mark.parametrize("evil", ["x; rm -rf /", "$(touch /tmp/pwned)", "../prod", "Prod", "-rf"])
def test_rollback_script_refuses_hostile_arguments(env, evil):
    r = subprocess.run([str(ROLLBACK), evil, "prod"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and "refusing" in r.stderr
    r = subprocess.run([str(ROLLBACK), "wildfire-aid-2024", evil], env=env, capture_output=True, text=True)
    assert r.returncode == 2


def test_promote_with_a_midnight_schedule_leaves_prod_pending(env, tmp_path):
    pkg = tmp_path / "pkg.tgz"
    hms(env, "policy", "pack", str(WILDFIRE), "--out", str(pkg))
    _ready("wildfire-aid-2024@3")
    r = hms(env, "promote", str(pkg), "--targets", "staging,preprod,prod", "--rollback", str(ROLLBACK),
            "--schedule", "00:00")
    last = r.stdout.strip().splitlines()[-1]
    assert last.startswith("[deploy] staging ✅ preprod ✅ prod SCHEDULED@") and "T00:00:00" in last
    status = json.loads(hms(env, "rule", "status", "wildfire-aid-2024", "--json").stdout)
    prod = status["environments"][2]
    assert prod["live"] is None and len(prod["pending"]) == 1


def test_promote_of_an_unapproved_bundle_checks_every_target_first_and_deploys_nowhere(env, tmp_path):
    """Once, staging and preprod went live, prod was refused and the rollback script had to undo them."""
    pkg = tmp_path / "pkg.tgz"
    hms(env, "policy", "pack", str(WILDFIRE), "--out", str(pkg))
    record_checks_for("wildfire-aid-2024@3", ("test", "scan"))
    before = hms(env, "audit", "log", "--json").stdout
    r = hms(env, "promote", str(pkg), "--targets", "staging,preprod,prod", "--rollback", str(ROLLBACK), check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "nothing deployed" in r.stderr and "approval policy not met" in r.stderr
    assert "chaos" not in r.stderr and "rolling back" not in r.stdout  # promote would run preprod's chaos itself
    status = json.loads(hms(env, "rule", "status", "wildfire-aid-2024", "--json").stdout)
    assert all(e["live"] is None and e["pending"] == [] for e in status["environments"])
    assert hms(env, "audit", "log", "--json").stdout == before  # not one row written


def test_a_recorded_scan_with_other_policies_is_refused_so_an_empty_policy_dir_proves_nothing(env, tmp_path):
    pkg = tmp_path / "pkg.tgz"
    hms(env, "policy", "pack", str(WILDFIRE), "--out", str(pkg))
    empty = tmp_path / "empty-policies"
    empty.mkdir()
    for rule_set in ("privacy", "ethics", "legal"):  # rule sets that deny nothing
        rego = f"package {rule_set}\n\ndeny contains msg if {{\n\tfalse\n\tmsg := {{}}\n}}\n"
        (empty / f"{rule_set}.rego").write_text(rego)
    r = hms(env, "scan", str(pkg), "--policies", str(empty), "--record", check=False)
    assert r.returncode == 2 and "a scan with other policies cannot be recorded" in r.stderr, r.stderr
    r = hms({**env, "HMS_POLICY_DIR": str(empty)}, "scan", str(pkg), "--record", check=False)
    assert r.returncode == 2 and "a scan with other policies cannot be recorded" in r.stderr
    r = hms(env, "scan", str(pkg), "--rules", "privacy", "--record", check=False)
    assert r.returncode == 2 and "only the rule sets privacy" in r.stderr
    r = hms(env, "policy", "test", str(pkg), "--population", "synthetic:100", "--record", check=False)
    assert r.returncode == 2 and "a test with --population synthetic:100" in r.stderr
    r = hms(env, "policy", "test", str(pkg), "--no-simulate", "--record", check=False)
    assert r.returncode == 2 and "--no-simulate" in r.stderr
    assert "check." not in hms(env, "audit", "log", "--json").stdout  # nothing recorded
    hms(env, "scan", str(pkg), "--policies", str(empty))  # without --record it may run: it just proves nothing
    hms(env, "scan", str(pkg), "--record")  # the governed scan records


def test_the_cli_records_no_review_of_a_superseded_version(env, tmp_path):
    hms(env, "rule", "push", str(WILDFIRE))
    hms(env, "rule", "push", str(_v4(tmp_path)))
    r = hms(env, "rule", "review", "wildfire-aid-2024@3", "--role", "legal", "--approve", check=False)
    assert r.returncode == 1 and "superseded by v4; review that one" in r.stderr


def test_a_running_service_picks_up_a_rollback_without_restart(env, tmp_path):
    hms(env, "rule", "push", str(WILDFIRE))
    _ready("wildfire-aid-2024@3")
    for e in ("staging", "preprod", "prod"):
        hms(env, "rule", "deploy", "wildfire-aid-2024@3", "--env", e)
    hms(env, "rule", "push", str(_v4(tmp_path)))
    _ready("wildfire-aid-2024@4")
    for e in ("staging", "preprod", "prod"):
        hms(env, "rule", "deploy", "wildfire-aid-2024@4", "--env", e)
    port = free_port()
    proc = subprocess.Popen([HMS, "serve", "--env", "prod", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "service did not become ready"
            time.sleep(0.1)
        decide = lambda: httpx.post(f"{url}/v1/protocols/wildfire-aid-2024/decide", json={"input": FAMILY}).json()  # noqa: E731
        assert decide()["version"] == 4
        r = subprocess.run([str(ROLLBACK), "wildfire-aid-2024", "prod"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        t0 = time.monotonic()
        while decide()["version"] != 3:
            assert time.monotonic() - t0 < 5
            time.sleep(0.005)
    finally:
        proc.terminate()
        proc.wait(10)
