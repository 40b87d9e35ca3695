"""The pipeline policy every gate enforces: the registry's newest applied policy, never the caller's file.

A gate that read ``$HMS_PIPELINE_CONFIG`` would enforce whatever the person at the keyboard wrote there
(one environment, one approval of a made-up role). So the policy — approvals, users and their roles,
environments and their order, freeze windows, chaos settings — is *applied* to the registry
(``hms config apply FILE``, audited with the file's sha256) by a user the pinned policy names as an
``admin``, and read back from there. Editing the file, or pointing ``HMS_PIPELINE_CONFIG`` elsewhere,
changes no gate until an admin applies it; each approval and deployment records the digest it met.

The first policy of a registry: in the embedded single-machine mode (SQLite under ``HMS_HOME``) the
first command that needs one applies the checkout's file, audited as a bootstrap — whoever owns
``HMS_HOME`` owns that machine's registry anyway. A shared registry (``HMS_DATABASE_URL``) is never
bootstrapped: its gates refuse until an admin has applied a policy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import approvals, clock, identity
from hms.errors import BadInput, CheckFailed
from hms.pipeline_config import PipelineConfig, config_path, parse_pipeline_config
from hms.registry import audit
from hms.registry.db import database_url, session_scope
from hms.registry.models import Policy

ADMIN_ROLE = "admin"


@dataclass(frozen=True)
class Applied:
    """What ``apply`` did: a new pinned policy, or nothing because this digest is pinned already."""

    sha256: str
    source: str
    applied_by: str
    applied_at: datetime
    changed: bool
    previous_sha256: str | None

    def line(self) -> str:
        if not self.changed:
            return f"[config] policy sha256:{self.sha256[:12]} is already the pinned one; nothing applied"
        was = f" (was sha256:{self.previous_sha256[:12]})" if self.previous_sha256 else ""
        return f"[config] ✅ {self.applied_by} pinned policy sha256:{self.sha256[:12]} from {self.source}{was}"


def current(s: Session) -> Policy | None:
    """The newest applied policy whose signed statement verifies (hms.attest.rows): a row inserted around
    ``hms config apply`` — another approval policy, more users — is never the policy."""
    from hms.attest.rows import policy_refusal

    for row in s.scalars(select(Policy).order_by(Policy.id.desc())):
        if policy_refusal(row) is None:
            return row
    return None


def parsed(row: Policy) -> PipelineConfig:
    return parse_pipeline_config(row.text, f"pinned policy sha256:{row.sha256[:12]}")


def admins(config: PipelineConfig) -> list[str]:
    return sorted(u for u, roles in (config.users or {}).items() if ADMIN_ROLE in roles)


def is_admin(config: PipelineConfig, actor: str) -> bool:
    return any(approvals.same_person(u, actor) for u in admins(config))


def apply(s: Session, text: str, source: str, *, actor: str, bootstrap: bool = False) -> Applied:
    """Pin ``text`` as the policy (a bad file is exit 2 and pins nothing; a non-admin is exit 1)."""
    config = parse_pipeline_config(text, source)
    if not admins(config) and not bootstrap:
        raise BadInput(f"users: nobody holds the {ADMIN_ROLE} role, so nobody could apply the next policy",
                       where=source)
    row = current(s)
    if row is not None and not is_admin(parsed(row), actor):
        raise CheckFailed(
            f"{actor} is not an {ADMIN_ROLE} of the pinned policy sha256:{row.sha256[:12]} "
            f"(admins: {', '.join(admins(parsed(row))) or 'none'}); nothing applied",
            where="hms config apply",
        )
    if row is not None and row.sha256 == config.sha256:
        return Applied(row.sha256, row.source, row.applied_by, row.applied_at, False, row.sha256)
    now = clock.now()
    new = Policy(sha256=config.sha256, text=text, source=source, applied_by=actor, applied_at=now)
    s.add(new)
    s.flush()
    from hms.attest.rows import sign_policy

    sign_policy(new)
    previous = row.sha256 if row is not None else None
    audit.append(s, actor=actor, action="config.apply", subject=f"policy:{config.sha256}",
                 details={"source": source, "previous_sha256": previous, "bootstrap": bootstrap})
    return Applied(config.sha256, source, actor, now, True, previous)


def embedded() -> bool:
    return database_url().startswith("sqlite")


def governing(s: Session | None = None) -> PipelineConfig:
    """The policy the gates enforce. In embedded mode the first call pins the checkout's file (see above)."""
    if s is not None:
        row = current(s)
        if row is not None:
            return parsed(row)
    else:
        with session_scope(read_only=True) as rs:
            row = current(rs)
            if row is not None:
                return parsed(row)
    if not embedded():
        raise CheckFailed("no pipeline policy is applied to this registry: an admin runs hms config apply FILE",
                          where="pipeline policy")
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise BadInput(f"cannot read pipeline config: {e.strerror}", where=str(path)) from None
    with session_scope() as ws:
        row = current(ws)  # another process may have bootstrapped meanwhile
        if row is None:  # by the account that owns this machine's registry, not a name typed in
            apply(ws, text, str(path), actor=identity.os_account(), bootstrap=True)
            row = current(ws)
        assert row is not None
        return parsed(row)


def require(s: Session, config: PipelineConfig) -> None:
    """A gate evaluated under another policy than the pinned one is refused (exit 1)."""
    row = current(s)
    if row is not None and row.sha256 != config.sha256:
        raise CheckFailed(
            f"evaluated under policy sha256:{config.sha256[:12] or 'unknown'} from {config.source}, but the pinned "
            f"policy is sha256:{row.sha256[:12]}: an admin applies a changed file with hms config apply",
            where="pipeline policy",
        )
