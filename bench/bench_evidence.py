"""Signed evidence (issue 15): what signing and verifying cost a review, a gate and a replica's reload.

A review is measured end to end through the core (``deployments.record_review`` in one transaction) with
the control plane's signature, and its signing and first verification alone; a statement's verification
uncached (Ed25519 through securesystemslib); and a replica's snapshot reload (``RegistrySource.load``) over
1,000 signed deployment rows — a reload (verified envelopes cached, as on every generation change) and a
replica's first load (every envelope verified) — side by side with the same load with verification
bypassed, so the ratio says what failing closed costs.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from bench.table import Row

N_DEPLOYMENTS = 1000


def _ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1000


def run() -> list[Row]:
    home = tempfile.mkdtemp(prefix="hms-bench-evidence-")
    os.environ.update({"HMS_HOME": home, "HMS_CREDENTIALS": str(Path(home) / "credentials.json")})
    for var in ("HMS_DATABASE_URL", "HMS_ACTOR", "HMS_TOKEN", "HMS_API"):
        os.environ.pop(var, None)
    from hms import clock, deployments
    from hms.attest import envelopes, keys, rows, statements
    from hms.registry import store
    from hms.registry.db import reset_engines, session_scope
    from hms.registry.models import Deployment
    from hms.service import source as source_mod
    from hms.service.source import RegistrySource
    from tests.deploy_helpers import pin_config, record, variant, write_config

    reset_engines()
    keys.reset()
    envelopes.reset()
    os.environ["HMS_PIPELINE_CONFIG"] = str(write_config(Path(home) / "pipeline.yml"))
    cfg = pin_config()
    b = record(variant(3))

    sign_t, verify_t = [], []
    for i in range(200):
        stmt = statements.statement(b.sha256, statements.REVIEW, {"reviewer": f"u{i}", "at": clock.now().isoformat()})
        t0 = time.perf_counter()
        env = envelopes.sign(stmt)
        t1 = time.perf_counter()
        envelopes.verify(env, sha256=b.sha256, predicate_type=statements.REVIEW, expect={})
        t2 = time.perf_counter()
        sign_t.append(t1 - t0)
        verify_t.append(t2 - t1)

    review_t = []
    for i, (user, role) in enumerate([("alice", "legal"), ("bob", "budget")] * 10):
        v = record(variant(10 + i))
        t0 = time.perf_counter()
        with session_scope() as s:
            deployments.record_review(s, v, user=user, role=role, decision="approve", comment="ok", config=cfg)
        review_t.append(time.perf_counter() - t0)

    with session_scope() as s:  # 1,000 signed rows in prod (one protocol's long history), as the core writes them
        start = clock.now() - timedelta(days=N_DEPLOYMENTS)
        for i in range(N_DEPLOYMENTS):
            d = Deployment(environment="prod", protocol_id=b.protocol.id, bundle_sha256=b.sha256, version=3,
                           state="superseded" if i < N_DEPLOYMENTS - 1 else "live",
                           activate_at=start + timedelta(days=i), created_at=start + timedelta(days=i),
                           created_by="bench", policy_sha256=cfg.sha256,
                           ended_at=start + timedelta(days=i + 1) if i < N_DEPLOYMENTS - 1 else None)
            s.add(d)
            s.flush()
            rows.sign_deployment(d)
        store.bump_generation(s, "prod")

    src = RegistrySource("prod")
    src.load()  # the bundle bytes cached, as a running replica has them
    cold, warm, bypass = [], [], []
    for _ in range(5):
        envelopes.reset()
        t0 = time.perf_counter()
        snap = src.load()
        cold.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        src.load()
        warm.append(time.perf_counter() - t0)
    assert not snap.refused and len(snap.timelines[b.protocol.id].entries) > 0
    real = source_mod.deployment_refusal
    source_mod.deployment_refusal = lambda d: None  # the same load, nothing verified: the cost of failing closed
    try:
        for _ in range(5):
            t0 = time.perf_counter()
            src.load()
            bypass.append(time.perf_counter() - t0)
    finally:
        source_mod.deployment_refusal = real

    s_ms, v_ms, r_ms = _ms(sign_t), _ms(verify_t), _ms(review_t)
    c_ms, w_ms, b_ms = _ms(cold), _ms(warm), _ms(bypass)
    return [
        Row("evidence", "sign one statement (Ed25519, DSSE; p50 of 200)", f"{s_ms:.2f} ms", "-", True),
        Row("evidence", "verify one statement, uncached (p50 of 200)", f"{v_ms:.2f} ms", "< 2 ms", v_ms < 2),
        Row("evidence", "signing + first verification added to a review", f"{s_ms + v_ms:.2f} ms", "< 5 ms",
            s_ms + v_ms < 5),
        Row("evidence", "  a review through the core, signed, one transaction (p50 of 20)", f"{r_ms:.1f} ms", "-",
            True),
        # A reload happens on every generation change: every envelope but the new ones was verified before.
        Row("evidence", f"replica reload, {N_DEPLOYMENTS} signed deployments (verified ones cached; p50 of 5)",
            f"{w_ms:.0f} ms ({w_ms / b_ms:.2f}x unverified)", "< 200 ms", w_ms < 200),
        # A replica's first load verifies all of them: ~0.14 ms of Ed25519 each (cryptography's), once.
        Row("evidence", f"  replica start: first load, all {N_DEPLOYMENTS} envelopes verified (p50 of 5)",
            f"{c_ms:.0f} ms ({c_ms / b_ms:.1f}x unverified)", "-", True),
    ]
