"""Every change a principal can make, one function each: the CLI (embedded mode) and the HMS API call these.

Each takes the authenticated principal (hms.identity) — never a name from the request — and answers with
its typed result (hms.api.models), human lines included. The gates are hms.deployments' and
hms.approvals'; what is here is the order of the steps around them: the pinned policy, the registry
transaction, Kubernetes mode's mirror after the commit, and waiting until a rollback's switch instant has
passed so that whoever asks next sees what the answer said.

This module imports nothing that parses bundles at import time (``hms rule rollback`` loads it).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from hms import clock, deployments, identity
from hms.api import models
from hms.errors import BadInput
from hms.identity import Principal
from hms.pinned_policy import governing
from hms.registry.db import session_scope

if TYPE_CHECKING:
    from hms.bundle import Bundle
    from hms.pipeline_config import PipelineConfig
    from hms.targets.sync import Publisher


def principal_out(p: Principal) -> models.PrincipalOut:
    return models.PrincipalOut(**p.to_dict())


def change_out(ch: deployments.Change) -> models.ChangeOut:
    return models.ChangeOut(**ch.to_dict())


# ---- who ----------------------------------------------------------------------------------------------------


def whoami(by: Principal) -> models.WhoAmIOut:
    config = governing()
    roles = list((config.user_roles or {}).get(by.name, ()))
    return models.WhoAmIOut(
        principal=principal_out(by),
        roles=roles,
        policy_sha256=config.sha256 or None,
        lines=[f"[login] {by.describe()}; roles: {', '.join(roles) or 'none'}"],
    )


# ---- push ---------------------------------------------------------------------------------------------------


def push(b: Bundle, by: Principal, *, known: bool = False, advise: bool = True) -> models.PushOut:
    """Record a verified bundle (idempotent) with its pusher, who may then never review it."""
    from hms.cli.after_push import next_step
    from hms.registry import store

    created = False
    if not known:
        governing()  # the first write to an embedded registry pins its policy (hms.pinned_policy)
        with session_scope(principal=by.to_dict()) as s:
            _, created = store.record_bundle(
                s,
                sha256=b.sha256,
                protocol_id=b.protocol.id,
                version=b.protocol.version,
                content=b.content,
                manifest=b.manifest,
                created_by=by.on_behalf_of if by.is_pipeline and by.on_behalf_of else by.name,
            )
    after = next_step(b.protocol.id, b.protocol.version, b.sha256)
    word = "pushed" if created else "already known"
    lines = [f"[push] ✅ {word} {b.protocol.id} v{b.protocol.version} sha256:{b.sha256} (ID {b.short})"]
    if advise:
        lines += after.lines()
    return models.PushOut(
        id=f"{b.protocol.id}@{b.protocol.version}",
        sha256=b.sha256,
        new=created,
        next=models.NextStepOut(**after.to_dict()),
        lines=lines,
    )


def push_bytes(raw: bytes, source: str, by: Principal) -> models.PushOut:
    from hms import bundle

    return push(bundle.read_bytes(raw, source), by)


# ---- review -------------------------------------------------------------------------------------------------


def review(req: models.ReviewIn, by: Principal) -> models.ReviewOut:
    """One clerk's decision on one exact bundle, as the authenticated principal: one account, one decision."""
    from hms import approvals, bundle_choice, review_role
    from hms.pipeline_config import effective_approval_policy

    user = identity.claimed(req.user, by)
    if by.is_pipeline:
        raise BadInput("the pipeline does not review: approvals come from authenticated people", where="review")
    config = governing()
    with session_scope(principal=by.to_dict()) as s:
        b = bundle_choice.for_review(s, req.ref, config)
        role = req.role
        if role is None:
            # The author's refusal first: it says more than "holds no review role" (roles are checked below).
            approvals.check_review(
                approvals.Review(b.sha256, user, "", req.decision), author=b.protocol.author, user_roles=None
            )
            role = review_role.infer(
                user,
                policy=effective_approval_policy(config, b.protocol),
                missing=deployments.approval_status(s, b, config).missing_roles,
                user_roles=config.user_roles,
            )
        st = deployments.record_review(
            s, b, user=user, role=role, decision=req.decision, comment=req.comment, config=config, signed=req.envelope
        )
    mark, done = ("✅", "approved") if req.decision == "approve" else ("❌", "rejected")
    return models.ReviewOut(
        sha256=b.sha256,
        id=f"{b.protocol.id}@{b.protocol.version}",
        user=user,
        role=role,
        decision=req.decision,
        status=models.ApprovalStatusOut(**st.to_dict()),
        lines=[
            f"[review] {mark} {user} ({role}) {done} {b.protocol.id} v{b.protocol.version} ({b.short})",
            f"[review] {st.summary()}",
        ],
    )


# ---- deploy -------------------------------------------------------------------------------------------------


def publisher(config: PipelineConfig) -> Publisher | None:
    """Kubernetes mode's mirror of the registry (None in local mode), set up before the registry changes."""
    if config.execution.mode != "kubernetes":
        return None  # local mode never imports the kubernetes client
    from hms.targets.sync import Publisher

    return Publisher.for_config(config)


def publish(
    pub: Publisher | None, env: str, protocol_id: str, command: str, by: Principal
) -> tuple[dict[str, Any] | None, list[str]]:
    """After the registry commit: the environment's ConfigMap follows (kubernetes mode); result and line."""
    if pub is None:
        return None, []
    r = pub.publish(env, protocol_id, actor=by.name, command=command)
    what = "restarted" if r["restarted"] else "not restarted"
    line = f"[k8s] {env}: {r['namespace']}/{r['configmap']} {r['action']} (hms-api {what})"
    return {k: v for k, v in r.items() if k != "updated_by"}, [line]


def publish_run(
    pub: Publisher, run_id: str, config: PipelineConfig, why: str, by: Principal
) -> tuple[list[dict[str, Any]], list[str]]:
    """Mirror every (environment, protocol) a run touched into Kubernetes: the results and their lines."""
    from hms.targets.sync import run_targets

    with session_scope(read_only=True) as s:
        pairs = run_targets(s, run_id, config.environment_names)
    results: list[dict[str, Any]] = []
    lines: list[str] = []
    for env, pid in pairs:
        k8s, k8s_lines = publish(pub, env, pid, why, by)
        results += [k8s] if k8s else []
        lines += k8s_lines
    return results, lines


def deploy_line(ch: deployments.Change, config: PipelineConfig) -> str:
    local = ch.activate_at.astimezone(config.tz).isoformat()
    if ch.state == "pending":
        return f"[deploy] {ch.environment} SCHEDULED@{local} {ch.protocol_id} v{ch.version} ({ch.sha256[:12]})"
    late = deployments.late_note(ch.environment, ch.activate_at, ch.effective_at, config)
    return f"[deploy] {ch.environment} ✅ {ch.protocol_id} v{ch.version} live ({ch.sha256[:12]})" + (
        f": {late}" if late else ""
    )


def deploy(req: models.DeployIn, by: Principal) -> models.DeployOut:
    from hms import bundle_choice
    from hms.schedule import parse_requested

    config = governing()
    at = parse_requested(req.schedule, config.tz)
    pub = publisher(config)
    run_id = req.run_id or by.run_id
    with session_scope(principal=by.to_dict()) as s:
        b = bundle_choice.for_deploy(s, req.ref, req.environment, config)
        ch = deployments.deploy(s, b, req.environment, activate_at=at, actor=by.name, config=config, run_id=run_id)
    k8s, k8s_lines = publish(pub, ch.environment, ch.protocol_id, "deploy", by)
    return models.DeployOut(**ch.to_dict(), kubernetes=k8s, lines=[deploy_line(ch, config), *k8s_lines])


# ---- rollback -----------------------------------------------------------------------------------------------


def until_in_force(changes: list[deployments.Change]) -> None:
    """Return only once every change is in force: a rollback's switch instant is a little ahead (every
    replica learns of it first, effective_time.switch_instant), and whoever runs ``rule status`` or asks a
    replica right after the command must see the state the command reported."""
    latest = max((c.takes_effect_at for c in changes), default=None)
    if latest is not None:
        wait = (latest - clock.now()).total_seconds()
        if wait > 0:  # a switch instant is ~0.1-0.3 s ahead; the cap guards against a bug, not a case
            time.sleep(min(wait, 5.0))


def rollback(req: models.RollbackIn, by: Principal) -> models.RollbackOut:
    from hms.registry import store

    config = governing()
    pub = publisher(config)
    env = req.environment or config.environment_names[-1]
    config.environment(env)  # an unknown environment is exit 2 before anything is read or changed
    with session_scope(read_only=True) as s:
        pid = req.protocol
        if not store.find_bundles(s, pid):
            pid = deployments.resolve_bundle_row(s, req.protocol).protocol_id
    if pub is not None and pub.unfinished_rollback(env, pid):
        # A rollback ran and committed but its Kubernetes step failed: this call finishes it, nothing more.
        k8s, k8s_lines = publish(pub, env, pid, "rollback", by)
        with session_scope(read_only=True) as s:
            now = deployments.in_force(s, env, pid)
            ch = deployments.change_of(now) if now is not None else None
        line = f"[rollback] ✅ {env}: finished the earlier rollback of {pid} in Kubernetes; nothing else rolled back"
        return models.RollbackOut(
            **(ch.to_dict() if ch else _withdrawn(env, pid)),
            finished_earlier_rollback=True,
            kubernetes=k8s,
            lines=[line, *k8s_lines],
        )
    from hms import run_notes

    with session_scope(principal=by.to_dict()) as s:
        before = {d.id: d.state for d in deployments.rows(s, env, pid)}
        ch = deployments.rollback(s, pid, env, to=req.to, actor=by.name, config=config)
        # The runs whose deployments this ended get a note in Airflow (hms.run_notes), once this has committed.
        ended = run_notes.ended_rows(before, deployments.rows(s, env, pid))
        serving = deployments.in_force(s, env, pid, ch.takes_effect_at)
        notes = run_notes.rollback_notes(
            ended, in_force={env: serving}, by=by.name, reason=req.reason, at=ch.takes_effect_at, tz=config.timezone,
            order=config.environment_names,
        )
    until_in_force([ch])
    # The instant every replica switches (effective_time.switch_instant), to the millisecond: it is what the
    # record says, and answers given before it came from the undone version by right.
    when = ch.takes_effect_at.astimezone(config.tz).isoformat(timespec="milliseconds")
    if ch.state == "rolled_back":
        line = (
            f"[rollback] ✅ {env}: {ch.protocol_id} v{ch.version} withdrawn from {when}; "
            "no version was in force before it"
        )
    else:
        line = f"[rollback] ✅ {env}: {ch.protocol_id} v{ch.version} in force from {when} ({ch.sha256[:12]})"
    k8s, k8s_lines = publish(pub, env, pid, "rollback", by)
    noted = run_notes.annotate(notes, run_notes.AirflowAccess.from_env())
    return models.RollbackOut(**ch.to_dict(), kubernetes=k8s, lines=[line, *k8s_lines, *noted])


def _withdrawn(env: str, pid: str) -> dict[str, Any]:
    stamp = clock.now().isoformat()
    return {
        "environment": env,
        "protocol_id": pid,
        "version": 0,
        "bundle_sha256": "",
        "state": "withdrawn",
        "activate_at": stamp,
        "previous_sha256": None,
        "deployment_id": None,
        "effective_at": None,
        "late": False,
        "ended_at": None,
        "takes_effect_at": stamp,
    }


def rollback_run(req: models.RunRollbackIn, by: Principal) -> models.RunRollbackOut:
    from sqlalchemy import select

    from hms import run_notes
    from hms.registry.models import Deployment

    config = governing()
    pub = publisher(config)
    with session_scope(principal=by.to_dict()) as s:
        made = select(Deployment).where(Deployment.run_id == req.run)
        before = {d.id: d.state for d in s.scalars(made)}
        changes = deployments.rollback_run(s, req.run, actor=by.name, config=config)
        notes: list[run_notes.RunNote] = []
        # The pipeline undoing its own run (the DAG's rollback task) needs no note: that run's fail_run says it.
        if changes and not by.is_pipeline:
            ended = run_notes.ended_rows(before, s.scalars(made))
            at = max(c.takes_effect_at for c in changes)
            serving = {d.environment: deployments.in_force(s, d.environment, d.protocol_id, at) for d in ended}
            notes = run_notes.rollback_notes(
                ended, in_force=serving, by=by.name, reason=req.reason, at=at, tz=config.timezone,
                order=config.environment_names,
            )
    until_in_force(changes)
    lines = [
        f"[rollback] ✅ {c.environment}: {c.protocol_id} v{c.version} ({c.state}) from "
        f"{c.takes_effect_at.astimezone(config.tz).isoformat(timespec='milliseconds')}"
        for c in changes
    ]
    k8s = None
    if pub is not None:  # every namespace the run touched, also those a failed earlier attempt left behind
        k8s, k8s_lines = publish_run(pub, req.run, config, "rollback", by)
        lines += k8s_lines
    lines += run_notes.annotate(notes, run_notes.AirflowAccess.from_env())
    return models.RunRollbackOut(
        rolled_back=[change_out(c) for c in changes], kubernetes=k8s, lines=lines or ["[rollback] nothing to undo"]
    )


# ---- abort --------------------------------------------------------------------------------------------------


def abort(run_id: str, req: models.AbortIn, by: Principal) -> models.AbortOut:
    """``hms rule abort RUN``: the same core call as Airflow's "mark failed" listener (hms.abort.abort_run)."""
    from hms.abort import abort_run

    identity.claimed(req.user, by)
    config = governing()
    pub = publisher(config)
    with session_scope(principal=by.to_dict()) as s:
        result = abort_run(s, run_id, by=by, reason=req.reason, config=config)
    until_in_force(result.undone)
    word = "was already aborted" if result.already_aborted else "aborted"
    lines = [f"[abort] 🛑 run {run_id} {word} by {by.name}: {result.run.reason}"]
    lines += [f"[rollback] ✅ {c.environment}: {c.protocol_id} v{c.version} ({c.state})" for c in result.undone]
    if not result.environments:
        lines.append("[abort] the run had deployed nothing; any deploy of it is now refused")
    elif not result.undone:
        lines.append("[abort] nothing left to undo")
    k8s = None
    if pub is not None:  # every namespace the run touched follows the registry
        k8s, k8s_lines = publish_run(pub, run_id, config, "abort", by)
        lines += k8s_lines
    d = result.to_dict()
    return models.AbortOut(
        run=models.RunStateOut(**d["run"]),
        undone=[change_out(c) for c in result.undone],
        already_aborted=result.already_aborted,
        environments=result.environments,
        by=principal_out(by),
        kubernetes=k8s,
        lines=lines,
    )


# ---- the pinned policy --------------------------------------------------------------------------------------


def apply_policy(req: models.PolicyApplyIn, by: Principal) -> models.PolicyApplyOut:
    from hms import pinned_policy

    if by.is_pipeline:
        raise BadInput("the pipeline does not apply policy: an admin does, authenticated", where="config apply")
    with session_scope(principal=by.to_dict()) as s:
        done = pinned_policy.apply(s, req.text, req.source, actor=by.name)
    return models.PolicyApplyOut(
        sha256=done.sha256,
        changed=done.changed,
        source=done.source,
        applied_by=done.applied_by,
        previous_sha256=done.previous_sha256,
        lines=[done.line()],
    )
