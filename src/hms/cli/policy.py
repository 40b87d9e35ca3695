"""``hms policy pack|verify|test``: build a bundle, check it, run its cases."""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from hms import bundle, protocol
from hms.cases import run_cases
from hms.cli import emit
from hms.errors import BadInput
from hms.registry import store
from hms.registry.db import session_scope


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

    test = ps.add_parser("test", help="run the bundle's test cases through both backends")
    test.add_argument("bundle")
    test.add_argument("--json", action="store_true")
    test.set_defaults(handler=cmd_test)


def actor() -> str:
    """Who is acting: HMS_ACTOR (set by the pipeline), else the OS user."""
    return os.environ.get("HMS_ACTOR") or getpass.getuser()


def cmd_pack(args: argparse.Namespace) -> int:
    proto = protocol.load(args.protocol)
    raw = bundle.build(proto)
    digest = bundle.sha256_hex(raw)
    out = Path(args.out)
    if out.exists() and out.is_dir():
        raise BadInput("--out is a directory; give a file name such as pkg.tgz", where=str(out))
    # Record first, then write: a failure leaves neither a bundle file nor a registry row.
    with session_scope() as s:
        _, created = store.record_bundle(
            s,
            sha256=digest,
            protocol_id=proto.id,
            version=proto.version,
            content=raw,
            manifest=bundle.read_bytes(raw).manifest,
            created_by=actor(),
        )
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


def cmd_test(args: argparse.Namespace) -> int:
    b = bundle.read(args.bundle)
    results = run_cases(b.protocol)
    failed = [r for r in results if not r.ok]
    lines = [r.line() for r in results]
    if failed:
        lines.append(f"[test] ❌ {len(failed)} of {len(results)} tests failed ({b.protocol.id} v{b.protocol.version})")
    else:
        lines.append(f"[test] ✅ {len(results)} tests ({b.protocol.id} v{b.protocol.version}, both backends)")
    emit(
        args,
        {
            "ok": not failed,
            "sha256": b.sha256,
            "total": len(results),
            "failed": len(failed),
            "cases": [{"name": r.name, "ok": r.ok, "mismatches": r.mismatches} for r in results],
        },
        lines,
    )
    return 1 if failed else 0
