"""Sign a Statement into a DSSE envelope, and verify one against the trusted keys — failing closed.

``verify`` answers a ``Verified`` or raises ``Unverified`` naming why: not an envelope, another payload
type, no signature by a trusted key that counts at the statement's time, a signature that does not
verify, or a statement that does not say what the caller expects (another bundle hash, another
predicate type, another policy digest, user, role, environment…): a replayed envelope is refused like a
forged one. Results are cached by the envelope's bytes: a replica reloading 1,000 deployments verifies
each once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from securesystemslib.dsse import Envelope
from securesystemslib.exceptions import VerificationError

from hms.attest import keys, statements

_cache: dict[tuple[str, int], Verified] = {}  # keyed by the envelope's text itself (its hash is cached by Python)
_lock = threading.Lock()
CACHE_MAX = 50_000


class Unverified(Exception):
    """Evidence that does not count, and why."""


@dataclass(frozen=True)
class Verified:
    statement: dict[str, Any]
    keyid: str
    owner: str

    @property
    def predicate(self) -> dict[str, Any]:
        return self.statement["predicate"]


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(statement: dict[str, Any], signer: Any | None = None) -> str:
    """The DSSE envelope (JSON text) of ``statement`` signed by ``signer`` (default: the control plane)."""
    env = Envelope(payload=_canonical(statement), payload_type=statements.PAYLOAD_TYPE, signatures={})
    env.sign(signer or keys.control_plane_signer())
    return json.dumps(env.to_dict(), sort_keys=True, separators=(",", ":"))


def verify(text: str | None, *, sha256: str, predicate_type: str, expect: Mapping[str, Any],
           owner: str | None = None, trust: keys.TrustedKeys | None = None) -> Verified:
    """The verified statement of ``text``, bound to this bundle, predicate and the expected fields; against
    the trusted keys file, or ``trust`` (an offline evidence file's keys)."""
    if not text:
        raise Unverified("unsigned")
    offline = trust
    trust = trust or keys.trusted()
    cache_key = (text, trust.generation)
    with _lock:
        done = _cache.get(cache_key)
    if done is None:
        done = _verify_signature(text, trust, offline)
        with _lock:
            if len(_cache) >= CACHE_MAX:
                _cache.clear()
            _cache[cache_key] = done
    _bind(done, sha256=sha256, predicate_type=predicate_type, expect=expect, owner=owner, trust=trust)
    return done


def _verify_signature(text: str, trust: keys.TrustedKeys, offline: keys.TrustedKeys | None = None) -> Verified:
    try:
        env = Envelope.from_dict(json.loads(text))
    except (ValueError, KeyError, TypeError) as e:
        raise Unverified(f"not a DSSE envelope ({e})") from None
    if env.payload_type != statements.PAYLOAD_TYPE:
        raise Unverified(f"payload type {env.payload_type!r}, not an in-toto statement")
    try:
        stmt = json.loads(env.payload)
        at = datetime.fromisoformat(stmt["predicate"]["at"])
    except (ValueError, KeyError, TypeError):
        raise Unverified("the payload is not a statement with a predicate time") from None
    candidates = [t for kid in env.signatures if (t := trust.get(kid)) is not None]
    if not candidates and offline is None:  # a key listed a moment ago: look at the file again before refusing
        trust = keys.trusted(fresh=True)
        candidates = [t for kid in env.signatures if (t := trust.get(kid)) is not None]
    if not candidates:
        raise Unverified("signed by no trusted key")
    counting = [t for t in candidates if t.counts_at(at)]
    if not counting:
        raise Unverified(f"signed by a key revoked before {at.isoformat()}")
    try:
        accepted = env.verify([t.key for t in counting], 1)
    except VerificationError:
        raise Unverified("the signature does not verify") from None
    keyid = next(iter(accepted))
    return Verified(stmt, keyid, trust.keys[keyid].owner)


def _bind(v: Verified, *, sha256: str, predicate_type: str, expect: Mapping[str, Any], owner: str | None,
          trust: keys.TrustedKeys | None = None) -> None:
    s = v.statement
    if s.get("_type") != statements.STATEMENT_TYPE:
        raise Unverified("not an in-toto Statement v1")
    if s.get("predicateType") != predicate_type:
        raise Unverified(f"a {s.get('predicateType')} statement, not {predicate_type}")
    digests = [sub.get("digest", {}).get("sha256") for sub in s.get("subject", [])]
    if digests != [sha256]:
        raise Unverified(f"about sha256:{(digests or ['?'])[0]}, not this bundle sha256:{sha256}")
    for field, want in expect.items():
        got = v.predicate.get(field)
        if got != want:
            raise Unverified(f"says {field}={got!r}, the row says {want!r}")
    if owner is not None and v.owner not in (owner, keys.CONTROL_PLANE):
        raise Unverified(f"signed by {v.owner}, who is not {owner}")
    if owner is not None and v.owner != owner and trust is not None and trust.has_own_key(owner):
        raise Unverified(f"{owner} signs their own decisions; this one is signed by {v.owner}")


def reset() -> None:
    with _lock:
        _cache.clear()


def sign_payload(obj: dict[str, Any], payload_type: str, signer: Any | None = None) -> str:
    """A DSSE envelope of any JSON object (an audit checkpoint) with its own payload type."""
    env = Envelope(payload=_canonical(obj), payload_type=payload_type, signatures={})
    env.sign(signer or keys.control_plane_signer())
    return json.dumps(env.to_dict(), sort_keys=True, separators=(",", ":"))


def verify_payload(text: str, payload_type: str, trust: keys.TrustedKeys | None = None
                   ) -> tuple[dict[str, Any], str]:
    """The object inside a DSSE envelope of ``payload_type`` signed by a trusted control-plane key, and the key id."""
    try:
        env = Envelope.from_dict(json.loads(text))
        obj = json.loads(env.payload)
        at = datetime.fromisoformat(obj["at"])
    except (ValueError, KeyError, TypeError) as e:
        raise Unverified(f"not a signed {payload_type} ({e})") from None
    if env.payload_type != payload_type:
        raise Unverified(f"payload type {env.payload_type!r}, not {payload_type}")
    trust = trust or keys.trusted()
    counting = [t for kid in env.signatures if (t := trust.get(kid)) is not None
                and t.owner == keys.CONTROL_PLANE and t.counts_at(at)]
    if not counting:
        raise Unverified("signed by no trusted control-plane key")
    try:
        accepted = env.verify([t.key for t in counting], 1)
    except VerificationError:
        raise Unverified("the signature does not verify") from None
    return obj, next(iter(accepted))
