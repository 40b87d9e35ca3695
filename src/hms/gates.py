"""What the pipeline's waits ask the registry: has this bundle been approved? when does it activate?

Plain functions (no Airflow) so the Airflow sensors and triggers, the clerk page
and the tests all ask the same question the same way.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from hms import deployments
from hms.pipeline_config import load_pipeline_config
from hms.registry.db import session_scope
from hms.registry.models import Deployment


def review_state(sha256: str) -> dict[str, Any]:
    """``{"state": "approved" | "rejected" | "waiting", "summary": …, …}`` for one bundle hash."""
    config = load_pipeline_config()
    with session_scope() as s:
        b = deployments.load_bundle(s, sha256)
        status = deployments.approval_status(s, b, config)
    state = "rejected" if status.rejected else "approved" if status.satisfied else "waiting"
    return {"state": state, "sha256": sha256, **status.to_dict()}


def activation_time(run_id: str, environment: str) -> datetime | None:
    """When the deployment this run staged in ``environment`` activates; None if it was cancelled."""
    with session_scope() as s:
        d = s.scalar(
            select(Deployment)
            .where(Deployment.run_id == run_id, Deployment.environment == environment)
            .order_by(Deployment.id.desc())
        )
        if d is None or d.state in ("cancelled", "rolled_back"):
            return None
        return d.activate_at
