"""``hms scan pkg.tgz --rules privacy,ethics[,legal]`` and ``hms scan --test-policies``.

Exit codes: 0 clean, 1 any finding (or a failing Rego test), 2 a bad bundle, an unknown rule set or
a policy that does not compile (OPA's file:line is the place printed). ``--write-input FILE`` writes
the OPA input instead of evaluating it: the Kubernetes step runs ``opa eval`` over the same policy
files with that input (``hms.compliance.opa_container_command``).
"""

from __future__ import annotations

import argparse
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from hms import bundle, evidence
from hms.cli import emit
from hms.cli.refs import add_record_options, decide_record, open_bundle, record_check
from hms.compliance import DEFAULT_RULE_SETS, build_input, engine, fairness_for, scan
from hms.compliance.scan import pipeline_settings
from hms.errors import BadInput


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "scan",
        help="compliance scan of a bundle with OPA (privacy, ethics, legal)",
        description="Evaluate the Rego rule sets in include/policies (or $HMS_POLICY_DIR) against a bundle.",
    )
    p.add_argument("bundle", nargs="?", help="bundle to scan, e.g. pkg.tgz")
    p.add_argument(
        "--rules",
        help=f"comma-separated rule sets (default: the pipeline settings' compliance.rule_sets, "
        f"else {','.join(DEFAULT_RULE_SETS)})",
    )
    p.add_argument("--simulation", help="fairness figures: the --json output of `hms policy simulate`")
    p.add_argument("--now", help="judge the effective time as of this ISO time with zone (default: the clock)")
    p.add_argument("--policies", help="policy directory (default: include/policies or $HMS_POLICY_DIR)")
    p.add_argument("--write-input", metavar="FILE", help="write the OPA input document and stop (Kubernetes mode)")
    p.add_argument("--test-policies", action="store_true", help="run the Rego tests (*_test.rego) instead")
    p.add_argument("--json", action="store_true")
    add_record_options(p)
    p.set_defaults(handler=cmd_scan)


def _settings_and_rules(args: argparse.Namespace, protocol: Any) -> tuple[Any, list[str]]:
    from hms.pinned_policy import governing

    config = governing()
    rules = args.rules.split(",") if args.rules else list(config.compliance.rule_sets or DEFAULT_RULE_SETS)
    return pipeline_settings(protocol, config), rules


def _fairness(args: argparse.Namespace, b: bundle.Bundle) -> dict[str, Any] | None:
    if not args.simulation:
        return fairness_for(b)
    path = Path(args.simulation)
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise BadInput(f"cannot read simulation: {e.strerror}", where=str(path)) from None
    except json.JSONDecodeError as e:
        raise BadInput(f"not valid JSON: {e.msg}", where=f"{path}:{e.lineno}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("fairness"), dict):
        raise BadInput("no 'fairness' object (expected the --json output of `hms policy simulate`)", where=str(path))
    protocol_info = payload.get("protocol")
    sha = payload.get("sha256") or (protocol_info.get("sha256") if isinstance(protocol_info, dict) else None)
    if sha is not None and sha != b.sha256:
        raise BadInput(f"simulation is of bundle {sha}, not of this bundle {b.sha256}", where=str(path))
    return payload["fairness"]


def _now(args: argparse.Namespace) -> datetime | None:
    if not args.now:
        return None
    try:
        t = datetime.fromisoformat(args.now)
    except ValueError:
        raise BadInput(f"not an ISO date-time: {args.now!r}", where="--now") from None
    if t.utcoffset() is None:
        raise BadInput("give a timezone, e.g. 2026-11-30T00:00:00-05:00", where="--now")
    return t


def _fairness_line(fairness: dict[str, Any] | None) -> str:
    if fairness is None:
        return "  note: no fairness figures (no budget population, no simulation); four-fifths rule not checked"
    ratios = ", ".join(
        f"{attr} {f['ratio']:.2f}"
        for attr, f in sorted((fairness.get("attributes") or {}).items())
        if isinstance(f, dict) and isinstance(f.get("ratio"), int | float)
    )
    return f"  fairness ({fairness.get('outcome', 'outcome')}): {ratios or 'no groups'}; four-fifths rule at 0.80"


def _other_policies(args: argparse.Namespace) -> list[str]:
    """``--policies`` or ``$HMS_POLICY_DIR`` with other content than the repository's (an empty directory
    finds nothing); with --record this is refused before the directory is even read (it may not load)."""
    if args.policies is None and not os.environ.get("HMS_POLICY_DIR"):
        return []
    governed = engine.load(engine.governed_policy_dir()).digest
    try:
        same = engine.load(args.policies).digest == governed
    except BadInput:
        same = False
    return [] if same else ["other policies"]


def _overrides(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """What else makes this scan other than the governed one: fewer rule sets than the pipeline settings name,
    another "now" for the legal rules, or fairness figures read from a file instead of the protocol's own."""
    out = []
    from hms.pinned_policy import governing

    wanted = set(governing().compliance.rule_sets or DEFAULT_RULE_SETS)
    if not wanted <= set(names):
        out.append(f"only the rule sets {','.join(names)} (the pipeline runs {','.join(sorted(wanted))})")
    if args.now:
        out.append("--now")
    if args.simulation:
        out.append("--simulation")
    return out


def cmd_scan(args: argparse.Namespace) -> int:
    if args.test_policies:
        return cmd_test_policies(args)
    if not args.bundle:
        raise BadInput("give a bundle to scan, or --test-policies", where="hms scan")
    other = _other_policies(args) if args.record is not False else []
    if args.record:
        evidence.refuse_override("scan", other)
    ps = engine.load(args.policies)
    b = open_bundle(args.bundle)
    settings, rules = _settings_and_rules(args, b.protocol)
    names = ps.check_rule_sets(rules)
    fairness = _fairness(args, b)
    now = _now(args)
    if args.write_input:
        opa_input = build_input(
            b.protocol,
            fairness=fairness,
            freeze_windows=settings.freeze_windows,
            approval_policy=settings.approval_policy,
            now=now,
        )
        out = Path(args.write_input)
        bundle.write_atomic(out, json.dumps(opa_input, sort_keys=True).encode())
        emit(
            args,
            {"ok": True, "input": str(out), "rule_sets": list(names), "opa_args": engine.opa_container_command(names)},
            [f"[scan] OPA input for {b.protocol.id} v{b.protocol.version} written to {out}"],
        )
        return 0
    decide_record(args, "scan", other + _overrides(args, names), [b.sha256])
    result = scan(b, names, fairness=fairness, settings=settings, now=now, policies=ps)
    lines = [result.summary(), *(f.line() for f in result.findings), *(w.warning_line() for w in result.warnings)]
    if "ethics" in names:
        lines.append(_fairness_line(fairness))
    record_check(args, "scan", b, result.ok, result.to_dict())
    emit(args, result.to_dict(), lines)
    return 0 if result.ok else 1


def cmd_test_policies(args: argparse.Namespace) -> int:
    ps = engine.load(args.policies)
    results = ps.run_tests()
    failed = [t for t in results if not t.passed]
    lines = [
        f"  {'✅' if t.passed else '❌'} {t.id} ({t.file}:{t.line})" + (f": {t.error}" if t.error else "")
        for t in results
    ]
    mark = "❌" if failed or not results else "✅"
    lines.append(f"[scan] Rego tests: {len(results) - len(failed)} passed, {len(failed)} failed {mark}")
    emit(
        args,
        {
            "ok": not failed and bool(results),
            "total": len(results),
            "failed": len(failed),
            "policy_sha256": ps.digest,
            "tests": [
                {"id": t.id, "file": t.file, "line": t.line, "passed": t.passed, "error": t.error} for t in results
            ],
        },
        lines,
    )
    return 1 if failed or not results else 0
