"""``hms audit verify|log``: check the hash chain of the audit trail, list entries."""

from __future__ import annotations

import argparse
import json

from hms.cli import emit
from hms.registry import audit
from hms.registry.db import session_scope


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="the append-only, hash-chained audit trail")
    ps = p.add_subparsers(dest="audit_command", required=True)
    v = ps.add_parser("verify", help="exit 0 on an intact chain, 1 naming the first bad row")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=cmd_verify)
    log = ps.add_parser("log", help="list audit entries, newest first")
    log.add_argument("--subject", help="only entries about this subject (bundle hash, protocol id …)")
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--json", action="store_true")
    log.set_defaults(handler=cmd_log)


def cmd_verify(args: argparse.Namespace) -> int:
    with session_scope() as s:
        r = audit.verify(s)
    if r.ok:
        line = f"[audit] ✅ chain intact ({r.count} entries)"
    else:
        line = f"[audit] ❌ chain broken at row {r.first_bad_id}: {r.reason}"
    emit(args, {"ok": r.ok, "count": r.count, "first_bad_id": r.first_bad_id, "reason": r.reason}, [line])
    return 0 if r.ok else 1


def cmd_log(args: argparse.Namespace) -> int:
    with session_scope() as s:
        rows = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "actor": e.actor,
                "action": e.action,
                "subject": e.subject,
                "details": json.loads(e.details),
            }
            for e in audit.entries(s, subject=args.subject, limit=args.limit)
        ]
    emit(
        args,
        {"ok": True, "entries": rows},
        [f"{r['id']:>6} {r['at']} {r['actor']:<16} {r['action']:<22} {r['subject']}" for r in rows],
    )
    return 0
