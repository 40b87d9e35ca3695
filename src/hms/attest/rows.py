"""The signed statement of each evidence row: made when the row is written, checked whenever it is relied on.

Each row keeps its DSSE envelope (``envelope``). What counts is what the statement says, and only where
it says what the row says: a row written around the core (no envelope), edited after signing, or given
another row's envelope (another hash, user, role, decision, environment, policy digest) is refused with
the reason — by the approval count, the evidence gates, ``in_force`` and every decision-service replica.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from hms.attest import envelopes, statements
from hms.attest.envelopes import Unverified
from hms.registry.models import Approval, Check, Deployment, Policy

log = logging.getLogger(__name__)


def _t(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _digest(text: str | None) -> str:
    return hashlib.sha256((text or "").encode()).hexdigest()


# ---- reviews ------------------------------------------------------------------------------------------------


def _approval_predicate(a: Approval) -> dict[str, Any]:
    return {"reviewer": a.user, "role": a.role, "decision": a.decision, "comment_sha256": _digest(a.comment),
            "policy_sha256": a.policy_sha256, "at": _t(a.at)}


def sign_approval(a: Approval, principal: dict[str, Any] | None = None) -> None:
    pred = {**_approval_predicate(a), "principal": principal}
    a.envelope = envelopes.sign(statements.statement(a.bundle_sha256, statements.REVIEW, pred))


def review_statement(sha256: str, *, reviewer: str, role: str, decision: str, comment: str,
                     policy_sha256: str | None, at: datetime) -> dict[str, Any]:
    """What a clerk signs with their own key (``hms rule review --sign-with``): the row the server will keep."""
    return statements.statement(sha256, statements.REVIEW, {
        "reviewer": reviewer, "role": role, "decision": decision, "comment_sha256": _digest(comment),
        "policy_sha256": policy_sha256, "at": _t(at)})


def accept_signed_review(a: Approval, envelope: str, *, skew_seconds: float = 300) -> None:
    """Keep a clerk's own signature as the row's evidence: it must be theirs and say exactly what the row says
    (its time within ``skew_seconds`` of now, and then the row's time). BadInput (exit 2 / 422) otherwise."""
    from hms import clock
    from hms.errors import BadInput

    try:
        v = envelopes.verify(envelope, sha256=a.bundle_sha256, predicate_type=statements.REVIEW, expect={},
                             owner=f"user:{a.user}")
        at = datetime.fromisoformat(v.predicate["at"])
    except (Unverified, KeyError, ValueError) as e:
        raise BadInput(f"the signed review does not verify: {e}", where="--sign-with") from None
    if v.owner != f"user:{a.user}":
        raise BadInput(f"the review is signed by {v.owner}, not by a key of {a.user}", where="--sign-with")
    if abs((at - clock.now()).total_seconds()) > skew_seconds:
        raise BadInput(f"the signed review's time {at.isoformat()} is not now", where="--sign-with")
    a.at = at
    why = _refusal(envelope, a.bundle_sha256, statements.REVIEW, _approval_predicate(a), f"user:{a.user}",
                   f"review by {a.user}")
    if why:
        raise BadInput(f"the signed review says something else than the request: {why}", where="--sign-with")
    a.envelope = envelope


def approval_refusal(a: Approval) -> str | None:
    """Why this approval row does not count (None: it does)."""
    return _refusal(a.envelope, a.bundle_sha256, statements.REVIEW, _approval_predicate(a), f"user:{a.user}",
                    f"approval {a.id} by {a.user}")


# ---- checks -------------------------------------------------------------------------------------------------


def _check_predicate(c: Check) -> dict[str, Any]:
    return {"kind": c.kind, "ok": c.ok, "summary_sha256": _digest(c.summary), "recorded_by": c.actor,
            "run_id": c.run_id, "at": _t(c.at)}


def sign_check(c: Check) -> None:
    c.envelope = envelopes.sign(statements.statement(c.bundle_sha256, statements.CHECK, _check_predicate(c)))


def check_refusal(c: Check) -> str | None:
    return _refusal(c.envelope, c.bundle_sha256, statements.CHECK, _check_predicate(c), None,
                    f"{c.kind} check {c.id}")


# ---- deployments --------------------------------------------------------------------------------------------


def _deployment_predicate(d: Deployment) -> dict[str, Any]:
    return {"deployment_id": d.id, "environment": d.environment, "protocol_id": d.protocol_id,
            "version": d.version, "activate_at": _t(d.activate_at), "previous_sha256": d.previous_sha256,
            "run_id": d.run_id, "by": d.created_by, "policy_sha256": d.policy_sha256,
            "effective_at": _t(d.effective_at), "at": _t(d.created_at)}


def sign_deployment(d: Deployment) -> None:
    """After the row's flush (its id is part of what is signed: an envelope belongs to one row)."""
    d.envelope = envelopes.sign(statements.statement(d.bundle_sha256, statements.DEPLOYMENT,
                                                     _deployment_predicate(d)))


def deployment_refusal(d: Deployment) -> str | None:
    return _refusal(d.envelope, d.bundle_sha256, statements.DEPLOYMENT, _deployment_predicate(d), None,
                    f"deployment {d.id} ({d.environment} v{d.version})")


# ---- the pinned policy --------------------------------------------------------------------------------------


def _policy_predicate(p: Policy) -> dict[str, Any]:
    return {"policy_id": p.id, "applied_by": p.applied_by, "source": p.source, "at": _t(p.applied_at)}


def sign_policy(p: Policy) -> None:
    """After the row's flush. The subject is the policy text's sha256, so the text cannot change under it."""
    p.envelope = envelopes.sign(statements.statement(p.sha256, statements.POLICY, _policy_predicate(p),
                                                     name="pipeline-policy"))


def policy_refusal(p: Policy) -> str | None:
    if hashlib.sha256(p.text.encode("utf-8")).hexdigest() != p.sha256:
        return f"policy {p.id}: its text does not hash to sha256:{p.sha256}"
    return _refusal(p.envelope, p.sha256, statements.POLICY, _policy_predicate(p), None, f"policy {p.id}")


def _refusal(envelope: str | None, sha256: str, ptype: str, expect: dict[str, Any], owner: str | None,
             what: str) -> str | None:
    try:
        envelopes.verify(envelope, sha256=sha256, predicate_type=ptype, expect=expect, owner=owner)
    except Unverified as e:
        log.warning("evidence refused: %s of sha256:%s: %s", what, sha256[:12], e)
        return f"{what}: {e}"
    return None
