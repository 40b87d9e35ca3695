"""Deployments: promotion order, the prod approval gate, exact activation, freeze windows, rollback."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from hms import clock, deployments
from hms.errors import BadInput, CheckFailed
from hms.registry import audit
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry, Deployment
from tests.conftest import CHIP
from tests.deploy_helpers import approve, config, pin_config, promote_all, ready, record, record_checks, variant

NOW = clock.now


def release(p, cfg, **kw):
    """Record, check, approve and promote one version everywhere (what a finished pipeline run leaves)."""
    b = ready(record(p), cfg)
    promote_all(b, cfg, **kw)
    return b


def _state(env: str = "prod", pid: str = "wildfire-aid-2024", at=None):
    with session_scope() as s:
        d = deployments.in_force(s, env, pid, at)
        return d.version if d else None


def test_environments_are_entered_in_order_only(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    with session_scope() as s, pytest.raises(CheckFailed, match="must be live in staging before preprod"):
        deployments.deploy(s, b, "preprod", activate_at=None, actor="t", config=cfg)
    with session_scope() as s:
        deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        deployments.deploy(s, b, "preprod", activate_at=None, actor="t", config=cfg)
    assert _state("preprod") == 3


def test_every_environment_needs_the_approval_policy_met_for_this_exact_hash(registry_url):
    cfg = config()
    other = ready(record(variant(4, path=CHIP)), cfg)  # approvals of another bundle never count
    b = record(variant(3))
    record_checks(b)
    for env in cfg.environment_names:
        with session_scope() as s, pytest.raises(CheckFailed, match="approval policy not met"):
            deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg)
    approve(b, cfg)
    with session_scope() as s:
        for env in cfg.environment_names:
            ch = deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg)
    assert ch.state == "live" and _state() == 3 and other.sha256 != b.sha256


def test_a_scheduled_activation_is_pending_until_its_instant_then_in_force(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    at = NOW() + timedelta(hours=2)
    promote_all(b, cfg, activate_at=at)
    with session_scope() as s:
        assert deployments.in_force(s, "prod", b.protocol.id) is None
        assert deployments.in_force(s, "prod", b.protocol.id, at).bundle_sha256 == b.sha256
        assert deployments.in_force(s, "prod", b.protocol.id, at - timedelta(microseconds=1)) is None
        assert [p.activate_at for p in deployments.pending(s, "prod", b.protocol.id)] == [at]


def test_deploying_the_same_request_twice_changes_nothing(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    with session_scope() as s:
        first = deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        again = deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        n = s.scalar(select(func.count()).select_from(Deployment))
    assert first.deployment_id == again.deployment_id and n == 1


def test_a_freeze_window_refuses_the_request_and_a_later_window_refuses_the_activation(registry_url):
    b = ready(record(variant(3)))
    start = NOW() + timedelta(hours=1)
    frozen = pin_config(freeze_windows=[{
        "reason": "holiday", "start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(),
        "environments": ["staging"],
    }])
    with session_scope() as s, pytest.raises(CheckFailed, match="freeze window 'holiday'"):
        deployments.deploy(s, b, "staging", activate_at=start + timedelta(minutes=5), actor="t", config=frozen)
    # Scheduled when no window existed; the window is added before the time comes; settle refuses it.
    at = NOW() + timedelta(seconds=0.3)
    with session_scope() as s:
        deployments.deploy(s, b, "staging", activate_at=at, actor="t", config=pin_config())
    window_now = pin_config(freeze_windows=[{
        "reason": "late freeze", "start": (at - timedelta(minutes=1)).isoformat(),
        "end": (at + timedelta(minutes=1)).isoformat(),
    }])
    import time

    time.sleep(0.4)
    with session_scope() as s:
        deployments.settle(s, "staging", window_now)
        d = s.scalars(select(Deployment)).one()
        assert d.state == "cancelled"
        assert deployments.in_force(s, "staging", b.protocol.id) is None
        assert audit.entries(s)[0].action == "activation.refused_freeze"


def test_rollback_restores_the_previous_version_atomically_and_audited(registry_url):
    cfg = config()
    _v3, v4 = (release(p, cfg) for p in (variant(3), variant(4, max_payment=6000)))
    assert _state() == 4
    with session_scope() as s:
        ch = deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)
    assert ch.version == 3 and ch.previous_sha256 == v4.sha256 and _state(at=ch.takes_effect_at) == 3
    with session_scope() as s:
        assert audit.entries(s)[0].action == "rollback.live"
        assert json.loads(audit.entries(s)[0].details)["takes_effect_at"] == ch.takes_effect_at.isoformat()
        assert audit.verify(s).ok
    with session_scope() as s:  # and forward again by version
        ch = deployments.rollback(s, "wildfire-aid-2024", "prod", to="4", actor="ops", config=cfg)
    assert _state(at=ch.takes_effect_at) == 4


@pytest.mark.parametrize(("pid", "to", "message"), [
    ("chip-income-cap", "previous", "never deployed"),
    ("wildfire-aid-2024", "7", "never live"),
    ("wildfire-aid-2024", "v2", "version number"),
])
def test_a_rollback_that_cannot_happen_is_bad_input_and_changes_nothing(registry_url, pid, to, message):
    cfg = config()
    release(variant(3), cfg)
    with session_scope() as s:
        before = s.scalar(select(func.count()).select_from(AuditEntry))
    with session_scope() as s, pytest.raises(BadInput, match=message):
        deployments.rollback(s, pid, "prod", to=to, actor="ops", config=cfg)
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == before
    assert _state() == 3


def test_rolling_back_a_first_deployment_withdraws_it(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    with session_scope() as s:
        deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        ch = deployments.rollback(s, b.protocol.id, "staging", actor="ops", config=cfg)
    assert ch.state == "rolled_back" and _state("staging", at=ch.takes_effect_at) is None


def test_rollback_during_a_pending_activation_cancels_it_and_keeps_the_live_version(registry_url):
    cfg = config()
    release(variant(3), cfg)
    v4 = release(variant(4, max_payment=6000), cfg, activate_at=NOW() + timedelta(hours=1))
    with session_scope() as s:
        deployments.rollback(s, v4.protocol.id, "prod", actor="ops", config=cfg)
        assert deployments.pending(s, "prod", v4.protocol.id) == []
        assert deployments.in_force(s, "prod", v4.protocol.id, NOW() + timedelta(hours=2)).version == 3


def test_rollback_of_a_run_undoes_every_environment_it_touched(registry_url):
    cfg = config()
    release(variant(3), cfg, run_id="run-a")
    release(variant(4, max_payment=6000), cfg, run_id="run-b")
    with session_scope() as s:
        changes = deployments.rollback_run(s, "run-b", actor="airflow", config=cfg)
    assert sorted(c.environment for c in changes) == ["preprod", "prod", "staging"]
    switched = max(c.takes_effect_at for c in changes)
    assert [_state(e, at=switched) for e in ("staging", "preprod", "prod")] == [3, 3, 3]


def test_live_bundle_is_the_prod_version_in_force(registry_url):
    cfg = config()
    assert deployments.live_bundle("wildfire-aid-2024") is None
    b = release(variant(3), cfg)
    assert deployments.live_bundle("wildfire-aid-2024").sha256 == b.sha256


def test_the_registry_knows_whether_its_newest_change_was_a_rollback(registry_url):
    """What a re-run rollback in kubernetes mode relies on to finish an earlier one instead of undoing another."""
    cfg = config()
    def newest_was_rollback(env="prod"):
        with session_scope() as s:
            return deployments.last_change_was_rollback(s, env, "wildfire-aid-2024")

    assert newest_was_rollback() is False  # nothing deployed
    _v3, v4 = (release(p, cfg) for p in (variant(3), variant(4, max_payment=6000)))
    assert newest_was_rollback() is False
    with session_scope() as s:
        deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)
    assert newest_was_rollback() is True and newest_was_rollback("preprod") is False
    with session_scope() as s:
        deployments.deploy(s, v4, "prod", activate_at=None, actor="t", config=cfg)
    assert newest_was_rollback() is False  # deployed forward again
    with session_scope() as s:
        deployments.rollback(s, "wildfire-aid-2024", "prod", to="3", actor="ops", config=cfg)
    assert newest_was_rollback() is True
    with session_scope() as s:
        deployments.deploy(s, v4, "prod", activate_at=NOW() + timedelta(hours=1), actor="t", config=cfg)
    assert newest_was_rollback() is False
    with session_scope() as s:
        deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)  # cancels the pending one
    assert newest_was_rollback() is True


def test_the_kubernetes_desired_state_is_read_from_the_registry(registry_url):
    from hms.targets.sync import desired

    cfg = config()
    with session_scope() as s:
        assert desired(s, "prod", "wildfire-aid-2024") is None
    v3, v4 = (release(p, cfg) for p in (variant(3), variant(4, max_payment=6000)))
    with session_scope() as s:
        d = desired(s, "prod", "wildfire-aid-2024")
    assert (d.current, d.current_version, d.previous, d.previous_version) == (v4.sha256, 4, v3.sha256, 3)
    at = (NOW() + timedelta(hours=1)).replace(microsecond=0)
    v5 = release(variant(5, max_payment=7000), cfg, activate_at=at)
    with session_scope() as s:
        d = desired(s, "prod", "wildfire-aid-2024")
    assert (d.current, d.previous, d.activate_at) == (v5.sha256, v4.sha256, at.strftime("%Y-%m-%dT%H:%M:%SZ"))
    with session_scope() as s:
        deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)  # cancel v5
        deployments.rollback(s, "wildfire-aid-2024", "prod", actor="ops", config=cfg)  # v4 → v3
        d = desired(s, "prod", "wildfire-aid-2024")
    assert (d.current, d.previous) == (v3.sha256, v4.sha256)
