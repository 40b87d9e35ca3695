"""``hms rule abort RUN`` as ops types it: a subprocess, the acting identity from HMS_ACTOR / --user."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from hms import clock, deployments
from hms.registry.db import session_scope
from tests.deploy_helpers import promote_all, ready, record, variant, write_config

HMS = str(Path(sys.executable).parent / "hms")
PID = "wildfire-aid-2024"


@pytest.fixture
def env(hms_home, tmp_path):
    e = {**os.environ, "HMS_HOME": str(hms_home), "HMS_ACTOR": "erin"}  # erin: [ops] in the pipeline config
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    # The `hms` script is the venv's editable install; PYTHONPATH decides which checkout it runs.
    e["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), e.get("PYTHONPATH", "")])
    return e


def hms(env, *args):
    return subprocess.run([HMS, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def mid_flip(env):
    """v3 everywhere; run `run-b` took v4 to staging and preprod and left prod pending an hour from now."""
    from hms.pipeline_config import load_pipeline_config

    cfg = load_pipeline_config()
    promote_all(ready(record(variant(3)), cfg), cfg)
    at = clock.now() + timedelta(hours=1)
    promote_all(ready(record(variant(4, max_payment=6000)), cfg), cfg, activate_at=at, run_id="run-b")
    return at


def serving(at=None) -> list[int | None]:
    """What each environment serves once a rollback just recorded has switched (effective_time.PROPAGATION)."""
    at = at or clock.now() + timedelta(seconds=1)
    out = []
    with session_scope() as s:
        for e in ("staging", "preprod", "prod"):
            d = deployments.in_force(s, e, PID, at)
            out.append(d.version if d else None)
    return out


def test_hms_rule_abort_rolls_back_the_run_everywhere_and_cancels_prods_pending_activation(env, mid_flip):
    r = hms(env, "rule", "abort", "run-b", "--reason", "wrong poverty table")
    assert r.returncode == 0, r.stderr
    assert "[abort] 🛑 run run-b aborted by erin: wrong poverty table" in r.stdout
    assert "[rollback] ✅ prod: wildfire-aid-2024 v4 (cancelled)" in r.stdout
    assert serving() == [3, 3, 3] and serving(mid_flip + timedelta(minutes=1)) == [3, 3, 3]
    log = hms(env, "audit", "log", "--subject", "run-b")
    assert log.returncode == 0 and "run.aborted" in log.stdout and "erin" in log.stdout
    assert hms(env, "audit", "verify").returncode == 0

    again = hms(env, "rule", "abort", "run-b", "--json")
    assert again.returncode == 0
    body = json.loads(again.stdout)
    assert body["already_aborted"] is True and body["undone"] == [] and body["run"]["state"] == "aborted"


@pytest.mark.parametrize(
    ("args", "actor", "code", "message"),
    [
        (["run-b"], "alice", 1, "user: aborting a pipeline run needs the role 'ops'; alice holds: legal"),
        (["run-b", "--user", "dana"], "erin", 1, "dana holds: scheduler"),
        (["run b"], "erin", 2, "RUN: 'run b' is not a run id"),
        (["run-b", "--reason", " "], "erin", 2, "--reason: say why the run is aborted"),
    ],
)
def test_a_refused_abort_exits_non_zero_naming_the_field_and_changes_nothing(env, mid_flip, args, actor, code,
                                                                              message):
    r = hms({**env, "HMS_ACTOR": actor}, "rule", "abort", *args)
    assert r.returncode == code and message in r.stderr, (r.returncode, r.stderr)
    assert serving() == [4, 4, 3] and serving(mid_flip) == [4, 4, 4]
    assert "run.aborted" not in hms(env, "audit", "log", "--subject", "run-b").stdout
