"""``GET /api/protocols``: the ops view — per protocol, what each environment serves, pending activations, history."""

from typing import Any

from fastapi import APIRouter

from hms.api.deps import CallerDep, ConfigDep
from hms.api.models import ProtocolsOut
from hms.api.routers.errors import RESPONSES
from hms.registry.db import session_scope
from hms.web import reviews

router = APIRouter(tags=["protocols"], responses=RESPONSES)


@router.get("/protocols", response_model=ProtocolsOut)
def protocols(who: CallerDep, cfg: ConfigDep) -> dict[str, Any]:
    """Times are ISO 8601; ``timezone`` is the pipeline's, the one the pages show them in."""
    with session_scope(read_only=True) as s:
        return {"timezone": cfg.timezone, "protocols": reviews.ops_overview(s, cfg)}
