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

from hms import deployments, pinned_policy, protocol
from hms.errors import CheckFailed
from hms.identity import os_account
from hms.pipeline_config import parse_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import Approval, Deployment
from tests.conftest import WILDFIRE
from tests.deploy_helpers import (
    _config_text,
    record,
    record_checks_for,
    review_as,
    users_with_os_account,
    write_config,
)

HMS = str(Path(sys.executable).parent / "hms")
PID = "wildfire-aid-2024"


@pytest.fixture
def env(hms_home, tmp_path):
    """CLI calls act as this process's OS account (hms.identity), which the checkout's policy gives no role."""
    e = {**os.environ, "HMS_HOME": str(hms_home), "HMS_BIN": HMS}
    e["HMS_PIPELINE_CONFIG"] = str(write_config(tmp_path / "pipeline.yml"))
    e.pop("HMS_DATABASE_URL", None)
    return e


def hms(env, *args, config=None, check=True):
    e = {**env, **({"HMS_PIPELINE_CONFIG": str(config)} if config else {})}
    r = subprocess.run([HMS, *args], env=e, capture_output=True, text=True, timeout=60)
    if check and r.returncode != 0:
        raise AssertionError(f"hms {' '.join(args)} exited {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def _lenient(tmp_path: Path) -> Path:
    """The attacker's file: prod alone, one approval of a role only the attacker (this OS account) holds, and
    the attacker an admin."""
    data = yaml.safe_load(_config_text())
    data["environments"] = [{"name": "prod"}]
    data["chaos"]["environment"] = "prod"
    data["approvals"] = {"required": 1, "roles": ["x"]}
    data["users"] = {os_account(): ["x", "admin"]}
    p = tmp_path / "my.yml"
    p.write_text(yaml.safe_dump(data))
    return p


def _audit(env) -> list:
    return json.loads(hms(env, "audit", "log", "--json").stdout)["entries"]


def test_a_callers_config_file_changes_no_gate_until_an_admin_applies_it(env, tmp_path):
    me = os_account()
    shown = json.loads(hms(env, "config", "show", "--json").stdout)  # embedded mode: first use pins the file
    assert shown["file_is_pinned"] and shown["admins"] == ["ops"] and shown["applied_by"] == me
    assert [e["action"] for e in _audit(env)] == ["config.apply"]
    mine = _lenient(tmp_path)
    record(protocol.load(WILDFIRE))  # pushed by someone else: the attacker is not its pusher
    record_checks_for(f"{PID}@3")

    r = hms(env, "rule", "review", f"{PID}@3", "--role", "x", "--approve", config=mine, check=False)
    assert r.returncode in (1, 2) and f"{me} does not hold the role 'x'" in r.stderr, r.stderr
    r = hms(env, "rule", "deploy", f"{PID}@3", "--env", "prod", config=mine, check=False)
    assert r.returncode == 1 and "approval policy not met" in r.stderr, r.stderr
    assert json.loads(hms(env, "rule", "status", PID, "--json", config=mine).stdout)["environments"][-1]["live"] is None

    before = _audit(env)
    r = hms(env, "config", "apply", str(mine), check=False)
    assert r.returncode == 1 and f"{me} is not an admin of the pinned policy" in r.stderr and "admins: ops" in (
        r.stderr)
    assert _audit(env) == before  # refused: nothing applied, nothing audited
    shown = json.loads(hms(env, "config", "show", str(mine), "--json").stdout)
    assert not shown["file_is_pinned"]
    assert "differs from the pinned policy and changes no gate" in hms(env, "config", "show", str(mine)).stdout

    with session_scope() as s:  # ops, an admin of the pinned policy, applies it (the core call of config apply)
        done = pinned_policy.apply(s, mine.read_text(), str(mine), actor="ops")
    digest = parse_pipeline_config(mine.read_text()).sha256
    assert done.line() == f"[config] ✅ ops pinned policy sha256:{digest[:12]} from {mine} (was sha256:" + (
        f"{shown['sha256'][:12]})")
    entry = _audit(env)[0]
    assert entry["action"] == "config.apply" and entry["subject"] == f"policy:{digest}" and entry["actor"] == "ops"
    assert "already the pinned one" in hms(env, "config", "apply", str(mine)).stdout  # this account: now an admin
    out = hms(env, "config", "apply", env["HMS_PIPELINE_CONFIG"]).stdout  # ... so it may pin the next one
    assert f"[config] ✅ {me} pinned policy sha256:{shown['sha256'][:12]} from {env['HMS_PIPELINE_CONFIG']}" in out
    r = hms(env, "config", "apply", str(mine), check=False)  # which makes it no admin any more
    assert r.returncode == 1 and f"{me} is not an admin" in r.stderr


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
    clerk = write_config(tmp_path / "clerk.yml", users=users_with_os_account("legal"))
    hms(env, "config", "show", config=clerk)  # pins it: this OS account a legal clerk
    record(protocol.load(WILDFIRE))  # pushed by someone else: the clerk is not its pusher
    sha = record_checks_for(f"{PID}@3")
    out = hms(env, "rule", "review", f"{PID}@3", "--approve", config=clerk).stdout  # the role inferred: legal
    assert f"{os_account()} (legal) approved" in out
    review_as(f"{PID}@3", "bob", "budget")  # the second clerk: another person
    hms(env, "rule", "deploy", f"{PID}@3", "--env", "staging", config=clerk)
    with session_scope(read_only=True) as s:
        pinned = pinned_policy.current(s).sha256
        assert pinned == parse_pipeline_config(clerk.read_text()).sha256
        assert {(a.user, a.policy_sha256) for a in s.scalars(select(Approval))} == {(os_account(), pinned),
                                                                                  ("bob", pinned)}
        assert {d.policy_sha256 for d in s.scalars(select(Deployment))} == {pinned}
        other = parse_pipeline_config(_lenient(tmp_path).read_text(), "my.yml")
        b = deployments.load_bundle(s, sha)
    with session_scope() as s, pytest.raises(CheckFailed, match="but the pinned policy is sha256:"):
        deployments.deploy(s, b, "prod", activate_at=None, actor="mallory", config=other)
