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
import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from hms import client
from hms.cli import act, actor, emit, emit_model
from hms.errors import BadInput, CheckFailed, HmsError

if TYPE_CHECKING:
    from hms.bundle import Bundle


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
    push.add_argument("--of", default=None, metavar="PROTOCOL_ID", help="refuse a bundle of any other protocol")
    push.add_argument(
        "--field",
        default=None,
        help="FILE was typed into this field (the pipeline's build step: params.bundle, conf.sha256): it must "
        "name a pushed bundle (sha256, unique prefix, id@version), never a path; errors name the field",
    )
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
    review.add_argument(
        "--sign-with",
        default=None,
        metavar="KEY",
        help="sign the decision with your own Ed25519 key (hms keygen); needs the full sha256 and --role",
    )
    review.add_argument("--json", action="store_true")
    review.set_defaults(handler=cmd_review)

    deploy = ps.add_parser("deploy", help="deploy a bundle to one environment")
    deploy.add_argument(
        "id",
        help="sha256, prefix, id@version, or a protocol id: its bundle in force in the environment before ENV "
        "(the first environment: its newest version)",
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
    rollback.add_argument(
        "--reason", default=None, help="why (noted with who and when on the Airflow run that deployed what is undone)"
    )
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
    from hms import bundle, deployments, protocol
    from hms.registry.db import session_scope

    p = Path(path)
    if path.startswith("sha256:") and not p.exists():  # already recorded (intake, an earlier push): fetch, verify
        with session_scope(read_only=True) as s:
            return deployments.load_bundle(s, path.removeprefix("sha256:")), True
    if p.suffix in (".tgz", ".gz"):
        return bundle.read(p), False
    raw = bundle.build(protocol.load(p))
    return bundle.read_bytes(raw, str(p)), False


def cmd_push(args: argparse.Namespace) -> int:
    from hms import identity

    c = client.active()
    if args.field:  # a reference from a form or a run's conf: only the registry is read, never this machine's files
        if c is not None:
            raise BadInput("a pushed bundle is recorded already; push a file to the HMS API", where=args.field)
        from hms import actions

        b = _pushed_for(args.file, args.of, args.field)
        out = actions.push(b, identity.current(), known=True, advise=not args.xcom_file)
        emit_model(args, out)
        return 0
    if c is not None:
        from hms.api.models import PushIn, PushOut

        if args.file.startswith("sha256:") and not Path(args.file).exists():
            raise BadInput("a sha256: reference is recorded already; push a file to the HMS API", where=args.file)
        b, _ = _open_for_push(args.file)  # packed and verified here; the server verifies the bytes again
        body = PushIn(bundle_base64=base64.b64encode(b.content).decode(), source=args.file)
        out = c.post("/bundles", body, PushOut)
    else:
        from hms import actions

        b, known = _open_for_push(args.file)
        if args.of and b.protocol.id != args.of:
            raise BadInput(f"this is a bundle of {b.protocol.id}, not of {args.of}", where=args.file)
        # As a pipeline step (build, intake) the run is already under way: no advice on what happens next.
        out = actions.push(b, identity.current(), known=known, advise=not args.xcom_file)
    emit_model(args, out)
    return 0


def _pushed_for(ref: str, protocol_id: str | None, where: str) -> Bundle:
    """The verified pushed bundle ``ref`` names (``deployments.resolve_bundle_row``), of ``protocol_id`` if given.

    What a person picks or types in the trigger form's bundle field arrives here: a reference that is no pushed
    bundle, or one of another protocol (its pipeline would deploy it under this protocol's DAG), is exit 2
    naming ``where`` and what it is instead.
    """
    from hms import deployments
    from hms.registry.db import session_scope

    of = f" of {protocol_id}" if protocol_id else ""
    with session_scope(read_only=True) as s:
        try:
            row = deployments.resolve_bundle_row(s, ref.strip())
        except BadInput as e:
            raise BadInput(f"{ref!r} is not a pushed bundle{of}: {e.message}", where=where) from None
        if protocol_id and row.protocol_id != protocol_id:
            raise BadInput(
                f"{ref!r} is {row.protocol_id} v{row.version} ({row.sha256[:12]}), not a bundle{of}: pick one of "
                f"{protocol_id}'s bundles (or trigger policy_{row.protocol_id} to run it)",
                where=where,
            )
        return deployments.load_bundle(s, row.sha256)


def cmd_review(args: argparse.Namespace) -> int:
    from hms.api.models import ReviewIn, ReviewOut

    req = ReviewIn(ref=args.id, decision=args.decision, role=args.role, comment=args.comment, user=args.user)
    if args.sign_with:
        req.envelope = _own_signature(args, client.active())
    emit_model(args, act("/reviews", req, ReviewOut, "review"))
    return 0


def _own_signature(args: argparse.Namespace, c: client.Client | None) -> str:
    """The review statement signed here, with the clerk's key: the server keeps it, and cannot forge it."""
    from hms import clock
    from hms.attest import envelopes, keys, rows

    sha = args.id.removeprefix("sha256:").lower()
    if len(sha) != 64 or any(ch not in "0123456789abcdef" for ch in sha) or not args.role:
        raise BadInput(
            "a review signed with your own key names the bundle's full sha256 and --role", where="--sign-with"
        )
    if c is not None:
        from hms.api.models import WhoAmIOut

        me = c.get("/me", WhoAmIOut)
        name, policy = me.principal.name, me.policy_sha256
    else:
        from hms import identity
        from hms.pinned_policy import governing

        name, policy = identity.current().name, governing().sha256 or None
    identity_user = args.user or name
    stmt = rows.review_statement(
        sha,
        reviewer=identity_user,
        role=args.role,
        decision=args.decision,
        comment=args.comment,
        policy_sha256=policy,
        at=clock.now(),
    )
    return envelopes.sign(stmt, keys.file_signer(Path(args.sign_with)))


def _tz(config) -> ZoneInfo:
    return ZoneInfo(config.timezone)


def cmd_deploy(args: argparse.Namespace) -> int:
    from hms.api.models import DeployIn, DeployOut

    req = DeployIn(ref=args.id, environment=args.env, schedule=args.schedule, run_id=args.run_id)
    emit_model(args, act("/deployments", req, DeployOut, "deploy"))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from hms import actions, identity

    if client.active() is not None:
        raise BadInput(
            "promote runs the missing checks and records them where the registry is, which a client "
            "cannot do: start the pipeline run (the DAG), or deploy environment by environment with "
            "hms rule deploy",
            where="promote",
        )
    from hms import deployments
    from hms.pinned_policy import governing
    from hms.registry.db import session_scope
    from hms.schedule import parse_requested

    me = identity.current()
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
    pub = actions.publisher(config)
    b, known = _open_for_push(args.bundle)
    # Every target's gates (approvals, supersession, recorded checks, freeze windows) and the last target's time
    # are checked before anything is written: a promote that would fail anywhere deploys nowhere.
    with session_scope(read_only=True) as s:
        steps = deployments.preflight(s, b, targets, at, config)
    if not known:
        actions.push(b, me, advise=False)
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
                    s,
                    b,
                    env,
                    activate_at=at if last else None,
                    actor=me.name,
                    config=config,
                    run_id=args.run_id or me.run_id,
                )
            touched.append(env)
            changes.append(ch)
            if not args.json:
                print(actions.deploy_line(ch, config), flush=True)
            k8s, k8s_lines = actions.publish(pub, env, ch.protocol_id, "promote", me)  # before the next env
            mirrored += [k8s] if k8s else []
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
        if c.state == "pending"
        else f"{c.environment} ✅"
        for c in changes
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
    child_env = {**os.environ, **(identity.pipeline_env(me.run_id or args.run_id) if me.is_pipeline else {})}
    r = subprocess.run(cmd, check=False, stdout=subprocess.PIPE if args.json else None, text=True, env=child_env)
    if r.returncode != 0:
        where = f" in {env}" if env else ""
        raise CheckFailed(
            f"the {kind}{where} failed (hms {' '.join(argv[:2])} exited {r.returncode})",
            where=f"promote {b.protocol.id} v{b.protocol.version}",
        )


def cmd_rollback(args: argparse.Namespace) -> int:
    from hms.api import models

    if args.run:
        out: models.RunRollbackOut | models.RollbackOut = act(
            "/rollbacks/run",
            models.RunRollbackIn(run=args.run, reason=args.reason),
            models.RunRollbackOut,
            "rollback_run",
        )
    else:
        if not args.id:
            raise BadInput("give a protocol id, or --run RUN_ID", where="rollback")
        req = models.RollbackIn(protocol=args.id, environment=args.env, to=args.to, reason=args.reason)
        out = act("/rollbacks", req, models.RollbackOut, "rollback")
    emit_model(args, out)
    return 0


def cmd_abort(args: argparse.Namespace) -> int:
    """``hms rule abort RUN``: the same core call as Airflow's "mark failed" listener (hms.abort.abort_run)."""
    from urllib.parse import quote

    from hms.api.models import AbortIn, AbortOut

    req = AbortIn(reason=args.reason, user=args.user)
    emit_model(args, act(f"/runs/{quote(args.run, safe='')}/abort", req, AbortOut, "abort", args.run))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from hms import deployments, identity
    from hms.pinned_policy import governing
    from hms.registry.db import session_scope

    config = governing()
    out = []
    lines = []
    me = identity.direct()  # who records due activations; None: a person reading a shared registry (time decides)
    with session_scope(read_only=me is None) as s:
        for env in config.environment_names:
            if me is not None:
                deployments.settle(s, env, config, actor=me.name)
            cur = deployments.in_force(s, env, args.id)
            pend = deployments.pending(s, env, args.id)
            out.append(
                {
                    "environment": env,
                    "live": {"version": cur.version, "sha256": cur.bundle_sha256} if cur else None,
                    "pending": [
                        {"version": p.version, "sha256": p.bundle_sha256, "activate_at": p.activate_at.isoformat()}
                        for p in pend
                    ],
                }
            )
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
    from hms import clock, deployments, effective_time
    from hms.pinned_policy import governing
    from hms.registry.db import session_scope
    from hms.schedule import parse_requested

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
    words = (
        (
            f"effective date {effective_time.local(b.protocol.effective_at, tz)} passed: in force from when it "
            "goes live, not retroactive"
        )
        if passed
        else None
    )
    line = (
        f"[schedule] {args.env}: {b.protocol.id} v{b.protocol.version} comes into force no earlier than "
        f"{effective_time.local(act.at, tz)}"
    )
    emit(
        args,
        {
            "ok": True,
            "environment": args.env,
            "activate_at": act.at.isoformat(),
            "effective_at": b.protocol.effective_at.isoformat(),
            "late": passed,
            "note": words,
        },
        [line + (f" ({words})" if words else "")],
    )
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    from hms import deployments, smoke
    from hms.pinned_policy import governing
    from hms.registry.db import session_scope

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
    from hms import deployments
    from hms.pinned_policy import governing
    from hms.registry import audit
    from hms.registry.db import session_scope

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
        audit.append(
            s,
            actor=actor(),
            action="pipeline.published",
            subject=b.sha256,
            details={"protocol_id": b.protocol.id, "version": b.protocol.version, "run_id": args.run_id},
        )
    from hms.attest import checkpoints

    with session_scope(read_only=True) as s:  # the run's record, pinned outside the database (and in this log)
        cp = checkpoints.publish(s)
    emit(
        args,
        {
            "ok": True,
            "sha256": b.sha256,
            "version": b.protocol.version,
            "checkpoint": {"size": cp.size, "head_hash": cp.head_hash, "path": str(cp.path)},
        },
        [f"[deploy] {last} ✅ live version {b.protocol.version} ({b.protocol.id} sha256:{b.short})", cp.line()],
    )
    return 0
