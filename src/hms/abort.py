"""Abort a pipeline run: the one core function behind ``hms rule abort RUN`` and Airflow's "mark failed".

When ops stops a run while its flip waits for the effective time, Airflow skips the DAG's rollback task
(trigger rule ``one_failed`` never sees a failed upstream: the tasks are set failed/skipped by hand) and the
run's versions would stay in staging and preprod, and prod's pending activation would still come into force
at its instant. ``abort_run`` does what the rollback task would have done, and more, in one transaction:

1. records the run ``aborted`` (hms.run_state): from this instant none of its pending activations comes into
   force — in the registry's ``in_force``, in ``settle`` and in every replica's timeline — and any deploy
   of it still on its way is refused. This holds even if step 2 is never reached or Airflow never calls us;
2. undoes every deployment the run made (``deployments.rollback_run``): pending rows are cancelled, versions
   that went live are rolled back to what was in force before, newest environment first;
3. bumps the generation of every environment the run touched, so replicas reload at once;
4. appends a ``run.aborted`` audit entry naming who, why, and what was undone.

Who may: a person needs the ``ops`` role in the pinned policy's ``users:`` (the principal is authenticated:
hms.identity). Airflow's own report that a run failed (the listener in plugins/hms_operators) is the pipeline
principal: Airflow's auth manager already decided who may mark a run failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import clock, deployments, run_state
from hms.attest import rows as rows_attest
from hms.errors import BadInput, CheckFailed
from hms.identity import Principal
from hms.pipeline_config import PipelineConfig
from hms.registry import audit, store
from hms.registry.models import Deployment, Run

OPS_ROLE = "ops"
MAX_REASON = 2000


@dataclass(frozen=True)
class AbortResult:
    """What an abort did: the run's recorded state and every change it made to an environment."""

    run: run_state.RunState
    undone: list[deployments.Change] = field(default_factory=list)
    already_aborted: bool = False
    environments: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run.to_dict(),
            "undone": [c.to_dict() for c in self.undone],
            "already_aborted": self.already_aborted,
            "environments": self.environments,
        }


def authorize(by: Principal, config: PipelineConfig) -> None:
    """Refuse (exit 1, nothing changed) a person who does not hold the ``ops`` role; fail closed without ``users:``."""
    if by.kind == "pipeline":
        return
    held = tuple((config.user_roles or {}).get(by.name, ()))
    if OPS_ROLE not in held:
        raise CheckFailed(
            f"aborting a pipeline run needs the role {OPS_ROLE!r}; {by.name} holds: {', '.join(held) or 'none'}"
            " (roles: users: in .hms-ci/policy-pipeline.yml)",
            where="user",
        )


def abort_run(s: Session, run_id: str, *, by: Principal, reason: str, config: PipelineConfig) -> AbortResult:
    """Stop ``run_id``: record it aborted, undo every deployment it made, cancel its pending activations, audit.

    Idempotent: aborting an aborted run again finishes whatever is left (nothing, normally) and records no second
    ``run.aborted``. A run the registry has not seen deploy yet is recorded aborted all the same, so its deploy
    steps are refused when they come. A *published* run is over (exit 1): roll it back with ``hms rule rollback``.
    Bad input (run id, reason) is exit 2 and the role check exit 1, both before anything is written.
    """
    run_state.check_run_id(run_id)
    if not isinstance(reason, str) or not reason.strip():
        raise BadInput("say why the run is aborted (it goes into the audit log)", where="--reason")
    if len(reason) > MAX_REASON:
        raise BadInput(f"the reason is {len(reason)} characters; at most {MAX_REASON}", where="--reason")
    authorize(by, config)
    now = clock.now()
    touched = sorted(
        set(s.scalars(select(Deployment.environment).where(Deployment.run_id == run_id))),
        key=lambda e: config.environment_names.index(e) if e in config.environment_names else -1,
    )
    for env in touched:  # the same lock deploy takes: no deploy of this run interleaves with the abort
        store.lock_environment(s, env)
    row = s.get(Run, run_id, with_for_update=True)
    if row is not None and row.state == "published":
        raise CheckFailed(
            f"run {run_id} was published at {row.ended_at.isoformat() if row.ended_at else '?'}: it is over, "
            "there is nothing to abort; restore the version before with `hms rule rollback ID --env ENV`",
            where=f"run {run_id}",
        )
    already = row is not None and row.state == "aborted"
    if row is None:
        row = Run(run_id=run_id, state="alive", started_at=now, started_by=by.name)
        s.add(row)
    if not already:
        row.state, row.ended_at, row.ended_by, row.reason = "aborted", now, by.name, reason.strip()
        rows_attest.sign_run(row)
    s.flush()
    undone = deployments.rollback_run(s, run_id, actor=by.name, config=config)
    for env in touched:  # replicas rebuild their timelines, which now leave this run's pending rows out
        store.bump_generation(s, env)
    result = AbortResult(
        run_state.get(s, run_id) or run_state.RunState(run_id, "aborted", now, by.name), undone, already, touched
    )
    if not already or undone:
        audit.append(
            s,
            actor=by.name,
            action="run.aborted",
            subject=run_id,
            details={
                "run_id": run_id,
                "by": by.name,
                "principal": by.to_dict(),
                "reason": reason.strip(),
                "again": already,
                "environments": touched,
                "undone": [c.to_dict() for c in undone],
            },
        )
    return result


NOTHING_TOUCHED = "no environment was touched; nothing to roll back"


def failed_run_message(s: Session, run_id: str, failed_tasks: Sequence[str]) -> str:
    """The failed run's last word: which step failed, then what the rollback left (``rollback_summary``).

    Ops read it first in the grid; "every environment this run touched was rolled back" on a run that failed
    at build sent them looking for a rollback that never happened. ``failed_tasks`` are the task ids Airflow
    reports failed (none known: "a pipeline step").
    """
    which = ", ".join(failed_tasks) if failed_tasks else "a pipeline step"
    return f"{which} failed; {rollback_summary(s, run_id)}"


def rollback_summary(s: Session, run_id: str) -> str:
    """What a failed run's rollback left, environment by environment, in one sentence for the run's last task.

    Read from the registry after the rollback ran, so it never claims an undo that did not happen: a run that
    failed before its first deploy touched nothing, and says so (``NOTHING_TOUCHED``).
    """
    rows = s.scalars(select(Deployment).where(Deployment.run_id == run_id).order_by(Deployment.id)).all()
    if not rows:
        return NOTHING_TOUCHED
    # The run deploys one bundle; its rollback writes rows of the versions it restored, under the same run id.
    # Per environment, the run's last row of its own bundle says what became of it (a scheduler's move leaves
    # a cancelled row and a newer one), and the last row of another bundle is what was put back.
    sha = rows[0].bundle_sha256
    made: dict[str, Deployment] = {}
    restored: dict[str, Deployment] = {}
    for d in rows:
        (made if d.bundle_sha256 == sha else restored)[d.environment] = d
    undone, left = [], []
    for e, d in made.items():
        if d.state == "cancelled":
            undone.append(f"{e} (v{d.version} cancelled before it came into force)")
        elif d.state == "rolled_back":
            back = restored.get(e)
            undone.append(f"{e} (v{d.version} rolled back" + (f" to v{back.version})" if back else ")"))
        else:
            left.append(f"{e} (v{d.version} {d.state})")
    parts = []
    if undone:
        parts.append("undone: " + ", ".join(undone))
    if left:
        parts.append("NOT undone: " + ", ".join(left) + " — check `hms rule status` and roll back by hand")
    return "; ".join(parts)
