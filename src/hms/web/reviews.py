"""What the clerk page and the review REST API ask and change — no HTTP, no Airflow, no HTML here.

Every decision is the core's: reviews are recorded with ``deployments.record_review`` and counted
with ``approvals.evaluate`` (through ``deployments.approval_status``), the same calls the CLI and
the Airflow review sensor make; a moved effective time is a new ``deployments.deploy`` of the same
bundle (which cancels the older pending activation and checks promotion order, approvals and freeze
windows) with the time parsed by ``schedule.parse_schedule``. This module only adds what a web
caller needs on top: which role a clerk acts in, why a request is refused (as an HTTP status and the
field it concerns), and read models for the pages.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import approvals, clock, deployments
from hms import protocol_diff as semantic_diff
from hms.bundle import Bundle
from hms.cost_baseline import CostComparison, compare
from hms.errors import BadInput, CheckFailed
from hms.pipeline_config import PipelineConfig, effective_approval_policy, in_freeze
from hms.registry import audit, store
from hms.registry.models import Approval, Deployment
from hms.review_role import select_order
from hms.schedule import parse_schedule, parse_wall_time
from hms.simulate import SimulationResult
from hms.web.bundle_life import LifeEvent, life
from hms.web.errors import WebError, from_core

SCHEDULER_ROLE = "scheduler"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
MAX_COMMENT = 2000


@dataclass(frozen=True)
class Caller:
    """An authenticated user and the roles the pipeline config's ``users:`` gives them."""

    user: str
    roles: tuple[str, ...]

    @classmethod
    def of(cls, user: str, config: PipelineConfig) -> Caller:
        return cls(user, tuple((config.user_roles or {}).get(user, ())))

    def review_roles(self, policy: approvals.ApprovalPolicy) -> list[str]:
        return [r for r in self.roles if r in policy.roles]


# ---- looking a bundle up ----------------------------------------------------------


def bundle_for(s: Session, sha256: str) -> Bundle:
    """The verified bundle for a full hash: 422 for a malformed one, 404 for an unknown one."""
    sha = sha256.removeprefix("sha256:").lower()
    if not SHA256.match(sha):
        raise WebError(422, f"not a sha256 (64 hex digits): {sha256[:80]!r}", field="sha256")
    if store.get_bundle(s, sha) is None:
        raise WebError(404, f"no bundle sha256:{sha} in the registry", field="sha256")
    return deployments.load_bundle(s, sha)


def newer_version(s: Session, b: Bundle) -> int | None:
    """The newest recorded version of this protocol when it is newer than ``b`` (``b`` is superseded)."""
    return deployments.superseded_by(s, b.protocol.id, b.protocol.version)


# ---- reviews ----------------------------------------------------------------------


def choose_role(s: Session, b: Bundle, caller: Caller, role: str | None, config: PipelineConfig) -> str:
    """The role ``caller`` reviews ``b`` in: the one asked for, else their only review role, else one still missing."""
    if config.user_roles is None:
        raise WebError(403, "the pipeline config has no users: section; nobody may review through the web",
                       field="user")
    policy = effective_approval_policy(config, b.protocol)
    mine = caller.review_roles(policy)
    if role is not None:
        if role not in policy.roles:
            raise WebError(422, f"{role!r} is not a review role of this bundle (roles: {', '.join(policy.roles)})",
                           field="role")
        return role  # whether the caller holds it is the core's check (403 below)
    if not mine:
        held = ", ".join(caller.roles) or "none"
        raise WebError(403, f"{caller.user} holds no review role ({', '.join(policy.roles)}); holds: {held}",
                       field="user")
    if len(mine) == 1:
        return mine[0]
    missing = deployments.approval_status(s, b, config).missing_roles
    return next((r for r in mine if r in missing), mine[0])


def review(
    s: Session,
    sha256: str,
    caller: Caller,
    *,
    decision: str,
    comment: str,
    role: str | None,
    config: PipelineConfig,
) -> dict[str, Any]:
    """Record one clerk's approve/reject of one exact bundle hash; returns the bundle's approval status.

    403: no review role, a role not held, the protocol's author. 404: unknown hash. 409: a newer version of
    the protocol exists, or this clerk already decided (decisions are final). 422: a bad decision/comment.
    """
    if decision not in approvals.DECISIONS:
        raise WebError(422, f"decision must be one of {', '.join(approvals.DECISIONS)}", field="decision")
    if len(comment) > MAX_COMMENT:
        raise WebError(422, f"comment is longer than {MAX_COMMENT} characters", field="comment")
    if decision == "reject" and not comment.strip():
        raise WebError(422, "a rejection needs a comment saying why (the pipeline fails with it)", field="comment")
    b = bundle_for(s, sha256)
    newer = newer_version(s, b)
    if newer is not None:
        raise WebError(409, f"{b.protocol.id} v{b.protocol.version} is superseded by v{newer}; review that one",
                       field="sha256")
    chosen = choose_role(s, b, caller, role, config)
    candidate = approvals.Review(b.sha256, caller.user, chosen, decision, comment)
    reason = approvals.why_not_allowed(candidate, author=b.protocol.author, user_roles=config.user_roles,
                                       pusher=deployments.pusher(s, b.sha256))
    if reason:
        raise WebError(403, reason, field="role" if role is not None and "role" in reason else "user")
    earlier = s.scalar(select(Approval).where(Approval.bundle_sha256 == b.sha256, Approval.user == caller.user))
    if earlier is not None:
        raise WebError(409, f"{caller.user} already recorded '{earlier.decision}' for this bundle; decisions are "
                       "final", field="user")
    try:
        status = deployments.record_review(
            s, b, user=caller.user, role=chosen, decision=decision, comment=comment, config=config
        )
    except BadInput as e:  # lost a race with the same clerk's other click: the unique constraint's message
        raise from_core(e, field="user", status_bad_input=409) from None
    except CheckFailed as e:  # a newer version was pushed meanwhile: the core's refusal, 409 as above
        raise from_core(e, field="sha256") from None
    return {"sha256": b.sha256, "protocol_id": b.protocol.id, "version": b.protocol.version, "user": caller.user,
            "role": chosen, "decision": decision, "status": status.to_dict()}


# ---- effective times --------------------------------------------------------------


def move_activation(
    s: Session,
    sha256: str,
    caller: Caller,
    *,
    effective_at: str,
    environment: str | None,
    reason: str,
    config: PipelineConfig,
    zone: str | None = None,
) -> dict[str, Any]:
    """Move the pending activation of a bundle to a new time (schedulers only); audited.

    With ``zone``, ``effective_at`` is a date-time picker's wall time in that zone (hms.schedule.parse_wall_time).
    Otherwise the new time is read like ``--schedule`` (HH:MM in the pipeline's zone, ISO with offset, ``now``,
    +Ns). In the past, or before the protocol's own effective time, it is refused by ``deployments.deploy``
    (hms.effective_time) as a 422 naming ``effective_at``. The move is ``deployments.deploy`` again with the
    pending row's run id, so the waiting flip task follows it, and the freeze windows and the approval gate are
    checked as for any deploy.
    """
    if SCHEDULER_ROLE not in caller.roles:
        raise WebError(403, f"moving an effective time needs the role {SCHEDULER_ROLE!r}; {caller.user} holds: "
                       f"{', '.join(caller.roles) or 'none'}", field="user")
    reason = reason.strip()
    if not reason:  # a legal effective time does not move without a stated reason: the history shows it
        raise WebError(422, "a move needs a reason (why the effective time changes)", field="reason")
    env = environment or config.environment_names[-1]
    if env not in config.environment_names:
        raise WebError(422, f"unknown environment {env!r} (known: {', '.join(config.environment_names)})",
                       field="environment")
    now = clock.now()
    try:
        at = parse_wall_time(effective_at, zone) if zone else parse_schedule(effective_at, config.tz, now=now)
    except BadInput as e:
        raise WebError(422, e.message, field=e.where if e.where == "zone" else "effective_at") from None
    b = bundle_for(s, sha256)
    waiting = [d for d in deployments.pending(s, env, b.protocol.id, now) if d.bundle_sha256 == b.sha256]
    if not waiting:
        raise WebError(409, f"{b.protocol.id} v{b.protocol.version} has no pending activation in {env}",
                       field="sha256")
    before = waiting[-1]
    window = in_freeze(config, at, env)  # deploy refuses it too; asked first so the answer names the field
    if window is not None:
        raise WebError(422, f"{at.isoformat()} falls in freeze window {window}", field="effective_at")
    try:
        change = deployments.deploy(s, b, env, activate_at=at, actor=caller.user, config=config,
                                    run_id=before.run_id)
    except CheckFailed as e:  # promotion order or approvals no longer hold (e.g. preprod was rolled back)
        raise WebError(409, str(e), field="sha256") from None
    except BadInput as e:
        raise from_core(e, field="effective_at") from None
    audit.append(s, actor=caller.user, action="activation.moved", subject=b.sha256,
                 details={"environment": env, "from": before.activate_at.isoformat(),
                          "to": change.activate_at.isoformat(), "run_id": before.run_id, "reason": reason})
    return {"moved_from": before.activate_at.isoformat(), **change.to_dict()}


# ---- read models for the pages ----------------------------------------------------


@dataclass
class CheckView:
    kind: str
    ok: bool
    at: datetime
    summary: dict[str, Any]


@dataclass
class BundleView:
    """One bundle as a clerk sees it: status, reviews so far, checks, and the diff against prod."""

    bundle: Bundle
    status: approvals.ApprovalStatus
    reviews: list[approvals.Review]
    checks: dict[str, CheckView]
    live_version: int | None
    diff: list[str]
    roles_for_caller: list[str] = field(default_factory=list)
    environments: list[dict[str, Any]] = field(default_factory=list)
    # The typed changes (hms.protocol_diff) against prod and against the previous version; ``diff`` stays the text
    changes_vs_prod: list[semantic_diff.Change] = field(default_factory=list)
    previous_version: int | None = None
    changes_vs_previous: list[semantic_diff.Change] = field(default_factory=list)
    cost: CostComparison | None = None  # this bundle's simulated cost against prod's (None: no simulation recorded)
    life: list[LifeEvent] = field(default_factory=list)  # everything that happened to it (hms.web.bundle_life)
    waiting_since: datetime | None = None  # when its review began (its checks passed); None: not reviewable yet
    review_deadline: datetime | None = None  # waiting_since + the review timeout: the run gives up then

    @property
    def run_stopped(self) -> LifeEvent | None:
        """The abort of its newest run, when that run ended before this bundle was decided: a card must not
        read "waiting for approval" for a run nobody is waiting on any more."""
        runs = [e for e in self.life if e.run_id]
        if not runs or self.status.satisfied or self.status.rejected:
            return None
        newest = runs[-1].run_id
        return next((e for e in reversed(self.life) if e.kind == "run" and e.run_id == newest), None)

    @property
    def state(self) -> str:
        return "rejected" if self.status.rejected else "approved" if self.status.satisfied else "waiting"

    def to_dict(self) -> dict[str, Any]:
        b = self.bundle
        return {
            "sha256": b.sha256,
            "protocol_id": b.protocol.id,
            "version": b.protocol.version,
            "title": b.protocol.title,
            "author": b.protocol.author,
            "effective_at": b.protocol.data["metadata"]["effective_at"],
            "effective_passed": b.protocol.effective_at <= clock.now(),
            "state": self.state,
            "approval": self.status.to_dict(),
            "reviews": [{"user": r.user, "role": r.role, "decision": r.decision, "comment": r.comment}
                        for r in self.reviews],
            "checks": {k: {"ok": c.ok, "at": c.at.isoformat()} for k, c in self.checks.items()},
            "live_in_prod": self.live_version,
            "environments": self.environments,
            "changes_vs_prod": [c.to_dict() for c in self.changes_vs_prod],
            "previous_version": self.previous_version,
            "changes_vs_previous": [c.to_dict() for c in self.changes_vs_previous],
            "cost": self.cost.to_dict() if self.cost else None,
            "distribution": _distribution(self.checks),
            "life": [e.to_dict() for e in self.life],
            "waiting_since": self.waiting_since.isoformat() if self.waiting_since else None,
            "review_deadline": self.review_deadline.isoformat() if self.review_deadline else None,
            "run_stopped": self.run_stopped.to_dict() if self.run_stopped else None,
        }


def protocol_diff(new: Bundle, live: Bundle | None) -> list[str]:
    """A unified diff of the protocol documents (the version in force in prod → this one)."""
    def lines(b: Bundle | None) -> list[str]:
        if b is None:
            return []
        return yaml.safe_dump(b.protocol.data, sort_keys=False, allow_unicode=True, width=100).splitlines()

    old_name = f"prod v{live.protocol.version}" if live else "prod (nothing in force)"
    return list(difflib.unified_diff(lines(live), lines(new), old_name, f"v{new.protocol.version}", lineterm=""))


def _view(s: Session, b: Bundle, caller: Caller, config: PipelineConfig) -> BundleView:
    last = config.environment_names[-1]
    cur = deployments.in_force(s, last, b.protocol.id)
    live = deployments.load_bundle(s, cur.bundle_sha256) if cur else None
    checks = {k: CheckView(k, c.ok, c.at, json.loads(c.summary)) for k, c in store.latest_checks(s, b.sha256).items()}
    policy = effective_approval_policy(config, b.protocol)
    status = deployments.approval_status(s, b, config)
    prev_row = next((r for r in store.find_bundles(s, b.protocol.id) if r.version < b.protocol.version), None)
    prev = deployments.load_bundle(s, prev_row.sha256) if prev_row else None
    return BundleView(
        bundle=b,
        status=status,
        reviews=deployments.reviews_for(s, b.sha256, config),
        checks=checks,
        live_version=live.protocol.version if live else None,
        diff=protocol_diff(b, live) if live is None or live.sha256 != b.sha256 else [],
        roles_for_caller=select_order(caller.review_roles(policy), status.missing_roles),
        environments=bundle_environments(s, b, config),
        changes_vs_prod=semantic_diff.diff(live.protocol if live else None, b.protocol),
        previous_version=prev.protocol.version if prev else None,
        changes_vs_previous=semantic_diff.diff(prev.protocol if prev else None, b.protocol),
        cost=_cost(s, checks, live, b.sha256),
        life=life(s, b.sha256, config.tz, last_environment=last),
        waiting_since=(since := _review_began(checks, config)),
        review_deadline=since + timedelta(hours=config.approvals.timeout_hours) if since else None,
    )


def _review_began(checks: dict[str, CheckView], config: PipelineConfig) -> datetime | None:
    """The review waits on the checks before it (tests, then the compliance scan): it began when the last of
    them passed; a failed or missing one means no review is under way."""
    needed = [checks.get(k) for k in ("test", "scan")]
    if any(c is None or not c.ok for c in needed):
        return None
    return max(c.at for c in needed if c is not None)


def _simulation(test_summary: dict[str, Any] | None) -> SimulationResult | None:
    """The simulation a ``test`` check's summary recorded, if any."""
    sim = test_summary.get("simulation") if test_summary else None
    return SimulationResult.from_dict(sim) if sim and "protocol" in sim else None


def _distribution(checks: dict[str, CheckView]) -> dict[str, Any] | None:
    """Who gains and who loses against the baseline the recorded simulation ran (prod's version by default)."""
    sim = _simulation(checks["test"].summary if "test" in checks else None)
    b = sim.baseline if sim else None
    if b is None:
        return None
    keys = ("newly_eligible", "losing_eligibility", "winners", "losers", "gains_cents", "losses_cents",
            "cost_delta_cents")
    return {"baseline_sha256": b["protocol"].get("sha256"), "baseline_version": b["protocol"]["version"],
            **{k: b[k] for k in keys}, "by_income_decile": b.get("by_income_decile")}


def _cost(s: Session, checks: dict[str, CheckView], live: Bundle | None, sha256: str) -> CostComparison | None:
    """This bundle's cost (from the checks its card already read) against prod's (from prod's own test check)."""
    this = _simulation(checks["test"].summary if "test" in checks else None)
    if this is None:
        return None
    prod = None
    if live is not None and live.sha256 != sha256:
        prod_test = store.latest_checks(s, live.sha256).get("test")
        prod = _simulation(json.loads(prod_test.summary) if prod_test else None)
    return compare(this, prod, prod_sha256=live.sha256 if live else None,
                   prod_version=live.protocol.version if live else None)


def _late_note(d: Deployment, config: PipelineConfig) -> str | None:
    return deployments.late_note(d.environment, d.activate_at, d.effective_at, config)


def bundle_environments(s: Session, b: Bundle, config: PipelineConfig) -> list[dict[str, Any]]:
    """Where this exact bundle is, per environment: live, pending (with its time), how it left (rolled back,
    cancelled, superseded — with when), or never there. A card that stopped at "—" for a bundle that was live
    and then rolled back told the clerk the opposite of what happened."""
    now = clock.now()
    out = []
    for env in config.environment_names:
        cur = deployments.in_force(s, env, b.protocol.id, now)
        waiting = [d for d in deployments.pending(s, env, b.protocol.id, now) if d.bundle_sha256 == b.sha256]
        if cur is not None and cur.bundle_sha256 == b.sha256:
            out.append({"environment": env, "state": "live", "since": cur.activate_at.isoformat(),
                        "note": _late_note(cur, config)})
        elif waiting:
            out.append({"environment": env, "state": "pending", "activate_at": waiting[-1].activate_at.isoformat(),
                        "note": _late_note(waiting[-1], config)})
        elif (ended := _ended_here(s, env, b)) is not None:  # it was there: say how it left, and when
            out.append({"environment": env, "state": ended.state, "ended_at": ended.ended_at.isoformat()
                        if ended.ended_at else None, "run_id": ended.run_id})
        else:
            out.append({"environment": env, "state": "absent"})
    return out


def _ended_here(s: Session, env: str, b: Bundle) -> Deployment | None:
    """This bundle's last deployment in ``env`` that has ended (rolled back, cancelled, superseded), if any."""
    mine = [d for d in deployments.rows(s, env, b.protocol.id) if d.bundle_sha256 == b.sha256]
    ended = [d for d in mine if d.state in ("rolled_back", "cancelled", "superseded")]
    return max(ended, key=lambda d: (d.ended_at or d.activate_at, d.id)) if ended else None


def review_board(s: Session, caller: Caller, config: PipelineConfig) -> tuple[list[BundleView], list[BundleView]]:
    """(waiting for review, already decided) — the newest version of each protocol, one list each."""
    waiting, decided = [], []
    for pid in store.protocol_ids(s):
        newest = store.find_bundles(s, pid)[0]
        view = _view(s, deployments.load_bundle(s, newest.sha256), caller, config)
        (waiting if view.state == "waiting" else decided).append(view)
    return waiting, decided


def ops_overview(s: Session, config: PipelineConfig, *, history: int = 8) -> list[dict[str, Any]]:
    """Per protocol: what each environment serves now, pending activations, the latest deployment rows."""
    now = clock.now()
    out = []
    for pid in store.protocol_ids(s):
        envs = []
        for env in config.environment_names:
            cur = deployments.in_force(s, env, pid, now)
            envs.append({
                "environment": env,
                "live": {"version": cur.version, "sha256": cur.bundle_sha256, "since": cur.activate_at.isoformat(),
                         "note": _late_note(cur, config)}
                if cur else None,
                "pending": [{"version": d.version, "sha256": d.bundle_sha256, "activate_at": d.activate_at.isoformat(),
                             "run_id": d.run_id, "note": _late_note(d, config)}
                            for d in deployments.pending(s, env, pid, now)],
            })
        rows = s.scalars(select(Deployment).where(Deployment.protocol_id == pid)
                         .order_by(Deployment.id.desc()).limit(history)).all()
        moves = _moves(s, {d.bundle_sha256 for d in rows})
        out.append({
            "protocol_id": pid,
            "environments": envs,
            "history": [{"environment": d.environment, "version": d.version, "sha256": d.bundle_sha256,
                         "state": d.state, "activate_at": d.activate_at.isoformat(),
                         "ended_at": d.ended_at.isoformat() if d.ended_at else None,
                         "created_at": d.created_at.isoformat(), "created_by": d.created_by, "run_id": d.run_id,
                         "note": _late_note(d, config),
                         "move": _move_out(_move_of(d, moves), config.tz)}
                        for d in rows],
        })
    return out


@dataclass(frozen=True)
class MoveEntry:
    """One scheduler's move of a pending activation, as the audit recorded it: the history shows it as
    one line, from → to with who and why, instead of a bare "cancelled" row beside a new "pending" one."""

    environment: str
    sha256: str
    run_id: str | None
    moved_from: datetime
    moved_to: datetime
    by: str
    at: datetime
    reason: str | None

    def sentence(self, tz: ZoneInfo) -> str:
        def local(t: datetime) -> str:
            return t.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")
        why = f": {self.reason}" if self.reason else " (no reason recorded)"
        return f"moved from {local(self.moved_from)} to {local(self.moved_to)} by {self.by}{why}"


def _moves(s: Session, shas: set[str]) -> list[MoveEntry]:
    out = []
    for sha in shas:
        for e in audit.entries(s, subject=sha, limit=200):
            if e.action != "activation.moved":
                continue
            d = json.loads(e.details)
            out.append(MoveEntry(environment=d["environment"], sha256=sha, run_id=d.get("run_id"),
                                 moved_from=datetime.fromisoformat(d["from"]), moved_to=datetime.fromisoformat(d["to"]),
                                 by=e.actor, at=e.at, reason=d.get("reason")))
    return out


def _move_of(d: Deployment, moves: list[MoveEntry]) -> MoveEntry | None:
    """The move that ended this row (cancelled, moved away) or made it (its new time)."""
    for m in moves:
        if m.environment != d.environment or m.sha256 != d.bundle_sha256 or m.run_id != d.run_id:
            continue
        if d.state == "cancelled" and _same(d.activate_at, m.moved_from):
            return m
        if d.state != "cancelled" and _same(d.activate_at, m.moved_to):
            return m
    return None


def _same(a: datetime, b: datetime) -> bool:
    return abs((a - b).total_seconds()) < 1e-3


def _move_out(m: MoveEntry | None, tz: ZoneInfo) -> dict[str, Any] | None:
    if m is None:
        return None
    return {"moved_from": m.moved_from.isoformat(), "moved_to": m.moved_to.isoformat(), "by": m.by,
            "at": m.at.isoformat(), "reason": m.reason, "sentence": m.sentence(tz)}

