"""FastAPI dependencies of the HMS API: who is calling (the host authenticates) and the registry session.

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
from hms.registry.db import session_scope
from hms.web.errors import WebError


def authenticated_user() -> str:
    raise WebError(401, "this server authenticates nobody (no identity provider configured)", field="Authorization")


def principal(user: Annotated[str, Depends(authenticated_user)]) -> Principal:
    """A person, named by the token the host validated; the request body never names who acts."""
    return Principal.person(user, "airflow-token")


def registry_session() -> Iterator[Session]:
    """A read-only registry session for one request (changes open their own: hms.actions)."""
    with session_scope(read_only=True) as s:
        yield s


PrincipalDep = Annotated[Principal, Depends(principal)]
SessionDep = Annotated[Session, Depends(registry_session)]
