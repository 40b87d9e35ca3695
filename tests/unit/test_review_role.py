"""`hms rule review` without --role: inferred only when the clerk can mean one role, else exit 2 naming the choices."""

from __future__ import annotations

import pytest

from hms.approvals import ApprovalPolicy
from hms.errors import BadInput
from hms.review_role import infer

POLICY = ApprovalPolicy(2, ("legal", "budget"))
USERS = {"alice": ("legal",), "bob": ("budget",), "carol": ("legal", "budget"), "dana": ("scheduler",)}


def test_a_clerk_with_one_review_role_reviews_in_it():
    assert infer("alice", policy=POLICY, missing=["legal", "budget"], user_roles=USERS) == "legal"
    assert infer("bob", policy=POLICY, missing=["legal"], user_roles=USERS) == "budget"  # held, even if covered


def test_a_clerk_with_two_roles_reviews_in_the_one_still_missing():
    assert infer("carol", policy=POLICY, missing=["budget"], user_roles=USERS) == "budget"


def test_a_clerk_with_two_roles_both_missing_must_choose():
    with pytest.raises(BadInput, match=r"carol could review as legal or budget \(still missing\): choose one "
                                       "with --role") as e:
        infer("carol", policy=POLICY, missing=["legal", "budget"], user_roles=USERS)
    assert e.value.where == "--role"
    with pytest.raises(BadInput, match=r"legal or budget \(held\)"):  # nothing missing, more approvals needed
        infer("carol", policy=ApprovalPolicy(3, ("legal", "budget")), missing=[], user_roles=USERS)


def test_a_user_without_a_review_role_is_told_which_roles_exist_and_what_they_hold():
    with pytest.raises(BadInput, match=r"dana holds no review role of this bundle \(roles: legal, budget; dana "
                                       r"holds: scheduler\)"):
        infer("dana", policy=POLICY, missing=["legal"], user_roles=USERS)
    with pytest.raises(BadInput, match="mallory holds: none"):
        infer("mallory", policy=POLICY, missing=["legal"], user_roles=USERS)


def test_a_protocol_that_tightens_the_policy_adds_its_roles_to_the_choice():
    tight = POLICY.tightened_by({"roles": ["ethics"]})
    assert infer("erin", policy=tight, missing=["legal", "ethics"], user_roles={"erin": ("ethics", "scheduler")}) == (
        "ethics"
    )


def test_without_a_users_section_only_a_single_missing_role_is_inferred():
    assert infer("anyone", policy=POLICY, missing=["budget"], user_roles=None) == "budget"
    with pytest.raises(BadInput, match="anyone could review as legal or budget"):
        infer("anyone", policy=POLICY, missing=["legal", "budget"], user_roles=None)


def test_the_role_select_puts_the_held_role_still_missing_first():
    from hms.review_role import select_order

    assert select_order(["legal", "budget"], ["budget"]) == ["budget", "legal"]
    assert select_order(["legal", "budget"], []) == ["legal", "budget"]
