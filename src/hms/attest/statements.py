"""in-toto Statement v1 for the pipeline's evidence, with predicate types of our own (documented in
docs/signed-evidence.md: no ratified predicate exists for a human review, in-toto/attestation #151)."""

from __future__ import annotations

from typing import Any

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
_BASE = "https://hms-policy.dev/attestations"
REVIEW = f"{_BASE}/review/v1"  # a clerk's decision on one bundle hash
CHECK = f"{_BASE}/check/v1"  # a recorded test (with its simulation), scan or chaos result
DEPLOYMENT = f"{_BASE}/deployment/v1"  # a version put in (or scheduled into) an environment
DEPLOYMENT_STATE = f"{_BASE}/deployment-state/v1"  # where that row stands now: live, ended when, and how
RUN_STATE = f"{_BASE}/run-state/v1"  # a pipeline run's state (subject: the run id's sha256): aborted stops it
POLICY = f"{_BASE}/pinned-policy/v1"  # an admin's `hms config apply` (subject: the policy file's sha256)
PREDICATE_TYPES = (REVIEW, CHECK, DEPLOYMENT, DEPLOYMENT_STATE, RUN_STATE, POLICY)


def statement(sha256: str, predicate_type: str, predicate: dict[str, Any], *, name: str = "bundle") -> dict[str, Any]:
    """One Statement about one bundle. ``predicate`` carries the principal, the pinned policy digest and the
    time the row records: everything a gate compares with the row it is attached to."""
    if predicate_type not in PREDICATE_TYPES:
        raise ValueError(f"unknown predicate type {predicate_type!r}")
    return {"_type": STATEMENT_TYPE, "subject": [{"name": name, "digest": {"sha256": sha256}}],
            "predicateType": predicate_type, "predicate": predicate}
