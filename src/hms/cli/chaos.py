"""``hms chaos run``: the chaos job (see hms.chaos for the experiment and its hypothesis)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from datetime import datetime
from typing import Any

from hms import clock
from hms.cli import emit
from hms.cli.refs import add_record_options, decide_record
from hms.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chaos", help="fault-injection experiments against a decision-service fleet")
    ps = p.add_subparsers(dest="chaos_command", required=True)
    run = ps.add_parser("run", help="kill a fraction of replicas during a window; check health and answers")
    run.add_argument("--target", required=True, help="environment (its decision service is the target)")
    run.add_argument("--time", default=None, help="window: 30s, 5m, 1h (default: the pipeline config's)")
    run.add_argument("--kill-fraction", type=float, default=None)
    run.add_argument("--replicas", type=int, default=None, help="local mode: replicas to start")
    run.add_argument("--min-health", type=float, default=None)
    run.add_argument("--protocol", default=None, help="only this protocol's golden decisions")
    run.add_argument("--no-retry", action="store_true", help="the balancer does not retry (a fragile client)")
    run.add_argument("--mode", choices=["local", "kubernetes", "compose"], default=None,
                     help="default: execution.mode (compose: the containers of execution.compose_project)")
    run.add_argument("--compose-project", default=None,
                     help="compose mode: the project whose containers to kill (default: execution.compose_project)")
    run.add_argument("--seed", type=int, default=None, help="random seed for the choice of victims")
    run.add_argument("--json", action="store_true")
    add_record_options(run)
    run.set_defaults(handler=cmd_run)


def _overrides(args: argparse.Namespace, config: Any, mode: str) -> list[str]:
    """What would make a recorded chaos result more lenient than the pipeline settings' hypothesis.

    A trigger may make chaos harsher (fewer replicas, a stricter floor, no retries), never kinder; the
    window's length is the pipeline's ``chaos_window`` and stays free. The fleet must be the configured one.
    """
    c = config.chaos
    out = []
    if args.min_health is not None and args.min_health < c.min_health:
        out.append(f"--min-health {args.min_health} (below {c.min_health})")
    if args.kill_fraction is not None and args.kill_fraction < c.kill_fraction:
        out.append(f"--kill-fraction {args.kill_fraction} (below {c.kill_fraction})")
    if args.replicas is not None and args.replicas > c.replicas:
        out.append(f"--replicas {args.replicas} (above {c.replicas})")
    if mode != config.execution.mode:
        out.append(f"--mode {mode} (the pipeline runs {config.execution.mode})")
    if args.compose_project not in (None, config.execution.compose_project):
        out.append(f"--compose-project {args.compose_project} (the pipeline's is {config.execution.compose_project})")
    return out


def _record(args: argparse.Namespace, shas: list[str], report: Any) -> None:
    """A chaos result for every bundle whose golden decisions it checked: prod needs one for its exact hash."""
    from hms import identity
    from hms.registry import store
    from hms.registry.db import session_scope

    me = identity.current()
    with session_scope(principal=me.to_dict()) as s:
        for sha in shas:
            store.record_check(s, sha256=sha, kind="chaos", ok=report.ok, summary=report.to_dict(), actor=me.name,
                               run_id=args.run_id or me.run_id)


class _RegistryView:
    """The environment's timelines and bundles, re-read when its generation changes (at most every 0.2 s)."""

    def __init__(self, environment: str) -> None:
        from hms.service.source import RegistrySource

        self.source = RegistrySource(environment)
        self.snap = self.source.load()
        self._checked = time.monotonic()
        self._lock = threading.Lock()

    def in_force(self, pid: str, at: datetime) -> str | None:
        with self._lock:
            if time.monotonic() - self._checked > 0.2:
                self._checked = time.monotonic()
                if self.source.generation() != self.snap.generation:
                    self.snap = self.source.load()
            tl = self.snap.timelines.get(pid)
            e = tl.in_force(at) if tl else None
            return e.sha256 if e else None


def _fraction(name: str, v: float) -> float:
    if not 0 < v <= 1:
        raise BadInput(f"{name} must be in (0, 1], not {v}", where=name)
    return v


def cmd_run(args: argparse.Namespace) -> int:
    from hms import chaos
    from hms.pinned_policy import governing

    config = governing()
    config.environment(args.target)
    window = chaos.parse_window(args.time or config.chaos.time)
    fraction = _fraction("--kill-fraction", args.kill_fraction or config.chaos.kill_fraction)
    min_health = args.min_health if args.min_health is not None else config.chaos.min_health
    if not 0 <= min_health <= 1:
        raise BadInput(f"--min-health must be in [0, 1], not {min_health}", where="--min-health")
    replicas = args.replicas or config.chaos.replicas
    if not 1 <= replicas <= 64:
        raise BadInput("--replicas must be between 1 and 64", where="--replicas")
    mode = args.mode or config.execution.mode
    overrides = _overrides(args, config, mode)
    if args.record:
        from hms import evidence

        evidence.refuse_override("chaos run", overrides)

    view = _RegistryView(args.target)
    goldens: list[chaos.Golden] = []
    tested: list[str] = []
    now = clock.now().astimezone()
    for pid, tl in sorted(view.snap.timelines.items()):
        if args.protocol and pid != args.protocol:
            continue
        e = tl.in_force(now)
        if e is None:
            continue
        b = view.snap.bundles[e.sha256]
        tested.append(e.sha256)
        goldens += [
            chaos.Golden(pid, c["name"], c["input"], _label(b.protocol.case_period(c)))
            for c in b.protocol.service_cases
        ]
    if not goldens:
        what = f"{args.protocol} is" if args.protocol else "nothing is"
        raise BadInput(
            f"{what} in force in {args.target}: chaos stresses the decisions it serves, so deploy first "
            f"(hms rule deploy ID --env {args.target})",
            where="--target",
        )
    decide_record(args, "chaos", overrides, tested)
    oracle = chaos.Oracle(view.snap.bundles, view.in_force)

    fleet: Any
    if mode == "local":
        fleet = chaos.LocalFleet(args.target, replicas)
    elif mode == "compose":
        from hms.compose_fleet import ComposeFleet, service_for

        fleet = ComposeFleet(args.compose_project or config.execution.compose_project, service_for(args.target))
        replicas = len(fleet.replicas)  # the service's scale, not a number to start
    else:
        from kubernetes import client
        from kubernetes import config as kube_config

        env = config.environment(args.target)
        if not env.urls:
            raise BadInput(
                f"environments[{args.target}].urls: kubernetes chaos needs the Service URL", where="--target"
            )
        if config.execution.in_cluster:
            kube_config.load_incluster_config()
        else:
            kube_config.load_kube_config()
        fleet = chaos.KubernetesFleet(config.namespace_for(args.target), env.urls, client.CoreV1Api())
    balancer = chaos.Balancer(fleet.urls, retries=not args.no_retry)
    report = chaos.Report(args.target, replicas, window, min_health=min_health)
    quiet = args.json
    say = (lambda s: None) if quiet else (lambda s: print(s, flush=True))
    say(
        f"[chaos] {args.target} ({mode}): {replicas} replicas, window {window:g}s, kill {fraction:.0%} per round, "
        f"retries {'off' if args.no_retry else 'on'}, {len(goldens)} golden decisions"
    )

    def _term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a process started in the background by a shell inherits SIGINT ignored, and an
    # interrupted experiment must still stop every replica it started.
    previous = signal.signal(signal.SIGTERM, _term)
    previous_int = signal.signal(signal.SIGINT, _term)
    try:
        if isinstance(fleet, chaos.LocalFleet):
            fleet.start()
        exp = chaos.Experiment(
            fleet, balancer, goldens, oracle, report, kill_fraction=fraction, seed=args.seed, say=say
        )
        exp.run()
    except KeyboardInterrupt:
        report.interrupted = True
        report.kills, report.restarts = fleet.kills, fleet.restarts
        print("[chaos] interrupted: stopping every replica it started", file=sys.stderr, flush=True)
    finally:
        fleet.stop()
        balancer.close()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    if report.interrupted:
        emit(args, report.to_dict(), report.lines())
        return 130
    if args.record:
        _record(args, tested, report)
    emit(args, report.to_dict(), report.lines())
    return 0 if report.ok else 1


def _label(period: Any) -> str | None:
    return None if period is None else period.label
