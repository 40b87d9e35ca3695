"""``POST /api/activations/{sha256}/move``: a scheduler moves a bundle's pending activation to a new time.

The move is a new deploy of the same bundle with the pending row's run id (hms.web.reviews.move_activation):
the waiting flip task follows it, and freeze windows, promotion order and approvals are checked again.
"""

from typing import Any

from fastapi import APIRouter

from hms.api.deps import CallerDep, ConfigDep
from hms.api.models import MoveIn, MoveOut
from hms.api.routers.errors import FORBIDDEN, RESPONSES, UNKNOWN_BUNDLE
from hms.registry.db import session_scope
from hms.web import reviews

router = APIRouter(tags=["activations"], responses={**RESPONSES, **FORBIDDEN, **UNKNOWN_BUNDLE})


@router.post("/activations/{sha256}/move", response_model=MoveOut)
def move(sha256: str, body: MoveIn, who: CallerDep, cfg: ConfigDep) -> dict[str, Any]:
    """409: no pending activation of this bundle there, or promotion order / approvals no longer hold."""
    with session_scope() as s:
        return reviews.move_activation(s, sha256, who, effective_at=body.effective_at,
                                       zone=body.zone, environment=body.environment, reason=body.reason, config=cfg)
