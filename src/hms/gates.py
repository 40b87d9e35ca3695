"""What the pipeline asks the registry: has this bundle been approved? when does it activate?
which recorded bundles has no pipeline taken up yet (intake)?

Plain functions (no Airflow) so the Airflow sensors and triggers, the clerk page
and the tests all ask the same question the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select

from hms import deployments, run_state
from hms.attest.rows import deployment_refusal
from hms.pinned_policy import governing
from hms.registry.db import session_scope
from hms.registry.models import Bundle as BundleRow
from hms.registry.models import Deployment


def review_state(sha256: str) -> dict[str, Any]:
    """``{"state": "approved" | "rejected" | "waiting", "summary": …, …}`` for one bundle hash."""
    config = governing()
    with session_scope() as s:
        b = deployments.load_bundle(s, sha256)
        status = deployments.approval_status(s, b, config)
    state = "rejected" if status.rejected else "approved" if status.satisfied else "waiting"
    return {"state": state, "sha256": sha256, **status.to_dict()}


def activation_time(run_id: str, environment: str) -> datetime | None:
    """When the deployment this run staged in ``environment`` activates; None if it was cancelled or the run
    was aborted (the flip then fails instead of verifying a version that will never be in force)."""
    with session_scope() as s:
        d = s.scalar(
            select(Deployment)
            .where(Deployment.run_id == run_id, Deployment.environment == environment)
            .order_by(Deployment.id.desc())
        )
        if d is None or d.state in ("cancelled", "rolled_back") or deployment_refusal(d) is not None:
            return None
        if run_state.voided(d.state, d.activate_at, d.run_id, run_state.aborted_at(s, [run_id])):
            return None
        return d.activate_at


def intake_candidates(protocol_ids: Iterable[str]) -> list[dict[str, Any]]:
    """Per protocol, the newest recorded bundle if nothing deployed it yet: what a pipeline run should take up.

    Only the newest version counts (an older one recorded late must not overtake it), and a bundle any
    environment ever received (by a run or by hand) is already taken. Whether a run for it exists is
    Airflow's to say: the intake starts a bundle's *first* run, id ``bundle-<sha12>`` (``hms.ci.run_id_for``),
    asks Airflow whether that id exists, and Airflow refuses a second run with it — so the intake starts a
    bundle at most once, and never while that run is active. Later runs of the same bundle (after the first
    failed) are people's decisions, with ids of their own (``bundle-<sha12>-<UTC stamp>``, or the trigger
    form's), so none of them burns the intake's.
    """
    out = []
    with session_scope() as s:
        for pid in sorted(set(protocol_ids)):
            newest = s.scalar(
                select(BundleRow).where(BundleRow.protocol_id == pid).order_by(BundleRow.version.desc()).limit(1)
            )
            if newest is None:
                continue
            if s.scalar(select(Deployment.id).where(Deployment.bundle_sha256 == newest.sha256).limit(1)) is None:
                out.append({"protocol_id": pid, "version": newest.version, "sha256": newest.sha256})
    return out
