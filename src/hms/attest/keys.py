"""Who may sign evidence: a signer whose private key is outside the registry, and the trusted public keys.

The control plane (the api-server, the pipeline's workers) signs with an Ed25519 key read from
``HMS_SIGNING_KEY`` (a PEM file or a mounted secret; default ``$HMS_HOME/keys/control-plane.pem``). Gates
and replicas trust the public keys in ``HMS_TRUSTED_KEYS`` (default ``$HMS_HOME/keys/trusted.json``), a
file outside the database: read-only database credentials and that file are all a replica needs. When
neither exists the first signer creates the pair (the private key 0600 from its first byte) and lists
its public half; a shared install gives every replica and pod the same trusted.json (a mounted file).
Those are the control plane's keys. A clerk who signs their own decisions is listed with their public keys
in the pinned policy's ``signers`` (``with_signers``): changing who may sign for whom is then an admin's
audited, signed ``hms config apply``, not an edit of a file on one server. Any key may carry ``retired_at``
(signs no more; its earlier signatures still count) or ``revoked_at`` (nothing it signed for a time after
that counts).

The signer is securesystemslib's ``Signer`` interface, so a KMS signer (securesystemslib ships AWS, GCP,
Azure, Vault and HSM signers) can replace the file later without touching the callers.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from securesystemslib.signer import CryptoSigner, Key, Signer, SSlibKey

from hms.errors import BadInput

if TYPE_CHECKING:
    from hms.pipeline_config import PipelineConfig

KEY_ENV = "HMS_SIGNING_KEY"
TRUST_ENV = "HMS_TRUSTED_KEYS"
CONTROL_PLANE = "control-plane"
_lock = threading.Lock()
_cache: dict[tuple[str, float], TrustedKeys] = {}
_signers: dict[str, Signer] = {}
_generation = 0


def _home() -> Path:
    from hms.registry.location import hms_home

    return hms_home()


def signing_key_path() -> Path:
    return Path(os.environ.get(KEY_ENV) or _home() / "keys" / "control-plane.pem")


def trusted_keys_path() -> Path:
    return Path(os.environ.get(TRUST_ENV) or _home() / "keys" / "trusted.json")


@dataclass(frozen=True)
class TrustedKey:
    key: Key
    owner: str  # "control-plane" | "user:<name>"
    retired_at: datetime | None = None
    revoked_at: datetime | None = None

    def counts_at(self, at: datetime) -> bool:
        """Whether a signature on a statement made at ``at`` counts (a revoked key's later ones do not)."""
        return self.revoked_at is None or at < self.revoked_at


@dataclass(frozen=True)
class TrustedKeys:
    keys: dict[str, TrustedKey]
    source: str
    generation: int = 0  # a new one each time the file is read: verification caches key on it

    def get(self, keyid: str) -> TrustedKey | None:
        return self.keys.get(keyid)

    def has_own_key(self, owner: str) -> bool:
        """Whether ``owner`` (``user:<name>``) signs for themselves: then only their own signature counts."""
        return any(t.owner == owner and t.revoked_at is None for t in self.keys.values())


def _when(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        raise BadInput(f"not an ISO time with offset: {value!r}", where=where) from None
    if at.tzinfo is None:
        raise BadInput("a time needs its UTC offset", where=where)
    return at


def parse_trusted(text: str, source: str) -> TrustedKeys:
    try:
        data = json.loads(text)
        entries = data["keys"]
        assert isinstance(entries, list)
    except (ValueError, KeyError, TypeError, AssertionError):
        raise BadInput('not a trusted-keys file: {"keys": [{"keyid", "key", "owner"}, …]}', where=source) from None
    keys: dict[str, TrustedKey] = {}
    for i, e in enumerate(entries):
        where = f"{source}: keys[{i}]"
        owner = str(e.get("owner")) if isinstance(e, dict) else ""
        if owner != CONTROL_PLANE:
            raise BadInput(f"owner must be {CONTROL_PLANE!r}, not {owner!r}: a clerk's key is listed in the pinned "
                           "policy's signers (hms keygen prints the entry)", where=where)
        t = _entry(e, owner, where)
        keys[t.key.keyid] = t
    return TrustedKeys(keys, source)


def _entry(e: object, owner: str, where: str) -> TrustedKey:
    try:
        assert isinstance(e, dict)
        key = Key.from_dict(str(e["keyid"]), dict(e["key"]))
    except (AssertionError, KeyError, TypeError, ValueError) as err:
        raise BadInput(f"a key needs keyid and key (securesystemslib form) ({err})", where=where) from None
    return TrustedKey(key, owner, _when(e.get("retired_at"), where), _when(e.get("revoked_at"), where))


_with: dict[tuple[int, str], TrustedKeys] = {}


def with_signers(trust: TrustedKeys, config: PipelineConfig | None) -> TrustedKeys:
    """``trust`` plus the clerks' keys the pinned policy ``config`` lists: what a review is verified against.
    Only a review can be signed by such a key (its owner is ``user:<name>``, never the control plane)."""
    if config is None or not config.signers:
        return trust
    global _generation
    with _lock:
        found = _with.get((trust.generation, config.sha256))
        if found is not None:
            return found
    merged = dict(trust.keys)
    for user, entries in config.signers:
        for i, e in enumerate(entries):
            t = _entry(e, f"user:{user}", f"{config.source}: signers.{user}[{i}]")
            if t.key.keyid in trust.keys:
                raise BadInput(f"key {t.key.keyid[:16]} is the control plane's: a clerk signs with their own",
                               where=f"{config.source}: signers.{user}[{i}]")
            merged[t.key.keyid] = t
    with _lock:
        _generation += 1
        found = TrustedKeys(merged, f"{trust.source} + {config.source}", _generation)
        if len(_with) > 64:
            _with.clear()
        _with[(trust.generation, config.sha256)] = found
        return found


RECHECK_SECONDS = 1.0  # how stale the trusted keys may be: a revocation counts within a second
_last: tuple[float, str, TrustedKeys] | None = None


def trusted(*, fresh: bool = False) -> TrustedKeys:
    """The trusted public keys (re-read when the file changes, looked at once a second at most, or now with
    ``fresh``: a signature by a key not seen yet makes the verifier look again before refusing it)."""
    global _generation, _last
    now = time.monotonic()
    path_text = os.environ.get(TRUST_ENV) or ""
    last = _last
    if not fresh and last is not None and now - last[0] < RECHECK_SECONDS and last[1] == path_text + str(_home()):
        return last[2]
    path = trusted_keys_path()
    if not path.exists() and not signing_key_path().exists():
        control_plane_signer()  # a fresh home: creates the key pair and lists its public half
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        raise BadInput(f"no trusted keys: {TRUST_ENV} (or {path}) must list the public keys evidence is signed "
                       "with", where=str(path)) from None
    with _lock:
        cached = _cache.get((str(path), mtime))
        if cached is None:
            _generation += 1
            parsed = parse_trusted(path.read_text(encoding="utf-8"), str(path))
            cached = TrustedKeys(parsed.keys, parsed.source, _generation)
            _cache.clear()
            _cache[(str(path), mtime)] = cached
        _last = (now, path_text + str(_home()), cached)
        return cached


def control_plane_signer() -> Signer:
    """The control plane's signer; in embedded mode its key pair is created on first use."""
    path = signing_key_path()
    with _lock:
        if str(path) in _signers:
            return _signers[str(path)]
        if not path.exists():
            _create(path)
        signer = file_signer(path)
        _signers[str(path)] = signer
        return signer


def _new_private_key(path: Path, dir_mode: int = 0o777) -> SSlibKey:
    """A new Ed25519 private key written to ``path`` (which must not exist: FileExistsError), 0600 from its
    first byte; its public half."""
    private = Ed25519PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=dir_mode)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    return SSlibKey.from_crypto(private.public_key())


def _create(path: Path) -> None:
    """The control plane's key pair: the private key at ``path``, its public half added to the trust file."""
    creating = path.with_suffix(".creating")
    try:  # several processes of a fresh stack may sign first at once: one creates, the others wait for it
        public = _new_private_key(creating, 0o700)
    except FileExistsError:
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        return
    add_trusted(public, CONTROL_PLANE)  # trusted first: once the key exists, what it signs verifies
    creating.replace(path)


def add_trusted(key: Key, owner: str) -> None:
    path = trusted_keys_path()
    data = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"keys": []}
    data["keys"] = [e for e in data["keys"] if e.get("keyid") != key.keyid]
    data["keys"].append({"keyid": key.keyid, "key": key.to_dict(), "owner": owner})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    global _last
    _last = None


def reset() -> None:
    """Forget cached signers and trust files (tests that switch HMS_HOME)."""
    global _last
    with _lock:
        _cache.clear()
        _with.clear()
        _signers.clear()
        _last = None


def generate_user_key(path: Path, user: str) -> dict[str, object]:
    """A clerk's own Ed25519 key (private PEM, 0600) and the ``signers`` entry an admin adds to the policy."""
    public = _new_private_key(path)
    return {"signers": {user: [{"keyid": public.keyid, "key": public.to_dict()}]}}


def file_signer(path: Path) -> Signer:
    """A signer from an Ed25519 private key file (the control plane's, or a clerk's ``--sign-with``)."""
    try:
        private = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot read the key: {e}", where=str(path)) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise BadInput("the key must be Ed25519 (hms keygen makes one)", where=str(path))
    return CryptoSigner(private)
