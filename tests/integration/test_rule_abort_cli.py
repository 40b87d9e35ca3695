"""``hms rule abort RUN`` as ops types it: a subprocess acting as this process's OS account (hms.identity).

Its roles are what the pinned policy's ``users:`` gives that account: ``roles`` below (default ``[ops]``,
as erin holds in the repository's policy). ``--user`` must name the account and HMS_ACTOR is refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from hms import clock, pinned_policy
from hms.identity import os_account
from tests.deploy_helpers import (
    pin_file,
    promote_all,
    ready,
    record,
    serving,
    users_with_os_account,
    variant,
    write_config,
)

HMS = str(Path(sys.executable).parent / "hms")
PID = "wildfire-aid-2024"


@pytest.fixture
def roles() -> list[str]:
    return ["ops"]


@pytest.fixture
def env(hms_home, tmp_path, roles):
    """The pinned policy gives the OS account ``roles`` (applied by ops, an admin: the CLI runs under it)."""
    e = {**os.environ, "HMS_HOME": str(hms_home)}
    policy = write_config(tmp_path / "pipeline.yml", users=users_with_os_account(*roles))
    e["HMS_PIPELINE_CONFIG"] = str(pin_file(policy))
    e.pop("HMS_DATABASE_URL", None)
    # The `hms` script is the venv's editable install; PYTHONPATH decides which checkout it runs.
    e["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"), e.get("PYTHONPATH", "")])
    return e


def hms(env, *args):
    return subprocess.run([HMS, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def mid_flip(env):
    """v3 everywhere; run `run-b` took v4 to staging and preprod and left prod pending an hour from now."""
    cfg = pinned_policy.governing()
    promote_all(ready(record(variant(3)), cfg), cfg)
    at = clock.now() + timedelta(hours=1)
    promote_all(ready(record(variant(4, max_payment=6000)), cfg), cfg, activate_at=at, run_id="run-b")
    return at


def everywhere(at=None) -> list[int | None]:
    """What staging, preprod and prod serve (tests.deploy_helpers.serving)."""
    return [serving(e, at=at) for e in ("staging", "preprod", "prod")]


def test_hms_rule_abort_rolls_back_the_run_everywhere_and_cancels_prods_pending_activation(env, mid_flip):
    r = hms(env, "rule", "abort", "run-b", "--reason", "wrong poverty table")
    assert r.returncode == 0, r.stderr
    assert f"[abort] 🛑 run run-b aborted by {os_account()}: wrong poverty table" in r.stdout
    assert "[rollback] ✅ prod: wildfire-aid-2024 v4 (cancelled)" in r.stdout
    assert everywhere() == [3, 3, 3] and everywhere(mid_flip + timedelta(minutes=1)) == [3, 3, 3]
    log = hms(env, "audit", "log", "--subject", "run-b")
    assert log.returncode == 0 and "run.aborted" in log.stdout and os_account() in log.stdout
    assert hms(env, "audit", "verify").returncode == 0

    again = hms(env, "rule", "abort", "run-b", "--json")
    assert again.returncode == 0
    body = json.loads(again.stdout)
    assert body["already_aborted"] is True and body["undone"] == [] and body["run"]["state"] == "aborted"


def _unchanged(mid_flip, env) -> None:
    assert everywhere() == [4, 4, 3] and everywhere(mid_flip) == [4, 4, 4]
    assert "run.aborted" not in hms(env, "audit", "log", "--subject", "run-b").stdout


@pytest.mark.parametrize("roles", [["scheduler"], ["legal", "budget"], []])
def test_an_abort_by_an_account_the_pinned_policy_gives_no_ops_role_is_exit_1_naming_its_roles(env, mid_flip, roles):
    r = hms(env, "rule", "abort", "run-b", "--reason", "wrong poverty table")
    held = ", ".join(roles) or "none"
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"user: aborting a pipeline run needs the role 'ops'; {os_account()} holds: {held}" in r.stderr, r.stderr
    _unchanged(mid_flip, env)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run b"], "RUN: 'run b' is not a run id"),
        (["run-b", "--reason", " "], "--reason: say why the run is aborted"),
        (["run-b", "--user", "erin"], "--user: 'erin' is not who is acting: you are authenticated as"),
    ],
)
def test_a_refused_abort_exits_2_naming_the_field_and_changes_nothing(env, mid_flip, args, message):
    r = hms(env, "rule", "abort", *args)
    assert r.returncode == 2 and message in r.stderr, (r.returncode, r.stderr)
    _unchanged(mid_flip, env)


@pytest.mark.parametrize("actor", ["erin", "ops", "own-account"])
def test_an_abort_with_hms_actor_set_is_exit_2_naming_it_whatever_it_names(env, mid_flip, actor):
    r = hms({**env, "HMS_ACTOR": os_account() if actor == "own-account" else actor}, "rule", "abort", "run-b")
    assert r.returncode == 2 and "HMS_ACTOR: HMS_ACTOR is not an identity" in r.stderr, (r.returncode, r.stderr)
    _unchanged(mid_flip, env)


def test_user_naming_the_os_account_itself_is_accepted(env, mid_flip):
    r = hms(env, "rule", "abort", "run-b", "--user", os_account().upper(), "--reason", "typed my own name")
    assert r.returncode == 0, r.stderr
    assert f"aborted by {os_account()}: typed my own name" in r.stdout
