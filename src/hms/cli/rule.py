"""``hms rule …`` and ``hms promote``: push, review, deploy, roll back (the seed's commands).

These are thin: the decisions (promotion order, approval policy, freeze windows,
what "previous" means) live in hms.deployments and hms.approvals.

``hms rule rollback`` is the emergency path, so this module imports nothing that
parses bundles (hms.bundle → protocol loader, rule compiler, NumPy, jsonschema) at
import time; the commands that need a parsed bundle import it when they run.
tests/unit/test_cli_imports.py holds the rollback path to that.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from hms import approvals, clock, deployments, effective_time
from hms.cli import actor, emit
from hms.errors import BadInput, CheckFailed, HmsError
from hms.pinned_policy import governing
from hms.registry import store
from hms.registry.db import session_scope
from hms.schedule import parse_requested

if TYPE_CHECKING:
    from hms.bundle import Bundle
    from hms.targets.sync import Publisher


SCHEDULE_HELP = (
    "HH:MM, ISO with offset, now, +Ns; default 'effective': the protocol's own effective time in the last "
    "environment (now once it has passed: in force from then, not retroactive), now elsewhere"
)


def register(sub: argparse._SubParsersAction) -> None:
    promote = sub.add_parser("promote", help="deploy a bundle through the environments in order")
    promote.add_argument("bundle", help="bundle file (pkg.tgz)")
    promote.add_argument("--targets", default=None, help="comma-separated environments (default: all, in order)")
    promote.add_argument("--schedule", default=None, help="activation in the last target: " + SCHEDULE_HELP)
    promote.add_argument("--rollback", default=None, help="script run for each touched environment on failure")
    promote.add_argument("--run-id", default=None, help="pipeline run that makes these deployments")
    promote.add_argument("--json", action="store_true")
    promote.set_defaults(handler=cmd_promote)

    p = sub.add_parser("rule", help="push, review, deploy and roll back rules")
    ps = p.add_subparsers(dest="rule_command", required=True)
    push = ps.add_parser("push", help="pack a protocol file (YAML or JSON) and record it; prints its ID, run next")
    push.add_argument("file", help="protocol file (.yml, .yaml, .json), a bundle (.tgz), or a recorded sha256:<hex>")
    push.add_argument("--json", action="store_true")
    push.set_defaults(handler=cmd_push)

    review = ps.add_parser("review", help="approve or reject a bundle")
    review.add_argument(
        "id", help="protocol id (its bundle awaiting review), sha256, unique hash prefix, or id@version"
    )
    review.add_argument(
        "--user", default=None, help="must name who you are authenticated as (hms login; embedded: the OS account)"
    )
    review.add_argument(
        "--role", default=None, help="review role (default: the clerk's one role still missing for this bundle)"
    )
    group = review.add_mutually_exclusive_group(required=True)
    group.add_argument("--approve", dest="decision", action="store_const", const="approve")
    group.add_argument("--reject", dest="decision", action="store_const", const="reject")
    review.add_argument("--comment", default="")
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=cmd_review)

    deploy = ps.add_parser("deploy", help="deploy a bundle to one environment")
    deploy.add_argument(
        "id", help="sha256, prefix, id@version, or a protocol id: its bundle in force in the environment before ENV "
        "(the first environment: its newest version)"
    )
    deploy.add_argument("--env", required=True)
    deploy.add_argument("--schedule", default=None, help=SCHEDULE_HELP)
    deploy.add_argument("--run-id", default=None)
    deploy.add_argument("--json", action="store_true")
    deploy.set_defaults(handler=cmd_deploy)

    rollback = ps.add_parser("rollback", help="restore the previous (or a given) version of a protocol")
    rollback.add_argument("id", nargs="?", help="protocol id (or a bundle ID of that protocol)")
    rollback.add_argument("--to", default="previous", help="'previous' or a version number")
    rollback.add_argument("--env", default=None, help="environment (default: the last one, prod)")
    rollback.add_argument("--run", default=None, help="undo every deployment of this pipeline run instead")
    rollback.add_argument("--json", action="store_true")
    rollback.set_defaults(handler=cmd_rollback)

    abort = ps.add_parser(
        "abort",
        help="stop a pipeline run (ops only): roll back every environment it touched, cancel its pending activations",
    )
    abort.add_argument("run", metavar="RUN", help="the pipeline run id (Airflow's run id, e.g. bundle-<hash prefix>)")
    abort.add_argument("--reason", default="aborted by ops", help="why (recorded in the audit log)")
    abort.add_argument("--user", default=None, help="must name who you are authenticated as (hms.identity)")
    abort.add_argument("--json", action="store_true")
    abort.set_defaults(handler=cmd_abort)

    status = ps.add_parser("status", help="what each environment serves, pending activations, approvals")
    status.add_argument("id", help="protocol id")
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=cmd_status)
    register_pipeline_commands(ps)


def _open_for_push(path: str) -> tuple[Bundle, bool]:
    """The bundle a push or promote names, verified, without writing; (bundle, already recorded)."""
    from hms import bundle, protocol

    p = Path(path)
    if path.startswith("sha256:") and not p.exists():  # already recorded (intake, an earlier push): fetch, verify
        with session_scope(read_only=True) as s:
            return deployments.load_bundle(s, path.removeprefix("sha256:")), True
    if p.suffix in (".tgz", ".gz"):
        return bundle.read(p), False
    raw = bundle.build(protocol.load(p))
    return bundle.read_bytes(raw, str(p)), False


def _record(b: Bundle) -> bool:
    """Record a bundle (idempotent); whether it was new."""
    governing()  # the first write to an embedded registry pins its policy (hms.pinned_policy)
    with session_scope() as s:
        _, created = store.record_bundle(
            s,
            sha256=b.sha256,
            protocol_id=b.protocol.id,
            version=b.protocol.version,
            content=b.content,
            manifest=b.manifest,
            created_by=actor(),
        )
    return created


def _push_file(path: str) -> tuple[Bundle, bool]:
    b, known = _open_for_push(path)
    return b, False if known else _record(b)


def cmd_push(args: argparse.Namespace) -> int:
    from hms.cli.after_push import next_step

    b, created = _push_file(args.file)
    word = "pushed" if created else "already known"
    after = next_step(b.protocol.id, b.protocol.version, b.sha256)
    lines = [f"[push] ✅ {word} {b.protocol.id} v{b.protocol.version} sha256:{b.sha256} (ID {b.short})"]
    if not args.xcom_file:  # as a pipeline step (build, intake) the run is already under way: no advice
        lines += after.lines()
    emit(
        args,
        {"ok": True, "id": f"{b.protocol.id}@{b.protocol.version}", "sha256": b.sha256, "new": created,
         "next": after.to_dict()},
        lines,
    )
    return 0


def cmd_review(args: argparse.Namespace) -> int:
    from hms import bundle_choice, identity, review_role
    from hms.pipeline_config import effective_approval_policy

    config = governing()
    me = identity.current()
    user = identity.claimed(args.user, me)
    if me.is_pipeline:
        raise BadInput("the pipeline does not review: approvals come from authenticated people", where="review")
    with session_scope() as s:
        b = bundle_choice.for_review(s, args.id, config)
        role = args.role
        if role is None:
            # The author's refusal first: it says more than "holds no review role" (roles are checked below).
            approvals.check_review(approvals.Review(b.sha256, user, "", args.decision), author=b.protocol.author,
                                   user_roles=None)
            role = review_role.infer(
                user,
                policy=effective_approval_policy(config, b.protocol),
                missing=deployments.approval_status(s, b, config).missing_roles,
                user_roles=config.user_roles,
            )
        st = deployments.record_review(
            s, b, user=user, role=role, decision=args.decision, comment=args.comment, config=config
        )
    mark, done = ("✅", "approved") if args.decision == "approve" else ("❌", "rejected")
    emit(
        args,
        {"ok": True, "sha256": b.sha256, "id": f"{b.protocol.id}@{b.protocol.version}", "user": user, "role": role,
         "decision": args.decision, "status": st.to_dict()},
        [f"[review] {mark} {user} ({role}) {done} {b.protocol.id} v{b.protocol.version} ({b.short})",
         f"[review] {st.summary()}"],
    )
    return 0


def _tz(config) -> ZoneInfo:
    return ZoneInfo(config.timezone)


def _publisher(config) -> Publisher | None:
    """Kubernetes mode's mirror of the registry (None in local mode), set up before the registry changes."""
    if config.execution.mode != "kubernetes":
        return None  # local mode never imports the kubernetes client
    from hms.targets.sync import Publisher

    return Publisher.for_config(config)


def _publish(pub: Publisher | None, env: str, protocol_id: str, command: str) -> tuple[dict, list[str]]:
    """After the registry commit: the environment's ConfigMap follows (kubernetes mode); JSON part and line."""
    if pub is None:
        return {}, []
    r = pub.publish(env, protocol_id, actor=actor(), command=command)
    what = "restarted" if r["restarted"] else "not restarted"
    line = f"[k8s] {env}: {r['namespace']}/{r['configmap']} {r['action']} (hms-api {what})"
    return {"kubernetes": {k: v for k, v in r.items() if k != "updated_by"}}, [line]


def cmd_deploy(args: argparse.Namespace) -> int:
    from hms import bundle_choice

    config = governing()
    at = parse_requested(args.schedule, _tz(config))
    pub = _publisher(config)
    with session_scope() as s:
        b = bundle_choice.for_deploy(s, args.id, args.env, config)
        ch = deployments.deploy(s, b, args.env, activate_at=at, actor=actor(), config=config, run_id=args.run_id)
    k8s, k8s_lines = _publish(pub, ch.environment, ch.protocol_id, "deploy")
    emit(args, {"ok": True, **ch.to_dict(), **k8s}, [_deploy_line(ch, config), *k8s_lines])
    return 0


def _deploy_line(ch: deployments.Change, config) -> str:
    local = ch.activate_at.astimezone(_tz(config)).isoformat()
    if ch.state == "pending":
        return f"[deploy] {ch.environment} SCHEDULED@{local} {ch.protocol_id} v{ch.version} ({ch.sha256[:12]})"
    late = deployments.late_note(ch.environment, ch.activate_at, ch.effective_at, config)
    return (f"[deploy] {ch.environment} ✅ {ch.protocol_id} v{ch.version} live ({ch.sha256[:12]})"
            + (f": {late}" if late else ""))


def cmd_promote(args: argparse.Namespace) -> int:
    config = governing()
    names = config.environment_names
    targets = [t.strip() for t in args.targets.split(",")] if args.targets else list(names)
    for t in targets:
        if t not in names:
            raise BadInput(f"unknown environment {t!r} (known: {', '.join(names)})", where="--targets")
    if targets != sorted(targets, key=names.index):
        raise BadInput(f"targets must follow the promotion order {' → '.join(names)}", where="--targets")
    if args.rollback and not os.access(args.rollback, os.X_OK):
        raise BadInput("rollback script is missing or not executable", where=args.rollback)
    at = parse_requested(args.schedule, _tz(config))
    pub = _publisher(config)
    b, known = _open_for_push(args.bundle)
    # Every target's gates (approvals, supersession, recorded checks, freeze windows) and the last target's time
    # are checked before anything is written: a promote that would fail anywhere deploys nowhere.
    with session_scope(read_only=True) as s:
        steps = deployments.preflight(s, b, targets, at, config)
    if not known:
        _record(b)
    for kind in steps.first:  # before anything is written: a failure deploys nowhere
        _promote_check(args, kind, b)
    touched: list[str] = []
    changes = []
    mirrored = []
    try:
        for i, env in enumerate(targets):
            last = i == len(targets) - 1
            with session_scope() as s:
                ch = deployments.deploy(
                    s, b, env, activate_at=at if last else None, actor=actor(), config=config, run_id=args.run_id
                )
            touched.append(env)
            changes.append(ch)
            if not args.json:
                print(_deploy_line(ch, config), flush=True)
            k8s, k8s_lines = _publish(pub, env, ch.protocol_id, "promote")  # before the next environment
            mirrored += k8s.values()
            for line in [] if args.json else k8s_lines:
                print(line, flush=True)
            if env == steps.chaos_at:
                _promote_check(args, "chaos", b, env=env)
    except HmsError as e:
        if touched and args.rollback:
            print(f"[deploy] ❌ {e}; rolling back {', '.join(reversed(touched))} with {args.rollback}", flush=True)
            cmd = [str(Path(args.rollback).resolve()), b.protocol.id, *reversed(touched)]  # `rollback.sh`: not PATH
            r = subprocess.run(cmd, check=False)
            if r.returncode != 0:
                raise CheckFailed(f"promotion failed ({e}) AND the rollback script exited {r.returncode}") from e
        raise
    summary = " ".join(
        f"{c.environment} SCHEDULED@{c.activate_at.astimezone(_tz(config)).isoformat()}"
        if c.state == "pending" else f"{c.environment} ✅" for c in changes
    )
    payload = {"ok": True, "sha256": b.sha256, "deployments": [c.to_dict() for c in changes]}
    if pub is not None:
        payload["kubernetes"] = mirrored
    emit(args, payload, [f"[deploy] {summary}"])
    return 0


PROMOTE_CHECKS = {  # the pipeline's stage commands, with the governed settings, recorded
    "test": ["policy", "test", "sha256:{sha}"],
    "scan": ["scan", "sha256:{sha}"],
    "chaos": ["chaos", "run", "--target", "{env}", "--protocol", "{pid}"],
}


def _promote_check(args: argparse.Namespace, kind: str, b: Bundle, *, env: str = "") -> None:
    """A check the bundle lacks, run by the promote as the pipeline's stage would run it (evidence.PromoteSteps).
    Its lines are the promote's; its failure is the promote's failure (and so its rollback, once it wrote)."""
    argv = [a.format(sha=b.sha256, env=env, pid=b.protocol.id) for a in PROMOTE_CHECKS[kind]]
    cmd = [sys.executable, "-m", "hms", *argv, "--record", *(["--run-id", args.run_id] if args.run_id else [])]
    if args.json:
        cmd.append("--json")
    from hms import identity

    me = identity.current()  # the pipeline's promote records as the pipeline; a person's as that person
    env = {**os.environ, **(identity.pipeline_env(me.run_id or args.run_id) if me.is_pipeline else {})}
    r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE if args.json else None, text=True, env=env)
    if r.returncode != 0:
        where = f" in {env}" if env else ""
        raise CheckFailed(f"the {kind}{where} failed (hms {' '.join(argv[:2])} exited {r.returncode})",
                          where=f"promote {b.protocol.id} v{b.protocol.version}")


def cmd_rollback(args: argparse.Namespace) -> int:
    config = governing()
    pub = _publisher(config)
    if args.run:
        return _rollback_run(args, config, pub)
    if not args.id:
        raise BadInput("give a protocol id, or --run RUN_ID", where="rollback")
    env = args.env or config.environment_names[-1]
    config.environment(env)  # an unknown environment is exit 2 before anything is read or changed
    with session_scope(read_only=True) as s:
        pid = args.id
        if not store.find_bundles(s, pid):
            pid = deployments.resolve_bundle_row(s, args.id).protocol_id
    if pub is not None and pub.unfinished_rollback(env, pid):
        # A rollback ran and committed but its Kubernetes step failed: this run finishes it, nothing more.
        k8s, k8s_lines = _publish(pub, env, pid, "rollback")
        line = f"[rollback] ✅ {env}: finished the earlier rollback of {pid} in Kubernetes; nothing else rolled back"
        emit(args, {"ok": True, "finished_earlier_rollback": True, **k8s}, [line, *k8s_lines])
        return 0
    with session_scope() as s:
        ch = deployments.rollback(s, pid, env, to=args.to, actor=actor(), config=config)
    _until_in_force([ch])
    # The instant every replica switches (effective_time.switch_instant), to the millisecond: it is what the
    # record says, and answers given before it came from the undone version by right.
    when = ch.takes_effect_at.astimezone(config.tz).isoformat(timespec="milliseconds")
    if ch.state == "rolled_back":
        line = (f"[rollback] ✅ {env}: {ch.protocol_id} v{ch.version} withdrawn from {when}; "
                "no version was in force before it")
    else:
        line = f"[rollback] ✅ {env}: {ch.protocol_id} v{ch.version} in force from {when} ({ch.sha256[:12]})"
    k8s, k8s_lines = _publish(pub, env, pid, "rollback")
    emit(args, {"ok": True, **ch.to_dict(), **k8s}, [line, *k8s_lines])
    return 0


def _until_in_force(changes: list) -> None:
    """Return only once every change is in force: a rollback's switch instant is a little ahead (every
    replica learns of it first, effective_time.switch_instant), and whoever runs ``rule status`` or asks a
    replica right after the command must see the state the command reported."""
    latest = max((c.takes_effect_at for c in changes), default=None)
    if latest is not None:
        wait = (latest - clock.now()).total_seconds()
        if wait > 0:  # a switch instant is ~0.1-0.3 s ahead; the cap guards against a bug, not a case
            time.sleep(min(wait, 5.0))


def _rollback_run(args: argparse.Namespace, config, pub: Publisher | None) -> int:
    with session_scope() as s:
        changes = deployments.rollback_run(s, args.run, actor=actor(), config=config)
    _until_in_force(changes)
    lines = [f"[rollback] ✅ {c.environment}: {c.protocol_id} v{c.version} ({c.state}) from "
             f"{c.takes_effect_at.astimezone(config.tz).isoformat(timespec='milliseconds')}" for c in changes]
    payload: dict = {"ok": True, "rolled_back": [c.to_dict() for c in changes]}
    if pub is not None:  # every namespace the run touched, also those a failed earlier attempt left behind
        payload["kubernetes"], k8s_lines = _publish_run(pub, args.run, config, "rollback")
        lines += k8s_lines
    emit(args, payload, lines or ["[rollback] nothing to undo"])
    return 0


def _publish_run(pub: Publisher, run_id: str, config, why: str) -> tuple[list, list[str]]:
    """Mirror every (environment, protocol) a run touched into Kubernetes: the results and their lines."""
    from hms.targets.sync import run_targets

    with session_scope(read_only=True) as s:
        pairs = run_targets(s, run_id, config.environment_names)
    results: list = []
    lines: list[str] = []
    for env, pid in pairs:
        k8s, k8s_lines = _publish(pub, env, pid, why)
        results += k8s.values()
        lines += k8s_lines
    return results, lines


def cmd_abort(args: argparse.Namespace) -> int:
    """``hms rule abort RUN``: the same core call as Airflow's "mark failed" listener (hms.abort.abort_run)."""
    from hms import identity
    from hms.abort import abort_run

    config = governing()
    pub = _publisher(config)
    by = identity.current()
    identity.claimed(args.user, by)
    with session_scope() as s:
        result = abort_run(s, args.run, by=by, reason=args.reason, config=config)
    _until_in_force(result.undone)
    word = "was already aborted" if result.already_aborted else "aborted"
    lines = [f"[abort] 🛑 run {args.run} {word} by {by.name}: {result.run.reason}"]
    lines += [f"[rollback] ✅ {c.environment}: {c.protocol_id} v{c.version} ({c.state})" for c in result.undone]
    if not result.environments:
        lines.append("[abort] the run had deployed nothing; any deploy of it is now refused")
    elif not result.undone:
        lines.append("[abort] nothing left to undo")
    payload: dict = {"ok": True, **result.to_dict()}
    if pub is not None:  # every namespace the run touched follows the registry
        payload["kubernetes"], k8s_lines = _publish_run(pub, args.run, config, "abort")
        lines += k8s_lines
    emit(args, payload, lines)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    config = governing()
    out = []
    lines = []
    with session_scope() as s:
        for env in config.environment_names:
            deployments.settle(s, env, config, actor=actor())
            cur = deployments.in_force(s, env, args.id)
            pend = deployments.pending(s, env, args.id)
            out.append({
                "environment": env,
                "live": {"version": cur.version, "sha256": cur.bundle_sha256} if cur else None,
                "pending": [{"version": p.version, "sha256": p.bundle_sha256, "activate_at": p.activate_at.isoformat()}
                            for p in pend],
            })
            live = f"v{cur.version} ({cur.bundle_sha256[:12]})" if cur else "—"
            sched = ", ".join(f"v{p.version} at {p.activate_at.astimezone(_tz(config)).isoformat()}" for p in pend)
            lines.append(f"{env:<10} live {live}" + (f"   pending {sched}" if sched else ""))
    emit(args, {"ok": True, "protocol": args.id, "environments": out}, lines)
    return 0


def register_pipeline_commands(ps: argparse._SubParsersAction) -> None:
    smoke = ps.add_parser("smoke", help="check an environment answers the bundle's test cases with this bundle")
    smoke.add_argument("id")
    smoke.add_argument("--env", required=True)
    smoke.add_argument("--expect-live", action="store_true", help="also record due activations and require this one")
    smoke.add_argument("--json", action="store_true")
    smoke.set_defaults(handler=cmd_smoke)
    check = ps.add_parser(
        "check-schedule",
        help="when a bundle would come into force in ENV with this --schedule (refused: exit 2); changes nothing",
    )
    check.add_argument("id")
    check.add_argument("--env", required=True)
    check.add_argument("--schedule", default=None, help=SCHEDULE_HELP)
    check.add_argument("--json", action="store_true")
    check.set_defaults(handler=cmd_check_schedule)
    publish = ps.add_parser("publish", help="record that a run took a bundle all the way (audit)")
    publish.add_argument("id")
    publish.add_argument("--run-id", default=None)
    publish.add_argument("--json", action="store_true")
    publish.set_defaults(handler=cmd_publish)


def cmd_check_schedule(args: argparse.Namespace) -> int:
    """The pipeline's first check of a trigger-form ``effective_at``: refused before any environment is touched."""
    config = governing()
    config.environment(args.env)
    tz = _tz(config)
    at = parse_requested(args.schedule, tz)
    with session_scope(read_only=True) as s:
        b = deployments.resolve_bundle(s, args.id)
    binding = deployments.binds_effective_time(config, args.env)
    # Named as the trigger form names it: this is how the pipeline checks an override before it starts.
    act = effective_time.plan(b.protocol.effective_at, at, clock.now(), binding=binding, where="effective_at")
    passed = binding and act.late
    words = (f"effective date {effective_time.local(b.protocol.effective_at, tz)} passed: in force from when it "
             "goes live, not retroactive") if passed else None
    line = (f"[schedule] {args.env}: {b.protocol.id} v{b.protocol.version} comes into force no earlier than "
            f"{effective_time.local(act.at, tz)}")
    emit(args, {"ok": True, "environment": args.env, "activate_at": act.at.isoformat(),
                "effective_at": b.protocol.effective_at.isoformat(), "late": passed, "note": words},
         [line + (f" ({words})" if words else "")])
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from hms import smoke

    config = governing()
    with session_scope() as s:
        b = deployments.resolve_bundle(s, args.id)
        if args.expect_live:
            deployments.settle(s, args.env, config, actor=actor())
    result = smoke.check_environment(b, args.env, config)
    lines = [f"  {line}" for line in result.details] + [result.line()]
    emit(args, result.to_dict(), lines)
    if not result.ok:
        raise CheckFailed(result.summary, where=f"smoke {args.env}")
    return 0


def cmd_publish(args: argparse.Namespace) -> int:
    from hms.registry import audit

    config = governing()
    last = config.environment_names[-1]
    with session_scope() as s:
        b = deployments.resolve_bundle(s, args.id)
        cur = deployments.in_force(s, last, b.protocol.id)
        if cur is None or cur.bundle_sha256 != b.sha256:
            raise CheckFailed(f"{b.protocol.id} v{b.protocol.version} is not the version in force in {last}")
        if args.run_id:  # the run is over: from now on it can be rolled back, not aborted
            from hms import run_state

            run_state.mark_published(s, args.run_id, actor=actor())
        audit.append(s, actor=actor(), action="pipeline.published", subject=b.sha256,
                     details={"protocol_id": b.protocol.id, "version": b.protocol.version, "run_id": args.run_id})
    emit(args, {"ok": True, "sha256": b.sha256, "version": b.protocol.version},
         [f"[deploy] {last} ✅ live version {b.protocol.version} ({b.protocol.id} sha256:{b.short})"])
    return 0
