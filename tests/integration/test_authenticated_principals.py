"""Identity is authenticated, never typed in: the attacks of "one authority for every change", refused.

Every command here is the real ``hms`` console script in a subprocess; people act either as this machine's
OS account on the embedded registry or, logged in, through ``hms api serve`` with Airflow tokens minted by
Airflow's own signer. The registry is read back to check what a refusal left behind: nothing.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from hms import identity
from hms.registry.db import session_scope
from hms.registry.models import Approval, AuditEntry, Deployment
from tests.api_helpers import HMS, Api, airflow_token, cli_env, running_api
from tests.conftest import WILDFIRE
from tests.deploy_helpers import config, pin_config, record_checks_for

PID = "wildfire-aid-2024"
ME = identity.os_account()


def users(**extra: list[str]) -> dict[str, list[str]]:
    return {**{u: list(r) for u, r in (config().user_roles or {}).items()}, **extra}


@pytest.fixture
def env(hms_home: Path) -> dict[str, str]:
    return cli_env(hms_home)


@pytest.fixture
def api(env: dict[str, str]) -> Api:
    pin_config(users=users())
    with running_api(env) as a:
        yield a


def approvals_of(ref_version: int = 3) -> list[tuple[str, str]]:
    with session_scope(read_only=True) as s:
        return [(a.user, a.role) for a in s.scalars(select(Approval).order_by(Approval.id))]


def pushed(api_or_env, user: str | None = None) -> str:
    if isinstance(api_or_env, Api):
        r = api_or_env.hms(user, "rule", "push", str(WILDFIRE), "--json")
    else:
        import subprocess

        r = subprocess.run([HMS, "rule", "push", str(WILDFIRE), "--json"], env=api_or_env, capture_output=True,
                           text=True, check=True)
    return json.loads(r.stdout)["sha256"]


# ---- one shell, two clerks ----------------------------------------------------------------------------------


def test_one_os_account_gives_one_approval_whatever_user_it_names(env: dict[str, str]) -> None:
    import subprocess

    pin_config(users=users(**{ME: ["legal", "budget"]}))
    # Pushed by someone else (a pusher may not review): an Airflow clerk, through the API.
    with running_api(env) as a:
        sha = pushed(a, "carol")

    def review(*extra: str, **more: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([HMS, "rule", "review", f"{PID}@3", "--approve", *extra], env={**env, **more},
                              capture_output=True, text=True)

    first = review("--role", "legal")
    assert first.returncode == 0, first.stderr
    as_bob = review("--user", "bob", "--role", "budget")
    assert as_bob.returncode == 2 and "'bob' is not who is acting" in as_bob.stderr
    by_env = review("--role", "budget", HMS_ACTOR="bob")
    assert by_env.returncode == 2 and "HMS_ACTOR is not an identity" in by_env.stderr
    by_shell_vars = review("--role", "budget", USER="bob", LOGNAME="bob")  # getpass reads these; we do not
    assert by_shell_vars.returncode == 2 and "already recorded" in by_shell_vars.stderr
    assert approvals_of() == [(ME, "legal")]
    status = subprocess.run([HMS, "rule", "deploy", sha, "--env", "staging"], env=env, capture_output=True, text=True)
    assert status.returncode == 1 and "approval" in status.stderr


def test_two_clerks_logged_in_separately_approve_and_the_audit_names_each(api: Api) -> None:
    sha = pushed(api, "carol")
    alice = api.hms("alice", "rule", "review", f"{PID}@3", "--approve", "--comment", "cites sec. 3")
    assert "alice (legal) approved" in alice.stdout
    bob = json.loads(api.hms("bob", "rule", "review", sha[:12], "--approve", "--json").stdout)

    assert bob["user"] == "bob" and bob["status"]["satisfied"] is True
    assert approvals_of() == [("alice", "legal"), ("bob", "budget")]
    with session_scope(read_only=True) as s:
        actors = [(e.actor, e.action) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("carol", "bundle.recorded") in actors
    assert ("alice", "review.approve") in actors and ("bob", "review.approve") in actors
    with session_scope(read_only=True) as s:  # and how each was authenticated, inside the hashed details
        how = {e.actor: json.loads(e.details)["principal"] for e in s.scalars(
            select(AuditEntry).where(AuditEntry.action == "review.approve"))}
    assert how == {u: {"name": u, "via": "airflow-token", "run_id": None, "on_behalf_of": None}
                   for u in ("alice", "bob")}


def test_a_token_for_alice_cannot_act_as_bob_on_the_cli_or_the_rest_api(api: Api) -> None:
    sha = pushed(api, "carol")
    r = api.hms("alice", "rule", "review", sha, "--user", "bob", "--role", "budget", "--approve", check=False)
    assert r.returncode == 2 and "'bob' is not who is acting" in r.stderr and "alice" in r.stderr
    rest = api.post("alice", "/reviews", {"ref": sha, "decision": "approve", "role": "budget", "user": "bob"})
    assert rest.status_code == 422 and rest.json()["field"] == "--user"
    twice = api.post("alice", "/reviews", {"ref": sha, "decision": "approve", "role": "legal"})
    again = api.post("alice", "/reviews", {"ref": sha, "decision": "approve", "role": "budget"})
    assert twice.status_code == 200 and again.status_code == 422
    assert approvals_of() == [("alice", "legal")]


@pytest.mark.parametrize("token, why", [
    (lambda a: airflow_token("alice", "another-secret-" + "x" * 64), "not valid"),
    (lambda a: a.token("alice", valid_for=-60), "expired"),
    (lambda a: "not-a-jwt", "not valid"),
    (lambda a: airflow_token("alice", a.secret, audience="someone-else"), "not valid"),
])
def test_a_token_the_api_did_not_issue_is_refused_and_changes_nothing(api: Api, token, why: str) -> None:
    sha = pushed(api, "carol")
    env = {**api.env, "HMS_API": api.url, "HMS_TOKEN": token(api)}
    import subprocess

    r = subprocess.run([HMS, "rule", "review", sha, "--approve"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and why in r.stderr and "hms login" in r.stderr
    rest = httpx.post(f"{api.url}/hms/api/reviews", json={"ref": sha, "decision": "approve"},
                      headers={"Authorization": f"Bearer {token(api)}"})
    assert rest.status_code == 401 and rest.headers["www-authenticate"] == "Bearer"
    assert approvals_of() == []


def test_hms_login_keeps_the_token_readable_by_its_owner_only(api: Api, tmp_path: Path) -> None:
    import subprocess

    creds = tmp_path / "alice" / "credentials.json"
    env = {**api.env, "HMS_CREDENTIALS": str(creds)}
    r = subprocess.run([HMS, "login", "--api", api.url, "--token-stdin"], env=env, input=api.token("alice") + "\n",
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(creds.stat().st_mode) == 0o600
    assert json.loads(creds.read_text())["user"] == "alice"
    who = json.loads(subprocess.run([HMS, "whoami", "--json"], env=env, capture_output=True, text=True).stdout)
    assert who["principal"] == {"name": "alice", "via": "airflow-token", "run_id": None, "on_behalf_of": None}
    assert who["roles"] == ["legal"]

    creds.chmod(0o644)
    leaked = subprocess.run([HMS, "whoami"], env=env, capture_output=True, text=True)
    assert leaked.returncode == 2 and "readable by others" in leaked.stderr
    creds.chmod(0o600)
    subprocess.run([HMS, "logout"], env=env, check=True, capture_output=True)
    assert not creds.exists()


def test_a_wrong_token_is_not_kept_by_hms_login(api: Api, tmp_path: Path) -> None:
    import subprocess

    creds = tmp_path / "c.json"
    env = {**api.env, "HMS_CREDENTIALS": str(creds)}
    r = subprocess.run([HMS, "login", "--api", api.url, "--token-stdin"], env=env, input="forged\n",
                       capture_output=True, text=True)
    assert r.returncode == 2 and not creds.exists()


# ---- roles come from the token's user, through every changing route -----------------------------------------


def test_config_apply_through_the_api_needs_an_admins_token(api: Api, tmp_path: Path) -> None:
    from tests.deploy_helpers import write_config

    changed = write_config(tmp_path / "changed.yml",
                           chaos={"environment": "preprod", "time": "20s", "kill_fraction": 0.2})
    refused = api.hms("bob", "config", "apply", str(changed), check=False)
    assert refused.returncode == 1 and "bob is not an admin" in refused.stderr
    done = json.loads(api.hms("ops", "config", "apply", str(changed), "--json").stdout)
    assert done["applied_by"] == "ops" and done["changed"] is True


def test_abort_through_the_api_takes_the_role_from_the_token(api: Api) -> None:
    refused = api.hms("dana", "rule", "abort", "run-1", "--reason", "stop", check=False)
    assert refused.returncode == 1 and "dana holds: scheduler" in refused.stderr
    done = json.loads(api.hms("erin", "rule", "abort", "run-1", "--reason", "stop", "--json").stdout)
    assert done["by"]["name"] == "erin" and done["run"]["ended_by"] == "erin"


def test_deploy_and_rollback_through_the_api_are_recorded_under_the_tokens_user(api: Api) -> None:
    sha = pushed(api, "carol")
    api.hms("alice", "rule", "review", sha, "--approve")
    api.hms("bob", "rule", "review", sha, "--approve")
    record_checks_for(sha, ("test", "scan"))
    out = json.loads(api.hms("erin", "rule", "deploy", sha, "--env", "staging", "--json").stdout)
    assert out["state"] == "live" and out["environment"] == "staging"
    back = json.loads(api.hms("erin", "rule", "rollback", PID, "--env", "staging", "--json").stdout)
    assert back["state"] == "rolled_back"
    with session_scope(read_only=True) as s:
        actors = {e.action: e.actor for e in s.scalars(select(AuditEntry))}
        assert list(s.scalars(select(Deployment.created_by))) == ["erin"]
    assert actors["deploy.live"] == "erin" and actors["rollback.withdrawn"] == "erin"


def test_a_rollback_as_a_client_never_loads_sqlalchemy(api: Api) -> None:
    import subprocess

    sha = pushed(api, "carol")
    api.hms("alice", "rule", "review", sha, "--approve")
    api.hms("bob", "rule", "review", sha, "--approve")
    record_checks_for(sha, ("test", "scan"))
    api.hms("erin", "rule", "deploy", sha, "--env", "staging")
    probe = ("import sys; from hms.cli import main; code = main(['rule', 'rollback', 'wildfire-aid-2024', '--env', "
             "'staging']); print('LOADED' if any(m.startswith('sqlalchemy') for m in sys.modules) else 'LIGHT', code)")
    r = subprocess.run([sys.executable, "-c", probe], env=api.as_user("erin"), capture_output=True, text=True)
    assert r.stdout.split()[-2:] == ["LIGHT", "0"], r.stdout + r.stderr


# ---- the openapi document -----------------------------------------------------------------------------------


def test_every_changing_route_declares_its_request_and_response_models(api: Api) -> None:
    doc = httpx.get(f"{api.url}/hms/api/openapi.json").json()
    routes = [("/api/me", "get", None, "WhoAmIOut"), ("/api/bundles", "post", "PushIn", "PushOut"),
              ("/api/reviews", "post", "ReviewIn", "ReviewOut"), ("/api/deployments", "post", "DeployIn", "DeployOut"),
              ("/api/rollbacks", "post", "RollbackIn", "RollbackOut"),
              ("/api/rollbacks/run", "post", "RunRollbackIn", "RunRollbackOut"),
              ("/api/runs/{run_id}/abort", "post", "AbortIn", "AbortOut"),
              ("/api/policy", "post", "PolicyApplyIn", "PolicyApplyOut"),
              # the clerk page's and the ops view's
              ("/api/reviews", "get", None, "ReviewBoardOut"),
              ("/api/reviews/{sha256}/{decision}", "post", "DecisionIn", "DecisionOut"),
              ("/api/protocols", "get", None, "ProtocolsOut"),
              ("/api/activations/{sha256}/move", "post", "MoveIn", "MoveOut")]
    for path, method, body, answer in routes:
        op = doc["paths"][path][method]
        if body:
            assert op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(body), path
        assert op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(answer), path
        assert op["responses"]["401"]["content"]["application/json"]["schema"]["$ref"].endswith("ErrorOut"), path


# ---- shared registries and the pipeline ---------------------------------------------------------------------


def test_a_person_cannot_write_a_shared_registry_directly(env: dict[str, str]) -> None:
    import subprocess

    shared = {**env, "HMS_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"}  # never reached
    for args in (["rule", "review", f"{PID}@3", "--approve"], ["rule", "deploy", f"{PID}@3", "--env", "staging"],
                 ["rule", "rollback", PID], ["rule", "abort", "run-1"], ["config", "apply", str(WILDFIRE)]):
        r = subprocess.run([HMS, *args], env=shared, capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and "shared" in r.stderr and "hms login" in r.stderr, (args, r.stderr)


def test_the_pipeline_secret_is_the_pipelines_identity_and_it_does_not_review(env: dict[str, str]) -> None:
    import subprocess

    pin_config(users=users())
    sha = pushed(env)
    os.environ["HMS_HOME"] = env["HMS_HOME"]
    as_pipeline = {**env, **identity.pipeline_env("run-7")}
    assert stat.S_IMODE(identity.secret_file().stat().st_mode) == 0o600
    r = subprocess.run([HMS, "rule", "review", sha, "--approve"], env=as_pipeline, capture_output=True, text=True)
    assert r.returncode == 2 and "the pipeline does not review" in r.stderr
    forged = {**env, "HMS_PIPELINE_SECRET": "guess", "HMS_RUN_ID": "run-7"}
    r = subprocess.run([HMS, "rule", "abort", "run-7"], env=forged, capture_output=True, text=True)
    assert r.returncode == 2 and "does not match the pipeline secret" in r.stderr
    r = subprocess.run([HMS, "rule", "abort", "run-7", "--json"], env=as_pipeline, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["by"] == {"name": "airflow", "via": "pipeline", "run_id": "run-7", "on_behalf_of": None}
