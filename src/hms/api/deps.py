"""FastAPI dependencies of the HMS API: who is calling (the host authenticates) and the registry session.

The clerk page's and ops view's routes act as a ``Caller`` instead (hms.web.reviews): the authenticated user
with the roles the pinned policy's ``users:`` gives them (``CallerDep``), and that policy (``ConfigDep``).

``authenticated_user`` is a placeholder each host overrides (``app.dependency_overrides``): the Airflow plugin
with Airflow's own token validation, ``hms api serve`` with the same JWTs checked against the shared secret
(hms.api.auth). Without an override every route is a 401: an API that forgot to authenticate refuses all.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from hms.identity import Principal
from hms.pinned_policy import governing
from hms.pipeline_config import PipelineConfig
from hms.registry.db import session_scope
from hms.web.errors import WebError
from hms.web.reviews import Caller


def authenticated_user() -> str:
    raise WebError(401, "this server authenticates nobody (no identity provider configured)", field="Authorization")


def principal(user: Annotated[str, Depends(authenticated_user)]) -> Principal:
    """A person, named by the token the host validated; the request body never names who acts."""
    return Principal.person(user, "airflow-token")


def pipeline_config() -> PipelineConfig:
    """The policy every gate enforces: the pinned pipeline config (hms.pinned_policy)."""
    return governing()


def caller(user: Annotated[str, Depends(authenticated_user)],
           cfg: Annotated[PipelineConfig, Depends(pipeline_config)]) -> Caller:
    """The authenticated user and the roles the pinned policy gives them (``users:``)."""
    return Caller.of(user, cfg)


def registry_session() -> Iterator[Session]:
    """A read-only registry session for one request (changes open their own: hms.actions)."""
    with session_scope(read_only=True) as s:
        yield s


PrincipalDep = Annotated[Principal, Depends(principal)]
SessionDep = Annotated[Session, Depends(registry_session)]
ConfigDep = Annotated[PipelineConfig, Depends(pipeline_config)]
CallerDep = Annotated[Caller, Depends(caller)]
