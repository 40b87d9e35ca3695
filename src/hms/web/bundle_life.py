"""A bundle's life, as a clerk's card tells it: pushed, checked, reviewed, deployed, activated, moved,
superseded, rolled back, its run aborted or published — who, when, which run, why.

A card that stopped at the approval left a bundle rolled back in prod reading "prod: —" and one whose run
died reading "waiting for approval" forever. The registry already knows every step: the hash-chained audit
log records each change with its actor and the run it belonged to (``hms.registry.audit``), and the
deployment rows say when a version stopped being in force. This module reads both for one bundle and
returns typed events in time order, each a plain-words sentence; no HTML and no Airflow here. ``stage`` and
``run_id`` say which pipeline step an event came from, so a host that knows the pipeline's shape (the
Airflow plugin) can link it to the run and the task's log (``RunLinks``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms.registry.models import AuditEntry, Deployment, Run

#: What a pipeline step is called in the events; the host maps (stage, environment) to its own task ids.
STAGES = ("build", "test", "replay", "scan", "chaos", "review", "deploy", "schedule", "flip", "publish", "rollback",
          "run")


@dataclass(frozen=True)
class LifeEvent:
    """One thing that happened to a bundle. ``ok``: a check's verdict (None where there is none)."""

    at: datetime
    kind: str  # pushed | check | review | deploy | activation | move | superseded | rollback | run | published
    sentence: str  # plain words; times in the pipeline's zone, zone named
    actor: str
    environment: str | None = None
    run_id: str | None = None
    stage: str | None = None  # one of STAGES: which step of the run it came from
    ok: bool | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(), "kind": self.kind, "sentence": self.sentence, "actor": self.actor,
            "environment": self.environment, "run_id": self.run_id, "stage": self.stage, "ok": self.ok,
            "reason": self.reason,
        }


class RunLinks(Protocol):
    """Where a host shows a run and a step's log (the Airflow plugin: its grid and task log pages)."""

    def run(self, protocol_id: str, run_id: str) -> str: ...

    def step(self, protocol_id: str, run_id: str, stage: str, environment: str | None) -> str | None: ...


def life(s: Session, sha256: str, tz: ZoneInfo, *, last_environment: str) -> list[LifeEvent]:
    """Every event of the bundle ``sha256``, oldest first."""
    local = _local(tz)
    events: list[LifeEvent] = []
    runs: set[str] = set()
    # Deploy and activation records name their deployment row, which names the run.
    rows = s.execute(select(Deployment.id, Deployment.run_id).where(Deployment.bundle_sha256 == sha256))
    run_of_row = {row_id: run for row_id, run in rows}
    own = s.scalars(select(AuditEntry).where(AuditEntry.subject == sha256).order_by(AuditEntry.id))
    for e in own:
        d = json.loads(e.details)
        if not d.get("run_id") and d.get("deployment_id") in run_of_row:
            d["run_id"] = run_of_row[d["deployment_id"]]
        if d.get("run_id"):
            runs.add(d["run_id"])
        event = _from_audit(e, d, local, last_environment)
        if event is not None:
            events.append(event)
    # A rollback that restored an older version is recorded on the restored bundle; this one was withdrawn.
    restores = s.scalars(
        select(AuditEntry)
        .where(AuditEntry.action == "rollback.live", AuditEntry.details.contains(sha256))
        .order_by(AuditEntry.id)
    )
    for e in restores:
        d = json.loads(e.details)
        if d.get("rolled_back") != sha256:
            continue
        env = d.get("environment")
        by_run = f" (run {d['run_id']})" if d.get("run_id") else ""
        events.append(LifeEvent(e.at, "rollback", f"rolled back in {env}: v{d.get('version')} restored by "
                                f"{e.actor}{by_run}", e.actor, env, d.get("run_id"), "rollback"))
    events += _superseded(s, sha256, local)
    for run_id in sorted(runs):
        row = s.get(Run, run_id)
        if row is not None and row.state == "aborted" and row.ended_at is not None:
            why = f": {row.reason}" if row.reason else ""
            events.append(LifeEvent(row.ended_at, "run", f"run {run_id} aborted by {row.ended_by or '?'}{why}",
                                    row.ended_by or "?", None, run_id, "run", False, row.reason))
    events.sort(key=lambda ev: ev.at)
    return events


def _local(tz: ZoneInfo) -> Callable[[str | datetime | None], str]:
    def local(t: str | datetime | None) -> str:
        if t is None:
            return "—"
        dt = datetime.fromisoformat(t) if isinstance(t, str) else t
        return dt.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")

    return local


_CHECK_STAGE = {"test": "test", "replay": "replay", "scan": "scan", "chaos": "chaos"}
_CHECK_WORDS = {"test": "tests and simulation", "replay": "replay on logged decisions", "scan": "compliance scan (OPA)",
                "chaos": "chaos experiment"}


def _from_audit(e: AuditEntry, d: dict[str, Any], local: Callable[..., str], last: str) -> LifeEvent | None:
    action, actor, run = e.action, e.actor, d.get("run_id")
    env = d.get("environment")
    if action == "bundle.recorded":
        return LifeEvent(e.at, "pushed", f"pushed v{d.get('version')} by {actor} ({d.get('size', 0):,} bytes)",
                         actor, stage="build")
    if action.startswith("check."):
        kind = action.removeprefix("check.")
        verdict = "passed" if d.get("ok") else "failed"
        return LifeEvent(e.at, "check", f"{_CHECK_WORDS.get(kind, kind)} {verdict}", actor, None, run,
                         _CHECK_STAGE.get(kind), bool(d.get("ok")))
    if action.startswith("review."):
        decision = action.removeprefix("review.")
        said = f": “{d['comment']}”" if d.get("comment") else ""
        return LifeEvent(e.at, "review", f"{decision}d by {actor} as {d.get('role')}{said}", actor,
                         stage="review", ok=decision == "approve", reason=d.get("comment") or None)
    if action.startswith("deploy."):
        state = action.removeprefix("deploy.")
        if state == "pending":
            text = f"scheduled in {env} for {local(d.get('activate_at'))} by {actor}"
        elif state == "live":
            text = f"deployed to {env}, live from {local(d.get('activate_at'))}, by {actor}"
        else:
            text = f"deploy to {env}: {state}, by {actor}"
        if d.get("effective_note"):
            text += f" ({d['effective_note']})"
        return LifeEvent(e.at, "deploy", text, actor, env, run, "schedule" if env == last and state == "pending"
                         else "deploy")
    if action.startswith("activation."):
        what = action.removeprefix("activation.")
        words = {
            "live": f"live in {env} from {local(d.get('activate_at'))}",
            "refused_freeze": f"activation in {env} refused: it fell in a freeze window",
            "refused_aborted_run": f"activation in {env} cancelled: its run was aborted",
        }
        if what == "moved":
            why = f": {d['reason']}" if d.get("reason") else ""
            return LifeEvent(e.at, "move", f"{env} activation moved from {local(d.get('from'))} to "
                             f"{local(d.get('to'))} by {actor}{why}", actor, env, run, "flip",
                             reason=d.get("reason"))
        return LifeEvent(e.at, "activation", words.get(what, f"activation in {env}: {what}"), actor, env, run,
                         "flip", what == "live")
    if action == "rollback.withdrawn":
        return LifeEvent(e.at, "rollback", f"withdrawn from {env} by {actor}" + (f" (run {run})" if run else ""),
                         actor, env, run, "rollback", False)
    if action == "rollback.cancel_pending":
        return LifeEvent(e.at, "rollback", f"pending activation in {env} (for {local(d.get('activate_at'))}) "
                         f"cancelled by {actor}" + (f" (run {run})" if run else ""), actor, env, run, "rollback",
                         False)
    if action == "rollback.live":
        gone = f" instead of {d['rolled_back'][:12]}" if d.get("rolled_back") else ""
        return LifeEvent(e.at, "rollback", f"restored in {env} by a rollback{gone}, by {actor}", actor, env, run,
                         "rollback")
    if action == "pipeline.published":
        return LifeEvent(e.at, "published", f"published by {actor}", actor, None, run, "publish", True)
    return None  # rollback.skipped and host-side records (target.*) are not the bundle's life


def _superseded(s: Session, sha256: str, local: Callable[..., str]) -> list[LifeEvent]:
    """A version stops being in force when a newer one goes live: recorded on the newer bundle, told here."""
    out = []
    rows = s.scalars(select(Deployment).where(Deployment.bundle_sha256 == sha256, Deployment.state == "superseded"))
    for d in rows:
        if d.ended_at is None:
            continue
        newer = s.scalars(
            select(Deployment)
            .where(Deployment.environment == d.environment, Deployment.protocol_id == d.protocol_id,
                   Deployment.previous_sha256 == sha256, Deployment.id > d.id)
            .order_by(Deployment.id)
        ).first()
        by = f" by v{newer.version}" if newer is not None else ""
        out.append(LifeEvent(d.ended_at, "superseded", f"superseded in {d.environment}{by} at {local(d.ended_at)}",
                             "hms", d.environment, d.run_id, None))
    return out


__all__ = ["STAGES", "LifeEvent", "RunLinks", "life"]
