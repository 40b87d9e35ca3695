"""``POST /api/deployments`` and ``POST /api/rollbacks``: put a version in force, or take one back.

Every gate is the core's (hms.deployments.check_order): the same refusals as on the command line.
"""

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import DeployIn, DeployOut, RollbackIn, RollbackOut, RunRollbackIn, RunRollbackOut
from hms.api.routers.errors import RESPONSES, core_refusals

router = APIRouter(tags=["deployments"], responses=RESPONSES)


@router.post("/deployments", response_model=DeployOut)
def deploy(body: DeployIn, by: PrincipalDep) -> DeployOut:
    with core_refusals():
        return actions.deploy(body, by)


@router.post("/rollbacks", response_model=RollbackOut)
def rollback(body: RollbackIn, by: PrincipalDep) -> RollbackOut:
    """Answers once the previous version is in force (the switch instant has passed)."""
    with core_refusals():
        return actions.rollback(body, by)


@router.post("/rollbacks/run", response_model=RunRollbackOut)
def rollback_run(body: RunRollbackIn, by: PrincipalDep) -> RunRollbackOut:
    with core_refusals():
        return actions.rollback_run(body, by)
