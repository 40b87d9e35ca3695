"""The pinned policy (issue 14, item 2): the caller's config file is not the policy; an admin's applied one is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import select

from hms import deployments, pinned_policy
from hms.errors import CheckFailed
from hms.pipeline_config import parse_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import Approval, Deployment
from tests.conftest import WILDFIRE
from tests.deploy_helpers import _config_text, record_checks_for, write_config

HMS = str(Path(sys.executable).parent / "hms")
PID = "wildfire-aid-2024"


@pytest.fixture
def env(hms_home, tmp_path):
    e = {**os.environ, "HMS_HOME": str(hms_home), "HMS_BIN": HMS, "HMS_ACTOR": "ops"}
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    return e


def hms(env, *args, actor=None, config=None, check=True):
    e = {**env, **({"HMS_ACTOR": actor} if actor else {}), **({"HMS_PIPELINE_CONFIG": str(config)} if config else {})}
    r = subprocess.run([HMS, *args], env=e, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"hms {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _lenient(tmp_path: Path) -> Path:
    """The attacker's file: prod alone, one approval of a role only mallory holds, mallory an admin."""
    data = yaml.safe_load(_config_text())
    data["environments"] = [{"name": "prod"}]
    data["chaos"]["environment"] = "prod"
    data["approvals"] = {"required": 1, "roles": ["x"]}
    data["users"] = {"mallory": ["x", "admin"]}
    p = tmp_path / "my.yml"
    p.write_text(yaml.safe_dump(data))
    return p


def _audit(env) -> list:
    return json.loads(hms(env, "audit", "log", "--json").stdout)["entries"]


def test_a_callers_config_file_changes_no_gate_until_an_admin_applies_it(env, tmp_path):
    shown = json.loads(hms(env, "config", "show", "--json").stdout)  # embedded mode: first use pins the file
    assert shown["file_is_pinned"] and shown["admins"] == ["ops"]
    assert [e["action"] for e in _audit(env)] == ["config.apply"]
    mine = _lenient(tmp_path)
    hms(env, "rule", "push", str(WILDFIRE))
    record_checks_for(f"{PID}@3")

    r = hms(env, "rule", "review", f"{PID}@3", "--role", "x", "--approve", actor="mallory", config=mine, check=False)
    assert r.returncode in (1, 2) and "mallory does not hold the role 'x'" in r.stderr, r.stderr
    r = hms(env, "rule", "deploy", f"{PID}@3", "--env", "prod", actor="mallory", config=mine, check=False)
    assert r.returncode == 1 and "approval policy not met" in r.stderr, r.stderr
    assert json.loads(hms(env, "rule", "status", PID, "--json", config=mine).stdout)["environments"][-1]["live"] is None

    before = _audit(env)
    r = hms(env, "config", "apply", str(mine), actor="mallory", check=False)
    assert r.returncode == 1 and "mallory is not an admin of the pinned policy" in r.stderr and "admins: ops" in (
        r.stderr)
    assert _audit(env) == before  # refused: nothing applied, nothing audited
    shown = json.loads(hms(env, "config", "show", str(mine), "--json").stdout)
    assert not shown["file_is_pinned"]
    assert "differs from the pinned policy and changes no gate" in hms(env, "config", "show", str(mine)).stdout

    out = hms(env, "config", "apply", str(mine)).stdout  # ops is an admin: now it is the policy
    digest = parse_pipeline_config(mine.read_text()).sha256
    assert f"[config] ✅ ops pinned policy sha256:{digest[:12]} from {mine}" in out
    entry = _audit(env)[0]
    assert entry["action"] == "config.apply" and entry["subject"] == f"policy:{digest}"
    assert "already the pinned one" in hms(env, "config", "apply", str(mine), actor="mallory").stdout
    r = hms(env, "config", "apply", env["HMS_PIPELINE_CONFIG"], check=False)  # ops is no admin of mallory's
    assert r.returncode == 1 and "ops is not an admin" in r.stderr


def test_a_bad_policy_file_is_exit_2_naming_the_field_and_pins_nothing(env, tmp_path):
    hms(env, "config", "show")
    before = _audit(env)
    bad = tmp_path / "bad.yml"
    bad.write_text(_config_text().replace("required: 2", "required: two"))
    r = hms(env, "config", "apply", str(bad), check=False)
    assert r.returncode == 2 and "approvals" in r.stderr and str(bad) in r.stderr, r.stderr
    noadmin = tmp_path / "noadmin.yml"
    data = yaml.safe_load(_config_text())
    data["users"] = {"alice": ["legal"], "bob": ["budget"]}
    noadmin.write_text(yaml.safe_dump(data))
    r = hms(env, "config", "apply", str(noadmin), check=False)
    assert r.returncode == 2 and "nobody holds the admin role" in r.stderr
    assert _audit(env) == before


def test_approvals_and_deployments_record_the_pinned_digest_and_another_policy_is_refused(env, tmp_path):
    hms(env, "config", "show")
    hms(env, "rule", "push", str(WILDFIRE))
    sha = record_checks_for(f"{PID}@3")
    for user in ("alice", "bob"):
        hms(env, "rule", "review", f"{PID}@3", "--approve", actor=user)
    hms(env, "rule", "deploy", f"{PID}@3", "--env", "staging")
    with session_scope(read_only=True) as s:
        pinned = pinned_policy.current(s).sha256
        assert {a.policy_sha256 for a in s.scalars(select(Approval))} == {pinned}
        assert {d.policy_sha256 for d in s.scalars(select(Deployment))} == {pinned}
        other = parse_pipeline_config(_lenient(tmp_path).read_text(), "my.yml")
        b = deployments.load_bundle(s, sha)
    with session_scope() as s, pytest.raises(CheckFailed, match="but the pinned policy is sha256:"):
        deployments.deploy(s, b, "prod", activate_at=None, actor="mallory", config=other)
