"""Who is calling the HMS review app, according to the Airflow API server's own tokens.

Plugin FastAPI apps do not inherit the API server's auth (../shared/research/airflow-3.3.md), so this
dependency validates the JWT itself with Airflow's auth manager — the same validator, signing key,
expiry and revocation list as ``/api/v2``. It takes the token from ``Authorization: Bearer`` (what
``POST /auth/token`` hands to REST clients) or, for the browser page, from the cookie the Airflow UI
keeps it in (``_token``, httpOnly). Anything else is a 401 naming the header; roles are the core's
business (pipeline config ``users:``).
"""

from __future__ import annotations

from fastapi import Request
from jwt import ExpiredSignatureError, InvalidTokenError

from hms.web import WebError

HEADER = "Authorization"


def _token(request: Request) -> str:
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN

    header = request.headers.get(HEADER)
    if header is not None:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise WebError(401, "the Authorization header must be 'Bearer <token>'", field=HEADER)
        return credentials.strip()
    cookie = request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    if cookie:
        return cookie
    raise WebError(401, "no Airflow token: send 'Authorization: Bearer <token>' (POST /auth/token) "
                   "or log in to the Airflow UI", field=HEADER)


async def airflow_user(request: Request) -> str:
    """The Airflow user name behind the request's token (FastAPI dependency for ``hms.web.create_app``)."""
    from airflow.api_fastapi.app import get_auth_manager

    token = _token(request)
    try:
        user = await get_auth_manager().get_user_from_token(token)
    except ExpiredSignatureError:
        raise WebError(401, "the Airflow token has expired; get a new one from POST /auth/token or log in again",
                       field=HEADER) from None
    except InvalidTokenError:
        raise WebError(401, "the Airflow token is not valid (bad signature, audience, or revoked)",
                       field=HEADER) from None
    return user.get_name()
