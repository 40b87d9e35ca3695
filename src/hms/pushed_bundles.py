"""The pushed bundles of each protocol, labelled for a person picking one to run: the trigger form's list.

Before, the policy DAG's trigger form had no bundle field: a plain Trigger packed the repository file, and on
a clone whose file differed from what was pushed under its version that was a dead end in the UI. Now the
form offers every recorded bundle of the protocol as ``v3 · 1a2b3c4d5e6f · live in prod`` (or ``scheduled in
prod …``, ``live in preprod``, ``rolled back``, ``rejected``, ``superseded by v4``, ``approved``, ``waiting
for review``), newest version first.

Read while Airflow parses the DAG file, which it does every few seconds, for every protocol: so **one**
statement for all protocols (bundles outer-joined with their deployment and approval rows), not one per
protocol, and never the bundles' bytes. Only rows whose signed statements verify count (hms.attest.rows), as
everywhere else. The label is a guide to the choice, not a gate: the review step evaluates the approval
policy as tightened by the protocol itself (hms.pipeline_config.effective_approval_policy), which needs the
parsed bundle; the label uses the pipeline's policy, which the protocol can only make stricter. So "approved"
may still meet a role the protocol adds — the review step then waits and says which.

The registry may be down while Airflow parses: ``read`` then returns no lists and says why (``unavailable``),
and the DAG keeps a free-text field, so parsing — and every other DAG — goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import defer

from hms import approvals, clock
from hms.attest import rows as rows_attest
from hms.pipeline_config import PipelineConfig
from hms.registry.models import Approval, Deployment
from hms.registry.models import Bundle as BundleRow

PER_PROTOCOL = 25  # a picker, not a history: the newest versions


@dataclass(frozen=True)
class PushedBundle:
    """One recorded bundle as the trigger form shows it."""

    protocol_id: str
    version: int
    sha256: str
    status: str

    @property
    def label(self) -> str:
        return f"v{self.version} · {self.sha256[:12]} · {self.status}"


@dataclass(frozen=True)
class PushedBundles:
    """Per protocol id, its bundles newest version first; ``unavailable`` says why there are no lists."""

    by_protocol: dict[str, list[PushedBundle]] = field(default_factory=dict)
    unavailable: str | None = None

    def of(self, protocol_id: str) -> list[PushedBundle]:
        return self.by_protocol.get(protocol_id, [])


def read(protocol_ids: Iterable[str], config: PipelineConfig) -> PushedBundles:
    """The pushed bundles of ``protocol_ids``, in one registry statement; a registry that cannot be read gives
    ``PushedBundles(unavailable=<why>)`` instead of an exception (the DAG file must still parse)."""
    from hms.registry.db import session_scope

    ids = sorted(set(protocol_ids))
    if not ids:
        return PushedBundles()
    try:
        with session_scope(read_only=True) as s:
            q = (
                select(BundleRow, Deployment, Approval)
                .outerjoin(Deployment, Deployment.bundle_sha256 == BundleRow.sha256)
                .outerjoin(Approval, Approval.bundle_sha256 == BundleRow.sha256)
                .where(BundleRow.protocol_id.in_(ids))
                .options(defer(BundleRow.content))
            )
            found = s.execute(q).all()
            return PushedBundles(_label(found, config, clock.now()))
    except Exception as e:  # any failure to read — unreachable, no schema, bad URL — is a reason, not a crash
        return PushedBundles(unavailable=_reason(e))


def _reason(e: Exception) -> str:
    """One short line: the exception's kind and its first line (an HmsError's message, without its field)."""
    text = str(getattr(e, "message", None) or e).strip()
    first = text.splitlines()[0][:300] if text else ""
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def _label(
    found: list[tuple[BundleRow, Deployment | None, Approval | None]], config: PipelineConfig, now: datetime
) -> dict[str, list[PushedBundle]]:
    bundles: dict[str, BundleRow] = {}
    deps: dict[str, dict[int, Deployment]] = {}
    revs: dict[str, dict[int, Approval]] = {}
    for b, d, a in found:  # the outer joins repeat each bundle once per (deployment, approval) pair
        bundles[b.sha256] = b
        if d is not None:
            deps.setdefault(b.sha256, {})[d.id] = d
        if a is not None:
            revs.setdefault(b.sha256, {})[a.id] = a
    trust = rows_attest.review_trust(config)
    newest: dict[str, int] = {}
    for b in bundles.values():
        newest[b.protocol_id] = max(newest.get(b.protocol_id, 0), b.version)
    out: dict[str, list[PushedBundle]] = {}
    for b in sorted(bundles.values(), key=lambda r: (r.protocol_id, -r.version)):
        if len(out.get(b.protocol_id, [])) >= PER_PROTOCOL:
            continue
        rows = [d for d in deps.get(b.sha256, {}).values() if rows_attest.deployment_refusal(d) is None]
        reviews = [
            approvals.Review(r.bundle_sha256, r.user, r.role, r.decision, r.comment or "")
            for r in sorted(revs.get(b.sha256, {}).values(), key=lambda r: r.id)
            if rows_attest.approval_refusal(r, trust) is None
        ]
        status = _status(b, rows, reviews, newest[b.protocol_id], config, now)
        out.setdefault(b.protocol_id, []).append(PushedBundle(b.protocol_id, b.version, b.sha256, status))
    return out


def _status(
    b: BundleRow,
    rows: list[Deployment],
    reviews: list[approvals.Review],
    newest: int,
    config: PipelineConfig,
    now: datetime,
) -> str:
    """The furthest the bundle got: in force (last environment first), scheduled, rolled back; then a
    rejection; then superseded; then whether the clerks' approvals meet the pipeline's policy."""
    envs = config.environment_names
    last = envs[-1]

    def in_force(env: str) -> bool:
        return any(
            d.environment == env
            and d.state != "cancelled"
            and d.activate_at <= now
            and (d.ended_at is None or d.ended_at > now)
            for d in rows
        )

    if in_force(last):
        return f"live in {last}"
    waiting = [d for d in rows if d.environment == last and d.state == "pending" and d.activate_at > now]
    if waiting:
        at = min(d.activate_at for d in waiting).astimezone(config.tz)
        return f"scheduled in {last} for {at:%Y-%m-%d %H:%M} {at.tzname()}"
    for env in reversed(envs[:-1]):
        if in_force(env):
            return f"live in {env}"
    if any(d.state == "rolled_back" for d in rows):
        return "rolled back"
    author = json.loads(b.manifest).get("author", "")
    status = approvals.evaluate(
        config.approvals.policy,
        reviews,
        bundle_sha256=b.sha256,
        author=author,
        user_roles=config.user_roles,
        pusher=b.created_by,
    )
    if status.rejected:
        return "rejected"
    if newest > b.version:  # a run of it stops at its first deploy: environments take the newest version
        return f"superseded by v{newest}"
    return "approved" if status.satisfied else "waiting for review"
