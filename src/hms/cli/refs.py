"""How commands name a bundle, and how they keep a check's result with it.

A bundle argument is a file (``pkg.tgz``) or a registry reference (``sha256:<hex>``, a unique hash
prefix, ``id@version``): the pipeline passes ``sha256:…`` so every step works on the exact bytes the
build step recorded, verified against that hash, wherever the step runs (worker or pod).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from hms import bundle


def add_record_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--record", action="store_true", help="keep the result with the bundle in the registry")
    p.add_argument("--run-id", default=os.environ.get("HMS_RUN_ID"), help="pipeline run recording the result")


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
    from hms.cli import actor
    from hms.registry import store
    from hms.registry.db import session_scope

    with session_scope() as s:
        store.record_check(s, sha256=b.sha256, kind=kind, ok=ok, summary=payload, actor=actor(), run_id=args.run_id)
