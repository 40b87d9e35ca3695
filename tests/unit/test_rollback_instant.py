"""A rollback takes effect at one instant every replica already knows: ``effective_time.switch_instant``.

Replicas learn of a change by polling the registry, so a rollback recorded as taking effect the moment it is
written would be contradicted by every replica that had not polled yet (issue 14, item 6). These tests pin the
instant down and what the commands around it do inside the window before it. Every time comes from hms.clock
(frozen at whatever "now" is), so they mean the same on any date; none measures how long anything takes.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from hms import clock, deployments, effective_time
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry
from tests.deploy_helpers import config, promote_all, ready, record, variant

PID = "wildfire-aid-2024"
MS = timedelta(milliseconds=1)


def _v3_then_v4(cfg):
    out = {}
    for v in (3, 4):  # v4 recorded once v3 is out: a newer version supersedes the older one
        out[v] = ready(record(variant(v, max_payment=5000 if v == 3 else 3000)), cfg)
        promote_all(out[v], cfg)
    return out


def _version(at, env="prod"):
    with session_scope(read_only=True) as s:
        d = deployments.in_force(s, env, PID, at)
        return d.version if d else None


def test_the_switch_instant_is_one_propagation_window_after_the_moment_recorded():
    now = clock.now()
    assert effective_time.switch_instant(now) == now + effective_time.PROPAGATION
    assert effective_time.switch_instant(now, timedelta(0)) == now


def test_the_switch_instant_grows_by_as_long_as_the_transaction_has_taken_so_far():
    now = clock.now()
    spent = 40 * MS
    assert effective_time.switch_instant(now, started=now - spent) == now + effective_time.PROPAGATION + spent
    assert effective_time.switch_instant(now, started=now + spent) == now + effective_time.PROPAGATION


def test_a_rollback_starved_between_its_reads_and_its_writes_takes_effect_later_by_that_much(
    registry_url, monkeypatch
):
    """The instant is read just before the writes; the COMMIT of a slow transaction is as slow again."""
    cfg = config()
    _v3_then_v4(cfg)
    t = clock.now()
    stall = 60 * MS
    later = contextlib.ExitStack()
    read_row = deployments.bundle_row

    def slow_read(s, sha):  # the last read before the writes; the clock moves on while it runs
        later.enter_context(clock.frozen(t + stall))
        return read_row(s, sha)

    monkeypatch.setattr(deployments, "bundle_row", slow_read)
    with clock.frozen(t), later, session_scope() as s:  # `later` unwinds first, back to t, then to now
        ch = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
        assert ch.takes_effect_at == t + stall + effective_time.PROPAGATION + stall
    assert (_version(ch.takes_effect_at - MS), _version(ch.takes_effect_at)) == (4, 3)


def test_a_switch_instant_before_the_moment_recorded_is_refused_history_is_append_only():
    with pytest.raises(ValueError, match="backdated"):
        effective_time.switch_instant(clock.now(), -MS)


def test_replicas_must_poll_at_least_twice_inside_the_window():
    window = effective_time.PROPAGATION.total_seconds()
    assert effective_time.propagation_covers(window / 2)
    assert not effective_time.propagation_covers(window / 2 + 0.001)
    assert not effective_time.propagation_covers(0)
    from hms.service.app import POLL_INTERVAL

    assert effective_time.propagation_covers(POLL_INTERVAL)  # the default itself keeps the promise


def test_a_rollback_keeps_the_undone_version_until_its_switch_instant_and_the_previous_one_from_it(registry_url):
    cfg = config()
    _v3_then_v4(cfg)
    t = clock.now()
    with clock.frozen(t), session_scope() as s:
        ch = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
    at = t + effective_time.PROPAGATION
    assert (ch.version, ch.activate_at, ch.takes_effect_at) == (3, at, at)
    # Both ends of the switch are the same future instant: nothing before `t` changed, nothing stale after `at`.
    assert (_version(t), _version(at - MS), _version(at)) == (4, 4, 3)
    with session_scope(read_only=True) as s:
        entry = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "rollback.live" and json.loads(entry.details)["takes_effect_at"] == at.isoformat()


def test_a_withdrawal_ends_the_version_at_its_switch_instant_not_when_written(registry_url):
    cfg = config()
    b = ready(record(variant(3)), cfg)
    t = clock.now()
    with clock.frozen(t), session_scope() as s:
        deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        ch = deployments.rollback(s, PID, "staging", actor="ops", config=cfg)
    assert ch.state == "rolled_back" and ch.takes_effect_at == t + effective_time.PROPAGATION
    assert (_version(t, "staging"), _version(ch.takes_effect_at, "staging")) == (3, None)


def test_a_second_rollback_inside_the_window_undoes_the_restored_version_not_the_undone_one_again(registry_url):
    cfg = config()
    _v3_then_v4(cfg)
    t = clock.now()
    with clock.frozen(t), session_scope() as s:
        first = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
    with clock.frozen(t + 10 * MS), session_scope() as s:
        second = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
    assert (first.version, second.version) == (3, 4)
    assert second.takes_effect_at == t + 10 * MS + effective_time.PROPAGATION
    assert [_version(x) for x in (t, first.takes_effect_at, second.takes_effect_at)] == [4, 3, 4]


def test_a_deploy_inside_the_window_comes_into_force_no_earlier_than_the_switch(registry_url):
    """Else the restored version, activated later, would shadow the new one: it would never answer."""
    cfg = config()
    bundles = _v3_then_v4(cfg)
    t = clock.now()
    with clock.frozen(t), session_scope() as s:
        rb = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
        again = deployments.deploy(s, bundles[4], "prod", activate_at=None, actor="t", config=cfg)
    assert again.activate_at == rb.takes_effect_at and again.previous_sha256 == bundles[3].sha256
    assert (_version(t), _version(rb.takes_effect_at)) == (4, 4)


def test_an_activation_due_inside_the_window_is_rolled_back_at_the_switch_not_cancelled(registry_url):
    """Replicas switch to it by the clock before a cancellation could reach them all: it has happened."""
    cfg = config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready(record(variant(4, max_payment=3000)), cfg)
    t = clock.now()
    due = t + effective_time.PROPAGATION / 2
    with clock.frozen(t):
        promote_all(v4, cfg, activate_at=due)
        with session_scope() as s:
            ch = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
    assert ch.version == 3 and ch.takes_effect_at == t + effective_time.PROPAGATION
    assert [_version(x) for x in (t, due, ch.takes_effect_at)] == [3, 4, 3]
    with session_scope(read_only=True) as s:
        live = [d.version for d in deployments.rows(s, "prod", PID) if d.state == "live"]
    assert live == [3]  # the v3 that v4 replaced was superseded at `due`: one live row


def test_an_activation_due_after_the_window_is_still_cancelled(registry_url):
    cfg = config()
    v3 = ready(record(variant(3)), cfg)
    promote_all(v3, cfg)
    v4 = ready(record(variant(4, max_payment=3000)), cfg)
    t = clock.now()
    with clock.frozen(t):
        promote_all(v4, cfg, activate_at=t + 2 * effective_time.PROPAGATION)
        with session_scope() as s:
            deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
            assert [d.state for d in deployments.rows(s, "prod", PID) if d.version == 4] == ["cancelled"]
    assert _version(t + timedelta(hours=1)) == 3


def test_kubernetes_targets_are_told_the_restored_version_and_its_switch_instant(registry_url):
    from hms.targets.sync import desired

    cfg = config()
    bundles = _v3_then_v4(cfg)
    t = clock.now()
    with clock.frozen(t), session_scope() as s:
        ch = deployments.rollback(s, PID, "prod", actor="ops", config=cfg)
        want = desired(s, "prod", PID)
    assert (want.current, want.previous) == (bundles[3].sha256, bundles[4].sha256)
    assert datetime.fromisoformat(want.activate_at) == ch.takes_effect_at


def test_serve_refuses_a_poll_interval_too_slow_to_learn_of_a_rollback_before_its_instant(
    tmp_path, monkeypatch, capsys
):
    from hms.cli import main
    from tests.deploy_helpers import write_config

    monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(write_config(tmp_path / "pipeline.yml")))
    assert main(["serve", "--env", "prod", "--poll-interval", "0.5"]) == 2
    assert "--poll-interval" in capsys.readouterr().err


def test_kubernetes_targets_drop_a_withdrawn_version_before_its_switch_instant(registry_url):
    from hms.targets.sync import desired

    cfg = config()
    b = ready(record(variant(3)), cfg)
    with session_scope() as s:
        deployments.deploy(s, b, "staging", activate_at=None, actor="t", config=cfg)
        deployments.rollback(s, PID, "staging", actor="ops", config=cfg)
        assert desired(s, "staging", PID) is None
