"""The approval policy: who must approve a bundle before it may reach prod.

One function, ``evaluate``, decides it for everyone: the promotion check in the
core, the Airflow review sensor and the clerk page all call it, so they can never
disagree. Rules (design.md, issue 6): at least ``required`` distinct approvers;
every required role covered by an approver holding it; the protocol's author never
counts, nor does whoever pushed the bundle (``bundles.created_by``); only reviews
bound to this exact bundle hash count; any rejection by an authorized reviewer
stops the bundle.

People are compared by ``same_person`` only: user names and ``metadata.author`` are
free text, so "Carol", " carol" and "ｃａｒｏｌ" must be one person, or an author
could approve their own rule by changing the case of a letter.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hms.errors import BadInput

DECISIONS = ("approve", "reject")


@dataclass(frozen=True)
class ApprovalPolicy:
    required: int
    roles: tuple[str, ...]

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ApprovalPolicy:
        return cls(int(d.get("required", 2)), tuple(d.get("roles", ())))

    def tightened_by(self, protocol_approvals: Mapping[str, Any] | None) -> ApprovalPolicy:
        """A protocol may ask for more approvals or more roles, never fewer."""
        if not protocol_approvals:
            return self
        required = max(self.required, int(protocol_approvals.get("required", self.required)))
        roles = tuple(dict.fromkeys([*self.roles, *protocol_approvals.get("roles", ())]))
        return ApprovalPolicy(max(required, len(roles)), roles)


@dataclass(frozen=True)
class Review:
    bundle_sha256: str
    user: str
    role: str
    decision: str
    comment: str = ""


@dataclass
class ApprovalStatus:
    satisfied: bool
    rejected: bool
    approvers: list[tuple[str, str]] = field(default_factory=list)  # (user, role)
    missing_roles: list[str] = field(default_factory=list)
    still_needed: int = 0
    rejections: list[Review] = field(default_factory=list)
    ignored: list[tuple[Review, str]] = field(default_factory=list)

    def summary(self) -> str:
        if self.rejected:
            r = self.rejections[0]
            return f"rejected by {r.user} ({r.role}): {r.comment or 'no comment'}"
        if self.satisfied:
            return "approved by " + ", ".join(f"{u} ({r})" for u, r in self.approvers)
        parts = [f"{len(self.approvers)} approval(s)"]
        if self.still_needed:
            parts.append(f"{self.still_needed} more needed")
        if self.missing_roles:
            parts.append("missing role(s): " + ", ".join(self.missing_roles))
        return "waiting: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "satisfied": self.satisfied,
            "rejected": self.rejected,
            "approvers": [{"user": u, "role": r} for u, r in self.approvers],
            "missing_roles": self.missing_roles,
            "still_needed": self.still_needed,
            "rejections": [{"user": r.user, "role": r.role, "comment": r.comment} for r in self.rejections],
            "summary": self.summary(),
        }


def identity(name: str) -> str:
    """The comparable form of a person's name: Unicode NFKC, case-folded, surrounding space stripped."""
    return unicodedata.normalize("NFKC", name).casefold().strip()


def same_person(a: str | None, b: str | None) -> bool:
    """Whether two free-text names denote one person (the only way approvals compare people)."""
    return a is not None and b is not None and identity(a) == identity(b)


def why_not_allowed(
    review: Review,
    *,
    author: str,
    user_roles: Mapping[str, Iterable[str]] | None,
    pusher: str | None = None,
) -> str | None:
    """Why a reviewer may not give this review (None when allowed). Used when recording and when counting.

    ``pusher`` is the authenticated principal who recorded the bundle: whoever put a bundle forward
    cannot also be one of the two people who let it through.
    """
    if review.decision not in DECISIONS:
        return f"decision must be one of {', '.join(DECISIONS)}"
    if same_person(review.user, author):
        return f"{review.user} is the author of this protocol and cannot review it"
    if same_person(review.user, pusher):
        return f"{review.user} pushed this bundle and cannot review it"
    if user_roles is not None and review.role not in set(user_roles.get(review.user, ())):
        held = ", ".join(sorted(user_roles.get(review.user, ()))) or "none"
        return f"{review.user} does not hold the role {review.role!r} (holds: {held})"
    return None


def check_review(
    review: Review, *, author: str, user_roles: Mapping[str, Iterable[str]] | None, pusher: str | None = None
) -> None:
    reason = why_not_allowed(review, author=author, user_roles=user_roles, pusher=pusher)
    if reason:
        raise BadInput(reason, where=f"review of {review.bundle_sha256[:12]}")


def evaluate(
    policy: ApprovalPolicy,
    reviews: Iterable[Review],
    *,
    bundle_sha256: str,
    author: str,
    user_roles: Mapping[str, Iterable[str]] | None = None,
    pusher: str | None = None,
) -> ApprovalStatus:
    """Count the reviews of one bundle against the policy (distinct approvers by ``identity``)."""
    status = ApprovalStatus(satisfied=False, rejected=False)
    seen_users: set[str] = set()
    covered: set[str] = set()
    for r in reviews:
        if r.bundle_sha256 != bundle_sha256:
            status.ignored.append((r, "review is for another bundle hash"))
            continue
        reason = why_not_allowed(r, author=author, user_roles=user_roles, pusher=pusher)
        if reason:
            status.ignored.append((r, reason))
            continue
        if r.decision == "reject":
            status.rejections.append(r)
            continue
        if identity(r.user) in seen_users:
            status.ignored.append((r, "a second approval by the same user does not count"))
            continue
        seen_users.add(identity(r.user))
        covered.add(r.role)
        status.approvers.append((r.user, r.role))
    status.rejected = bool(status.rejections)
    status.missing_roles = [role for role in policy.roles if role not in covered]
    status.still_needed = max(0, policy.required - len(status.approvers))
    status.satisfied = not status.rejected and not status.missing_roles and status.still_needed == 0
    return status
