"""Reading and writing registry rows that more than one command needs."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hms import clock
from hms.errors import BadInput
from hms.registry import audit
from hms.registry.models import Bundle, Check, EnvGeneration


def record_bundle(
    s: Session,
    *,
    sha256: str,
    protocol_id: str,
    version: int,
    content: bytes,
    manifest: dict[str, Any],
    created_by: str,
) -> tuple[Bundle, bool]:
    """Store a bundle once (its hash is its key); returns (row, created).

    The same bytes again are a no-op, so pushes are idempotent and two concurrent pushes
    of one protocol leave one row. A *different* bundle claiming an id and version that
    already exist is refused: versions are immutable names for one content.
    """
    existing = s.get(Bundle, sha256)
    if existing is not None:
        return existing, False
    _refuse_version_clash(s, protocol_id, version)
    row = Bundle(
        sha256=sha256,
        protocol_id=protocol_id,
        version=version,
        size=len(content),
        created_by=created_by,
        created_at=clock.now(),
        manifest=json.dumps(manifest, sort_keys=True),
        content=content,
    )
    try:
        with s.begin_nested():
            s.add(row)
    except IntegrityError:  # a concurrent push won (PostgreSQL; SQLite serializes writers)
        again = s.get(Bundle, sha256)
        if again is not None:  # the same bytes: nothing to do
            return again, False
        _refuse_version_clash(s, protocol_id, version)  # other bytes under this version: refused, as above
        raise
    audit.append(
        s,
        actor=created_by,
        action="bundle.recorded",
        subject=sha256,
        details={"protocol_id": protocol_id, "version": version, "size": len(content)},
    )
    return row, True


def _refuse_version_clash(s: Session, protocol_id: str, version: int) -> None:
    """Other bytes under a recorded version are refused, and the refusal says how to go on.

    A plain Trigger of a pipeline DAG packs the repository file; on a clone whose file differs from what was
    pushed under its version, that was a dead end in the UI. Both ways out are named: run the recorded bundle
    (the trigger form's ``bundle`` field, or ``hms ci run … --bundle``), or give the change a new version.
    """
    clash = s.scalar(select(Bundle).where(Bundle.protocol_id == protocol_id, Bundle.version == version))
    if clash is not None:
        newest = s.scalar(select(func.max(Bundle.version)).where(Bundle.protocol_id == protocol_id)) or version
        raise BadInput(
            f"{protocol_id} version {version} is already recorded as sha256:{clash.sha256[:12]}…; "
            "a changed protocol needs a higher metadata.version. To run a pushed bundle instead, pick it in "
            "the Airflow trigger form's 'bundle' field (Trigger → bundle), or run "
            f"`hms ci run .hms-ci/policy-pipeline.yml --bundle {protocol_id}@{version}`; to run this file, "
            f"raise its metadata.version above {newest} (the newest recorded)",
            where="metadata.version",
        )


def get_bundle(s: Session, sha256: str) -> Bundle | None:
    return s.get(Bundle, sha256)


def find_bundles(s: Session, protocol_id: str) -> list[Bundle]:
    """Every bundle of a protocol, newest version first."""
    return list(s.scalars(select(Bundle).where(Bundle.protocol_id == protocol_id).order_by(Bundle.version.desc())))


def find_bundles_by_prefix(s: Session, prefix: str) -> list[Bundle]:
    return list(s.scalars(select(Bundle).where(Bundle.sha256.startswith(prefix, autoescape=True)).limit(10)))


def protocol_ids(s: Session) -> list[str]:
    return sorted(s.scalars(select(Bundle.protocol_id).distinct()))


def lock_environment(s: Session, env: str) -> None:
    """Serialize changes to one environment (row lock on PostgreSQL; SQLite writers are already serial)."""
    row = s.scalars(select(EnvGeneration).where(EnvGeneration.environment == env).with_for_update()).first()
    if row is None:
        try:
            with s.begin_nested():
                s.add(EnvGeneration(environment=env, generation=0))
        except IntegrityError:
            pass
        s.scalars(select(EnvGeneration).where(EnvGeneration.environment == env).with_for_update()).one()


def bump_generation(s: Session, env: str) -> int:
    lock_environment(s, env)
    s.execute(
        update(EnvGeneration).where(EnvGeneration.environment == env).values(generation=EnvGeneration.generation + 1)
    )
    return generation(s, env)


def generation(s: Session | Connection, env: str) -> int:
    """The environment's change counter (a Connection will do: the decision service polls this)."""
    return s.scalar(select(EnvGeneration.generation).where(EnvGeneration.environment == env)) or 0


def record_check(
    s: Session, *, sha256: str, kind: str, ok: bool, summary: dict[str, Any], actor: str, run_id: str | None = None
) -> Check:
    """Keep a check's result with the bundle (clerks read these) and audit it."""
    if s.get(Bundle, sha256) is None:
        raise BadInput(f"no bundle {sha256} in the registry; pack it first", where="bundle")
    row = Check(
        bundle_sha256=sha256,
        kind=kind,
        ok=ok,
        summary=json.dumps(summary, sort_keys=True, default=str),
        at=clock.now(),
        actor=actor,
        run_id=run_id,
    )
    from hms.attest.rows import sign_check

    sign_check(row)
    s.add(row)
    s.flush()
    audit.append(s, actor=actor, action=f"check.{kind}", subject=sha256, details={"ok": ok, "run_id": run_id})
    return row


def latest_checks(s: Session, sha256: str) -> dict[str, Check]:
    """The newest result of each kind of check for one bundle, among those whose signed statement verifies
    (hms.attest.rows): a green row inserted around the core is no evidence."""
    from hms.attest.rows import check_refusal

    out: dict[str, Check] = {}
    for c in s.scalars(select(Check).where(Check.bundle_sha256 == sha256).order_by(Check.id)):
        if check_refusal(c) is None:
            out[c.kind] = c
    return out
