"""``POST /api/bundles``: record a bundle; its pusher is the caller, who may then never review it."""

import base64
import binascii

from fastapi import APIRouter

from hms import actions
from hms.api.deps import PrincipalDep
from hms.api.models import PushIn, PushOut
from hms.api.routers.errors import RESPONSES, core_refusals
from hms.bundle import MAX_BUNDLE_BYTES
from hms.web.errors import WebError

router = APIRouter(tags=["bundles"], responses=RESPONSES)


@router.post("/bundles", response_model=PushOut)
def push(body: PushIn, by: PrincipalDep) -> PushOut:
    if len(body.bundle_base64) > (MAX_BUNDLE_BYTES * 4) // 3 + 4:
        raise WebError(413, f"bundle over {MAX_BUNDLE_BYTES} bytes", field="bundle_base64")
    try:
        raw = base64.b64decode(body.bundle_base64, validate=True)
    except (binascii.Error, ValueError):
        raise WebError(422, "not base64", field="bundle_base64") from None
    with core_refusals():
        return actions.push_bytes(raw, body.source, by)
