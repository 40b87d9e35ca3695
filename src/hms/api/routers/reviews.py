"""``POST /api/reviews``: one clerk's decision, as the authenticated caller (``hms rule review``)."""

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import ReviewIn, ReviewOut
from hms.api.routers.errors import RESPONSES, core_refusals

router = APIRouter(tags=["reviews"], responses=RESPONSES)


@router.post("/reviews", response_model=ReviewOut)
def review(body: ReviewIn, by: PrincipalDep) -> ReviewOut:
    with core_refusals():
        return actions.review(body, by)
