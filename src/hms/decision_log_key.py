"""The secret each environment's decision log hashes personal inputs with (hms.decision_masking).

A file outside the log and outside the registry: ``HMS_DECISION_LOG_KEY`` (a mounted secret in a cluster),
default ``$HMS_HOME/secrets/decision-log-<env>.key``, created 0600 with 32 random bytes the first time an
environment logs. Per environment, so a staging log (tests, rehearsals) cannot be joined with prod's. The log
records only the key's id (the first hex digits of its SHA-256), so ``hms decisions`` and replay can tell which
hashes are comparable without ever holding the key; whoever holds it can test a guessed value, which is why
a protected input is never hashed, only dropped.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from hms.errors import BadInput

KEY_ENV = "HMS_DECISION_LOG_KEY"
KEY_BYTES = 32


@dataclass(frozen=True)
class LogKey:
    secret: bytes
    id: str  # what a logged row records: identifies the key, reveals nothing of it


def key_path(environment: str) -> Path:
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return Path(explicit)
    from hms.registry.location import hms_home

    return hms_home() / "secrets" / f"decision-log-{environment}.key"


def load(environment: str) -> LogKey:
    """The environment's key, created on first use; a key file others may read is refused (exit 2)."""
    path = key_path(environment)
    if not path.exists():
        _create(path)
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise BadInput(f"the decision log key is readable by others (mode {mode:o}); chmod 600 it", where=str(path))
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        raise BadInput("the decision log key is not hex", where=str(path)) from None
    if len(secret) < 16:
        raise BadInput(f"the decision log key has {len(secret)} bytes; at least 16", where=str(path))
    return LogKey(secret, hashlib.sha256(secret).hexdigest()[:12])


def _create(path: Path) -> None:
    """Write a fresh key atomically: replicas starting together agree on one key (link fails if one won)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, secrets.token_hex(KEY_BYTES).encode() + b"\n")
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
