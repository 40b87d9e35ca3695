"""Whether a pipeline run is still alive: the registry's own record, not Airflow's task state.

A run's deployments carry its ``run_id``. The run is ``alive`` from its first deploy, ``published`` when
``hms rule publish`` records it took its bundle all the way, ``aborted`` when it was stopped (``hms rule abort``,
or Airflow reporting the run failed: hms.abort). Airflow can lose track of a run — ops marks it failed while the
flip task waits, and the rollback task (trigger rule ``one_failed``) is then skipped — so the decision of what
is in force never asks Airflow. It asks this module:

- a **pending** row of a run aborted at ``A`` whose ``activate_at`` is not before ``A`` never comes into force:
  ``deployments.in_force``/``pending``/``settle`` and every replica's timeline (service/timeline.py) skip it;
- a pending row whose time came *before* the abort was in force from then (replicas switched by the clock), and
  stays so in history: the abort's rollback ends it at ``A``. Nothing in the past is rewritten;
- a deploy for an aborted run is refused, so a step still running when the run was stopped writes nothing.

This module imports nothing but the registry, so ``deployments`` can ask it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import clock
from hms.attest.rows import run_refusal, sign_run
from hms.errors import BadInput, CheckFailed
from hms.registry.models import Run

RunStateName = Literal["alive", "published", "aborted"]
# Airflow run ids (manual__2026-…+00:00, bundle-<hex>[-<UTC stamp>], scheduled__…) and hms promote --run-id values.
RUN_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,250}\Z")


@dataclass(frozen=True)
class RunState:
    """One run as the registry knows it."""

    run_id: str
    state: RunStateName
    started_at: datetime
    started_by: str
    ended_at: datetime | None = None
    ended_by: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, str | None]:
        return {
            "run_id": self.run_id,
            "state": self.state,
            "started_at": self.started_at.isoformat(),
            "started_by": self.started_by,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "ended_by": self.ended_by,
            "reason": self.reason,
        }


def _state(r: Run) -> RunState:
    state: RunStateName = r.state  # type: ignore[assignment]  # the table holds only these three
    return RunState(r.run_id, state, r.started_at, r.started_by, r.ended_at, r.ended_by, r.reason)


def check_run_id(run_id: str, where: str = "RUN") -> str:
    """A run id as Airflow and ``--run-id`` write them; anything else is exit 2 naming ``where``."""
    if not isinstance(run_id, str) or not RUN_ID.match(run_id):
        raise BadInput(f"{run_id!r} is not a run id (1–250 characters: letters, digits, _ . : + -)", where=where)
    return run_id


def get(s: Session, run_id: str) -> RunState | None:
    row = s.get(Run, run_id)
    return _state(row) if row is not None else None


def mark_alive(s: Session, run_id: str, *, actor: str) -> RunState:
    """Record that ``run_id`` deploys (idempotent); an aborted run is refused (exit 1) before it writes anything.

    Called by ``deployments.deploy`` in its transaction: a deploy step that was still running when ops
    stopped the run commits nothing, however late it comes.
    """
    check_run_id(run_id, where="--run-id")
    row = s.get(Run, run_id, with_for_update=True)
    if row is None:
        row = Run(run_id=run_id, state="alive", started_at=clock.now(), started_by=actor)
        s.add(row)
        s.flush()
        sign_run(row)
    elif (why := run_refusal(row)) is not None:
        raise CheckFailed(f"{why}: a run whose state does not verify deploys nothing", where=f"run {run_id}")
    elif row.state == "aborted":
        raise CheckFailed(
            f"run {run_id} was aborted at {row.ended_at.isoformat() if row.ended_at else '?'} by {row.ended_by}"
            f" ({row.reason or 'no reason given'}): it deploys nothing more",
            where=f"run {run_id}",
        )
    return _state(row)


def mark_published(s: Session, run_id: str, *, actor: str) -> RunState:
    """The run took its bundle all the way: it is over, and can no longer be aborted (roll back instead)."""
    check_run_id(run_id, where="--run-id")
    row = s.get(Run, run_id, with_for_update=True)
    now = clock.now()
    if row is None:  # deployments made before migration 0003 (or by hand with --run-id): record it now
        row = Run(run_id=run_id, state="alive", started_at=now, started_by=actor)
        s.add(row)
    elif (why := run_refusal(row)) is not None:
        raise CheckFailed(f"{why}: a run whose state does not verify cannot be published", where=f"run {run_id}")
    if row.state == "aborted":
        raise CheckFailed(f"run {run_id} was aborted: it cannot be published", where=f"run {run_id}")
    if row.state == "alive":
        row.state, row.ended_at, row.ended_by = "published", now, actor
    s.flush()
    sign_run(row)
    return _state(row)


# A run whose signed state does not verify counts as aborted before anything: none of its pending activations
# comes into force. Fail closed: an edited "aborted → alive" must not revive a stopped run's law.
UNVERIFIED = datetime.min.replace(tzinfo=UTC)


def aborted_at(s: Session, run_ids: Iterable[str | None]) -> dict[str, datetime]:
    """For those of ``run_ids`` that were aborted: when (``UNVERIFIED`` for a run whose state does not verify).
    One query, for a replica's whole snapshot."""
    ids = sorted({r for r in run_ids if r})
    if not ids:
        return {}
    out: dict[str, datetime] = {}
    for r in s.scalars(select(Run).where(Run.run_id.in_(ids))):
        if run_refusal(r) is not None:
            out[r.run_id] = UNVERIFIED
        elif r.state == "aborted" and r.ended_at is not None:
            out[r.run_id] = r.ended_at
    return out


def voided(state: str, activate_at: datetime, run_id: str | None, aborted: dict[str, datetime]) -> bool:
    """Whether a row never comes into force because its run was aborted before its activation.

    Only ``pending`` rows: a row that went live is history (a rollback ends it), and the rows a rollback
    writes to restore the previous version carry the run id too but are live from the start.
    """
    if state != "pending" or run_id is None or run_id not in aborted:
        return False
    return activate_at >= aborted[run_id]
