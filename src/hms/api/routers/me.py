"""``GET /api/me``: who the token says you are, and the roles the pinned policy gives you (``hms whoami``)."""

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import WhoAmIOut
from hms.api.routers.errors import RESPONSES, core_refusals

router = APIRouter(tags=["identity"], responses=RESPONSES)


@router.get("/me", response_model=WhoAmIOut)
def whoami(by: PrincipalDep) -> WhoAmIOut:
    with core_refusals():
        return actions.whoami(by)
