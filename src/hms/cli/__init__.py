"""``hms`` command line: one sub-module per command group, one error path for all.

Exit codes are a promise to scripts and to the pipeline: 0 ok, 1 a check failed
(test, budget, scan, chaos), 2 bad input or usage. Every ``HmsError`` is printed
as one line naming the place; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable, Sequence
from importlib import import_module
from typing import Any

from hms import __version__
from hms.errors import HmsError

# Command groups, each a module with ``register(subparsers)``; handlers return an exit code.
GROUPS = [
    "hms.cli.policy",
    "hms.cli.scan",
    "hms.cli.rule",
    "hms.cli.serve",
    "hms.cli.chaos",
    "hms.cli.audit",
    "hms.cli.db",
    "hms.cli.ci",
    "hms.cli.config",
    "hms.cli.auth",
    "hms.cli.api",
    "hms.cli.evidence",
    "hms.cli.decisions",
    "hms.cli.simulator",
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # usage errors exit 2, as argparse does, with our prefix
        self.print_usage(sys.stderr)
        print(f"hms: error: {message}", file=sys.stderr)
        raise SystemExit(2)


# Which module registers each top-level command: a call imports only its own group (a rollback must not
# pay for loading the simulation, the OPA engine and the web stack). Help and unknown commands load all.
COMMANDS = {
    "policy": "hms.cli.policy",
    "scan": "hms.cli.scan",
    "promote": "hms.cli.rule",
    "rule": "hms.cli.rule",
    "serve": "hms.cli.serve",
    "chaos": "hms.cli.chaos",
    "audit": "hms.cli.audit",
    "db": "hms.cli.db",
    "ci": "hms.cli.ci",
    "config": "hms.cli.config",
    "login": "hms.cli.auth",
    "logout": "hms.cli.auth",
    "whoami": "hms.cli.auth",
    "api": "hms.cli.api",
    "evidence": "hms.cli.evidence",
    "keygen": "hms.cli.evidence",
    "decisions": "hms.cli.decisions",
    "simulator": "hms.cli.simulator",
}


def _groups_for(argv: Sequence[str]) -> list[str]:
    rest = list(argv)
    while rest and rest[0].startswith("-"):
        opt = rest.pop(0)
        if opt == "--xcom-file" and rest:
            rest.pop(0)
    if rest and rest[0] in COMMANDS:
        return [COMMANDS[rest[0]]]
    return GROUPS


def build_parser(groups: Sequence[str] = GROUPS) -> argparse.ArgumentParser:
    parser = _Parser(prog="hms", description="HMS policy deployment pipeline")
    parser.add_argument("--version", action="version", version=f"hms {__version__}")
    parser.add_argument(
        "--xcom-file",
        default=None,
        help="also write the command's JSON result here (the pipeline's XCom; /airflow/xcom/return.json in pods)",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name in dict.fromkeys(groups):
        import_module(name).register(sub)
    return parser


def actor() -> str:
    """The authenticated principal's name, for the audit (hms.identity: never HMS_ACTOR or a typed --user)."""
    from hms import identity

    return identity.current().name


def emit(args: argparse.Namespace, payload: dict[str, Any], lines: Sequence[str]) -> None:
    """Print the JSON payload with --json, else the human lines; write it to --xcom-file too."""
    xcom = getattr(args, "xcom_file", None)
    if xcom:
        from pathlib import Path

        Path(xcom).parent.mkdir(parents=True, exist_ok=True)
        Path(xcom).write_text(json.dumps(payload, sort_keys=True, default=str))
    if getattr(args, "json", False):
        print(json.dumps(payload, sort_keys=True, default=str))
    else:
        for line in lines:
            print(line)


def act(path: str, req: Any, answer: type, action: str, *before: Any) -> Any:
    """One change: through the HMS API when logged in (hms.client), else ``hms.actions.<action>(*before, req,
    principal)`` on the registry as the authenticated principal. The one place a command chooses the way."""
    from hms import client

    c = client.active()
    if c is not None:
        return c.post(path, req, answer)
    from hms import actions, identity

    return getattr(actions, action)(*before, req, identity.current())


def emit_model(args: argparse.Namespace, out: Any) -> None:
    """``emit`` for a typed result (hms.api.models): its fields as JSON, its ``lines`` for people."""
    emit(args, out.model_dump(mode="json", exclude={"lines"}), out.lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command in this process (tests and Airflow's operators call this)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _dispatch(build_parser(_groups_for(argv)), argv)


def _dispatch(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except HmsError as e:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": e.message, "where": e.where, "exit_code": e.exit_code}))
        print(f"hms: error: {e}", file=sys.stderr)
        if debugging():  # ops asked for the way there (HMS_DEBUG=1); people and the task log get one line
            import traceback

            traceback.print_exc(file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("hms: interrupted", file=sys.stderr)
        return 130


def debugging() -> bool:
    """Whether ``HMS_DEBUG`` asks for tracebacks of handled errors too (a bug's traceback is always shown)."""
    import os

    return os.environ.get("HMS_DEBUG", "").strip().lower() in {"1", "true", "yes", "on"}


def run() -> None:
    """One command in this fresh process: the ``hms`` script's, when no resident simulator takes it (hms.launch).

    A command group's imports (SQLAlchemy above all) leave ~50k objects that live as long as the
    process. The cyclic GC would scan them in every full collection during the import burst and
    tear them down at exit: ~120 ms of CPU, a quarter of `hms rule rollback` (bench_service). So
    the collector waits while the command's modules load, then ``gc.freeze()`` sets what they
    built aside ("ignored in all future collections"); what the command itself creates is
    collected as usual, and a long-running ``hms serve`` keeps a working GC. ``main()`` (in-process
    callers) leaves the caller's GC alone.
    """
    argv = sys.argv[1:]
    gc.disable()
    try:
        parser = build_parser(_groups_for(argv))
    finally:
        gc.freeze()
        gc.enable()
    sys.exit(_dispatch(parser, argv))
