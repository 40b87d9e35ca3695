"""Airflow's tokens checked outside Airflow: the identity dependency of ``hms api serve``.

Inside Airflow's api-server the plugin asks Airflow's auth manager (plugins/hms_operators/web_auth.py). A
standalone HMS API checks the same JWTs itself: signed with the api-server's ``[api_auth] jwt_secret``
(HS512, what Airflow signs with when given a secret), unexpired, with the configured audience and
issuer, the user in ``sub`` (the simple and Keycloak auth managers put the user name there). What it
cannot see is Airflow's list of revoked tokens (a logout): keep the token lifetime short, or run the API
inside the api-server. docs/identity.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import jwt
from fastapi import Request

from hms.web.errors import WebError

HEADER = "Authorization"
ALGORITHMS = ["HS512"]
LEEWAY_SECONDS = 10  # Airflow's [api_auth] jwt_leeway


@dataclass(frozen=True)
class TokenCheck:
    """How to tell a genuine Airflow token: the shared secret, and the audience/issuer if Airflow sets them."""

    secret: str
    audience: str | None = None
    issuer: str | None = None

    def user(self, token: str) -> str:
        try:
            claims = jwt.decode(
                token, self.secret, algorithms=ALGORITHMS, audience=self.audience, issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise WebError(401, "the Airflow token has expired; log in again (hms login)", field=HEADER) from None
        except jwt.InvalidTokenError as e:
            raise WebError(401, f"the Airflow token is not valid ({e})", field=HEADER) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise WebError(401, "the Airflow token names no user (sub)", field=HEADER)
        return sub

    def dependency(self):
        def identify(request: Request) -> str:
            return self.user(bearer(request))

        return identify


def bearer(request: Request) -> str:
    header = request.headers.get(HEADER)
    if header is None:
        raise WebError(401, "no Airflow token: send 'Authorization: Bearer <token>' (hms login)", field=HEADER)
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise WebError(401, "the Authorization header must be 'Bearer <token>'", field=HEADER)
    return credentials.strip()
