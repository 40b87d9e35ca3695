"""``hms decisions show|list``: what the decision services answered, from the decision log.

Read-only: the log is read as its writer masked it (hms.decision_masking), so a personal input shows as its
keyed hash and a dropped one not at all. Exit 2 for an unknown decision id or a bad ``--since``.
"""

from __future__ import annotations

import argparse

from hms.cli import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decisions", help="the decision log: every answer of the decision services")
    ps = p.add_subparsers(dest="decisions_command", required=True)
    show = ps.add_parser("show", help="one logged decision by its decision_id")
    show.add_argument("decision_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)
    ls = ps.add_parser("list", help="logged decisions, newest first")
    ls.add_argument("--protocol", help="only this protocol id")
    ls.add_argument("--env", help="only this environment")
    ls.add_argument("--since", help="an age back from now (30d, 12h, 90m) or an ISO 8601 instant with its offset")
    ls.add_argument("--limit", type=int, default=100)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=cmd_list)


def cmd_show(args: argparse.Namespace) -> int:
    import json

    from hms import decision_query

    d = decision_query.show(args.decision_id)
    lines = [d.line(), f"  as_of {d.as_of.isoformat()}" + (f", period {d.period}" if d.period else "")
             + f", {d.latency_ms:.2f} ms" + (f", batch {d.batch_id}" if d.batch_id else ""),
             f"  input (as logged, key {d.key_id}): {json.dumps(d.input, sort_keys=True)}",
             f"  outputs: {json.dumps(d.outputs, sort_keys=True)}"]
    emit(args, {"ok": True, "decision": d.to_dict()}, lines)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from hms import decision_query

    since = decision_query.parse_since(args.since) if args.since else None
    found = decision_query.window(protocol=args.protocol, environment=args.env, since=since, limit=args.limit)
    lines = [d.line() for d in found] or ["[decisions] none logged" + (f" since {since.isoformat()}" if since else "")]
    emit(args, {"ok": True, "count": len(found), "decisions": [d.to_dict() for d in found]}, lines)
    return 0
