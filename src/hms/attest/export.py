"""Everything that put a version in force, in one file an inspector can check without the database.

``export`` gathers, for one bundle: its bytes, the signed statements of its reviews, checks and
deployments, the pinned policies those statements name, the signed audit checkpoints, and the public
keys. ``verify_file`` checks it offline: the bundle's hash and manifest, every envelope's signature
against the file's keys (their ids are printed, to compare with the keys the agency publishes), that
every statement is about this bundle, and that the signed reviews meet the approval policy they name.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from hms.attest import checkpoints, envelopes, keys, merkle, statements
from hms.attest.envelopes import Unverified
from hms.errors import BadInput

FORMAT = "hms-evidence/v1"


def export(s: Session, sha256: str) -> dict[str, Any]:
    from hms.registry import store
    from hms.registry.models import Approval, Check, Deployment, Policy

    row = store.get_bundle(s, sha256)
    if row is None:
        raise BadInput(f"no bundle sha256:{sha256} in the registry", where="REF")
    envs: list[str] = []
    digests: set[str] = set()
    for model in (Approval, Check, Deployment):
        for r in s.scalars(select(model).where(model.bundle_sha256 == sha256).order_by(model.id)):
            envs += [e for e in (r.envelope, getattr(r, "state_envelope", None)) if e]
            if getattr(r, "policy_sha256", None):
                digests.add(r.policy_sha256)
    policies = {p.sha256: p.text for p in s.scalars(select(Policy).where(Policy.sha256.in_(digests)))}
    folder = checkpoints.directory()
    cps = [p.read_text(encoding="utf-8").strip() for p in sorted(folder.glob("checkpoint-*.json"))] \
        if folder.is_dir() else []
    return {"format": FORMAT, "bundle": {"sha256": sha256, "base64": base64.b64encode(row.content).decode()},
            "statements": envs, "policies": policies, "checkpoints": cps, "audit": _audit_proofs(s, sha256, cps),
            "trusted_keys": json.loads(keys.trusted_keys_path().read_text(encoding="utf-8"))}


def _audit_proofs(s: Session, sha256: str, cps: list[str]) -> dict[str, Any]:
    """The bundle's audit entries with RFC 6962 inclusion proofs against the newest checkpoint that signed a
    Merkle root, and consistency proofs from each such checkpoint to the next: with them an inspector checks
    offline that these events are in the signed log and that no checkpoint's history was rewritten later."""
    from hms.registry.models import AuditEntry

    rooted: list[tuple[int, checkpoints.Checkpoint]] = []
    for i, text in enumerate(cps):
        try:
            cp = checkpoints.parse(text)
        except (Unverified, KeyError, ValueError, TypeError):
            continue
        if cp.root is not None and cp.size > 0:
            rooted.append((i, cp))
    rooted.sort(key=lambda x: x[1].size)
    found = list(s.scalars(select(AuditEntry).where(AuditEntry.subject == sha256).order_by(AuditEntry.id)))
    if not rooted:
        return {"anchor": None, "entries": [], "consistency": [], "unproven": len(found)}
    anchor_index, anchor = rooted[-1]
    leaves = checkpoints.leaves(s, anchor.size)
    entries = [{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "subject": e.subject,
                "details": e.details, "prev_hash": e.prev_hash, "hash": e.hash,
                "proof": [h.hex() for h in merkle.inclusion_proof(e.id - 1, leaves)]}
               for e in found if e.id <= anchor.size]
    consistency = [{"from": i, "to": j, "proof": [h.hex() for h in merkle.consistency_proof(a.size, leaves[:b.size])]}
                   for (i, a), (j, b) in itertools.pairwise(rooted)]
    return {"anchor": anchor_index, "entries": entries, "consistency": consistency,
            "unproven": len(found) - len(entries)}


@dataclass
class Report:
    ok: bool = True
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def fail(self, why: str) -> None:
        self.ok = False
        self.problems.append(why)
        self.lines.append(f"[evidence] ❌ {why}")


def verify_file(path: Path) -> Report:
    from hms import approvals, bundle
    from hms.pipeline_config import effective_approval_policy, parse_pipeline_config

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        assert data.get("format") == FORMAT
        raw = base64.b64decode(data["bundle"]["base64"])
        sha = str(data["bundle"]["sha256"])
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise BadInput(f"not an {FORMAT} file (hms evidence export)", where=str(path)) from None
    rep = Report()
    if hashlib.sha256(raw).hexdigest() != sha:
        rep.fail(f"the bundle's bytes do not hash to sha256:{sha}")
        return rep
    b = bundle.read_bytes(raw, "evidence bundle", sha)
    trust = keys.parse_trusted(json.dumps(data["trusted_keys"]), f"{path}: trusted_keys")
    parsed = {digest: parse_pipeline_config(text, f"policy sha256:{digest[:12]}")
              for digest, text in sorted(data.get("policies", {}).items())}
    for digest, policy in parsed.items():  # their allowed signers sign reviews
        if policy.sha256 == digest:
            trust = keys.with_signers(trust, policy)
    rep.lines.append(f"[evidence] bundle {b.protocol.id} v{b.protocol.version} sha256:{sha[:12]}; keys: "
                     + ", ".join(f"{k[:16]} ({t.owner})" for k, t in trust.keys.items()))
    reviews, deployed, checks = [], [], []
    for i, text in enumerate(data.get("statements", [])):
        ptype = _ptype(text)
        try:
            v = envelopes.verify(text, sha256=sha, predicate_type=ptype, expect={}, trust=trust)
        except Unverified as e:
            rep.fail(f"statement {i}: {e}")
            continue
        p = v.predicate
        if ptype == statements.REVIEW:
            reviews.append((approvals.Review(sha, p["reviewer"], p["role"], p["decision"]), p.get("policy_sha256")))
        elif ptype == statements.CHECK:
            checks.append(f"{p['kind']} {'passed' if p['ok'] else 'FAILED'}")
        elif ptype == statements.DEPLOYMENT:
            deployed.append(f"{p['environment']} from {p['activate_at']}")
        else:
            ended = f" until {p['ended_at']}" if p.get("ended_at") else ""
            deployed.append(f"{p['environment']} #{p['deployment_id']} {p['state']}{ended}")
    digest = next((d for _, d in reviews if d), None)
    if digest is None or digest not in parsed:
        rep.fail("no signed review names a pinned policy included in the file")
    else:
        config = parsed[digest]
        if config.sha256 != digest:
            rep.fail(f"the included policy does not hash to sha256:{digest}")
        st = approvals.evaluate(effective_approval_policy(config, b.protocol), [r for r, _ in reviews],
                                bundle_sha256=sha, author=b.protocol.author, user_roles=config.user_roles)
        said = f"reviews under policy sha256:{digest[:12]}: {st.summary()}"
        if st.satisfied:
            rep.lines.append(f"[evidence] ✅ {said}")
        else:
            rep.fail(said)
    rep.lines.append(f"[evidence] checks: {', '.join(checks) or 'none'}; deployments: {', '.join(deployed) or 'none'}")
    signed: list[checkpoints.Checkpoint | None] = []
    for text in data.get("checkpoints", []):
        try:
            signed.append(checkpoints.parse(text, trust))
        except (Unverified, KeyError, ValueError, TypeError) as e:
            signed.append(None)
            rep.fail(f"checkpoint: {e}")
    rep.lines.append(f"[evidence] {sum(c is not None for c in signed)} signed audit checkpoints")
    _verify_audit(rep, data.get("audit") or {}, signed, sha)
    if rep.ok:
        rep.lines.append(f"[evidence] ✅ {len(data.get('statements', []))} statements verified offline")
    return rep


def _verify_audit(rep: Report, audit_part: dict[str, Any], signed: list[checkpoints.Checkpoint | None],
                  sha: str) -> None:
    """Each exported audit entry hashes to its chain hash and is included in the anchor checkpoint's tree; each
    checkpoint's tree is a prefix of the next one's."""
    from datetime import datetime

    from hms.registry.audit import row_hash

    def rooted(i: object) -> checkpoints.Checkpoint | None:
        cp = signed[i] if isinstance(i, int) and 0 <= i < len(signed) else None
        return cp if cp is not None and cp.root is not None else None

    anchor = rooted(audit_part.get("anchor"))
    entries = audit_part.get("entries", [])
    if anchor is None:
        if entries or audit_part.get("unproven"):
            rep.fail("no signed checkpoint with a Merkle root anchors the audit entries")
        return
    proven = 0
    for e in entries:
        try:
            h = row_hash(e["prev_hash"], int(e["id"]), datetime.fromisoformat(e["at"]), e["actor"], e["action"],
                         e["subject"], e["details"])
            ok = (h == e["hash"] and e["subject"] == sha and merkle.verify_inclusion(
                merkle.leaf_hash(bytes.fromhex(h)), int(e["id"]) - 1, anchor.size,
                [bytes.fromhex(x) for x in e["proof"]], bytes.fromhex(anchor.root or "")))
        except (KeyError, TypeError, ValueError):
            ok = False
        if ok:
            proven += 1
        else:
            rep.fail(f"audit entry {e.get('id') if isinstance(e, dict) else '?'} is not in the log the checkpoint "
                     f"of {anchor.at} signed")
    for c in audit_part.get("consistency", []):
        a, b = rooted(c.get("from")), rooted(c.get("to"))
        if a is None or b is None or not merkle.verify_consistency(
                a.size, b.size, bytes.fromhex(a.root or ""), bytes.fromhex(b.root or ""),
                [bytes.fromhex(x) for x in c.get("proof", [])]):
            rep.fail(f"checkpoint {c.get('to')}'s log does not extend checkpoint {c.get('from')}'s: history rewritten")
    later = int(audit_part.get("unproven") or 0)
    rep.lines.append(f"[evidence] {proven} audit entries proved in the log signed at size {anchor.size}"
                     f" ({anchor.at}); {len(audit_part.get('consistency', []))} checkpoint consistency proofs"
                     + (f"; {later} later entries after the newest checkpoint" if later else ""))


def _ptype(text: str) -> str:
    """The predicate type the statement claims (verification then holds it to that type)."""
    try:
        return str(json.loads(base64.b64decode(json.loads(text)["payload"])).get("predicateType"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""
