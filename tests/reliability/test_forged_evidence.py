"""Someone with the registry's write credentials changes the law in force around the core (issue 15): a running
``hms serve --env prod`` keeps answering under the last verified version and says why in /readyz."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
from sqlalchemy import text

from hms import clock
from hms.registry import store
from hms.registry.db import session_scope
from tests.deploy_helpers import pin_config, promote_all, ready, record, variant
from tests.reliability.conftest import FAMILY, PID, serve


def _decide(url: str) -> dict:
    return httpx.post(f"{url}/v1/protocols/{PID}/decide", json={"input": FAMILY}, timeout=5).json()


def _until(get, ok, timeout: float = 10.0) -> dict:
    """Poll ``get()`` until ``ok`` holds of its answer (the replica picks changes up by polling too)."""
    deadline = time.monotonic() + timeout
    got = get()
    while not ok(got):
        assert time.monotonic() < deadline, got
        time.sleep(0.1)
        got = get()
    return got


def _readyz(url: str) -> dict:
    return httpx.get(f"{url}/readyz", timeout=5).json()


def _keeps_answering(url: str, version: int) -> None:
    for _ in range(20):  # within a second and after
        assert _decide(url)["version"] == version
        time.sleep(0.05)


def test_a_deployment_inserted_with_a_generation_bump_is_never_served_and_readyz_names_it(env) -> None:
    cfg = pin_config()
    promote_all(ready(record(variant(3)), cfg), cfg)
    forged = record(variant(4, per_member=9999))  # never reviewed
    with serve(env) as (url, _):
        _until(lambda: _decide(url), lambda d: d.get("version") == 3)
        with session_scope() as s:
            s.execute(text(
                "INSERT INTO deployments (environment, protocol_id, bundle_sha256, version, state, activate_at, "
                "created_at, created_by) VALUES ('prod', :pid, :sha, 4, 'live', :at, :at, 'mallory')"),
                {"pid": PID, "sha": forged.sha256, "at": (clock.now() - timedelta(seconds=1)).isoformat()})
            store.bump_generation(s, "prod")
        status = _until(lambda: _readyz(url), lambda st: st["refused_evidence"])
        assert status["ready"] is True and "unsigned" in status["refused_evidence"][0]
        _keeps_answering(url, 3)  # never the forged v4


def test_a_rollback_forged_onto_the_live_row_changes_nothing_a_running_replica_answers(env) -> None:
    cfg = pin_config()
    promote_all(ready(record(variant(3)), cfg), cfg)
    promote_all(ready(record(variant(4)), cfg), cfg)
    with serve(env) as (url, _):
        _until(lambda: _decide(url), lambda d: d.get("version") == 4)
        with session_scope() as s:  # v4 "rolled back" by hand, v3's row revived as live
            s.execute(text("UPDATE deployments SET state = 'rolled_back', ended_at = :at "
                           "WHERE environment = 'prod' AND version = 4"), {"at": clock.now().isoformat()})
            s.execute(text("UPDATE deployments SET state = 'live', ended_at = NULL "
                           "WHERE environment = 'prod' AND version = 3"))
            store.bump_generation(s, "prod")
        status = _until(lambda: _readyz(url), lambda st: len(st["refused_evidence"]) >= 2)
        assert all("serving it as last verified" in r for r in status["refused_evidence"]), status
        _keeps_answering(url, 4)
