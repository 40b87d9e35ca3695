"""Which bundle a bare protocol id means to ``hms rule review ID`` and ``hms rule deploy ID --env ENV``.

A clerk thinks "review wildfire-aid-2024", not "review sha256:c4ce…"; the seed's chapters type it
that way. Everywhere else a bundle is named exactly (sha256, unique prefix, ``id@version``:
``deployments.resolve_bundle_row``), and so are these two commands when given such a reference. A bare
protocol id is read as:

- **review**: the protocol's bundle *awaiting review* — recorded, not rejected, its approval policy not
  yet satisfied, and not superseded (no newer version recorded: the clerk page refuses a superseded
  hash with 409, and the intake only ever takes up the newest version);
- **deploy to the first environment**: the newest recorded version, unless a clerk rejected it;
- **deploy to a later environment**: the bundle in force now in the environment before it — the one
  promotion order lets in. Whether it may enter (approvals for prod, freeze windows) is still the
  deploy's own check, which names what is missing (exit 1).

The answer is exactly one bundle. None is exit 2 saying why; more than one (a reference that is both a
protocol id and a hash prefix) is exit 2 naming every candidate as ``id@version (short sha)``, so the
caller can repeat the command with the one they mean. A refused reference changes nothing: this
module only reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from hms import deployments
from hms.errors import BadInput
from hms.pipeline_config import PipelineConfig
from hms.registry import store
from hms.registry.models import Bundle as BundleRow

if TYPE_CHECKING:
    from hms.bundle import Bundle

HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Candidate:
    """One bundle a reference could mean, named the way the user can type it back."""

    protocol_id: str
    version: int
    sha256: str

    @classmethod
    def of(cls, row: BundleRow) -> Candidate:
        return cls(row.protocol_id, row.version, row.sha256)

    @property
    def label(self) -> str:
        return f"{self.protocol_id}@{self.version} ({self.sha256[:12]})"


def for_review(s: Session, ref: str, config: PipelineConfig) -> Bundle:
    """The verified bundle ``hms rule review REF`` decides on (see the module docstring)."""
    rows = _protocol_rows(s, ref)
    if rows is None:
        return deployments.resolve_bundle(s, ref)
    newest = deployments.load_bundle(s, rows[0].sha256)  # rows[1:] are superseded by it
    status = deployments.approval_status(s, newest, config)
    label = Candidate.of(rows[0]).label
    if status.rejected:
        raise BadInput(f"nothing of {ref} awaits review: {label} was {status.summary()}", where="bundle")
    if status.satisfied:
        raise BadInput(f"nothing of {ref} awaits review: {label} is already {status.summary()}", where="bundle")
    return newest


def for_deploy(s: Session, ref: str, env: str, config: PipelineConfig) -> Bundle:
    """The verified bundle ``hms rule deploy REF --env ENV`` deploys (see the module docstring)."""
    rows = _protocol_rows(s, ref)
    if rows is None:
        return deployments.resolve_bundle(s, ref)
    names = config.environment_names
    if env not in names:
        raise BadInput(f"unknown environment {env!r} (known: {', '.join(names)})", where="--env")
    i = names.index(env)
    if i == 0:
        newest = deployments.load_bundle(s, rows[0].sha256)
        status = deployments.approval_status(s, newest, config)
        if status.rejected:
            raise BadInput(
                f"nothing of {ref} to deploy to {env}: its newest bundle {Candidate.of(rows[0]).label} was "
                f"{status.summary()} (name an older one as {ref}@VERSION to deploy it anyway)",
                where="bundle",
            )
        return newest
    before = names[i - 1]
    current = deployments.in_force(s, before, ref)
    if current is None:
        raise BadInput(
            f"nothing of {ref} is in force in {before}, and {env} takes the bundle in force there: "
            f"deploy to {before} first",
            where="bundle",
        )
    return deployments.load_bundle(s, current.bundle_sha256)


def _protocol_rows(s: Session, ref: str) -> list[BundleRow] | None:
    """The protocol's bundles (newest version first) when ``ref`` is a bare protocol id, else None.

    A reference that could be a hash prefix and names no protocol is left to the exact grammar. A bare
    id that is also a hash prefix of recorded bundles means two things: refused, naming both.
    """
    if "@" in ref or ref.startswith("sha256:"):
        return None
    rows = store.find_bundles(s, ref)
    hexlike = len(ref) >= 8 and set(ref) <= HEX
    if not rows:
        if hexlike:
            return None  # a hash prefix, or nothing: the exact grammar says which
        raise BadInput(
            f"no bundle of {ref!r} is recorded: push it first (hms rule push FILE), or name a bundle by "
            "sha256 or id@version",
            where="bundle",
        )
    if hexlike:
        by_hash = [r for r in store.find_bundles_by_prefix(s, ref) if r.protocol_id != ref]
        if by_hash:
            raise ambiguous(ref, [*rows, *by_hash])
    return rows


def ambiguous(ref: str, rows: Sequence[BundleRow]) -> BadInput:
    """The refusal of a reference that fits several bundles, naming each so the caller can pick one."""
    names = ", ".join(Candidate.of(r).label for r in rows)
    return BadInput(
        f"{ref!r} is ambiguous: it could mean {names}; name one as id@version or by its sha256", where="bundle"
    )
