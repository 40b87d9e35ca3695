"""Deployments per environment: promotion order, scheduled activation, rollback.

This is the one place that decides whether a bundle may enter an environment
(the CLI, the Airflow operators and the clerk page all come here, and Airflow's
"Mark success" on a task opens nothing), at *every* environment, staging included:
- the approval policy satisfied for this exact hash (approvals.evaluate, the same
  function the review sensor polls);
- the bundle not superseded: no newer version of its protocol recorded;
- a recorded passing ``test`` and ``scan`` for this hash, and past the chaos
  environment a passing ``chaos`` (hms.evidence);
- an environment after the first needs the bundle *in force* in the one before;
- an activation that falls in a freeze window is refused when requested, and
  again when it becomes due (``settle``), because windows can be added later;
- in the last environment nothing comes into force before its protocol's own
  ``effective_at``, and nothing anywhere is backdated (hms.effective_time).

State lives in the registry. A deployment row is ``pending`` until its
``activate_at``, then ``live``; the one it replaced becomes ``superseded``; an
undone one ``rolled_back`` (it was in force until ``ended_at``) or ``cancelled``
(it never was). Decision services do not wait for ``settle``: they switch by the
clock from the same rows (service/timeline.py). Every change bumps the
environment's generation and appends an audit entry in the same transaction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hms import approvals, clock, effective_time, evidence, pinned_policy, run_state
from hms.attest import rows as rows_attest
from hms.errors import BadInput, CheckFailed
from hms.pipeline_config import PipelineConfig, effective_approval_policy, in_freeze
from hms.registry import audit, store
from hms.registry.db import PRINCIPAL_KEY
from hms.registry.models import Approval, Deployment
from hms.registry.models import Bundle as BundleRow

if TYPE_CHECKING:  # hms.bundle pulls in the protocol loader, the rule compiler, NumPy and jsonschema
    from hms.bundle import Bundle

IN_FORCE_STATES = ("pending", "live")


@dataclass(frozen=True)
class Change:
    """What a deploy or rollback did, for the CLI and the pipeline's XCom."""

    environment: str
    protocol_id: str
    version: int
    sha256: str
    state: str
    activate_at: datetime
    previous_sha256: str | None
    deployment_id: int
    effective_at: datetime | None = None  # the protocol's own effective time (None: recorded before 0002)
    ended_at: datetime | None = None  # when it stops being in force (a withdrawal's switch instant)

    @property
    def takes_effect_at(self) -> datetime:
        """The instant this change reaches the answers: a withdrawal's end or a cancellation's instant (the
        cancelled activation never reaches them), otherwise the activation."""
        ended = self.state in ("rolled_back", "cancelled") and self.ended_at is not None
        return self.ended_at if ended and self.ended_at is not None else self.activate_at

    @property
    def late(self) -> bool:
        """In force from ``activate_at`` because the effective date had passed (not retroactive)."""
        return effective_time.Activation(self.activate_at, self.effective_at).late

    def to_dict(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "protocol_id": self.protocol_id,
            "version": self.version,
            "bundle_sha256": self.sha256,
            "state": self.state,
            "activate_at": self.activate_at.isoformat(),
            "previous_sha256": self.previous_sha256,
            "deployment_id": self.deployment_id,
            "effective_at": self.effective_at.isoformat() if self.effective_at else None,
            "late": self.late,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "takes_effect_at": self.takes_effect_at.isoformat(),
        }


def change_of(d: Deployment) -> Change:
    """A deployment row as the Change commands report."""
    return Change(
        d.environment, d.protocol_id, d.version, d.bundle_sha256, d.state, d.activate_at, d.previous_sha256, d.id,
        d.effective_at, d.ended_at,
    )


def binds_effective_time(config: PipelineConfig, env: str) -> bool:
    """Whether ``env``'s answers have legal effect: the last environment (prod); the others are rehearsals."""
    return env == config.environment_names[-1]


def late_note(env: str, activate_at: datetime, effective_at: datetime | None, config: PipelineConfig) -> str | None:
    """"effective date … passed; in force from …; not retroactive" for a late activation where it binds, else None.

    One wording for the audit entry, the CLI line and the pages; rehearsal environments never carry it.
    """
    if not binds_effective_time(config, env):
        return None
    return effective_time.note(activate_at, effective_at, config.tz)


def manifest_effective_at(row: BundleRow) -> datetime | None:
    """A recorded bundle's effective time from its manifest (no bundle parse: rollbacks stay light)."""
    raw = json.loads(row.manifest).get("effective_at")
    return datetime.fromisoformat(raw).astimezone(UTC) if raw else None


def bundle_row(s: Session, sha256: str) -> BundleRow:
    """The registry row of a hash (id, version, bytes) without parsing the bundle."""
    row = store.get_bundle(s, sha256)
    if row is None:
        raise BadInput(f"no bundle {sha256} in the registry (pack or push it first)", where="bundle")
    return row


def load_bundle(s: Session, sha256: str) -> Bundle:
    """The registry's bytes for a hash, verified (a swapped row would not match its key)."""
    from hms.bundle import read_bytes

    row = bundle_row(s, sha256)
    return read_bytes(row.content, where=f"registry bundle {sha256[:12]}", expect_sha256=sha256)


def resolve_bundle_row(s: Session, ref: str) -> BundleRow:
    """The registry row a reference names: full hash, unique hash prefix (≥ 8 hex), or ``<protocol-id>@<version>``.

    Commands that only need the id, version or hash (a rollback) stop here and never
    parse the bundle; ``resolve_bundle`` goes on to the verified bundle.
    """
    if "@" in ref:
        pid, _, ver = ref.partition("@")
        rows = [b for b in store.find_bundles(s, pid) if str(b.version) == ver]
        if not rows:
            raise BadInput(f"no bundle for {pid} version {ver}", where="bundle")
        return rows[0]
    ref = ref.removeprefix("sha256:").lower()
    if len(ref) == 64:
        return bundle_row(s, ref)
    if len(ref) >= 8 and all(c in "0123456789abcdef" for c in ref):
        matches = store.find_bundles_by_prefix(s, ref)
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(f"{m.protocol_id}@{m.version} ({m.sha256[:12]})" for m in matches)
            raise BadInput(f"hash prefix {ref} is ambiguous ({len(matches)} bundles: {names})", where="bundle")
    versions = [b.version for b in store.find_bundles(s, ref)]
    if versions:  # a protocol id: only `hms rule review` and `hms rule deploy` choose one of its bundles for you
        raise BadInput(
            f"{ref!r} is a protocol (versions {', '.join(map(str, versions))}): name one bundle, e.g. "
            f"{ref}@{versions[0]} or a sha256 prefix",
            where="bundle",
        )
    raise BadInput(f"no bundle matches {ref!r} (use a sha256, a unique prefix, or id@version)", where="bundle")


def resolve_bundle(s: Session, ref: str) -> Bundle:
    """A verified bundle by full hash, unique hash prefix (≥ 8 hex), or ``<protocol-id>@<version>``."""
    return load_bundle(s, resolve_bundle_row(s, ref).sha256)


# ---- reviews --------------------------------------------------------------------
def reviews_for(s: Session, sha256: str, config: PipelineConfig) -> list[approvals.Review]:
    """The reviews that count under the pinned policy ``config``: a row whose signed statement does not verify
    against its keys and allowed signers, or says something else than the row (hms.attest.rows), is not a
    review — an INSERT around the core approves nothing."""
    trust = rows_attest.review_trust(config)
    found = s.scalars(select(Approval).where(Approval.bundle_sha256 == sha256).order_by(Approval.id)).all()
    return [approvals.Review(r.bundle_sha256, r.user, r.role, r.decision, r.comment or "") for r in found
            if rows_attest.approval_refusal(r, trust) is None]


def pusher(s: Session, sha256: str) -> str | None:
    """Who recorded the bundle (``bundles.created_by``): excluded from reviewing it, like the author."""
    row = store.get_bundle(s, sha256)
    return row.created_by if row is not None else None


def superseded_by(s: Session, protocol_id: str, version: int) -> int | None:
    """The newest recorded version of the protocol when it is newer than ``version``, else None.

    A superseded bundle may be neither reviewed nor deployed: clerks and environments move on to the
    newest version (the web answers 409, the CLI exits 1). Rollbacks may still restore it.
    """
    found = store.find_bundles(s, protocol_id)
    newest = found[0].version if found else version
    return newest if newest > version else None


def approval_status(s: Session, b: Bundle, config: PipelineConfig) -> approvals.ApprovalStatus:
    policy = effective_approval_policy(config, b.protocol)
    return approvals.evaluate(
        policy, reviews_for(s, b.sha256, config), bundle_sha256=b.sha256, author=b.protocol.author,
        user_roles=config.user_roles, pusher=pusher(s, b.sha256),
    )


def _refuse_superseded(s: Session, b: Bundle, doing: str, where: str) -> None:
    newer = superseded_by(s, b.protocol.id, b.protocol.version)
    if newer is not None:
        raise CheckFailed(
            f"{b.protocol.id} v{b.protocol.version} ({b.short}) is superseded by v{newer}; {doing} that one",
            where=where,
        )


def record_review(
    s: Session, b: Bundle, *, user: str, role: str, decision: str, comment: str, config: PipelineConfig,
    signed: str | None = None,
) -> approvals.ApprovalStatus:
    """Record one clerk's decision on one exact bundle hash; one decision per clerk per bundle.

    A superseded version is refused (CheckFailed, exit 1; the web's 409): its review could only ever
    count towards a bundle no environment will take.
    """
    pinned_policy.require(s, config)
    review = approvals.Review(b.sha256, user, role, decision, comment)
    _refuse_superseded(s, b, "review", f"review of {b.sha256[:12]}")
    approvals.check_review(review, author=b.protocol.author, user_roles=config.user_roles,
                           pusher=pusher(s, b.sha256))
    def already(existing: Approval) -> BadInput:
        return BadInput(f"{user} already recorded '{existing.decision}' for this bundle; decisions are final",
                        where=f"review of {b.sha256[:12]}")

    mine = select(Approval).where(Approval.bundle_sha256 == b.sha256, Approval.user == user)
    existing = s.scalar(mine)
    if existing is not None:
        raise already(existing)
    try:
        with s.begin_nested():
            row = Approval(bundle_sha256=b.sha256, user=user, role=role, decision=decision, comment=comment,
                           at=clock.now(), policy_sha256=config.sha256 or None)
            if signed:  # the clerk signed it with their own key: that envelope is the evidence
                rows_attest.accept_signed_review(row, signed, config)
            else:
                rows_attest.sign_approval(row, s.info.get(PRINCIPAL_KEY))
            s.add(row)
    except IntegrityError:  # the same clerk's other click committed first (PostgreSQL; SQLite serializes writers)
        existing = s.scalar(mine)
        if existing is None:
            raise
        raise already(existing) from None
    audit.append(
        s,
        actor=user,
        action=f"review.{decision}",
        subject=b.sha256,
        details={"protocol_id": b.protocol.id, "version": b.protocol.version, "role": role, "comment": comment,
                 "policy_sha256": config.sha256},
    )
    return approval_status(s, b, config)


# ---- reading deployments --------------------------------------------------------
def rows(s: Session, env: str, protocol_id: str) -> list[Deployment]:
    """The environment's deployments of a protocol that count: each with a signed statement that verifies and
    says what the row says (hms.attest.rows). A row written around the core is no deployment anywhere."""
    q = (
        select(Deployment)
        .where(Deployment.environment == env, Deployment.protocol_id == protocol_id)
        .order_by(Deployment.activate_at, Deployment.id)
    )
    return [d for d in s.scalars(q).all() if rows_attest.deployment_refusal(d) is None]


def in_force(s: Session, env: str, protocol_id: str, at: datetime | None = None) -> Deployment | None:
    """The deployment a decision service in ``env`` answers with at ``at`` (default: now)."""
    at = at or clock.now()
    history = rows(s, env, protocol_id)
    aborted = run_state.aborted_at(s, (d.run_id for d in history))
    found = None
    for d in history:
        if d.state in ("cancelled",) or d.activate_at > at:
            continue
        if d.ended_at is not None and d.ended_at <= at:
            continue
        if run_state.voided(d.state, d.activate_at, d.run_id, aborted):  # its run was aborted before it was due
            continue
        found = d
    return found


def live_bundle(protocol_id: str, env: str = "prod") -> Bundle | None:
    """The bundle ``env`` answers with now (the simulation's default baseline), or None."""
    from hms.registry.db import session_scope

    with session_scope(read_only=True) as s:
        d = in_force(s, env, protocol_id)
        return load_bundle(s, d.bundle_sha256) if d else None


def pending(s: Session, env: str, protocol_id: str, at: datetime | None = None) -> list[Deployment]:
    """Rows waiting for their activation after ``at``; those of an aborted run wait for nothing (hms.run_state)."""
    at = at or clock.now()
    waiting = [d for d in rows(s, env, protocol_id) if d.state == "pending" and d.activate_at > at]
    aborted = run_state.aborted_at(s, (d.run_id for d in waiting))
    return [d for d in waiting if not run_state.voided(d.state, d.activate_at, d.run_id, aborted)]


def switching_until(s: Session, env: str, protocol_id: str, now: datetime) -> datetime:
    """The last instant at which a recorded, uncancellable change still takes effect (a rollback's switch
    instant, ``effective_time.switch_instant``), or ``now`` when none lies ahead."""
    latest = now
    for d in rows(s, env, protocol_id):
        if d.state == "live" and d.activate_at > latest:
            latest = d.activate_at
        if d.state in ("superseded", "rolled_back") and d.ended_at is not None and d.ended_at > latest:
            latest = d.ended_at
    return latest


# ---- changing deployments -------------------------------------------------------
def gate_refusals(s: Session, b: Bundle, env: str, config: PipelineConfig, *, order: bool = True,
                  later: tuple[str, ...] = ()) -> list[str]:
    """Every gate ``b`` fails for ``env``, as messages saying what is missing (empty: it may enter).

    ``order=False`` leaves out the one gate that depends on an earlier environment being live, so
    ``hms promote`` can ask about every target before it writes anything (``preflight``); ``later`` names
    the kinds of check the same promote records before it reaches ``env`` (``evidence.PromoteSteps``).
    """
    names = config.environment_names
    if env not in names:
        raise BadInput(f"unknown environment {env!r} (known: {', '.join(names)})", where="--env")
    out: list[str] = []
    newer = superseded_by(s, b.protocol.id, b.protocol.version)
    if newer is not None:
        out.append(f"superseded by v{newer} (a newer version of {b.protocol.id} was pushed); deploy that one")
    status = approval_status(s, b, config)
    if not status.satisfied:
        out.append(f"approval policy not met for sha256:{b.sha256}: {status.summary()}")
    out += [m.message() for m in evidence.missing(s, b.sha256, config, env) if m.kind not in later]
    i = names.index(env)
    if order and i > 0:
        before = names[i - 1]
        # Counting a rollback there that is recorded but not yet at its switch instant: it cannot be undone.
        now = clock.now()
        cur = in_force(s, before, b.protocol.id, switching_until(s, before, b.protocol.id, now))
        if cur is None or cur.bundle_sha256 != b.sha256:
            out.append(f"{b.protocol.id} v{b.protocol.version} ({b.short}) must be live in {before} before {env}")
    return out


def check_order(s: Session, b: Bundle, env: str, config: PipelineConfig) -> None:
    """Every gate of ``env`` for ``b`` — approvals, supersession, recorded checks, promotion order: the only place
    they are enforced. Raises ``CheckFailed`` (exit 1, the web's 409) naming everything missing."""
    pinned_policy.require(s, config)
    refusals = gate_refusals(s, b, env, config)
    if refusals:
        raise CheckFailed("; ".join(refusals), where=f"{b.protocol.id} v{b.protocol.version} to {env}")


def preflight(
    s: Session, b: Bundle, targets: list[str], activate_at: datetime | None, config: PipelineConfig
) -> evidence.PromoteSteps:
    """``hms promote``'s check of every target before the first write: nothing is deployed if any would fail.

    Each target's gates except "live in the one before" (the earlier target of the same promote makes it
    so), the last target's time (hms.effective_time) and every target's freeze windows. Returns the checks
    the promote runs itself (``evidence.promote_steps``): their absence is then no refusal — the step
    records them, or the promote fails.
    """
    now = clock.now()
    steps = evidence.promote_steps(s, b.sha256, config, targets)
    where: dict[str, list[str]] = {}  # refusal → the targets it concerns (one line for "no test" everywhere)
    for i, env in enumerate(targets):
        last = i == len(targets) - 1
        act = effective_time.plan(b.protocol.effective_at, activate_at if last else None, now,
                                  binding=binds_effective_time(config, env))
        found = gate_refusals(s, b, env, config, order=i == 0, later=steps.covers(env, targets))
        window = in_freeze(config, max(act.at, now), env)
        if window is not None:
            found.append(f"activation at {max(act.at, now).isoformat()} falls in freeze window {window}")
        for r in found:
            where.setdefault(r, []).append(env)
    refusals = [f"{', '.join(envs)}: {r}" for r, envs in where.items()]
    if refusals:
        raise CheckFailed("nothing deployed: " + "; ".join(refusals),
                          where=f"promote {b.protocol.id} v{b.protocol.version}")
    return steps


def _cancel(d: Deployment, now: datetime) -> None:
    """Cancel a pending row that has not come into force: history is append-only, so only a future one."""
    if d.activate_at <= now:
        raise RuntimeError(f"deployment {d.id} came into force at {d.activate_at.isoformat()}: it cannot be cancelled")
    _set_state(d, "cancelled", now)


def _set_state(d: Deployment, state: str, ended_at: datetime | None) -> None:
    """The one way a row's state changes: signed with it, or the change would not count (hms.attest.rows)."""
    d.state, d.ended_at = state, ended_at
    rows_attest.sign_deployment_state(d)


def _end(d: Deployment, state: str, at: datetime, now: datetime) -> None:
    """End a row's time in force at ``at`` (never before now: past answers stay as they were given)."""
    if d.ended_at is not None or at < now:
        raise RuntimeError(f"deployment {d.id}: ending it at {at.isoformat()} would rewrite its history")
    _set_state(d, state, at)


def _check_freeze(config: PipelineConfig, env: str, at: datetime) -> None:
    window = in_freeze(config, at, env)
    if window is not None:
        raise CheckFailed(
            f"activation at {at.isoformat()} falls in freeze window {window}", where=f"activation in {env}"
        )


def deploy(
    s: Session,
    b: Bundle,
    env: str,
    *,
    activate_at: datetime | None,
    actor: str,
    config: PipelineConfig,
    run_id: str | None = None,
) -> Change:
    """Put ``b`` into ``env``: live now, or pending until its activation. Idempotent per (env, hash, time).

    ``activate_at`` None means "as soon as lawful": now in a rehearsal environment, the later of now and
    the protocol's ``effective_at`` in the binding one. A requested time is checked by
    ``effective_time.plan`` (never in the past, never before the protocol's effective time there).
    """
    now = clock.now()
    act = effective_time.plan(b.protocol.effective_at, activate_at, now, binding=binds_effective_time(config, env))
    store.lock_environment(s, env)
    if run_id is not None:  # refused for an aborted run: a step still running when ops stopped it writes nothing
        run_state.mark_alive(s, run_id, actor=actor)
    # Not before a rollback's switch that is still ahead: the restored version would shadow this one.
    at = max(act.at, switching_until(s, env, b.protocol.id, now))
    check_order(s, b, env, config)
    _check_freeze(config, env, at)  # plan() never returns a time before now
    settle(s, env, config, actor=actor)
    current = in_force(s, env, b.protocol.id, at)
    for d in pending(s, env, b.protocol.id, now):
        if d.bundle_sha256 == b.sha256 and d.activate_at == at:
            return change_of(d)  # the same request again: nothing to do
    if current is not None and current.bundle_sha256 == b.sha256 and at <= now:
        return change_of(current)
    for d in pending(s, env, b.protocol.id, now):  # a newer schedule replaces an older pending one
        _cancel(d, now)
    live_now = in_force(s, env, b.protocol.id, at)  # what answers until `at` (now, or a switch still ahead)
    state = "live" if at <= now else "pending"
    row = Deployment(
        environment=env,
        protocol_id=b.protocol.id,
        bundle_sha256=b.sha256,
        version=b.protocol.version,
        state=state,
        activate_at=at,
        previous_sha256=live_now.bundle_sha256 if live_now else None,
        created_at=now,
        created_by=actor,
        run_id=run_id,
        effective_at=act.effective_at,
        policy_sha256=config.sha256 or None,
    )
    s.add(row)
    if state == "live" and live_now is not None:
        _end(live_now, "superseded", at, now)
    s.flush()
    rows_attest.sign_deployment(row)
    store.bump_generation(s, env)
    details = change_of(row).to_dict()
    if words := late_note(env, at, act.effective_at, config):
        details["effective_note"] = words
    audit.append(s, actor=actor, action=f"deploy.{state}", subject=b.sha256, details=details)
    return change_of(row)


def settle(
    s: Session, env: str, config: PipelineConfig, *, actor: str = "hms", until: datetime | None = None
) -> list[Change]:
    """Record due activations: pending rows whose time has come become live (or are refused by a freeze).

    ``until`` (default now) lets a rollback settle the activations due before its own switch instant:
    replicas switch to those by the clock whatever is written now, so they count as having happened.
    """
    now = clock.now()
    due = max(until or now, now)
    store.lock_environment(s, env)
    q = select(Deployment).where(
        Deployment.environment == env, Deployment.state == "pending", Deployment.activate_at <= due
    )
    changes = []
    came_due = [d for d in s.scalars(q.order_by(Deployment.activate_at, Deployment.id)).all()
                if rows_attest.deployment_refusal(d) is None]  # a row written around the core never comes due
    aborted = run_state.aborted_at(s, (d.run_id for d in came_due))
    for d in came_due:
        window = in_freeze(config, d.activate_at, env)
        if run_state.voided(d.state, d.activate_at, d.run_id, aborted):
            # Its run was aborted before it was due: no replica ever served it (they skip it too), so the
            # cancellation records what happened. Reached only if the abort's own rollback did not cancel it.
            _set_state(d, "cancelled", d.activate_at)
            action = "activation.refused_aborted_run"
        elif window is not None:
            # The one retroactive write left: replicas that switched by the clock served ``d`` from its
            # activate_at until now. A window added after the request is rare; see docs/reliability.md.
            _set_state(d, "cancelled", d.activate_at)
            action = "activation.refused_freeze"
        else:
            for older in rows(s, env, d.protocol_id):  # records what the clock already did: answers are unchanged
                if older.id != d.id and older.state == "live" and older.activate_at <= d.activate_at:
                    _set_state(older, "superseded", d.activate_at)
            _set_state(d, "live", None)
            action = "activation.live"
        s.flush()
        store.bump_generation(s, env)
        audit.append(s, actor=actor, action=action, subject=d.bundle_sha256, details=change_of(d).to_dict())
        changes.append(change_of(d))
    return changes


def _switch_at(s: Session, env: str, protocol_id: str, started: datetime, provisional: datetime) -> datetime:
    """A rollback's instant, read as late as possible: just before its writes, grown by the time its
    transaction has taken so far (effective_time.switch_instant), never earlier than ``provisional``.

    It stays at ``provisional`` when a pending activation falls between the two: the reads settled and
    judged that row against ``provisional``, and moving past it would change what they decided.
    """
    late = effective_time.switch_instant(clock.now(), started=started)
    if late <= provisional or any(provisional < d.activate_at <= late for d in pending(s, env, protocol_id, started)):
        return provisional
    return late


def rollback(
    s: Session,
    protocol_id: str,
    env: str,
    *,
    to: str = "previous",
    actor: str,
    config: PipelineConfig,
    run_id: str | None = None,
) -> Change:
    """Undo the newest deployment of ``protocol_id`` in ``env`` atomically.

    A pending newest deployment whose activation lies beyond the switch instant is cancelled.
    Otherwise the version in force is rolled back and the previous one (or ``to`` = a version
    number that was deployed here before) comes into force at the switch instant,
    ``effective_time.switch_instant(now)``: a moment ahead, so every replica holds the change
    before it and none answers from the undone version after the instant the record states.
    A pending activation due before that instant can no longer be called off in time: it is
    recorded live (its replicas switch to it by the clock) and rolled back at the same instant.
    """
    if env not in config.environment_names:
        raise BadInput(f"unknown environment {env!r}", where="--env")
    store.lock_environment(s, env)
    now = clock.now()
    at = effective_time.switch_instant(now)  # provisional: the reads below use it; _switch_at() settles it
    settle(s, env, config, actor=actor, until=at)
    history = rows(s, env, protocol_id)
    if not history:
        raise BadInput(f"{protocol_id} was never deployed to {env}: nothing to roll back", where="rollback")
    waiting = pending(s, env, protocol_id, at)
    if waiting and to == "previous":
        for d in waiting:
            _cancel(d, now)
            s.flush()
            audit.append(
                s,
                actor=actor,
                action="rollback.cancel_pending",
                subject=d.bundle_sha256,
                details={**change_of(d).to_dict(), "run_id": run_id},
            )
        store.bump_generation(s, env)
        cur = in_force(s, env, protocol_id, now)
        return change_of(cur) if cur else change_of(waiting[-1])
    cur = in_force(s, env, protocol_id, at)  # at `at`: an earlier rollback's switch may still lie ahead
    if cur is None:
        raise BadInput(f"no version of {protocol_id} is live in {env}", where="rollback")
    if to == "previous":
        target_sha = cur.previous_sha256
        if target_sha is None:  # its first deployment here: "previous" is serving nothing, as before it came
            at = _switch_at(s, env, protocol_id, now, at)
            _end(cur, "rolled_back", at, now)
            s.flush()
            store.bump_generation(s, env)
            audit.append(s, actor=actor, action="rollback.withdrawn", subject=cur.bundle_sha256,
                         details={**change_of(cur).to_dict(), "run_id": run_id})
            return change_of(cur)
    else:
        try:
            version = int(to)
        except ValueError:
            raise BadInput(f"--to takes 'previous' or a version number, not {to!r}", where="--to") from None
        earlier = [d for d in history if d.version == version and d.state != "cancelled"]
        if not earlier:
            raise BadInput(f"version {version} of {protocol_id} was never live in {env}", where="--to")
        target_sha = earlier[-1].bundle_sha256
    if target_sha == cur.bundle_sha256:
        raise BadInput(f"{protocol_id} v{cur.version} is already the version in force in {env}", where="--to")
    # The row's version, not a re-parse: its bundle was verified when it was deployed here before, and a
    # rollback must not pay for loading the rule compiler (every replica verifies the bytes it serves).
    target = bundle_row(s, target_sha)
    at = _switch_at(s, env, protocol_id, now, at)
    _end(cur, "rolled_back", at, now)
    row = Deployment(  # "live" already: committed, no later command may cancel it (see switching_until())
        environment=env,
        protocol_id=protocol_id,
        bundle_sha256=target_sha,
        version=target.version,
        state="live",
        activate_at=at,
        previous_sha256=cur.bundle_sha256,
        created_at=now,
        created_by=actor,
        run_id=run_id,
        effective_at=manifest_effective_at(target),
        policy_sha256=config.sha256 or None,
    )
    s.add(row)
    s.flush()
    rows_attest.sign_deployment(row)
    store.bump_generation(s, env)
    audit.append(
        s,
        actor=actor,
        action="rollback.live",
        subject=target_sha,
        details={**change_of(row).to_dict(), "rolled_back": cur.bundle_sha256, "run_id": run_id},
    )
    return change_of(row)


def last_change_was_rollback(s: Session, env: str, protocol_id: str) -> bool:
    """Whether the newest change to ``protocol_id`` in ``env`` undid something (a rollback, withdraw or cancel).

    Read from the rows ``rollback`` leaves: the undone row ``rolled_back`` (``cancelled`` if it was
    pending) and, when a version is restored, a new row starting the instant the undone one ended.
    A deployment target that missed that change finishes it when the rollback is run again
    (hms.targets.sync) instead of undoing a second version. A pending row refused by a freeze
    window also ends ``cancelled``; it counts too, which only means the target is brought in line.
    """
    history = sorted(rows(s, env, protocol_id), key=lambda d: d.id)
    if not history:
        return False
    newest = history[-1]
    if newest.state in ("rolled_back", "cancelled"):
        return True
    return any(
        d.state == "rolled_back" and d.bundle_sha256 == newest.previous_sha256 and d.ended_at == newest.activate_at
        for d in history[:-1]
    )


def rollback_run(s: Session, run_id: str, *, actor: str, config: PipelineConfig) -> list[Change]:
    """Undo every deployment a pipeline run made, newest environment first, if still the newest there."""
    q = select(Deployment).where(Deployment.run_id == run_id).order_by(Deployment.id.desc())
    done: list[Change] = []
    seen: set[tuple[str, str]] = set()
    made = [d for d in s.scalars(q).all() if rows_attest.deployment_refusal(d) is None]
    # A rollback's restoring row carries the run id too (for the audit trail); it starts the instant the row it
    # undid ended. Undoing it again would re-apply the version this run failed with: a retried rollback task, or
    # `rollback.sh --run` twice, must find nothing left to undo.
    undone = {(d.environment, d.bundle_sha256, d.ended_at) for d in made if d.state == "rolled_back"}
    for d in made:
        key = (d.environment, d.protocol_id)
        if (d.environment, d.previous_sha256, d.activate_at) in undone:
            seen.add(key)
            continue
        if key in seen or d.state in ("cancelled", "rolled_back"):
            continue
        # Due activations first: a row whose time came is live (history), one of an aborted run that was not
        # due before the abort is refused; either way ``d.state`` is then what the clock made of it.
        settle(s, d.environment, config, actor=actor)
        if d.state in ("cancelled", "rolled_back"):
            continue
        seen.add(key)
        newest = rows(s, d.environment, d.protocol_id)[-1]
        if newest.id != d.id:
            audit.append(
                s,
                actor=actor,
                action="rollback.skipped",
                subject=d.bundle_sha256,
                details={"reason": "a newer deployment exists", "run_id": run_id, "environment": d.environment},
            )
            continue
        if d.state == "pending":
            # Not in force yet: cancel this row itself. ``rollback`` would look for what is *waiting*, and a
            # pending row of an aborted run waits for nothing (hms.run_state): it would undo the version the
            # run was meant to replace.
            now = clock.now()
            _cancel(d, now)
            s.flush()
            store.bump_generation(s, d.environment)
            audit.append(s, actor=actor, action="rollback.cancel_pending", subject=d.bundle_sha256,
                         details={**change_of(d).to_dict(), "run_id": run_id})
            done.append(change_of(d))
            continue
        if d.previous_sha256 is None:
            now = clock.now()
            at = effective_time.switch_instant(now)  # one row, nothing read in between: no growth to allow
            _end(d, "rolled_back", at, now)
            s.flush()
            store.bump_generation(s, d.environment)
            audit.append(
                s,
                actor=actor,
                action="rollback.withdrawn",
                subject=d.bundle_sha256,
                details={**change_of(d).to_dict(), "run_id": run_id},
            )
            done.append(change_of(d))
            continue
        done.append(rollback(s, d.protocol_id, d.environment, actor=actor, config=config, run_id=run_id))
    return done
