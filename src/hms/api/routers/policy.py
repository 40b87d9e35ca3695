"""``POST /api/policy``: pin a pipeline config as the policy every gate enforces (admins; ``hms config apply``)."""

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import PolicyApplyIn, PolicyApplyOut
from hms.api.routers.errors import RESPONSES, core_refusals

router = APIRouter(tags=["policy"], responses=RESPONSES)


@router.post("/policy", response_model=PolicyApplyOut)
def apply(body: PolicyApplyIn, by: PrincipalDep) -> PolicyApplyOut:
    with core_refusals():
        return actions.apply_policy(body, by)
