"""``hms config apply|show``: pin the pipeline policy the gates enforce (hms.pinned_policy)."""

from __future__ import annotations

import argparse
from pathlib import Path

from hms import pinned_policy
from hms.cli import act, emit, emit_model
from hms.errors import BadInput
from hms.pipeline_config import config_path, load_pipeline_config
from hms.registry.db import session_scope


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="the pinned pipeline policy (what every gate enforces)")
    ps = p.add_subparsers(dest="config_command", required=True)
    ap = ps.add_parser("apply", help="pin FILE as the policy (admins of the pinned policy only; audited)")
    ap.add_argument("file", help="a pipeline config, e.g. .hms-ci/policy-pipeline.yml")
    ap.add_argument("--json", action="store_true")
    ap.set_defaults(handler=cmd_apply)
    show = ps.add_parser("show", help="the pinned policy's digest, who applied it, and whether FILE matches it")
    show.add_argument("file", nargs="?", help="compare with this file (default: the configured one)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=cmd_show)


def cmd_apply(args: argparse.Namespace) -> int:
    from hms.api.models import PolicyApplyIn, PolicyApplyOut

    path = Path(args.file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read pipeline config: {e.strerror}", where=str(path)) from None
    emit_model(args, act("/policy", PolicyApplyIn(text=text, source=str(path)), PolicyApplyOut, "apply_policy"))
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    pinned_policy.governing()  # embedded mode: the first use pins the checkout's file
    with session_scope(read_only=True) as s:
        row = pinned_policy.current(s)
        assert row is not None
        admins = pinned_policy.admins(pinned_policy.parsed(row))
        sha, source, by, at = row.sha256, row.source, row.applied_by, row.applied_at
    path = config_path(args.file)
    file_sha = load_pipeline_config(path).sha256 if path.is_file() else None
    same = file_sha == sha
    lines = [f"[config] pinned policy sha256:{sha[:12]} applied by {by} at {at.isoformat()} from {source}",
             f"[config] admins: {', '.join(admins)}"]
    if file_sha is None:
        lines.append(f"[config] {path} does not exist")
    elif same:
        lines.append(f"[config] {path} is the pinned policy")
    else:
        lines.append(f"[config] ⚠️ {path} (sha256:{file_sha[:12]}) differs from the pinned policy and changes no "
                     "gate until an admin runs hms config apply")
    emit(args, {"ok": True, "sha256": sha, "applied_by": by, "applied_at": at.isoformat(), "source": source,
                "admins": admins, "file": str(path), "file_sha256": file_sha, "file_is_pinned": same}, lines)
    return 0
