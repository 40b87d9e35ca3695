"""``GET /api/decisions`` and ``GET /api/decisions/{decision_id}``: the decision services' log, for the people who
answer for it — ops, admins and auditors (``decision_query.READER_ROLES``) — without a database login.

What ``hms decisions list|show`` prints, read the same way (hms.decision_query): inputs as the log masked them.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from hms import decision_query
from hms.api.deps import CallerDep
from hms.api.models import LoggedDecisionOut, LoggedDecisionsOut
from hms.api.routers.errors import RESPONSES, core_refusals
from hms.errors import BadInput
from hms.web.errors import WebError
from hms.web.reviews import Caller

router = APIRouter(tags=["decisions"], responses=RESPONSES)


def _may_read(who: Caller) -> None:
    if not set(who.roles) & set(decision_query.READER_ROLES):
        raise WebError(403, f"reading the decision log needs one of the roles {', '.join(decision_query.READER_ROLES)}"
                            f"; {who.user} holds: {', '.join(who.roles) or 'none'}", field="roles")


@router.get("/decisions", response_model=LoggedDecisionsOut)
def decisions(
    who: CallerDep,
    protocol: Annotated[str | None, Query(max_length=200, description="only this protocol id")] = None,
    env: Annotated[str | None, Query(max_length=100, description="only this environment")] = None,
    since: Annotated[str | None, Query(max_length=100, description="an age (30d, 12h) or an ISO 8601 instant")] = None,
    limit: Annotated[int, Query(ge=1, le=decision_query.MAX_LIST)] = 100,
) -> dict[str, Any]:
    _may_read(who)
    with core_refusals():
        after = decision_query.parse_since(since, where="since") if since else None
        found = decision_query.window(protocol=protocol, environment=env, since=after, limit=limit)
    return {"count": len(found), "decisions": [d.to_dict() for d in found]}


@router.get("/decisions/{decision_id}", response_model=LoggedDecisionOut)
def decision(decision_id: str, who: CallerDep) -> dict[str, Any]:
    _may_read(who)
    try:
        return decision_query.show(decision_id).to_dict()
    except BadInput as e:
        raise WebError(404, e.message, field="decision_id") from None
