"""``hms evidence export REF | verify FILE``: what put a version in force, checked without the database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hms.cli import emit


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evidence", help="export and check the signed evidence of a bundle (offline)")
    ps = p.add_subparsers(dest="evidence_command", required=True)
    ex = ps.add_parser("export", help="write the bundle, its signed statements, policies, checkpoints and keys")
    ex.add_argument("ref", metavar="REF", help="sha256, prefix or id@version")
    ex.add_argument("--out", required=True, help="the evidence file to write")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(handler=cmd_export)
    ve = ps.add_parser("verify", help="check an evidence file without the database (exit 1 when it does not hold)")
    ve.add_argument("file")
    ve.add_argument("--json", action="store_true")
    ve.set_defaults(handler=cmd_verify)
    register_keygen(sub)


def cmd_export(args: argparse.Namespace) -> int:
    from hms import deployments
    from hms.attest import export
    from hms.registry.db import session_scope

    with session_scope(read_only=True) as s:
        sha = deployments.resolve_bundle_row(s, args.ref).sha256
        data = export.export(s, sha)
    Path(args.out).write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    emit(args, {"ok": True, "sha256": sha, "statements": len(data["statements"]), "file": args.out},
         [f"[evidence] {len(data['statements'])} statements, {len(data['checkpoints'])} checkpoints of "
          f"sha256:{sha[:12]} → {args.out}"])
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from hms.attest import export

    rep = export.verify_file(Path(args.file))
    emit(args, {"ok": rep.ok, "problems": rep.problems}, rep.lines)
    return 0 if rep.ok else 1


def register_keygen(sub: argparse._SubParsersAction) -> None:
    kg = sub.add_parser("keygen", help="a clerk's own Ed25519 key, and the policy entry allowing it")
    kg.add_argument("--out", required=True, help="the private key file to create (mode 0600)")
    kg.add_argument("--user", required=True, help="whose key (the Airflow user name it will sign for)")
    kg.set_defaults(handler=cmd_keygen)


def cmd_keygen(args: argparse.Namespace) -> int:
    from hms.attest import keys
    from hms.errors import BadInput

    try:
        entry = keys.generate_user_key(Path(args.out), args.user)
    except FileExistsError:
        raise BadInput("exists already; a key is never overwritten (choose another --out)", where=args.out) from None
    print(f"[keys] {args.out} (0600); an admin adds this to the pipeline policy's signers and applies it "
          "(hms config apply): from then on only this key signs for them")
    print(json.dumps(entry, sort_keys=True))
    return 0
