"""``hms audit verify|log``: check the hash chain of the audit trail, list entries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hms.cli import emit
from hms.errors import BadInput
from hms.registry import audit
from hms.registry.db import session_scope


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("audit", help="the append-only, hash-chained audit trail")
    ps = p.add_subparsers(dest="audit_command", required=True)
    v = ps.add_parser("verify", help="exit 0 on an intact chain, 1 naming the first bad row")
    v.add_argument("--checkpoint", action="append", default=[], metavar="FILE|DIR",
                   help="also check the log extends these signed checkpoints (a directory: every one in it)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(handler=cmd_verify)
    cp = ps.add_parser("checkpoint", help="sign the log's size and head into the checkpoint directory")
    cp.add_argument("--dir", default=None, help="where (default: $HMS_CHECKPOINT_DIR or $HMS_HOME/checkpoints)")
    cp.add_argument("--json", action="store_true")
    cp.set_defaults(handler=cmd_checkpoint)
    log = ps.add_parser("log", help="list audit entries, newest first")
    log.add_argument("--subject", help="only entries about this subject (bundle hash, protocol id …)")
    log.add_argument("--limit", type=int, default=50)
    log.add_argument("--json", action="store_true")
    log.set_defaults(handler=cmd_log)


def _checkpoint_files(given: list[str]) -> list[Path]:
    files: list[Path] = []
    for g in given:
        p = Path(g)
        if p.is_dir():
            files += sorted(p.glob("checkpoint-*.json"))
        elif p.is_file():
            files.append(p)
        else:
            raise BadInput("no such checkpoint file or directory", where=g)
    return files


def cmd_verify(args: argparse.Namespace) -> int:
    from hms.attest import checkpoints
    from hms.attest.envelopes import Unverified

    files = _checkpoint_files(args.checkpoint)
    problems: list[str] = []
    with session_scope(read_only=True) as s:
        r = audit.verify(s)
        for f in files:
            try:
                why = checkpoints.check(s, checkpoints.read(f))
            except Unverified as e:
                why = f"not a valid checkpoint: {e}"
            if why:
                problems.append(f"{f.name}: {why}")
    ok = r.ok and not problems
    lines = [f"[audit] ✅ chain intact ({r.count} entries)" if r.ok
             else f"[audit] ❌ chain broken at row {r.first_bad_id}: {r.reason}"]
    if files:
        lines.append(f"[audit] ❌ {len(problems)} of {len(files)} checkpoints not extended: " + "; ".join(problems)
                     if problems else f"[audit] ✅ extends all {len(files)} signed checkpoints")
    emit(args, {"ok": ok, "count": r.count, "first_bad_id": r.first_bad_id, "reason": r.reason,
                "checkpoints": len(files), "checkpoint_problems": problems}, lines)
    return 0 if ok else 1


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from hms.attest import checkpoints

    with session_scope(read_only=True) as s:
        cp = checkpoints.publish(s, Path(args.dir) if args.dir else None)
    emit(args, {"ok": True, "size": cp.size, "head_hash": cp.head_hash, "at": cp.at, "keyid": cp.keyid,
                "path": str(cp.path)}, [cp.line()])
    return 0


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
