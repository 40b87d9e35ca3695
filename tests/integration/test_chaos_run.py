"""`hms chaos run` for real: replicas are killed, answers stay right, the fragile set-up fails, nothing outlives it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from devtools.airflow_stack import processes_carrying
from hms.registry import store
from hms.registry.db import session_scope
from tests.conftest import WILDFIRE
from tests.deploy_helpers import ready_ref, write_config

HMS = str(Path(sys.executable).parent / "hms")


@pytest.fixture
def env(hms_home, tmp_path):
    e = {**os.environ, "HMS_HOME": str(hms_home)}
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    subprocess.run([HMS, "rule", "push", str(WILDFIRE)], env=e, check=True, capture_output=True)
    ready_ref("wildfire-aid-2024@3", ("test", "scan"))  # what staging needs; chaos is what this file records
    subprocess.run([HMS, "rule", "deploy", "wildfire-aid-2024@3", "--env", "staging"], env=e, check=True,
                   capture_output=True)
    return e


def _ours(hms_home: Path) -> list[psutil.Process]:
    """Processes (other than pytest) whose environment carries this test's HMS_HOME."""
    return processes_carrying("HMS_HOME", str(hms_home))


def chaos(env, *args, timeout=120):
    return subprocess.run([HMS, "chaos", "run", "--target", "staging", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_three_replicas_survive_kills_with_every_answer_right(env, hms_home):
    r = chaos(env, "--time", "6s", "--replicas", "3", "--kill-fraction", "0.1", "--json")
    report = json.loads(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert report["kills"] >= 2 and report["restarts"] >= 1
    assert report["wrong_answers"] == 0 and report["health"] >= 0.99 and report["requests"] > 100
    assert report["steady_state_before"] and report["steady_state_after"]
    assert _ours(hms_home) == []


def test_the_human_output_ends_with_the_seed_line_and_record_keeps_a_chaos_check_per_bundle_tested(env, hms_home):
    r = chaos(env, "--time", "3s", "--record", "--run-id", "run-c")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[chaos] ✅ survived faults"
    with session_scope() as s:
        sha = store.find_bundles(s, "wildfire-aid-2024")[0].sha256
        c = store.latest_checks(s, sha)["chaos"]
    assert c.ok and c.run_id == "run-c"


@pytest.mark.parametrize("kinder", [["--min-health", "0.5"], ["--kill-fraction", "0.01"], ["--replicas", "64"]])
def test_a_chaos_run_kinder_than_the_pipeline_settings_cannot_be_recorded(env, hms_home, kinder):
    r = chaos(env, "--time", "1s", *kinder, "--record")
    assert r.returncode == 2 and "cannot be recorded" in r.stderr and kinder[0] in r.stderr
    assert _ours(hms_home) == []
    with session_scope() as s:
        sha = store.find_bundles(s, "wildfire-aid-2024")[0].sha256
        assert "chaos" not in store.latest_checks(s, sha)


def test_a_fragile_setup_one_replica_no_retry_fails_the_hypothesis(env, hms_home):
    r = chaos(env, "--time", "4s", "--replicas", "1", "--no-retry")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "[chaos] ❌ hypothesis failed: health" in r.stdout and "evidence: request failed" in r.stdout
    assert _ours(hms_home) == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_experiment_stops_every_replica_it_started(env, hms_home, sig):
    # Started with SIGINT ignored, as a shell starts a background job: the experiment still handles it.
    p = subprocess.Popen([HMS, "chaos", "run", "--target", "staging", "--time", "60s"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    deadline = time.monotonic() + 30
    while len([x for x in _ours(hms_home) if x.pid != p.pid]) < 3:
        assert time.monotonic() < deadline, "replicas never started"
        time.sleep(0.1)
    time.sleep(1.5)
    p.send_signal(sig)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130, out + err
    assert "stopping every replica" in err
    time.sleep(0.2)
    assert _ours(hms_home) == []


def test_nothing_deployed_is_bad_input_and_starts_nothing(hms_home, tmp_path):
    e = {**os.environ, "HMS_HOME": str(hms_home)}
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    r = chaos(e, "--time", "2s")
    assert r.returncode == 2 and "nothing is in force in staging" in r.stderr
    assert _ours(hms_home) == []
