"""Kubernetes mode: after the registry commits a deploy or a rollback, the environment's ConfigMap follows.

Switched on by ``execution.mode: kubernetes`` in ``.hms-ci/policy-pipeline.yml`` (the same switch that
runs test / scan / chaos in pods). Each environment is then a namespace (``environments[].namespace``,
default ``hms-<env>``) holding a ConfigMap ``hms-policy-<protocol>`` (current / previous bundle hash,
``activate_at``) and the ``hms-api`` Deployment, restarted after each change. ``execution.in_cluster``
picks the credentials: the pod's ServiceAccount, else ``$KUBECONFIG``.

The registry stays the source of truth and is committed first. What a namespace should hold is
computed from registry rows (``desired``), never replayed from the command, so running a command
again is safe: a deploy re-run finds the ConfigMap right (``unchanged``, no restart) or finishes
what failed; a rollback re-run after its Kubernetes step failed finishes *that* rollback instead of
undoing a second version (``unfinished_rollback``). Every outcome is audited — ``target.applied``
or ``target.failed`` — and a failure is ``TargetFailed`` (exit 1) saying what the registry holds
and how to finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import clock, deployments
from hms.errors import HmsError
from hms.pipeline_config import PipelineConfig
from hms.registry import audit
from hms.registry.db import session_scope
from hms.registry.models import Deployment

if TYPE_CHECKING:  # the kubernetes client is imported only in kubernetes mode
    from kubernetes import client

    from hms.targets.kubernetes import KubernetesTarget, PolicyState

STATE_KEYS = ("current", "current_version", "previous", "previous_version", "activate_at")
MAX_ROUNDS = 3  # re-read the registry after writing: a change committed meanwhile is applied too


class TargetFailed(HmsError):
    """The registry changed but the environment's Kubernetes objects did not follow. Exit 1."""

    exit_code = 1


def desired(s: Session, env: str, protocol_id: str, at: datetime | None = None) -> PolicyState | None:
    """What ``env``'s ConfigMap for ``protocol_id`` must hold, from the registry; None: nothing deployed.

    Read as of a rollback's switch instant while it lies ahead (the restored version is ``current``
    from it; a withdrawn one is gone). A pending deployment is ``current`` from its ``activate_at``,
    with the version in force now as ``previous`` (served until then).
    Otherwise the version in force is ``current`` and ``previous`` is the one it replaced — what a
    rollback would restore.
    """
    from hms.targets.kubernetes import PolicyState

    if at is None:  # once a rollback's switch still ahead has happened: committed, it cannot be undone
        at = deployments.switching_until(s, env, protocol_id, clock.now())
    now = deployments.in_force(s, env, protocol_id, at)
    waiting = deployments.pending(s, env, protocol_id, at)
    if waiting:
        nxt = waiting[-1]
        return PolicyState.build(
            nxt.bundle_sha256,
            nxt.version,
            now.bundle_sha256 if now else None,
            now.version if now else None,
            nxt.activate_at,
        )
    if now is None:
        return None
    previous = now.previous_sha256
    previous_version = deployments.bundle_row(s, previous).version if previous else None
    return PolicyState.build(now.bundle_sha256, now.version, previous, previous_version, now.activate_at)


def run_targets(s: Session, run_id: str, order: list[str]) -> list[tuple[str, str]]:
    """(environment, protocol) pairs a pipeline run deployed to, last environment first (rollback order)."""
    q = select(Deployment.environment, Deployment.protocol_id).where(Deployment.run_id == run_id).distinct()
    pairs = [(env, pid) for env, pid in s.execute(q).all()]
    return sorted(pairs, key=lambda p: (-order.index(p[0]) if p[0] in order else 0, p[1]))


class Publisher:
    """Mirrors registry changes into each environment's namespace (kubernetes mode only)."""

    def __init__(self, config: PipelineConfig, targets: Mapping[str, KubernetesTarget]) -> None:
        self.config = config
        self.targets = dict(targets)

    @classmethod
    def for_config(cls, config: PipelineConfig, api: client.ApiClient | None = None) -> Publisher | None:
        """None in local mode. Reads the Kubernetes configuration now (no API call), so a missing one is
        refused (exit 2) before the command changes the registry."""
        if config.execution.mode != "kubernetes":
            return None
        from hms.targets.kubernetes import KubernetesTarget, default_api_client

        api = api or default_api_client(config.execution.in_cluster)
        names = config.environment_names
        return cls(config, {e: KubernetesTarget(config.namespace_for(e), api_client=api) for e in names})

    def in_sync(self, env: str, protocol_id: str) -> bool:
        """Whether the ConfigMap holds what the registry says and no restart is owed (read-only)."""
        with session_scope(read_only=True) as s:
            want = desired(s, env, protocol_id)
        have = self._read(env, protocol_id)
        if want is None or have is None:
            return want is None and have is None
        return not have["restart_pending"] and all(have[k] == v for k, v in _state_dict(want).items())

    def unfinished_rollback(self, env: str, protocol_id: str) -> bool:
        """The newest registry change here is a rollback Kubernetes never got: finish it, undo nothing more.

        Asks the API only when the newest change was a rollback; if it cannot answer then, the command
        stops before touching the registry (exit 1) rather than risk undoing a second version.
        """
        with session_scope(read_only=True) as s:
            if not deployments.last_change_was_rollback(s, env, protocol_id):
                return False
        return not self.in_sync(env, protocol_id)

    def publish(self, env: str, protocol_id: str, *, actor: str, command: str) -> dict[str, Any]:
        """Make ``env``'s ConfigMap match the registry, restart hms-api if it changed, audit the outcome."""
        target = self.targets[env]
        result: dict[str, Any] = {}
        changed = restarted = False
        for _round in range(MAX_ROUNDS):
            with session_scope(read_only=True) as s:
                want = desired(s, env, protocol_id)
            try:
                result = target.reconcile(protocol_id, want, actor=actor)
            except HmsError as e:
                self._fail(env, protocol_id, command=command, actor=actor, error=e)
            changed |= result["changed"]
            restarted |= result["restarted"]
            with session_scope(read_only=True) as s:
                if desired(s, env, protocol_id) == want:
                    break
        result = {**result, "environment": env, "changed": changed, "restarted": restarted}
        with session_scope() as s:
            audit.append(
                s,
                actor=actor,
                action="target.applied",
                subject=result["current"] or protocol_id,
                details={"command": command, **{k: result[k] for k in _AUDITED}},
            )
        return result

    def _read(self, env: str, protocol_id: str) -> dict[str, Any] | None:
        try:
            return self.targets[env].read(protocol_id)
        except HmsError as e:
            raise TargetFailed(
                f"cannot read {self.targets[env].namespace}/hms-policy-{protocol_id} to tell whether the "
                f"earlier rollback reached Kubernetes ({e.message}); nothing was changed, try again",
                where=f"kubernetes {env}",
            ) from e

    def _fail(self, env: str, protocol_id: str, *, command: str, actor: str, error: HmsError) -> NoReturn:
        namespace = self.targets[env].namespace
        with session_scope() as s:
            # what it serves once a rollback's switch still ahead has happened (the committed state)
            cur = deployments.in_force(s, env, protocol_id,
                                       deployments.switching_until(s, env, protocol_id, clock.now()))
            holds = f"v{cur.version} ({cur.bundle_sha256[:12]})" if cur else "no version"
            audit.append(
                s,
                actor=actor,
                action="target.failed",
                subject=cur.bundle_sha256 if cur else protocol_id,
                details={
                    "command": command,
                    "environment": env,
                    "namespace": namespace,
                    "protocol_id": protocol_id,
                    "error": str(error),
                },
            )
        raise TargetFailed(
            f"the registry is committed ({env} serves {holds} of {protocol_id}) but Kubernetes namespace "
            f"{namespace} did not follow: {error}. Run the same command again to finish it "
            "(a repeated rollback finishes this one, it does not undo another version)",
            where=f"kubernetes {env}",
        ) from error


_AUDITED = (
    "environment",
    "namespace",
    "configmap",
    "protocol_id",
    "action",
    "changed",
    "restarted",
    *STATE_KEYS,
)


def _state_dict(state: PolicyState) -> dict[str, Any]:
    return {k: getattr(state, k) for k in STATE_KEYS}
