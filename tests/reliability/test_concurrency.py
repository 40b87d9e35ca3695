"""Concurrency: real `hms` processes racing on one registry (SQLite and PostgreSQL).

Every race starts its commands at one shared instant (racing.py). What must hold whoever wins:
one row per fact (bundle, approval, live deployment), losers refused cleanly (exit 2, no
traceback), the audit chain intact, and the decision service agreeing with the registry.
"""

from __future__ import annotations

import functools
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from hms import gates, identity
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import Approval, Bundle, Deployment
from tests.api_helpers import running_api
from tests.conftest import WILDFIRE
from tests.deploy_helpers import promote_all, record, record_checks_for, variant
from tests.deploy_helpers import ready as ready_in_process
from tests.reliability.conftest import (
    FAMILY,
    PID,
    Run,
    as_json,
    audit_entries,
    audit_ok,
    hms,
    ready,
    serve,
    variant_file,
)
from tests.reliability.racing import race


@pytest.fixture
def renv(registry_url: str, env: dict[str, str]) -> dict[str, str]:
    """The commands' environment. SQLite: they act as this process's OS account. PostgreSQL is a shared
    registry, where people act through the HMS API and only the pipeline writes directly (hms.identity):
    there the racing pushes, deploys and rollbacks are the pipeline's."""
    e = {**env, "HMS_DATABASE_URL": registry_url}
    if not registry_url.startswith("sqlite"):
        e.update(identity.pipeline_env())
    return e


@pytest.fixture
def run(renv: dict[str, str]) -> Run:
    return functools.partial(hms, renv)


def _count(model, *where) -> int:  # type: ignore[no-untyped-def]
    with session_scope(read_only=True) as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _clean(finishes) -> None:  # type: ignore[no-untyped-def]
    for f in finishes:
        assert "Traceback" not in f.stderr, f"{f.argv} crashed:\n{f.stderr}"
        assert f.returncode in (0, 2), f"{f.argv} exited {f.returncode}: {f.stderr}"


def test_simultaneous_pushes_of_one_protocol_leave_one_bundle_row_and_one_audit_entry(renv, run):
    finishes = race(renv, [["rule", "push", str(WILDFIRE), "--json"]] * 4)
    _clean(finishes)
    assert all(f.returncode == 0 for f in finishes), [f.stderr for f in finishes]
    assert sum('"new": true' in f.stdout for f in finishes) == 1
    assert _count(Bundle) == 1
    assert [e["action"] for e in audit_entries(run) if e["action"] != "config.apply"] == ["bundle.recorded"]
    audit_ok(run)


def test_simultaneous_pushes_of_two_contents_under_one_version_keep_one_and_refuse_the_other(renv, run, tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = variant_file(tmp_path / "a", 4, 3000), variant_file(tmp_path / "b", 4, 9000)
    finishes = race(renv, [["rule", "push", str(a)], ["rule", "push", str(b)]] * 2)
    _clean(finishes)
    won = {f.argv[2] for f in finishes if f.returncode == 0}
    assert len(won) == 1, [(f.argv, f.returncode, f.stderr) for f in finishes]
    assert all("already recorded" in f.stderr for f in finishes if f.returncode == 2)
    assert _count(Bundle) == 1 and [e["action"] for e in audit_entries(run) if e["action"] != "config.apply"] == [
        "bundle.recorded"]
    audit_ok(run)


def test_two_clerks_approving_at_the_same_instant_are_both_recorded_once(renv, run):
    sha = as_json(run, "rule", "push", str(WILDFIRE))["sha256"]
    with running_api(renv) as api:  # each clerk logged in as themselves; the API serves both at once
        finishes = race([api.as_user("alice"), api.as_user("bob")],
                        [["rule", "review", sha, "--role", "legal", "--approve", "--json"],
                         ["rule", "review", sha, "--role", "budget", "--approve", "--json"]])
    _clean(finishes)
    assert all(f.returncode == 0 for f in finishes), [f.stderr for f in finishes]
    assert _count(Approval, Approval.bundle_sha256 == sha) == 2
    reviews = [e for e in audit_entries(run) if e["action"] == "review.approve"]
    assert sorted(e["actor"] for e in reviews) == ["alice", "bob"]
    # the policy is met exactly once: the later of the two commits saw both approvals
    assert sum('"satisfied": true' in f.stdout for f in finishes) >= 1
    record_checks_for(sha)  # passing test, scan and chaos, as the pipeline's steps leave them
    for e in ("staging", "preprod", "prod"):
        run("rule", "deploy", sha, "--env", e)
    assert as_json(run, "rule", "status", PID)["environments"][2]["live"]["sha256"] == sha
    audit_ok(run)


def test_one_clerk_clicking_approve_and_reject_at_once_keeps_exactly_one_decision(renv, run):
    sha = as_json(run, "rule", "push", str(WILDFIRE))["sha256"]
    base = ["rule", "review", sha, "--role", "legal"]
    with running_api(renv) as api:  # carol, logged in, clicking three times in three shells
        finishes = race([api.as_user("carol")] * 3,
                        [[*base, "--approve"], [*base, "--approve"], [*base, "--reject", "--comment=no"]])
    _clean(finishes)
    assert sum(f.returncode == 0 for f in finishes) == 1, [(f.returncode, f.stderr) for f in finishes]
    assert all("already recorded" in f.stderr for f in finishes if f.returncode == 2)
    assert _count(Approval, Approval.bundle_sha256 == sha) == 1
    assert len([e for e in audit_entries(run) if e["action"].startswith("review.")]) == 1
    audit_ok(run)


def _live_v3_pending_v4(seconds_ahead: float) -> tuple[str, str, datetime]:
    """v3 live everywhere, v4 approved and live in staging+preprod, pending in prod (set up in-process: fast)."""
    cfg = load_pipeline_config()
    v3 = ready_in_process(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready_in_process(record(variant(4, max_payment=3000)), cfg)  # recorded once v3 is out: it supersedes v3
    at = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    promote_all(v4, cfg, activate_at=at, run_id="run-1")
    return v3.sha256, v4.sha256, at


def answers_version(url: str, version: int, within: float = 2.0) -> None:
    deadline = time.monotonic() + within
    path = f"{url}/v1/protocols/{PID}/decide"
    while (v := httpx.post(path, json={"input": FAMILY}).json()).get("version") != version:
        assert time.monotonic() < deadline, f"the replica serves {v}, not v{version}"
        time.sleep(0.02)


@pytest.mark.parametrize("offset", [-0.3, 0.0, 0.3])
def test_a_rollback_racing_a_pending_activation_leaves_the_previous_version_in_force(renv, run, offset):
    with serve(renv) as (url, _proc):
        v3, v4, at = _live_v3_pending_v4(seconds_ahead=5)
        answers_version(url, 3)  # the replica has picked the deployments up
        finishes = race(renv, [["rule", "rollback", PID, "--env", "prod", "--json"],
                               ["rule", "status", PID, "--json"]],  # status settles due activations
                        start_at=at.timestamp() + offset)
        _clean(finishes)
        assert finishes[0].returncode == 0, finishes[0].stderr
        answers_version(url, 3)
    with session_scope(read_only=True) as s:
        prod = list(s.scalars(select(Deployment).where(Deployment.environment == "prod").order_by(Deployment.id)))
    states = [(d.version, d.state) for d in prod]
    assert [d for d in prod if d.state in ("live", "pending")][-1].bundle_sha256 == v3, states
    assert sum(d.state in ("live", "pending") for d in prod) == 1, states  # no duplicate deployment
    # either the activation never happened (cancelled) or it happened and was rolled back — nothing else
    v4_rows = [d.state for d in prod if d.bundle_sha256 == v4]
    assert v4_rows in (["cancelled"], ["rolled_back"]), states
    audit_ok(run)


def test_a_scheduler_moving_the_effective_time_while_the_activation_wait_polls(renv, run):
    sha = as_json(run, "rule", "push", str(WILDFIRE))["sha256"]
    ready(sha)
    for e in ("staging", "preprod"):
        run("rule", "deploy", sha, "--env", e)
    now = datetime.now(UTC).replace(microsecond=0)
    times = [now + timedelta(seconds=s) for s in (300, 120, 600, 60)]
    run("rule", "deploy", sha, "--env", "prod", "--schedule", times[0].isoformat(), "--run-id", "run-7")
    seen: list[datetime | None] = []
    stop = threading.Event()

    def wait_like_the_flip_task() -> None:  # what ActivationTrigger does, as fast as it can
        while not stop.is_set():
            seen.append(gates.activation_time("run-7", "prod"))

    poller = threading.Thread(target=wait_like_the_flip_task)
    poller.start()
    try:
        for t in times[1:]:
            run("rule", "deploy", sha, "--env", "prod", "--schedule", t.isoformat(), "--run-id", "run-7")
        # then: soon — but far enough that this last deploy is recorded before it comes (a time already past
        # when the gates are met is "now", by design: hms.effective_time), even on a loaded machine
        times.append(datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=12))
        run("rule", "deploy", sha, "--env", "prod", "--schedule", times[-1].isoformat(), "--run-id", "run-7")
        time.sleep(0.3)
    finally:
        stop.set()
        poller.join(10)
    assert None not in seen, "the wait saw the activation cancelled while it was only being moved"
    assert set(seen) <= set(times), f"the wait saw a time nobody scheduled: {set(seen) - set(times)}"
    assert seen[-1] == times[-1] and len(seen) > 20
    while datetime.now(UTC) < times[-1]:
        time.sleep(0.2)
    prod = as_json(run, "rule", "status", PID)["environments"][2]  # settles the due activation
    assert prod["live"]["sha256"] == sha and prod["pending"] == []
    with session_scope(read_only=True) as s:
        rows = list(s.scalars(select(Deployment).where(Deployment.environment == "prod")))
    assert sorted(d.state for d in rows) == ["cancelled"] * 4 + ["live"]
    assert next(d for d in rows if d.state == "live").activate_at == times[-1]
    assert [e["action"] for e in audit_entries(run)].count("activation.live") == 1
    audit_ok(run)
