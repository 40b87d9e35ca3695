"""``hms policy pack|verify|test|simulate|replay|decide``: build a bundle, check it, run its cases, simulate its
budget, replay it on logged decisions, decide one record."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from hms import bundle, protocol
from hms.cases import run_cases
from hms.cli import emit
from hms.cli.refs import add_record_options, decide_record, open_bundle, record_check
from hms.errors import BadInput, EvaluationError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("policy", help="pack, verify and test policy bundles")
    ps = p.add_subparsers(dest="policy_command", required=True)

    pack = ps.add_parser("pack", help="pack a protocol into a reproducible bundle")
    pack.add_argument("protocol", help="protocol file (.yml or .json)")
    pack.add_argument("--out", required=True, help="bundle path to write, e.g. pkg.tgz")
    pack.add_argument("--json", action="store_true")
    pack.set_defaults(handler=cmd_pack)

    verify = ps.add_parser("verify", help="check a bundle's manifest and protocol")
    verify.add_argument("bundle")
    verify.add_argument("--sha256", help="the hash the bundle must have")
    verify.add_argument("--json", action="store_true")
    verify.set_defaults(handler=cmd_verify)

    test = ps.add_parser("test", help="run the bundle's test cases, then its budget simulation")
    test.add_argument("bundle")
    test.add_argument("--population", help="population for the simulation (default: the protocol's budget.population)")
    test.add_argument("--no-simulate", action="store_true", help="run the test cases only")
    test.add_argument("--baseline", help=BASELINE_HELP)
    test.add_argument("--json", action="store_true")
    add_record_options(test)
    test.set_defaults(handler=cmd_test)

    sim = ps.add_parser("simulate", help="simulate a bundle over a population: budget gate, baseline diff, fairness")
    sim.add_argument("bundle")
    sim.add_argument(
        "--population", help="catalog name, synthetic:N[:SEED] or a .csv/.parquet file (default: budget.population)"
    )
    sim.add_argument("--baseline", help=BASELINE_HELP)
    sim.add_argument("--period", help="the period to evaluate the rules for (e.g. 2025-03 or 2025) when the protocol "
                                      "has dated parameters; default: its effective period")
    sim.add_argument("--report", help="write a self-contained HTML report here")
    sim.add_argument("--json", action="store_true")
    sim.set_defaults(handler=cmd_simulate)

    rep = ps.add_parser("replay", help="evaluate a candidate on an environment's logged decisions: what would change")
    rep.add_argument("bundle", help="the candidate: a .tgz or a registry reference (sha256:…, id@version)")
    rep.add_argument("--env", default="prod", help="whose decision log (default: prod)")
    rep.add_argument("--since", help="an age back from now (30d, 12h) or an ISO 8601 instant; default: the pinned "
                                     "policy's decision_log.replay_window (30d unless it says)")
    rep.add_argument("--until", help="an ISO 8601 instant or an age; default: now")
    rep.add_argument("--json", action="store_true")
    add_record_options(rep)
    rep.set_defaults(handler=cmd_replay)

    dec = ps.add_parser("decide", help="decide one record with a bundle, as the decision service would; --explain: "
                                       "why, under which provision (a notice of action)")
    dec.add_argument("bundle")
    dec.add_argument("--input", required=True, help="the record: JSON, @FILE (a JSON file) or - (standard input)")
    dec.add_argument("--period", help="the period to decide for (default: the protocol's effective period)")
    dec.add_argument("--explain", action="store_true", help="each output's rule, the values read and their "
                                                            "legal references, a notice sentence per outcome")
    dec.add_argument("--json", action="store_true")
    dec.set_defaults(handler=cmd_decide)


def _record_packed(raw: bytes, source: str) -> bool:
    """Record the packed bundle as the authenticated principal (through the HMS API when logged in)."""
    from hms import actions, client, identity

    c = client.active()
    if c is not None:
        import base64

        from hms.api.models import PushIn, PushOut

        return c.post("/bundles", PushIn(bundle_base64=base64.b64encode(raw).decode(), source=source), PushOut).new
    return actions.push(bundle.read_bytes(raw, source), identity.current(), advise=False).new


def cmd_pack(args: argparse.Namespace) -> int:
    proto = protocol.load(args.protocol)
    raw = bundle.build(proto)
    digest = bundle.sha256_hex(raw)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise BadInput("--out is a directory; give a file name such as pkg.tgz", where=str(out))
    # Record first, then write: a failure leaves neither a bundle file nor a registry row.
    created = _record_packed(raw, str(args.protocol))
    bundle.write_atomic(out, raw)
    emit(
        args,
        {"ok": True, "bundle": str(out), "sha256": digest, "id": proto.id, "version": proto.version, "new": created},
        [f"{out} sha256:{digest}"],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    b = bundle.read(args.bundle, expect_sha256=args.sha256)
    emit(
        args,
        {"ok": True, "sha256": b.sha256, "manifest": b.manifest},
        [f"{args.bundle} sha256:{b.sha256} ✅ {b.protocol.id} v{b.protocol.version}: manifest and protocol verified"],
    )
    return 0


def _test_overrides(args: argparse.Namespace, b: bundle.Bundle) -> list[str]:
    """What makes this test other than the governed one: the budget gate is the protocol's own population
    (another one, smaller or kinder, proves nothing about the cap), and skipping the simulation skips it."""
    budget = b.protocol.budget or {}
    out = []
    if args.population is not None and args.population != budget.get("population"):
        out.append(f"--population {args.population} (the protocol's budget.population is "
                   f"{budget.get('population') or 'none'})")
    if args.no_simulate and b.protocol.budget:
        out.append("--no-simulate (the budget gate is part of the test)")
    return out


def cmd_test(args: argparse.Namespace) -> int:
    b = open_bundle(args.bundle)
    decide_record(args, "test", _test_overrides(args, b), [b.sha256])
    results = run_cases(b.protocol)
    failed = [r for r in results if not r.ok]
    lines = [r.line() for r in results]
    if failed:
        lines.append(f"[test] ❌ {len(failed)} of {len(results)} tests failed ({b.protocol.id} v{b.protocol.version})")
    else:
        lines.append(f"[test] ✅ {len(results)} tests ({b.protocol.id} v{b.protocol.version}, both backends)")
    simulation: dict[str, Any] | None = None
    sim_ok = True
    population_error: BadInput | None = None
    if b.protocol.budget and not args.no_simulate:
        try:
            result = _simulate(args, b)
        except EvaluationError as e:  # a rule that fails on a population row fails the test step, with the row
            sim_ok = False
            simulation = {"ok": False, "error": e.message, "where": e.where}
            lines.append(f"[simulate] ❌ {e}")
        except BadInput as e:
            # An unusable population (a missing column, a bad value) is the caller's input, not the rules':
            # the case results above still stand and are reported; the exit code says which went wrong.
            sim_ok = False
            population_error = e
            simulation = {"ok": False, "error": e.message, "where": e.where, "bad_input": True}
            lines.append(f"[simulate] ❌ {e}")
        else:
            sim_ok = result.ok
            simulation = result.to_dict()
            lines.extend(result.lines())
    elif b.protocol.budget is None and not args.no_simulate:
        lines.append("[simulate] skipped: the protocol has no budget")
    payload = {
        "ok": not failed and sim_ok,
        "sha256": b.sha256,
        "total": len(results),
        "failed": len(failed),
        "cases": [{"name": r.name, "ok": r.ok, "mismatches": r.mismatches} for r in results],
        "simulation": simulation,
    }
    if population_error is None:  # bad input changes nothing: no check is recorded for an unusable population
        record_check(args, "test", b, payload["ok"], payload)
    emit(args, payload, lines)
    if failed:
        return 1
    return 2 if population_error is not None else 0 if sim_ok else 1


def _progress(args: argparse.Namespace) -> Any:
    """A bar on a terminal, lines in a log (the task's stderr), for runs past a couple of seconds;
    nothing with --json, whose reader is a program."""
    from hms.progress import Progress

    if getattr(args, "json", False):
        return None
    return Progress("simulate", sys.stderr, tty=sys.stderr.isatty())


LIVE, NO_BASELINE = "live", "none"
BASELINE_HELP = (
    "what to compare with: 'live' (the version prod answers with; the default when a registry exists), "
    "'none', or another bundle file"
)


def _baseline(arg: str | None, protocol_id: str) -> tuple[Any, str | None, list[str]]:
    """The baseline bundle for --baseline, its label, and notes; the default is prod's live version."""
    from hms.registry.location import registry_present

    if arg == NO_BASELINE or (arg is None and not registry_present()):
        return None, None, []
    if arg in (None, LIVE):
        from hms.deployments import live_bundle

        live = live_bundle(protocol_id, env="prod")
        if live is None:
            return None, None, [f"no live baseline: {protocol_id} has no version live in prod"]
        return live, "live in prod", []
    return open_bundle(arg), arg, []


def _simulate(args: argparse.Namespace, b: bundle.Bundle, **kw: Any) -> Any:
    """``simulate`` against the baseline --baseline names. Prod's version, when only defaulted to, may not
    run on the population (it reads a column the file lacks): then the run goes on without it, saying so."""
    from hms.simulate import simulate

    base, label, notes = _baseline(args.baseline, b.protocol.id)
    try:
        result = simulate(b, args.population, base, progress=_progress(args), baseline_label=label, **kw)
    except BadInput as e:
        if base is None or args.baseline is not None:
            raise
        result = simulate(b, args.population, progress=_progress(args), **kw)
        notes.append(f"no baseline: prod's v{base.protocol.version} cannot run on this population ({e})")
    result.notes.extend(notes)
    return result


def cmd_simulate(args: argparse.Namespace) -> int:
    b = open_bundle(args.bundle)
    detail = True if args.report else None  # the report draws the breakdowns
    period = b.protocol.parse_period(args.period, where="--period") if args.period else None
    result = _simulate(args, b, detail=detail, period=period)
    lines = result.lines()
    payload = {**result.to_dict(), "sha256": b.sha256, "report": None}
    if args.report:
        from hms import report  # charts and templates: only for a report

        path = Path(args.report)
        report.write(result, path)
        payload["report"] = str(path)
        lines.append(f"[simulate] report: {path}")
    emit(args, payload, lines)
    return 0 if result.ok else 1


def cmd_replay(args: argparse.Namespace) -> int:
    from hms.decision_query import parse_since
    from hms.pipeline_config import load_pipeline_config
    from hms.replay import replay

    load_pipeline_config().environment(args.env)  # an unknown environment is exit 2, before anything is read
    if args.since is None:  # the window the clerk's evidence covers is policy: the pinned one's
        from hms.pinned_policy import governing

        since = parse_since(governing().decision_log.replay_window, where="decision_log.replay_window")
    else:
        since = parse_since(args.since, where="--since")
    until = parse_since(args.until, where="--until") if args.until else None
    if until is not None and until <= since:
        raise BadInput(f"--until ({until.isoformat()}) is not after --since ({since.isoformat()})", where="--until")
    b = open_bundle(args.bundle)
    decide_record(args, "replay", [], [b.sha256])
    result = replay(b, args.env, since, until)
    payload = {**result.to_dict(), "sha256": b.sha256}
    record_check(args, "replay", b, result.ok, payload)
    emit(args, payload, result.lines())
    return 0 if result.ok else 1


def cmd_decide(args: argparse.Namespace) -> int:
    """One record through the bundle's rules with the decision service's checks (every invalid field at once,
    exit 2), and with ``--explain`` the service's explanation: what a caseworker needs for a notice offline."""
    from hms.errors import BadInputs
    from hms.service import explanation

    b = open_bundle(args.bundle)
    rec = _record(args.input)
    p = b.protocol
    period = p.parse_period(args.period, where="--period") if args.period else p.default_period()
    try:
        p.plan(period)[0][1].coerce_record(rec, where="input", every_error=True)
        outputs = {k: explanation.plain(v) for k, v in p.decide(rec, period).items()}
    except BadInputs as e:  # every invalid field, in the record's order: the last one through the error path
        for problem in e.problems[:-1]:
            print(f"hms: error: {problem}", file=sys.stderr)
        raise e.problems[-1] from None
    why = explanation.answer(p, period, rec) if args.explain else None
    payload: dict[str, Any] = {"ok": True, "protocol": p.id, "version": p.version, "sha256": b.sha256,
                               "period": period.label if period is not None else None, "outputs": outputs}
    lines = [f"[decide] {p.id} v{p.version}" + (f", period {period.label}" if period is not None else "") + ": "
             + ", ".join(f"{k} = {v}" for k, v in outputs.items())]
    if why is not None:
        payload["explanation"] = why
        lines += _explained(why)
    emit(args, payload, lines)
    return 0


def _record(text: str) -> Any:
    import json

    where = "--input"
    if text == "-":
        text, where = sys.stdin.read(), "--input (standard input)"
    elif text.startswith("@"):
        path = Path(text[1:])
        where = str(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise BadInput(f"cannot read it ({e.strerror})", where=where) from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as e:
        raise BadInput(f"not JSON: {e.msg} (line {e.lineno}, column {e.colno})", where=where) from None
    if not isinstance(rec, dict):
        raise BadInput(f"a record is a JSON object of inputs, not {type(rec).__name__}", where=where)
    return rec


def _explained(why: dict[str, Any]) -> list[str]:
    """The explanation as a caseworker reads it: each output's notice (or rule), then the steps it rests on."""
    lines = []
    steps = {s["name"]: s for s in why["rules"]}
    for o in why["outputs"]:
        lines.append(f"  {o['name']} = {o['value']}: {o.get('notice') or o['expression']}"
                     + (f" — {o['reference']}" if o.get("reference") and not o.get("notice") else ""))
        for name in o["depends_on"]:
            step = steps.get(name)
            if step is None or name == o["name"]:
                continue
            reads = ", ".join(r["text"] for r in step["reads"])
            lines.append(f"    {name} = {step['value']} ({step['expression']}"
                         + (f"; {reads}" if reads else "") + ")"
                         + (f" — {step['reference']}" if step.get("reference") else ""))
    for note in why.get("notes", []):
        lines.append(f"  note: {note}")
    return lines
