"""The approval policy decides alike for the CLI, the Airflow gate and the clerk page."""

from __future__ import annotations

import pytest

from hms.approvals import ApprovalPolicy, Review, check_review, evaluate
from hms.errors import BadInput

H = "a" * 64
OTHER = "b" * 64
POLICY = ApprovalPolicy(2, ("legal", "budget"))
ROLES = {"alice": ["legal"], "bob": ["budget"], "carol": ["legal", "budget"], "drafter": ["legal"]}


def status(*reviews: Review, policy: ApprovalPolicy = POLICY):
    return evaluate(policy, reviews, bundle_sha256=H, author="drafter", user_roles=ROLES)


def test_two_distinct_approvers_covering_both_roles_satisfy_the_policy():
    s = status(Review(H, "alice", "legal", "approve"), Review(H, "bob", "budget", "approve"))
    assert s.satisfied and not s.rejected
    assert s.summary() == "approved by alice (legal), bob (budget)"


def test_one_person_cannot_supply_both_roles():
    s = status(Review(H, "carol", "legal", "approve"), Review(H, "carol", "budget", "approve"))
    assert not s.satisfied and s.still_needed == 1 and s.missing_roles == ["budget"]


def test_two_approvers_with_the_same_role_leave_a_role_missing():
    s = status(Review(H, "alice", "legal", "approve"), Review(H, "carol", "legal", "approve"))
    assert not s.satisfied and s.missing_roles == ["budget"] and s.still_needed == 0


def test_the_author_never_counts_even_holding_the_role():
    s = status(Review(H, "drafter", "legal", "approve"), Review(H, "bob", "budget", "approve"))
    assert not s.satisfied
    assert "author" in s.ignored[0][1]


def test_approvals_for_another_bundle_hash_never_count():
    s = status(Review(OTHER, "alice", "legal", "approve"), Review(H, "bob", "budget", "approve"))
    assert not s.satisfied and s.missing_roles == ["legal"]


def test_a_role_the_user_does_not_hold_does_not_count():
    s = status(Review(H, "alice", "budget", "approve"), Review(H, "bob", "budget", "approve"))
    assert not s.satisfied and "does not hold the role 'budget'" in s.ignored[0][1]


def test_any_rejection_stops_the_bundle_with_its_comment():
    s = status(
        Review(H, "alice", "legal", "approve"),
        Review(H, "bob", "budget", "approve"),
        Review(H, "carol", "budget", "reject", "cost model is wrong"),
    )
    assert s.rejected and not s.satisfied
    assert s.summary() == "rejected by carol (budget): cost model is wrong"


def test_a_protocol_may_tighten_but_not_loosen_the_policy():
    assert POLICY.tightened_by({"required": 1, "roles": []}) == POLICY
    tighter = POLICY.tightened_by({"required": 3, "roles": ["ethics"]})
    assert tighter == ApprovalPolicy(3, ("legal", "budget", "ethics"))


def test_check_review_refuses_the_author_and_unknown_roles():
    with pytest.raises(BadInput, match="author"):
        check_review(Review(H, "drafter", "legal", "approve"), author="drafter", user_roles=ROLES)
    with pytest.raises(BadInput, match="does not hold"):
        check_review(Review(H, "mallory", "legal", "approve"), author="drafter", user_roles=ROLES)
    with pytest.raises(BadInput, match="decision"):
        check_review(Review(H, "alice", "legal", "maybe"), author="drafter", user_roles=ROLES)
