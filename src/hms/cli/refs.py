"""How commands name a bundle, and how they keep a check's result with it.

A check run with the governed settings on a bundle the registry holds is kept by default: the gates of
every environment ask for it (hms.evidence), and a user who ran ``hms policy test pkg.tgz`` has run
exactly the check the gate wants. ``--record`` insists (an override is then exit 2), ``--no-record``
keeps nothing; with an override and neither flag, the check runs and says why it was not kept.

A bundle argument is a file (``pkg.tgz``) or a registry reference (``sha256:<hex>``, a unique hash
prefix, ``id@version``): the pipeline passes ``sha256:…`` so every step works on the exact bytes the
build step recorded, verified against that hash, wherever the step runs (worker or pod).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from hms import bundle


def add_record_options(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--record", dest="record", action="store_true", default=None,
                   help="keep the result with the bundle in the registry, or fail (exit 2) if it cannot be kept "
                        "(default: kept when run with the governed settings on a registered bundle)")
    g.add_argument("--no-record", dest="record", action="store_false", help="run the check, keep nothing")
    p.add_argument("--run-id", default=os.environ.get("HMS_RUN_ID"), help="pipeline run recording the result")


def decide_record(args: argparse.Namespace, kind: str, overrides: list[str], shas: list[str]) -> bool:
    """Whether this run's result is kept; sets ``args.record`` to the answer (exit 2 if --record cannot be met)."""
    from hms import evidence

    if args.record is False:
        return False
    if args.record:
        evidence.refuse_override(kind, overrides)
        args.record = True
        return True
    why = f"run with {', '.join(overrides)}" if overrides else _not_yours(kind) or _unregistered(shas)
    if why:
        print(f"[{kind}] not recorded as evidence: {why}", file=sys.stderr, flush=True)
    args.record = not why
    return args.record


def _not_yours(kind: str) -> str:
    """Why this process may not record evidence itself ("" if it may): on a shared registry only the pipeline
    writes directly, and a check's evidence is its run, so it is not posted by a client."""
    from hms import identity

    if identity.direct() is None:
        return f"on a shared registry the pipeline records the {kind} (its DAG run); this run keeps nothing"
    return ""


def _unregistered(shas: list[str]) -> str:
    from hms.registry import models
    from hms.registry.db import session_scope

    with session_scope(read_only=True) as s:
        missing = [sha for sha in shas if s.get(models.Bundle, sha) is None]
    if not missing:
        return ""
    return f"sha256:{missing[0][:12]} is not in the registry (hms rule push it, then run this again)"


def open_bundle(ref: str) -> bundle.Bundle:
    path = Path(ref)
    if path.exists() or ref.endswith((".tgz", ".tar.gz")):
        return bundle.read(path)
    from hms import deployments
    from hms.registry.db import session_scope

    with session_scope(read_only=True) as s:
        return deployments.resolve_bundle(s, ref)


def record_check(args: argparse.Namespace, kind: str, b: bundle.Bundle, ok: bool, payload: dict[str, Any]) -> None:
    if not getattr(args, "record", False):
        return
    from hms import identity
    from hms.registry import store
    from hms.registry.db import session_scope

    me = identity.current()
    with session_scope(principal=me.to_dict()) as s:
        store.record_check(s, sha256=b.sha256, kind=kind, ok=ok, summary=payload, actor=me.name,
                           run_id=args.run_id or me.run_id)
