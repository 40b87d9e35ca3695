"""History is append-only: no sequence of push, deploy, schedule, move, rollback and time passing changes
what any environment answered at an instant already past.

Decision replicas switch by the clock from the registry's rows, so a rewritten ``activate_at`` or
``ended_at`` would make the record disagree with answers citizens were already given. The property: before
and after every step, ``deployments.in_force(env, pid, at)`` is the same for every ``at`` before now.
"""

from __future__ import annotations

import contextlib
import itertools
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hms import bundle, clock, deployments
from hms.errors import HmsError
from hms.registry import db, store
from hms.registry.db import session_scope
from hms.registry.models import Deployment
from tests.deploy_helpers import approve, config, record_checks, variant

ENVS = ("staging", "preprod", "prod")
PID = "wildfire-aid-2024"
VERSIONS = 5
_BUNDLES: dict[int, bundle.Bundle] = {}


def _bundles(t0) -> list[bundle.Bundle]:
    """Versions 3.. of the sample, effective a day before the test's start (the property is about history)."""
    if not _BUNDLES:
        for i in range(VERSIONS):
            p = variant(3 + i, effective_at=t0 - timedelta(days=1), max_payment=5000 + 100 * i)
            _BUNDLES[i] = bundle.read_bytes(bundle.build(p))
    return [_BUNDLES[i] for i in range(VERSIONS)]


step = st.one_of(
    st.tuples(st.just("push")),
    st.tuples(st.just("deploy"), st.sampled_from(ENVS), st.integers(0, 2)),
    st.tuples(st.just("schedule"), st.integers(0, 2), st.integers(1, 120)),  # prod, +N minutes
    st.tuples(st.just("move"), st.integers(1, 120)),  # the pending prod activation to +N minutes
    st.tuples(st.just("rollback"), st.sampled_from(ENVS), st.sampled_from(["previous", "3", "4", "5"])),
    st.tuples(st.just("wait"), st.integers(1, 90)),  # minutes pass
)


def _answers(instants) -> dict[tuple[str, object], str | None]:
    with session_scope(read_only=True) as s:
        out = {}
        for env, at in itertools.product(ENVS, instants):
            d = deployments.in_force(s, env, PID, at)
            out[(env, at)] = d.bundle_sha256 if d else None
        return out


def _past_instants(now) -> list:
    """Every instant where an answer could change (each row's start and end, and just before), before now."""
    with session_scope(read_only=True) as s:
        rows = s.query(Deployment).all()
        marks = {t for d in rows for t in (d.activate_at, d.ended_at, d.created_at) if t is not None}
    marks |= {now - timedelta(microseconds=1), now - timedelta(seconds=1), now - timedelta(minutes=1)}
    probes = {m + delta for m in marks for delta in (timedelta(0), -timedelta(microseconds=1), timedelta(seconds=1))}
    ordered = sorted(marks)
    probes |= {a + (b - a) / 2 for a, b in itertools.pairwise(ordered)}  # inside every interval between marks
    return sorted(t for t in probes if t < now)


def _apply(op, pushed: list[bundle.Bundle], all_bundles, cfg) -> None:
    now = clock.now()
    kind = op[0]
    with session_scope() as s:
        if kind == "push":
            if len(pushed) == len(all_bundles):
                return
            b = all_bundles[len(pushed)]
            store.record_bundle(s, sha256=b.sha256, protocol_id=PID, version=b.protocol.version, content=b.content,
                                manifest=b.manifest, created_by="tester")
            pushed.append(b)
        elif kind == "deploy" and op[2] < len(pushed):  # promote: every environment up to op[1], now
            for env in ENVS[: ENVS.index(op[1]) + 1]:
                deployments.deploy(s, pushed[op[2]], env, activate_at=None, actor="t", config=cfg)
        elif kind == "schedule" and op[1] < len(pushed):  # promote with prod pending at +N minutes
            at = now + timedelta(minutes=op[2])
            for env in ENVS:
                deployments.deploy(s, pushed[op[1]], env, activate_at=at if env == "prod" else None, actor="t",
                                   config=cfg)
        elif kind == "move":
            for d in deployments.pending(s, "prod", PID, now):
                b = deployments.load_bundle(s, d.bundle_sha256)
                deployments.deploy(s, b, "prod", activate_at=now + timedelta(minutes=op[1]), actor="sched",
                                   config=cfg, run_id=d.run_id)
        elif kind == "rollback":
            deployments.rollback(s, PID, op[1], to=op[2], actor="ops", config=cfg)
    if kind == "push":  # evidence and approvals for the new version (its own transactions, as the CLI's)
        record_checks(pushed[-1])
        approve(pushed[-1], cfg)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(step, min_size=1, max_size=14))
def test_no_step_changes_what_any_environment_answered_at_a_past_instant(ops, tmp_path_factory, monkeypatch):
    home: Path = tmp_path_factory.mktemp("history")
    monkeypatch.setenv("HMS_DATABASE_URL", f"sqlite:///{home / 'registry.db'}")
    db.reset_engines()
    cfg = config()
    t = clock.now()
    all_bundles = _bundles(t)
    pushed: list[bundle.Bundle] = []
    try:
        for op in [("push",), *ops]:
            with clock.frozen(t):
                instants = _past_instants(t)
                before = _answers(instants)
                # A refused step (a gate, an impossible rollback) is fine; it must change nothing past either.
                with contextlib.suppress(HmsError):
                    _apply(op, pushed, all_bundles, cfg)
                after = _answers(instants)
            changed = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
            assert not changed, f"{op} at {t.isoformat()} rewrote history: {changed}"
            if op[0] == "wait":
                t = t + timedelta(minutes=op[1])
    finally:
        db.reset_engines()


@pytest.mark.parametrize("minutes", [30])
def test_a_pending_activation_that_came_into_force_can_no_longer_be_cancelled(registry_url, minutes):
    """The guard behind the property: cancelling is only for rows whose activate_at is still ahead."""
    cfg = config()
    t = clock.now()
    b = _bundles(t)[0]
    with session_scope() as s:
        store.record_bundle(s, sha256=b.sha256, protocol_id=PID, version=b.protocol.version, content=b.content,
                            manifest=b.manifest, created_by="tester")
    record_checks(b)
    approve(b, cfg)
    with clock.frozen(t), session_scope() as s:
        for env in ENVS:
            deployments.deploy(s, b, env, activate_at=t + timedelta(minutes=minutes) if env == "prod" else None,
                               actor="t", config=cfg)
    with clock.frozen(t + timedelta(minutes=minutes + 1)), session_scope() as s:
        d = deployments.in_force(s, "prod", PID)
        assert d is not None and d.bundle_sha256 == b.sha256
        with pytest.raises(RuntimeError, match="cannot be cancelled"):
            deployments._cancel(d, clock.now())
