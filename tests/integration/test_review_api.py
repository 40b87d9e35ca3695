"""The review REST API inside a real Airflow API server (AirflowStack), called with real Airflow tokens.

The plugin (plugins/hms_operators/plugin.py) is loaded by Airflow from the repository's plugins folder;
tokens come from ``POST /auth/token`` of SimpleAuthManager. The tests write their setup into the same
registry the API server reads (the stack's HMS_HOME) and each uses its own protocol id, so they do not
depend on each other's order.
"""

from __future__ import annotations

import copy
import os
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from hms import clock, deployments, pinned_policy, protocol
from hms.pipeline_config import load_pipeline_config
from hms.registry import db
from hms.registry.db import session_scope
from tests.conftest import WILDFIRE
from tests.deploy_helpers import record, record_checks, write_config

WHY = {"reason": "gazette date moved"}  # a move states why (issue 18)

pytestmark = pytest.mark.airflow
HMS = str(Path(sys.executable).parent / "hms")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from devtools.airflow_stack import AirflowStack

    base = tmp_path_factory.mktemp("review-api")
    # A freeze window of the test's own, built from the clock (the repository's are calendar dates).
    start = _weekday_noon(50)
    window = {"reason": "test change freeze", "start": start.isoformat(),
              "end": (start + timedelta(hours=2)).isoformat(), "environments": ["prod"]}
    config = write_config(base / "pipeline.yml", freeze_windows=[window])
    s = AirflowStack(base / "airflow", env={"HMS_HOME": str(base / "hms"), "HMS_PIPELINE_CONFIG": str(config)})
    s.start(timeout=300)
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def registry(stack: Any, monkeypatch: pytest.MonkeyPatch, hms_home: Path) -> Iterator[None]:
    """This test writes into the registry the API server reads, under the same pipeline settings."""
    monkeypatch.setenv("HMS_HOME", stack.env["HMS_HOME"])
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", stack.env["HMS_PIPELINE_CONFIG"])
    db.reset_engines()
    yield
    db.reset_engines()


def bundle_of(pid: str, *, author: str | None = None, version: int = 3):
    data = copy.deepcopy(protocol.load(WILDFIRE).data)
    data["metadata"].update(id=pid, version=version)
    if author:
        data["metadata"]["author"] = author
    return record(protocol.from_data(data, pid))


def call(stack: Any, method: str, path: str, *, token: str | None = None, **kw) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.request(method, f"{stack.url}/hms{path}", headers=headers, timeout=30, **kw)


def forged(stack: Any, *, secret: str | None = None, expired: bool = False) -> str:
    """A token with a real token's header and claims, re-signed (wrong key) or expired (right key)."""
    real = stack.token("alice")
    header = jwt.get_unverified_header(real)
    claims = jwt.decode(real, options={"verify_signature": False})
    if expired:
        now = int(time.time())
        claims.update(iat=now - 7200, nbf=now - 7200, exp=now - 3600)
    key = secret or stack.env["AIRFLOW__API_AUTH__JWT_SECRET"]
    return jwt.encode(claims, key, algorithm=header["alg"], headers={k: v for k, v in header.items() if k != "alg"})


def test_the_plugin_is_mounted_and_listed_in_the_ui_navigation(stack):
    with stack.client() as c:
        plugins = c.get("/api/v2/plugins").json()["plugins"]
    hms = next(p for p in plugins if p["name"] == "hms_reviews")
    assert [a["url_prefix"] for a in hms["fastapi_apps"]] == ["/hms"]
    assert {(v["url_route"], v["href"], v["destination"]) for v in hms["external_views"]} == {
        ("hms-reviews", "/hms/reviews", "nav"), ("hms-ops", "/hms/ops", "nav")}
    assert all(v["nav_top_level"] for v in hms["external_views"])


@pytest.mark.parametrize("how", ["none", "not-bearer", "garbage", "wrong-key", "expired"])
def test_without_a_valid_airflow_token_every_call_is_401(stack, registry, how):
    b = bundle_of("api-unauth")
    token = {"none": None, "garbage": "not.a.jwt", "wrong-key": forged(stack, secret="x" * 64),
             "expired": forged(stack, expired=True), "not-bearer": None}[how]
    headers = {"Authorization": "Basic YWxpY2U6YWxpY2U="} if how == "not-bearer" else {}
    if token:
        headers = {"Authorization": f"Bearer {token}"}
    for method, path in (("GET", "/api/reviews"), ("POST", f"/api/reviews/{b.sha256}/approve")):
        r = httpx.request(method, f"{stack.url}/hms{path}", headers=headers, json={}, timeout=30)
        assert r.status_code == 401, (how, path, r.text)
        assert r.json()["field"] == "Authorization"
    if how == "expired":
        assert "expired" in r.json()["detail"]
    with session_scope() as s:
        assert deployments.reviews_for(s, b.sha256, pinned_policy.governing(s)) == []


def test_two_clerks_approve_with_their_airflow_tokens(stack, registry):
    b = bundle_of("api-approve")
    pending = call(stack, "GET", "/api/reviews", token=stack.token("alice")).json()["pending"]
    assert b.sha256 in [p["sha256"] for p in pending]
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/approve", token=stack.token("alice"), json={"comment": "ok"})
    assert r.status_code == 200 and r.json()["user"] == "alice" and r.json()["role"] == "legal"
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/approve", token=stack.token("bob"), json={})
    assert r.status_code == 200 and r.json()["status"]["satisfied"] is True
    with session_scope() as s:  # recorded in the registry the pipeline's sensor reads, and audited
        assert deployments.approval_status(s, b, load_pipeline_config()).satisfied
    from hms.registry.models import AuditEntry

    with session_scope() as s:
        actions = [(e.actor, e.action) for e in s.query(AuditEntry).filter(AuditEntry.subject == b.sha256)]
    assert ("alice", "review.approve") in actions and ("bob", "review.approve") in actions


def _login(stack, tmp_path: Path, user: str, password: str):
    import subprocess

    env = {**{k: v for k, v in os.environ.items() if k not in ("HMS_TOKEN", "HMS_API")},
           "HMS_HOME": stack.env["HMS_HOME"], "HMS_CREDENTIALS": str(tmp_path / f"{user}.json")}
    r = subprocess.run([HMS, "login", "--api", stack.url, "--username", user, "--password-stdin"], env=env,
                       input=password + "\n", capture_output=True, text=True, timeout=60)
    return r, env


def test_clerks_log_in_to_the_api_server_with_hms_login_and_review_from_the_cli_as_themselves(
    stack, registry, tmp_path
):
    import stat
    import subprocess

    b = bundle_of("cli-login")
    for user in ("alice", "bob"):
        r, env = _login(stack, tmp_path, user, stack.users[user])
        assert r.returncode == 0, r.stderr
        assert f"{user} (airflow-token)" in r.stdout
        assert stat.S_IMODE((tmp_path / f"{user}.json").stat().st_mode) == 0o600
        other = "bob" if user == "alice" else "alice"
        r = subprocess.run([HMS, "rule", "review", b.sha256, "--approve", "--user", other], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and f"authenticated as {user}" in r.stderr
        r = subprocess.run([HMS, "rule", "review", b.sha256, "--approve", "--comment", "ok"], env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    with session_scope() as s:
        assert [(u, role) for u, role in deployments.approval_status(s, b, load_pipeline_config()).approvers] == [
            ("alice", "legal"), ("bob", "budget")]


def test_a_clerks_airflow_role_cannot_mark_a_task_success_or_clear_it(stack):
    """Clerks are Viewers: Airflow itself refuses them a task state change (the gates do not rely on it)."""
    dag, run, task = "policy_wildfire-aid-2024", "manual__any", "review.approvals"
    for user in ("alice", "bob"):
        token = stack.token(user)
        patch = httpx.patch(f"{stack.url}/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}",
                            json={"new_state": "success"}, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        clear = httpx.post(f"{stack.url}/api/v2/dags/{dag}/clearTaskInstances", json={"dry_run": False},
                           headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert (patch.status_code, clear.status_code) == (403, 403), (patch.text, clear.text)
    admin = httpx.patch(f"{stack.url}/api/v2/dags/{dag}/dagRuns/{run}/taskInstances/{task}",
                        json={"new_state": "success"}, headers={"Authorization": f"Bearer {stack.token('admin')}"},
                        timeout=30)
    assert admin.status_code == 404  # allowed to try: only the run does not exist


def test_a_wrong_password_keeps_no_token(stack, registry, tmp_path):
    r, _ = _login(stack, tmp_path, "alice", "not-her-password")
    assert r.returncode == 2 and "refused the login" in r.stderr
    assert not (tmp_path / "alice.json").exists()


def test_a_clerk_rejects_with_a_comment(stack, registry):
    b = bundle_of("api-reject")
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/reject", token=stack.token("bob"),
             json={"comment": "cost too high"})
    assert r.status_code == 200 and r.json()["status"]["rejected"] is True
    assert r.json()["status"]["rejections"][0]["comment"] == "cost too high"


def test_the_ui_cookie_authenticates_the_page_and_the_api_like_the_bearer_header(stack, registry):
    b = bundle_of("api-cookie")
    cookies = {"_token": stack.token("carol")}
    page = httpx.get(f"{stack.url}/hms/reviews", cookies=cookies, timeout=30)
    assert page.status_code == 200 and "signed in as <b>carol</b>" in page.text and b.sha256 in page.text
    r = httpx.post(f"{stack.url}/hms/api/reviews/{b.sha256}/approve", cookies=cookies, json={}, timeout=30)
    assert r.status_code == 200 and r.json()["user"] == "carol"
    # A cross-site form cannot send JSON: without the JSON content type nothing is parsed or recorded.
    r = httpx.post(f"{stack.url}/hms/api/reviews/{b.sha256}/reject", cookies={"_token": stack.token("bob")},
                   content=b'{"comment": "csrf"}', headers={"Content-Type": "text/plain"}, timeout=30)
    assert r.status_code == 422
    with session_scope() as s:
        assert [r.user for r in deployments.reviews_for(s, b.sha256, pinned_policy.governing(s))] == ["carol"]


def test_without_the_role_or_as_the_author_a_review_is_403(stack, registry):
    b = bundle_of("api-forbidden", author="alice")
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/approve", token=stack.token("dana"), json={})
    assert (r.status_code, r.json()["field"]) == (403, "user") and "no review role" in r.json()["detail"]
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/approve", token=stack.token("admin"), json={})
    assert r.status_code == 403  # an Airflow admin is not a clerk unless the pipeline config says so
    r = call(stack, "POST", f"/api/reviews/{b.sha256}/approve", token=stack.token("alice"), json={})
    assert r.status_code == 403 and "author" in r.json()["detail"]
    with session_scope() as s:
        assert deployments.reviews_for(s, b.sha256, pinned_policy.governing(s)) == []


def test_unknown_and_superseded_hashes_are_404_and_409(stack, registry):
    r = call(stack, "POST", f"/api/reviews/{'cd' * 32}/approve", token=stack.token("alice"), json={})
    assert (r.status_code, r.json()["field"]) == (404, "sha256")
    old = bundle_of("api-superseded", version=3)
    bundle_of("api-superseded", version=4)
    r = call(stack, "POST", f"/api/reviews/{old.sha256}/approve", token=stack.token("alice"), json={})
    assert (r.status_code, r.json()["field"]) == (409, "sha256")


def _staged(b, at: datetime, run_id: str) -> None:
    cfg = load_pipeline_config()
    record_checks(b)  # passing test, scan and chaos, as the pipeline's steps leave them
    with session_scope() as s:
        for user, role in (("alice", "legal"), ("bob", "budget")):
            deployments.record_review(s, b, user=user, role=role, decision="approve", comment="", config=cfg)
        for env in cfg.environment_names[:-1]:
            deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg, run_id=run_id)
        deployments.deploy(s, b, "prod", activate_at=at, actor="t", config=cfg, run_id=run_id)


def _weekday_noon(days: int) -> datetime:
    d = clock.now() + timedelta(days=days)
    while d.weekday() != 2:  # a Wednesday noon (New York): outside the weekly Sunday maintenance window
        d += timedelta(days=1)
    return d.replace(hour=17, minute=0, second=0, microsecond=0)


def test_a_scheduler_moves_the_effective_time_clerks_may_not_and_bad_times_are_422(stack, registry):
    b = bundle_of("api-move")
    first = _weekday_noon(40)
    _staged(b, first, run_id="manual__api-move")
    url = f"/api/activations/{b.sha256}/move"
    r = call(stack, "POST", url, token=stack.token("alice"), json={"effective_at": "+1h", **WHY})
    assert (r.status_code, r.json()["field"]) == (403, "user")
    r = call(stack, "POST", url, token=stack.token("dana"), json={"effective_at": "noon-ish", **WHY})
    assert (r.status_code, r.json()["field"]) == (422, "effective_at")
    frozen = (_weekday_noon(50) + timedelta(hours=1)).isoformat()  # inside the stack's test freeze
    r = call(stack, "POST", url, token=stack.token("dana"), json={"effective_at": frozen, **WHY})
    assert (r.status_code, r.json()["field"]) == (422, "effective_at") and "freeze" in r.json()["detail"]
    later = _weekday_noon(60)
    r = call(stack, "POST", url, token=stack.token("dana"), json={"effective_at": later.isoformat(), **WHY})
    assert r.status_code == 200, r.text
    from hms.gates import activation_time

    assert activation_time("manual__api-move", "prod") == later
    ops = call(stack, "GET", "/api/protocols", token=stack.token("dana")).json()["protocols"]
    prod = next(e for p in ops if p["protocol_id"] == "api-move" for e in p["environments"]
                if e["environment"] == "prod")
    assert [p["activate_at"] for p in prod["pending"]] == [later.isoformat()]
