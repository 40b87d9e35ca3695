"""``POST /api/runs/{run_id}/abort``: stop a pipeline run, roll back what it touched (ops role)."""

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import AbortIn, AbortOut
from hms.api.routers.errors import RESPONSES, core_refusals

router = APIRouter(tags=["runs"], responses=RESPONSES)


@router.post("/runs/{run_id}/abort", response_model=AbortOut)
def abort(run_id: str, body: AbortIn, by: PrincipalDep) -> AbortOut:
    with core_refusals():
        return actions.abort(run_id, body, by)
