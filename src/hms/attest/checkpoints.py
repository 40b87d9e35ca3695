"""Signed checkpoints of the audit log, kept outside the database: a rewritten or truncated history shows.

The audit log is a hash chain (hms.registry.audit): anyone who can write the database and has read the
code can edit a row and recompute every later hash and the head, and ``hms audit verify`` alone would
say intact. A checkpoint — the log's size and the hash of its last entry at that size, and the time —
signed by the control plane and written where the database's writers cannot reach (``HMS_CHECKPOINT_DIR``,
default ``$HMS_HOME/checkpoints``; the publish step's task log prints each one too), pins that prefix:
``hms audit verify --checkpoint FILE|DIR`` finds the chain's entry at the checkpoint's size and compares
its hash. A recomputed row changes that hash; a truncation leaves fewer entries than the size.

Each checkpoint also signs the RFC 6962 Merkle root of those entries (hms.attest.merkle), so an evidence
file can prove, offline, that a version's audit entries are in the log the checkpoint signed and that each
checkpoint's log extends the one before.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms import clock
from hms.attest import envelopes, keys, merkle
from hms.attest.envelopes import Unverified
from hms.registry import audit
from hms.registry.models import AuditEntry, AuditHead

PAYLOAD_TYPE = "application/vnd.hms.audit-checkpoint+json"
DIR_ENV = "HMS_CHECKPOINT_DIR"


def directory() -> Path:
    from hms.registry.location import hms_home

    return Path(os.environ.get(DIR_ENV) or hms_home() / "checkpoints")


@dataclass(frozen=True)
class Checkpoint:
    size: int
    head_hash: str
    at: str
    keyid: str
    path: Path | None = None
    root: str | None = None  # RFC 6962 root of the first ``size`` entries (absent in checkpoints made before it)

    def line(self) -> str:
        return (f"[audit] checkpoint size={self.size} head={self.head_hash[:16]} at={self.at} "
                f"signed by {self.keyid[:16]}" + (f" → {self.path}" if self.path else ""))


def publish(s: Session, where: Path | None = None) -> Checkpoint:
    """Sign the log's current size and head, and write it to the checkpoint directory (never overwritten)."""
    head = s.get(AuditHead, 1)
    size, head_hash = (head.last_id, head.last_hash) if head else (0, audit.GENESIS)
    at = clock.now().isoformat()
    top = merkle.root(leaves(s, size)).hex()
    text = envelopes.sign_payload({"size": size, "head_hash": head_hash, "root": top, "at": at}, PAYLOAD_TYPE)
    folder = where or directory()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint-{size:09d}-{at.replace(':', '')}.json"
    with open(path, "x", encoding="utf-8") as f:
        f.write(text + "\n")
    _, keyid = envelopes.verify_payload(text, PAYLOAD_TYPE)
    return Checkpoint(size, head_hash, at, keyid, path, top)


def leaves(s: Session, size: int) -> list[bytes]:
    """The Merkle leaves of the log's first ``size`` entries: each entry's chain hash, which pins all of it."""
    q = select(AuditEntry.hash).where(AuditEntry.id <= size).order_by(AuditEntry.id)
    return [merkle.leaf_hash(bytes.fromhex(h)) for h in s.scalars(q)]


def parse(text: str, trust: keys.TrustedKeys | None = None, path: Path | None = None) -> Checkpoint:
    obj, keyid = envelopes.verify_payload(text, PAYLOAD_TYPE, trust)
    root = obj.get("root")
    return Checkpoint(int(obj["size"]), str(obj["head_hash"]), str(obj["at"]), keyid, path,
                      str(root) if root else None)


def read(path: Path) -> Checkpoint:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise Unverified(f"cannot read {path}: {e.strerror}") from None
    return parse(text, path=path)


def check(s: Session, cp: Checkpoint) -> str | None:
    """Why the database's log does not extend this checkpoint (None: it does). Read beside ``audit.verify``'s
    walk of the chain: with every link holding, the signed head hash pins every entry before it, so the Merkle
    root adds nothing here (and recomputing it per checkpoint would cost the whole log each time). The root is
    for the proofs in an evidence file, checked without the database."""
    if cp.size == 0:
        return None
    e = s.get(AuditEntry, cp.size)
    if e is None:
        count = s.query(AuditEntry).count()
        return f"the log has {count} entries, fewer than the {cp.size} the checkpoint of {cp.at} signed (truncated)"
    if e.hash != cp.head_hash:
        return (f"entry {cp.size} hashes to {e.hash[:16]}, the checkpoint of {cp.at} signed {cp.head_hash[:16]}: "
                "the history up to it was rewritten")
    return None
