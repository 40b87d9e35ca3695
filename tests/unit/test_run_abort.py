"""Aborting a pipeline run (issue 14, item 4): ops marks a run failed while its flip waits for the effective time.

Before: the DAG's rollback task was skipped, staging and preprod kept the run's version, and prod's pending
activation still came into force at its instant on every replica. Now ``hms.abort.abort_run`` (``hms rule abort``
and the Airflow listener) rolls back every environment the run touched and cancels its pending activations, and
the registry's run state keeps a pending activation of an aborted run out of force even if nothing cancelled it.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hms import clock, deployments, gates, run_state
from hms.abort import abort_run, failed_run_message, rollback_summary
from hms.errors import BadInput, CheckFailed
from hms.identity import Principal
from hms.registry import audit
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry, Deployment, Run
from hms.service.source import RegistrySource
from tests.deploy_helpers import config, promote_all, ready, record, serving, variant

PID = "wildfire-aid-2024"
OPS = Principal.person("erin")  # erin: [ops] in .hms-ci/policy-pipeline.yml


def mid_flip(cfg, *, hours: float = 1.0):
    """v3 in force everywhere (run-a, published); run-b took v4 to staging and preprod and left prod pending."""
    release = ready(record(variant(3)), cfg)
    promote_all(release, cfg, run_id="run-a")
    with session_scope() as s:
        run_state.mark_published(s, "run-a", actor="airflow")
    v4 = ready(record(variant(4, max_payment=6000)), cfg)
    at = clock.now() + timedelta(hours=hours)
    promote_all(v4, cfg, activate_at=at, run_id="run-b")
    assert [serving(e) for e in ("staging", "preprod", "prod")] == [4, 4, 3]
    assert serving("prod", at=at) == 4  # what the attack exploits: at its instant prod switches to the run's v4
    return at


def audit_count() -> int:
    with session_scope() as s:
        return s.scalar(select(func.count()).select_from(AuditEntry))


def test_abort_rolls_back_every_environment_the_run_touched_and_cancels_its_pending_activation(registry_url):
    cfg = config()
    at = mid_flip(cfg)
    with session_scope() as s:
        result = abort_run(s, "run-b", by=OPS, reason="wrong poverty table", config=cfg)
    assert sorted(c.environment for c in result.undone) == ["preprod", "prod", "staging"]
    assert result.run.state == "aborted" and result.run.ended_by == "erin"
    assert [serving(e) for e in ("staging", "preprod", "prod")] == [3, 3, 3]
    assert serving("prod", at=at) == 3 and serving("prod", at=at + timedelta(days=30)) == 3
    with session_scope() as s:
        assert deployments.pending(s, "prod", PID) == []
        prod_v4 = s.scalar(select(Deployment).where(Deployment.environment == "prod", Deployment.version == 4))
        assert prod_v4.state == "cancelled" and prod_v4.activate_at == at  # the instant is kept, never rewritten
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "run.aborted"))
        assert entry.actor == "erin" and entry.subject == "run-b"
        details = json.loads(entry.details)
        assert details["reason"] == "wrong poverty table"
        assert details["principal"] == {"name": "erin", "via": "airflow-token", "run_id": None, "on_behalf_of": None}
        assert details["environments"] == ["staging", "preprod", "prod"]
        assert audit.verify(s).ok


def test_a_pending_activation_of_an_aborted_run_is_never_in_force_at_its_instant(registry_url):
    """The backstop: the run recorded aborted, and *nothing else* done (the rollback never ran, Airflow never
    called): the registry, every replica's timeline, ``settle`` and the flip's wait all leave it out."""
    cfg = config()
    at = mid_flip(cfg)
    with session_scope() as s:
        row = s.get(Run, "run-b")
        row.state, row.ended_at, row.ended_by = "aborted", clock.now(), "erin"
    assert serving("prod", at=at) == 3
    with session_scope() as s:
        assert deployments.pending(s, "prod", PID) == []
    assert gates.activation_time("run-b", "prod") is None  # the flip task fails instead of waiting
    with clock.frozen(at):  # the instant itself: replicas pick by their clock from the registry's rows
        snap = RegistrySource("prod").load()
        assert snap.timelines[PID].in_force(at).version == 3
        with session_scope() as s:
            changes = deployments.settle(s, "prod", cfg, actor="hms")
        assert serving("prod") == 3
    assert [c.state for c in changes] == ["cancelled"]
    with session_scope() as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.action == "activation.refused_aborted_run")) is not None


def test_an_activation_that_came_before_the_abort_stays_in_history_and_is_rolled_back_from_then(registry_url):
    cfg = config()
    at = mid_flip(cfg)
    aborted = at + timedelta(minutes=30)
    with clock.frozen(aborted), session_scope() as s:  # replicas switched at `at`; nobody settled it yet
        abort_run(s, "run-b", by=OPS, reason="late complaint", config=cfg)
    assert serving("prod", at=at + timedelta(minutes=10)) == 4  # what was answered then stays what it was
    assert serving("prod", at=aborted + timedelta(seconds=1)) == 3  # from the rollback's switch instant on
    with session_scope() as s:
        prod_v4 = s.scalar(select(Deployment).where(Deployment.environment == "prod", Deployment.version == 4))
        assert (prod_v4.state, prod_v4.activate_at) == ("rolled_back", at)
        assert aborted <= prod_v4.ended_at <= aborted + timedelta(seconds=1)  # effective_time.switch_instant


def test_a_deploy_of_an_aborted_run_is_refused_and_writes_nothing(registry_url):
    cfg = config()
    v4 = ready(record(variant(4)), cfg)
    with session_scope() as s:  # stopped before it deployed anything: recorded, so its late steps are refused
        result = abort_run(s, "run-c", by=OPS, reason="stop it", config=cfg)
    assert result.environments == [] and result.undone == []
    with session_scope() as s, pytest.raises(CheckFailed, match="run run-c was aborted"):
        deployments.deploy(s, v4, "staging", activate_at=None, actor="airflow", config=cfg, run_id="run-c")
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Deployment)) == 0


@pytest.mark.parametrize(
    ("who", "run_id", "reason", "error", "where"),
    [
        ("alice", "run-b", "x", CheckFailed, "user"),  # a clerk: no ops role
        ("dana", "run-b", "x", CheckFailed, "user"),  # a scheduler neither
        ("erin", "run b; rm -rf /", "x", BadInput, "RUN"),
        ("erin", "", "x", BadInput, "RUN"),
        ("erin", "run-b", "   ", BadInput, "--reason"),
        ("erin", "run-b", "x" * 2001, BadInput, "--reason"),
    ],
)
def test_a_refused_abort_names_the_field_and_changes_nothing(registry_url, who, run_id, reason, error, where):
    cfg = config()
    at = mid_flip(cfg)
    before = audit_count()
    with session_scope() as s, pytest.raises(error) as e:
        abort_run(s, run_id, by=Principal.person(who), reason=reason, config=cfg)
    assert e.value.where == where and e.value.exit_code == (1 if error is CheckFailed else 2)
    assert audit_count() == before
    assert [serving(e) for e in ("staging", "preprod", "prod")] == [4, 4, 3] and serving("prod", at=at) == 4
    with session_scope() as s:
        assert s.get(Run, "run-b").state == "alive"


def test_without_users_in_the_config_nobody_may_abort(registry_url):
    cfg = config()
    mid_flip(cfg)
    with session_scope() as s, pytest.raises(CheckFailed, match="needs the role 'ops'"):
        abort_run(s, "run-b", by=OPS, reason="x", config=dataclasses.replace(cfg, users=None))


def test_aborting_again_undoes_nothing_more_and_records_no_second_abort(registry_url):
    cfg = config()
    mid_flip(cfg)
    with session_scope() as s:
        abort_run(s, "run-b", by=OPS, reason="first", config=cfg)
    before = audit_count()
    with session_scope() as s:
        again = abort_run(s, "run-b", by=Principal.pipeline("run-b"), reason="Airflow: failed", config=cfg)
    assert again.already_aborted and again.undone == [] and again.run.reason == "first"
    assert audit_count() == before
    assert [serving(e) for e in ("staging", "preprod", "prod")] == [3, 3, 3]


def test_a_published_run_is_over_it_is_rolled_back_not_aborted(registry_url):
    cfg = config()
    mid_flip(cfg)
    with session_scope() as s, pytest.raises(CheckFailed, match="was published") as e:
        abort_run(s, "run-a", by=OPS, reason="x", config=cfg)
    assert e.value.exit_code == 1 and serving("prod") == 3


def test_the_airflow_listener_aborts_a_failed_policy_run_through_the_same_core_call(registry_url):
    from hms_operators.run_listener import abort_failed_run, on_dag_run_failed

    cfg = config()
    at = mid_flip(cfg)
    assert abort_failed_run("hms_intake", "run-b", "failed") is None  # not a pipeline DAG: nothing to do
    assert serving("staging") == 4

    class Run_:  # what Airflow passes: the DagRun (only its ids are read)
        dag_id, run_id = f"policy_{PID}", "run-b"

    on_dag_run_failed(dag_run=Run_(), msg="Dag Run's state was manually set to `failed`.")
    assert [serving(e) for e in ("staging", "preprod", "prod")] == [3, 3, 3] and serving("prod", at=at) == 3
    with session_scope() as s:
        entry = s.scalar(select(AuditEntry).where(AuditEntry.action == "run.aborted"))
        assert entry.actor == "airflow" and "manually set to `failed`" in json.loads(entry.details)["reason"]


def test_the_failed_runs_last_message_names_what_was_undone_and_a_run_that_deployed_nowhere_says_so(registry_url):
    """Issue 18: fail_run said "every environment this run touched was rolled back" when it touched none."""
    cfg = config()
    mid_flip(cfg)
    with session_scope() as s:
        assert rollback_summary(s, "run-never-deployed") == "no environment was touched; nothing to roll back"
        assert failed_run_message(s, "run-never-deployed", ["build.bundle"]) == (
            "build.bundle failed; no environment was touched; nothing to roll back"
        )
        assert failed_run_message(s, "run-never-deployed", []).startswith("a pipeline step failed; no environment")
        before = rollback_summary(s, "run-b")
    assert before.startswith("NOT undone: staging (v4 live), preprod (v4 live), prod (v4 pending)"), before
    with session_scope() as s:
        abort_run(s, "run-b", by=OPS, reason="wrong poverty table", config=cfg)
    with session_scope() as s:
        after = rollback_summary(s, "run-b")
    assert after == (
        "undone: staging (v4 rolled back to v3), preprod (v4 rolled back to v3), "
        "prod (v4 cancelled before it came into force)"
    ), after
