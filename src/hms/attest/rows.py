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
from typing import TYPE_CHECKING, Any

from hms.attest import envelopes, keys, statements
from hms.attest.envelopes import Unverified
from hms.registry.models import Approval, Check, Deployment, Policy, Run

if TYPE_CHECKING:
    from hms.pipeline_config import PipelineConfig

log = logging.getLogger(__name__)


def _t(at: datetime | None) -> str | None:
    return at.astimezone(UTC).isoformat() if at is not None else None


def _now() -> str:
    """When a state is signed (no column records it: the statement does, for the keys' validity window)."""
    from hms import clock

    return clock.now().astimezone(UTC).isoformat()


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


def review_trust(config: PipelineConfig | None) -> keys.TrustedKeys:
    """What a review under the pinned policy ``config`` is verified against: the control plane's keys and the
    policy's allowed signers."""
    return keys.with_signers(keys.trusted(), config)


def accept_signed_review(a: Approval, envelope: str, config: PipelineConfig, *, skew_seconds: float = 300) -> None:
    """Keep a clerk's own signature as the row's evidence: by a key the pinned policy ``config`` lists for them,
    saying exactly what the row says (its time within ``skew_seconds`` of now, and then the row's time).
    BadInput (exit 2 / 422) otherwise."""
    from hms import clock
    from hms.errors import BadInput

    trust = review_trust(config)
    try:
        v = envelopes.verify(envelope, sha256=a.bundle_sha256, predicate_type=statements.REVIEW, expect={},
                             owner=f"user:{a.user}", trust=trust)
        at = datetime.fromisoformat(v.predicate["at"])
    except (Unverified, KeyError, ValueError) as e:
        raise BadInput(f"the signed review does not verify: {e}", where="--sign-with") from None
    if v.owner != f"user:{a.user}":
        raise BadInput(f"the review is signed by {v.owner}, not by a key of {a.user}", where="--sign-with")
    if abs((at - clock.now()).total_seconds()) > skew_seconds:
        raise BadInput(f"the signed review's time {at.isoformat()} is not now", where="--sign-with")
    a.at = at
    why = _refusal(envelope, a.bundle_sha256, statements.REVIEW, _approval_predicate(a), f"user:{a.user}",
                   f"review by {a.user}", trust)
    if why:
        raise BadInput(f"the signed review says something else than the request: {why}", where="--sign-with")
    a.envelope = envelope


def approval_refusal(a: Approval, trust: keys.TrustedKeys) -> str | None:
    """Why this approval row does not count (None: it does), against ``review_trust`` of the pinned policy."""
    return _refusal(a.envelope, a.bundle_sha256, statements.REVIEW, _approval_predicate(a), f"user:{a.user}",
                    f"approval {a.id} by {a.user}", trust)


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
    """After the row's flush (its id is part of what is signed: an envelope belongs to one row). Signs its
    start and its state; every later change of state is signed by ``sign_deployment_state``."""
    d.envelope = envelopes.sign(statements.statement(d.bundle_sha256, statements.DEPLOYMENT,
                                                     _deployment_predicate(d)))
    sign_deployment_state(d)


def _state_predicate(d: Deployment) -> dict[str, Any]:
    return {"deployment_id": d.id, "environment": d.environment, "state": d.state, "ended_at": _t(d.ended_at)}


def sign_deployment_state(d: Deployment) -> None:
    """With every change of ``state``/``ended_at``: which versions answer depends on both (an end written around
    the core would be a rollback nobody ordered; a cleared one, an undone rollback)."""
    d.state_envelope = envelopes.sign(statements.statement(d.bundle_sha256, statements.DEPLOYMENT_STATE,
                                                           {**_state_predicate(d), "at": _now()}))


def signed_state(d: Deployment) -> tuple[str, datetime | None] | None:
    """What the row's own signed state says (state, ended_at), whatever its columns now say; None if it has no
    valid one. A replica serves this, so editing the columns changes nothing a citizen is told."""
    try:
        v = envelopes.verify(d.state_envelope, sha256=d.bundle_sha256, predicate_type=statements.DEPLOYMENT_STATE,
                             expect={"deployment_id": d.id, "environment": d.environment})
        ended = v.predicate.get("ended_at")
        return str(v.predicate["state"]), datetime.fromisoformat(ended) if ended else None
    except (Unverified, KeyError, ValueError):
        return None


def _what(d: Deployment) -> str:
    return f"deployment {d.id} ({d.environment} v{d.version})"


def start_refusal(d: Deployment) -> str | None:
    """Why the row's deployment itself (what, where, from when, by whom) does not count; None: it does."""
    return _refusal(d.envelope, d.bundle_sha256, statements.DEPLOYMENT, _deployment_predicate(d), None, _what(d))


def deployment_refusal(d: Deployment) -> str | None:
    """Why the row does not count as it stands — its start, or its state (state, ended_at) — None: it does."""
    return start_refusal(d) or _refusal(d.state_envelope, d.bundle_sha256, statements.DEPLOYMENT_STATE,
                                        _state_predicate(d), None, f"{_what(d)}, state {d.state}")


# ---- runs ---------------------------------------------------------------------------------------------------


def _run_subject(run_id: str) -> str:
    return hashlib.sha256(run_id.encode("utf-8")).hexdigest()


def _run_predicate(r: Run) -> dict[str, Any]:
    return {"run_id": r.run_id, "state": r.state, "started_at": _t(r.started_at), "started_by": r.started_by,
            "ended_at": _t(r.ended_at), "ended_by": r.ended_by, "reason_sha256": _digest(r.reason)}


def sign_run(r: Run) -> None:
    """With every change of a run's state: an abort voids the run's pending activations, so a forged one would
    cancel a scheduled law, and a forged "alive" would revive one."""
    r.envelope = envelopes.sign(statements.statement(_run_subject(r.run_id), statements.RUN_STATE,
                                                     {**_run_predicate(r), "at": _now()}, name="run"))


def run_refusal(r: Run) -> str | None:
    return _refusal(r.envelope, _run_subject(r.run_id), statements.RUN_STATE, _run_predicate(r), None,
                    f"run {r.run_id} ({r.state})")


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
             what: str, trust: keys.TrustedKeys | None = None) -> str | None:
    try:
        envelopes.verify(envelope, sha256=sha256, predicate_type=ptype, expect=expect, owner=owner, trust=trust)
    except Unverified as e:
        log.warning("evidence refused: %s of sha256:%s: %s", what, sha256[:12], e)
        return f"{what}: {e}"
    return None
