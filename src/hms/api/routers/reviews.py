"""The reviews: the board of bundles to review, and one clerk's decision, as the authenticated caller.

``POST /api/reviews`` takes any reference (``hms rule review``); the clerk page decides on one exact hash
(``POST /api/reviews/{sha256}/approve|reject``) and lists the board (``GET /api/reviews``), both as the
``Caller`` the pinned policy's ``users:`` describes (hms.web.reviews).
"""

from typing import Any

from fastapi import APIRouter

from hms import actions
from hms.api.deps import CallerDep, ConfigDep, PrincipalDep
from hms.api.models import Decision, DecisionIn, DecisionOut, ReviewBoardOut, ReviewIn, ReviewOut
from hms.api.routers.errors import FORBIDDEN, RESPONSES, UNKNOWN_BUNDLE, core_refusals
from hms.registry.db import session_scope
from hms.web import reviews as board

router = APIRouter(tags=["reviews"], responses=RESPONSES)


@router.post("/reviews", response_model=ReviewOut)
def review(body: ReviewIn, by: PrincipalDep) -> ReviewOut:
    with core_refusals():
        return actions.review(body, by)


@router.get("/reviews", response_model=ReviewBoardOut)
def review_board(who: CallerDep, cfg: ConfigDep) -> dict[str, Any]:
    """The newest version of each protocol: waiting for review, or already approved or rejected."""
    with session_scope(read_only=True) as s:
        waiting, decided = board.review_board(s, who, cfg)
        return {"user": who.user, "roles": list(who.roles), "pending": [v.to_dict() for v in waiting],
                "decided": [v.to_dict() for v in decided]}


@router.post("/reviews/{sha256}/{decision}", response_model=DecisionOut, responses={**FORBIDDEN, **UNKNOWN_BUNDLE})
def decide(sha256: str, decision: Decision, body: DecisionIn, who: CallerDep, cfg: ConfigDep) -> dict[str, Any]:
    """Approve or reject one exact bundle hash; answers the bundle's approval status. 409: superseded, or this
    clerk already decided (decisions are final)."""
    with session_scope() as s:
        return board.review(s, sha256, who, decision=decision, comment=body.comment, role=body.role, config=cfg)
