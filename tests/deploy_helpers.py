"""Test helpers for deployments: pack a sample (optionally changed) into the registry, approve it, a config.

Every deploy needs, for the exact hash, the approval policy met and passing ``test`` and ``scan`` checks
(``chaos`` too past the chaos environment): ``ready(b)`` records all of them, as the pipeline would.

Identity is authenticated (hms.identity): a CLI call in a test acts as this process's OS account, which
gives one approval per bundle. So two clerks' approvals given as *setup* are core calls here (``approve``,
``review_as``), and a test that needs the CLI to hold a role gives the OS account that role in its policy
(``users_with_os_account``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from hms import bundle, clock, deployments, identity, pinned_policy, protocol
from hms.approvals import ApprovalStatus
from hms.pipeline_config import PipelineConfig, parse_pipeline_config
from hms.registry import store
from hms.registry.db import session_scope
from tests.conftest import ROOT, WILDFIRE

SETTLED = timedelta(seconds=1)  # well past effective_time.PROPAGATION: any rollback just recorded has switched


def _config_text(**changes) -> str:
    """The repository's pipeline config with top-level keys replaced (freeze_windows=[] by default)."""
    data = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())
    data["freeze_windows"] = []
    data.update(changes)
    return yaml.safe_dump(data)


def users_with_os_account(*roles: str) -> dict[str, list[str]]:
    """The repository policy's ``users:`` with this process's OS account (the principal of a CLI call in
    embedded mode) holding ``roles``: pass as ``users=`` to ``write_config`` / ``pin_config``."""
    users = yaml.safe_load((ROOT / ".hms-ci" / "policy-pipeline.yml").read_text())["users"]
    return {**users, identity.os_account(): list(roles)}


def config(**changes) -> PipelineConfig:
    return parse_pipeline_config(_config_text(**changes), "<test config>")


def pin_config(**changes) -> PipelineConfig:
    """``config(**changes)`` applied as the registry's pinned policy by ops (an admin), as ``hms config apply``."""
    text = _config_text(**changes)
    with session_scope() as s:
        pinned_policy.apply(s, text, "<test config>", actor="ops")
    return parse_pipeline_config(text, "<test config>")


def pin_file(path: Path) -> Path:
    """Apply a written config as the pinned policy (by ops, an admin): CLI calls in the test enforce it."""
    with session_scope() as s:
        pinned_policy.apply(s, path.read_text(), str(path), actor="ops")
    return path


def write_config(path: Path, **changes) -> Path:
    path.write_text(_config_text(**changes))
    return path


def variant(
    version: int, path: Path = WILDFIRE, *, effective_at: datetime | None = None, **params
) -> protocol.Protocol:
    """A sample at another version (and parameters); ``effective_at`` replaces its effective time."""
    data = protocol.load(path).data
    data["metadata"]["version"] = version
    if effective_at is not None:
        data["metadata"]["effective_at"] = effective_at.isoformat()
    data["parameters"].update(params)
    return protocol.from_data(data, f"{path.name} v{version}")


def record(p: protocol.Protocol) -> bundle.Bundle:
    """Record ``p``'s bundle as ``hms rule push`` does: the first write pins the (test) policy."""
    pinned_policy.governing()
    raw = bundle.build(p)
    b = bundle.read_bytes(raw)
    with session_scope() as s:
        store.record_bundle(
            s, sha256=b.sha256, protocol_id=p.id, version=p.version, content=raw, manifest=b.manifest,
            created_by="tester",
        )
    return b


def approve(b: bundle.Bundle, cfg: PipelineConfig | None = None) -> None:
    cfg = cfg or pinned_policy.governing()
    with session_scope() as s:
        deployments.record_review(s, b, user="alice", role="legal", decision="approve", comment="ok", config=cfg)
        deployments.record_review(s, b, user="bob", role="budget", decision="approve", comment="ok", config=cfg)


def review_as(
    ref: str | bundle.Bundle, user: str, role: str, decision: str = "approve", comment: str = ""
) -> ApprovalStatus:
    """One clerk's review of a registry reference (or bundle), recorded by the core call ``hms rule review``
    makes, under the pinned policy: setup approvals (one OS account cannot be two clerks on the CLI)."""
    cfg = pinned_policy.governing()
    with session_scope() as s:
        b = ref if isinstance(ref, bundle.Bundle) else deployments.resolve_bundle(s, ref)
        return deployments.record_review(s, b, user=user, role=role, decision=decision, comment=comment, config=cfg)


def promote_all(b: bundle.Bundle, cfg: PipelineConfig, activate_at=None, run_id: str | None = None) -> None:
    with session_scope() as s:
        for env in cfg.environment_names:
            last = env == cfg.environment_names[-1]
            deployments.deploy(
                s, b, env, activate_at=activate_at if last else None, actor="tester", config=cfg, run_id=run_id
            )


PASSING = {"ok": True, "recorded_by": "tests.deploy_helpers"}


def record_checks(b: bundle.Bundle, kinds=("test", "scan", "chaos"), *, ok: bool = True) -> None:
    """Record a result of each kind for ``b`` (passing by default), as ``… --record`` would."""
    with session_scope() as s:
        for kind in kinds:
            store.record_check(s, sha256=b.sha256, kind=kind, ok=ok, summary={**PASSING, "ok": ok}, actor="tester")


def ready(b: bundle.Bundle, cfg: PipelineConfig | None = None) -> bundle.Bundle:
    """Everything a deploy of ``b`` needs anywhere: passing test, scan and chaos, and two clerks' approvals."""
    record_checks(b)
    approve(b, cfg)
    return b


def ready_ref(ref: str, kinds=("test", "scan", "chaos")) -> str:
    """Checks of ``kinds`` and two approvals for a registry reference (tests that push with the CLI)."""
    with session_scope(read_only=True) as s:
        b = deployments.resolve_bundle(s, ref)
    record_checks(b, kinds)
    approve(b)
    return b.sha256


def record_checks_for(ref: str, kinds=("test", "scan", "chaos"), *, ok: bool = True) -> str:
    """``record_checks`` for a registry reference (id@version, hash): for tests that drive the CLI."""
    with session_scope(read_only=True) as s:
        b = deployments.resolve_bundle(s, ref)
    record_checks(b, kinds, ok=ok)
    return b.sha256


def serving(env: str, protocol_id: str = "wildfire-aid-2024", at: datetime | None = None) -> int | None:
    """The version ``env`` serves at ``at`` — by default once any rollback just recorded has come into force.

    A rollback takes effect at its switch instant (effective_time.switch_instant), a moment after it is
    recorded; read at "now", a test that has just seen the rollback recorded would still see the undone version.
    """
    with session_scope(read_only=True) as s:
        d = deployments.in_force(s, env, protocol_id, at or clock.now() + SETTLED)
        return d.version if d else None


def until_in_force() -> None:
    """Until every deployment change recorded so far is in force: a rollback switches (a new row's activation,
    or a withdrawn row's end) a moment after it is recorded (effective_time.switch_instant), so a page read at
    once would still show the undone version."""
    import time

    from sqlalchemy import select

    from hms.registry.models import Deployment

    horizon = clock.now() + SETTLED  # not a pending activation days ahead
    with session_scope(read_only=True) as s:
        moments = [t for d in s.scalars(select(Deployment)) for t in (d.activate_at, d.ended_at) if t]
    instant = max((t for t in moments if t <= horizon), default=None)
    while instant is not None and clock.now() <= instant:
        time.sleep(0.02)


@contextmanager
def prod_replica() -> Iterator[tuple[Any, PipelineConfig, bundle.Bundle]]:
    """wildfire v3 promoted through every environment, and a TestClient on a prod replica of the decision
    service reading the registry (a fixture's body: the service tests share it)."""
    from fastapi.testclient import TestClient

    from hms.service.app import create_app
    from hms.service.source import RegistrySource

    cfg = config()
    b = record(variant(3))
    ready(b, cfg)
    promote_all(b, cfg)
    with TestClient(create_app(RegistrySource("prod"), poll_interval=0.02)) as client:
        yield client, cfg, b
