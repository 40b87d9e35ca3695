"""Issue 14: every gate at every environment, in the core — the attacks that used to work and now do not.

Each test is named after the behaviour it proves. Before this change Airflow's "Mark success" on
``review.approvals`` let staging and preprod take a bundle nobody approved, prod took one with no
recorded test, scan or chaos, a superseded version could still be reviewed and deployed, and the
author could approve their own rule by writing their name in another case.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from hms import approvals, clock, deployments, evidence, pinned_policy
from hms.errors import CheckFailed
from hms.registry import store
from hms.registry.db import session_scope
from tests.deploy_helpers import approve, config, pin_config, promote_all, ready, record, record_checks, variant


def _deploy(b, env, cfg, at=None):
    with session_scope() as s:
        return deployments.deploy(s, b, env, activate_at=at, actor="t", config=cfg)


@pytest.mark.parametrize("env", ["staging", "preprod", "prod"])
def test_no_environment_takes_a_bundle_without_approvals_even_when_its_review_task_is_marked_success(
    registry_url, env
):
    """"Mark success" on the review task only skips the sensor: the deploy step itself must refuse."""
    cfg = config()
    b = record(variant(3))
    record_checks(b)
    with session_scope() as s, pytest.raises(CheckFailed, match=f"approval policy not met for sha256:{b.sha256}"):
        deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg)
    assert deployments.live_bundle(b.protocol.id, env) is None


@pytest.mark.parametrize("kind", ["test", "scan"])
@pytest.mark.parametrize("env", ["staging", "prod"])
def test_a_deploy_needs_a_recorded_passing_test_and_scan_for_this_exact_hash(registry_url, kind, env):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    with session_scope() as s:
        store.record_check(s, sha256=b.sha256, kind=kind, ok=False, summary={"ok": False}, actor="t")
    with session_scope() as s, pytest.raises(CheckFailed, match=f"newest recorded {kind} of sha256:{b.sha256} failed"):
        deployments.check_order(s, b, env, cfg)


def test_a_deploy_names_each_missing_check_and_the_command_that_records_it(registry_url):
    cfg = config()
    b = record(variant(3))
    approve(b, cfg)
    with session_scope() as s, pytest.raises(CheckFailed) as e:
        deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
    msg = str(e.value)
    assert f"no recorded passing test for sha256:{b.sha256}; run hms policy test sha256:{b.sha256} --record" in msg
    assert f"no recorded passing scan for sha256:{b.sha256}; run hms scan sha256:{b.sha256} --record" in msg
    assert "chaos" not in msg  # staging is before the chaos environment


def test_prod_needs_a_recorded_passing_chaos_for_this_hash_and_preprod_does_not(registry_url):
    cfg = config()
    assert cfg.chaos.environment == "preprod"
    b = record(variant(3))
    record_checks(b, ("test", "scan"))
    approve(b, cfg)
    _deploy(b, "staging", cfg)
    _deploy(b, "preprod", cfg)
    with pytest.raises(CheckFailed, match=f"no recorded passing chaos for sha256:{b.sha256}"):
        _deploy(b, "prod", cfg)
    record_checks(b, ("chaos",))
    assert _deploy(b, "prod", cfg).state == "live"


def test_a_superseded_bundle_is_deployed_nowhere_but_can_still_be_restored_by_rollback(registry_url):
    cfg = config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready(record(variant(4, max_payment=6000)), cfg)
    promote_all(v4, cfg)
    ready(record(variant(5, max_payment=7000)), cfg)  # pushed (and even approved) but not deployed yet
    with pytest.raises(CheckFailed, match="superseded by v5"):
        _deploy(v4, "prod", cfg, clock.now() + timedelta(hours=1))
    with session_scope() as s:
        ch = deployments.rollback(s, v3.protocol.id, "prod", actor="ops", config=cfg)
    assert ch.version == 3


def test_the_cli_and_the_web_record_no_review_of_a_superseded_version(registry_url):
    cfg = config()
    v3 = record(variant(3))
    record(variant(4, max_payment=6000))
    with session_scope() as s, pytest.raises(CheckFailed, match="superseded by v4; review that one") as e:
        deployments.record_review(s, v3, user="alice", role="legal", decision="approve", comment="", config=cfg)
    assert e.value.exit_code == 1  # a gate said no, as the web's 409
    with session_scope() as s:
        assert deployments.reviews_for(s, v3.sha256, pinned_policy.governing(s)) == []


@pytest.mark.parametrize("spelled", ["Carol", "carol", " CAROL ", "ｃａｒｏｌ", "CAROL\t"])
def test_the_author_can_never_review_whatever_the_case_or_unicode_form(spelled):
    h = "a" * 64
    reason = approvals.why_not_allowed(
        approvals.Review(h, spelled, "legal", "approve"), author="Carol", user_roles=None
    )
    assert reason is not None and "author" in reason
    assert approvals.same_person("ｃａｒｏｌ", "Carol") and not approvals.same_person("carol", "carl")


def test_the_pusher_of_a_bundle_never_counts_as_its_reviewer(registry_url):
    cfg = config()
    b = record(variant(3))  # recorded by "tester" (tests/deploy_helpers.record)
    roles = {"Tester": ("legal",), "alice": ("legal",), "bob": ("budget",)}
    lenient = pin_config(users={**{k: list(v) for k, v in roles.items()}, "ops": ["admin"]})
    with session_scope() as s, pytest.raises(Exception, match="pushed this bundle"):
        deployments.record_review(s, b, user="Tester", role="legal", decision="approve", comment="", config=lenient)
    with session_scope() as s:
        status = deployments.approval_status(s, b, cfg)
    assert not status.satisfied


def test_two_spellings_of_one_clerk_are_one_approver():
    h = "b" * 64
    policy = approvals.ApprovalPolicy(2, ())
    reviews = [approvals.Review(h, "alice", "legal", "approve"), approvals.Review(h, "ALICE", "budget", "approve")]
    status = approvals.evaluate(policy, reviews, bundle_sha256=h, author="drafter")
    assert status.still_needed == 1 and not status.satisfied


def test_promote_checks_every_target_before_it_writes_anything(registry_url):
    cfg = config()
    b = record(variant(3))
    record_checks(b, ("test", "scan"))  # approved by nobody, no chaos
    with session_scope() as s, pytest.raises(CheckFailed) as e:
        deployments.preflight(s, b, ["staging", "preprod", "prod"], None, cfg)
    msg = str(e.value)
    assert msg.startswith(f"promote {b.protocol.id} v3: nothing deployed")
    assert "staging, preprod, prod: approval policy not met" in msg
    assert "must be live in staging" not in msg  # the promote itself makes the earlier targets live
    assert "chaos" not in msg  # the promote runs preprod's chaos stage itself (evidence.PromoteSteps)
    for env in cfg.environment_names:
        assert deployments.live_bundle(b.protocol.id, env) is None


def test_promote_runs_the_checks_a_bundle_lacks_where_the_pipeline_runs_them(registry_url):
    cfg = config()
    b = ready(record(variant(3)))
    with session_scope() as s:
        assert deployments.preflight(s, b, ["staging", "preprod", "prod"], None, cfg) == evidence.PromoteSteps((), None)
    c = record(variant(4))
    approve(c, cfg)
    with session_scope() as s:
        steps = deployments.preflight(s, c, ["staging", "preprod", "prod"], None, cfg)
        assert steps == evidence.PromoteSteps(("test", "scan"), "preprod")
        assert steps.covers("preprod", ["staging", "preprod", "prod"]) == ("test", "scan")
        assert steps.covers("prod", ["staging", "preprod", "prod"]) == ("test", "scan", "chaos")
    with session_scope() as s, pytest.raises(CheckFailed) as e:  # prod alone: nobody runs preprod's chaos
        deployments.preflight(s, c, ["prod"], None, cfg)
    assert "prod: no recorded passing chaos" in str(e.value)
