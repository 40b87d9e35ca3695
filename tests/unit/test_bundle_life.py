"""A card is the bundle's life (issue 18, item 2): pushed, each check, each review, each environment's deploy,
activation, move, supersession and rollback, and its run's abort — who, when, which run, why."""

from __future__ import annotations

from datetime import timedelta
from zoneinfo import ZoneInfo

from hms import clock, deployments, run_state
from hms.abort import abort_run
from hms.identity import Principal
from hms.registry import store
from hms.registry.db import session_scope
from hms.web import reviews
from hms.web.bundle_life import life
from tests.deploy_helpers import PASSING, approve, config, promote_all, ready, record, variant

PID = "wildfire-aid-2024"
NY = ZoneInfo("America/New_York")


def kinds_and_sentences(sha: str) -> list[tuple[str, str]]:
    with session_scope(read_only=True) as s:
        return [(e.kind, e.sentence) for e in life(s, sha, NY, last_environment="prod")]


def test_a_released_bundle_tells_push_checks_reviews_deploys_and_activation_in_order(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    promote_all(b, cfg, run_id="run-a")
    events = kinds_and_sentences(b.sha256)
    kinds = [k for k, _ in events]
    assert kinds[0] == "pushed" and events[0][1].startswith("pushed v3 by tester")
    assert kinds.count("check") == 3 and kinds.count("review") == 2
    assert next(s for k, s in events if k == "review") == "approved by alice as legal: “ok”"
    deploys = [s for k, s in events if k == "deploy"]
    assert [d.split(",")[0] for d in deploys] == ["deployed to staging", "deployed to preprod", "deployed to prod"]
    with session_scope(read_only=True) as s:
        every = life(s, b.sha256, NY, last_environment="prod")
    assert [e.at for e in every] == sorted(e.at for e in every)
    assert {e.run_id for e in every if e.kind == "deploy"} == {"run-a"}
    assert all(" EST" in s or " EDT" in s for k, s in events if k == "deploy")  # the zone is named


def test_a_version_rolled_back_in_prod_says_so_and_which_version_came_back(registry_url):
    cfg = config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg, run_id="run-a")
    v4 = ready(record(variant(4, max_payment=6000)), cfg)
    promote_all(v4, cfg, run_id="run-b")
    with session_scope() as s:
        deployments.rollback(s, PID, "prod", actor="erin", config=cfg)
    v4_life = kinds_and_sentences(v4.sha256)
    assert ("rollback", "rolled back in prod: v3 restored by erin") in v4_life
    v3_life = kinds_and_sentences(v3.sha256)
    superseded = [s for k, s in v3_life if k == "superseded"]
    assert any(s.startswith("superseded in prod by v4 at ") for s in superseded)
    assert any(k == "rollback" and s.startswith("restored in prod by a rollback instead of ") for k, s in v3_life)


def test_a_bundle_whose_run_was_aborted_before_the_review_no_longer_reads_waiting(registry_url):
    cfg = config()
    b = record(variant(3))
    with session_scope() as s:
        for kind in ("test", "scan"):
            store.record_check(s, sha256=b.sha256, kind=kind, ok=True, summary=PASSING, actor="airflow",
                               run_id="run-x")
        run_state.mark_alive(s, "run-x", actor="airflow")
        abort_run(s, "run-x", by=Principal.person("erin"), reason="wrong poverty table", config=cfg)
    with session_scope(read_only=True) as s:
        view = reviews._view(s, reviews.bundle_for(s, b.sha256), reviews.Caller("alice", ("legal",)), cfg)
    assert view.state == "waiting"
    assert view.run_stopped is not None
    assert view.run_stopped.sentence == "run run-x aborted by erin: wrong poverty table"
    assert view.to_dict()["run_stopped"]["run_id"] == "run-x"


def test_a_bundle_under_review_says_since_when_and_until_when_the_run_waits(registry_url):
    cfg = config()
    b = record(variant(3))
    before = clock.now()
    with session_scope() as s:
        for kind in ("test", "scan"):
            store.record_check(s, sha256=b.sha256, kind=kind, ok=True, summary=PASSING, actor="airflow")
    with session_scope(read_only=True) as s:
        view = reviews._view(s, reviews.bundle_for(s, b.sha256), reviews.Caller("alice", ("legal",)), cfg)
    assert view.waiting_since is not None and view.waiting_since >= before - timedelta(seconds=1)
    assert view.review_deadline == view.waiting_since + timedelta(hours=cfg.approvals.timeout_hours)
    assert view.run_stopped is None
    approve(b, cfg)
    with session_scope(read_only=True) as s:
        done = reviews._view(s, reviews.bundle_for(s, b.sha256), reviews.Caller("alice", ("legal",)), cfg)
    assert done.state == "approved" and done.run_stopped is None


def test_a_failed_scan_means_no_review_is_under_way(registry_url):
    cfg = config()
    b = record(variant(3))
    with session_scope() as s:
        store.record_check(s, sha256=b.sha256, kind="test", ok=True, summary=PASSING, actor="airflow")
        store.record_check(s, sha256=b.sha256, kind="scan", ok=False, summary=PASSING, actor="airflow")
    with session_scope(read_only=True) as s:
        view = reviews._view(s, reviews.bundle_for(s, b.sha256), reviews.Caller("alice", ("legal",)), cfg)
    assert view.waiting_since is None and view.review_deadline is None
    assert ("check", "compliance scan (OPA) failed") in kinds_and_sentences(b.sha256)
