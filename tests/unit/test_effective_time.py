"""A protocol's effective time is a floor in prod, never backdated; a late approval is in force from then on.

Every time here is built from hms.clock, so these tests mean the same on any date.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from hms import clock, deployments, effective_time
from hms.cli import main
from hms.errors import BadInput
from hms.registry.db import session_scope
from hms.registry.models import AuditEntry
from tests.deploy_helpers import config, ready, record, variant, write_config
from tests.fixtures_registry import direct_writer

HOUR = timedelta(hours=1)


def _through_preprod(b, cfg):
    with session_scope() as s:
        for env in ("staging", "preprod"):
            deployments.deploy(s, b, env, activate_at=None, actor="t", config=cfg)


def test_a_protocol_approved_after_its_effective_date_is_in_force_from_deployment_not_retroactively(registry_url):
    cfg = config()
    b = record(variant(3, effective_at=clock.now() - 30 * 24 * HOUR))
    ready(b, cfg)
    _through_preprod(b, cfg)
    with session_scope() as s:
        ch = deployments.deploy(s, b, "prod", activate_at=None, actor="t", config=cfg)
    assert ch.state == "live" and ch.late
    assert ch.activate_at > b.protocol.effective_at + 29 * 24 * HOUR  # from now, not from the effective date
    with session_scope() as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.action == "deploy.live")).all()[-1]
        note = json.loads(entry.details)["effective_note"]
    assert "passed; in force from" in note and note.endswith("not retroactive")
    with session_scope() as s:  # nobody asking "as of" the effective date gets this version
        assert deployments.in_force(s, "prod", b.protocol.id, b.protocol.effective_at + HOUR) is None


def test_without_a_time_prod_waits_for_the_bundles_own_effective_time(registry_url):
    cfg = config()
    at = (clock.now() + 2 * HOUR).replace(microsecond=0)
    b = record(variant(3, effective_at=at))
    ready(b, cfg)
    _through_preprod(b, cfg)  # rehearsal environments go live at once, whatever the effective time
    with session_scope() as s:
        assert deployments.in_force(s, "preprod", b.protocol.id).bundle_sha256 == b.sha256
        ch = deployments.deploy(s, b, "prod", activate_at=None, actor="t", config=cfg)
    assert (ch.state, ch.activate_at, ch.late) == ("pending", at, False)


@pytest.mark.parametrize(
    ("requested", "message"),
    [
        (lambda now, eff: now - HOUR, "in the past"),
        (lambda now, eff: eff - timedelta(minutes=20), "earlier than the protocol's effective time"),
    ],
    ids=["backdated", "before-the-effective-time"],
)
def test_prod_refuses_a_time_in_the_past_or_before_the_effective_time_and_changes_nothing(
    registry_url, requested, message
):
    cfg = config()
    now = clock.now()
    eff = now + 2 * HOUR
    b = record(variant(3, effective_at=eff))
    ready(b, cfg)
    _through_preprod(b, cfg)
    with session_scope() as s, pytest.raises(BadInput, match=message) as e:
        deployments.deploy(s, b, "prod", activate_at=requested(now, eff), actor="t", config=cfg)
    assert e.value.where == "--schedule"
    with session_scope() as s:
        assert deployments.rows(s, "prod", b.protocol.id) == []


def test_a_later_time_than_the_effective_time_is_kept():
    now = clock.now()
    act = effective_time.plan(now - HOUR, now + HOUR, now, binding=True)
    assert (act.at, act.late) == (now + HOUR, True)


def test_a_request_a_moment_old_means_now_within_the_clock_skew():
    now = clock.now()
    act = effective_time.plan(now - HOUR, now - timedelta(seconds=2), now, binding=True)
    assert act.at == now


def test_the_clock_seam_moves_every_reading_of_now():
    with clock.shifted(timedelta(days=400)):
        ahead = clock.now()
    assert ahead - clock.now() > timedelta(days=399)
    at = clock.now() + timedelta(days=5 * 365)
    with clock.frozen(at):
        assert clock.now() == at


def _cli_setup(tmp_path, monkeypatch, effective_at, version=3):
    monkeypatch.setenv("HMS_PIPELINE_CONFIG", str(write_config(tmp_path / "pipeline.yml")))
    cfg = config()
    b = record(variant(version, effective_at=effective_at))
    ready(b, cfg)
    return b


def test_promote_refuses_an_early_schedule_before_deploying_anywhere(registry_url, tmp_path, monkeypatch, capsys):
    b = _cli_setup(tmp_path, monkeypatch, clock.now() + 48 * HOUR)
    pkg = tmp_path / "pkg.tgz"
    pkg.write_bytes(b.content)
    with direct_writer():  # PostgreSQL is shared: there only the pipeline promotes directly
        code = main(["promote", str(pkg), "--targets", "staging,preprod,prod", "--schedule", "+20m"])
    assert code == 2
    assert "earlier than the protocol's effective time" in capsys.readouterr().err
    with session_scope() as s:
        assert all(deployments.rows(s, env, b.protocol.id) == [] for env in ("staging", "preprod", "prod"))


def test_check_schedule_names_the_trigger_form_field_and_the_late_note(registry_url, tmp_path, monkeypatch, capsys):
    b = _cli_setup(tmp_path, monkeypatch, clock.now() - 24 * HOUR)
    assert main(["rule", "check-schedule", b.sha256, "--env", "prod"]) == 0
    out = capsys.readouterr().out
    assert "[schedule] prod:" in out and "no earlier than" in out and "passed: in force from when it goes live" in out
    b2 = _cli_setup(tmp_path, monkeypatch, clock.now() + 24 * HOUR, version=4)
    assert main(["rule", "check-schedule", b2.sha256[:12], "--env", "prod", "--schedule", "+20m"]) == 2
    assert "effective_at:" in capsys.readouterr().err
    assert main(["rule", "check-schedule", b2.sha256[:12], "--env", "staging", "--schedule", "+20m"]) == 0
