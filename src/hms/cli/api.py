"""``hms api serve``: the HMS API on its own, outside Airflow's api-server (the same app, the same tokens)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from hms.errors import BadInput

SECRET_ENV = "AIRFLOW__API_AUTH__JWT_SECRET"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("api", help="the HMS API (also served inside Airflow's api-server at /hms)")
    ps = p.add_subparsers(dest="api_command", required=True)
    serve = ps.add_parser("serve", help="serve the HMS API standalone; Airflow tokens checked with the shared secret")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8790)
    serve.add_argument("--jwt-secret-file", default=None,
                       help=f"file holding Airflow's [api_auth] jwt_secret (default: ${SECRET_ENV})")
    serve.add_argument("--audience", default=os.environ.get("AIRFLOW__API_AUTH__JWT_AUDIENCE"))
    serve.add_argument("--issuer", default=os.environ.get("AIRFLOW__API_AUTH__JWT_ISSUER"))
    serve.set_defaults(handler=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    from hms.api.auth import TokenCheck
    from hms.service.http import BoundedH11Protocol, HeaderBounds
    from hms.web import create_app

    if args.jwt_secret_file:
        try:
            secret = Path(args.jwt_secret_file).read_text(encoding="utf-8").strip()
        except OSError as e:
            raise BadInput(f"cannot read the JWT secret: {e.strerror}", where=args.jwt_secret_file) from None
    else:
        secret = os.environ.get(SECRET_ENV, "")
    if len(secret) < 16:
        raise BadInput(f"no JWT secret (at least 16 characters): set {SECRET_ENV} to the api-server's, or pass "
                       "--jwt-secret-file", where="--jwt-secret-file")
    check = TokenCheck(secret, args.audience or None, args.issuer or None)
    root = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    root.mount("/hms", create_app(check.dependency()))  # the path it has inside Airflow: one URL scheme
    print(f"[api] HMS API on http://{args.host}:{args.port}/hms/api (OpenAPI: /hms/api/openapi.json)", flush=True)
    # The same bounded request heads as the decision service: uvicorn's default parser buffers any size.
    root.add_middleware(HeaderBounds)
    uvicorn.run(root, host=args.host, port=args.port, log_level="warning", http=BoundedH11Protocol)
    return 0
