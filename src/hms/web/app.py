"""The review web app: REST API and pages, for any host that can say who is calling.

``create_app(identify)`` builds a FastAPI app; ``identify`` is a FastAPI dependency that returns the
authenticated user name or raises ``WebError(401, …)``. The core knows nothing of Airflow: the Airflow
plugin (plugins/hms_operators/plugin.py) passes a dependency that validates the API server's JWT and
mounts this app under ``/hms``. Roles come from the pipeline config's ``users:`` (``Caller.of``).

Routes (relative to the mount point):
  GET  /reviews, /ops, /reports/{sha256}          pages (HTML, templates/web and templates/report)
  GET  /static/{name}                             their stylesheets, script and icons (pages.STATIC)
  /api/me, /api/bundles, /api/reviews, /api/deployments, /api/rollbacks[/run], /api/runs/{id}/abort,
  /api/policy                                     the HMS API (hms.api.routers; the CLI's client mode)
  GET  /api/reviews                               pending and recently decided bundles (the clerk page)
  POST /api/reviews/{sha256}/approve|reject       one clerk's decision on an exact hash (the clerk page)
  GET  /api/protocols                             what each environment serves, pending activations, history
  POST /api/activations/{sha256}/move             a new time for a pending activation (schedulers)
Every /api route is a router of hms.api.routers with typed request and answer models (hms.api.models), all
described by /api/openapi.json. Errors are ``{"detail", "field", "status"}`` with 401 / 403 / 404 / 409 / 413 / 422.
"""

from collections.abc import Callable
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from hms.api import deps
from hms.api.routers import ALL as API_ROUTERS
from hms.bundle import MAX_BUNDLE_BYTES
from hms.errors import CheckFailed, HmsError
from hms.registry.db import session_scope
from hms.web import pages, reviews
from hms.web.bundle_life import RunLinks
from hms.web.errors import WebError

MAX_BODY = 64 * 1024
# A pushed bundle travels as base64 in JSON, a policy as JSON-escaped text: their routes take more.
MAX_BODY_FOR = {"/api/bundles": MAX_BUNDLE_BYTES * 4 // 3 + 4096, "/api/policy": 2 * 1024 * 1024}
# No inline script and no inline style: the pages' look and code are the app's own files (/static/*).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'self'; base-uri 'none'"
)


def create_app(
    identify: Callable[..., Any], *, login_url: str | None = None, links: RunLinks | None = None
) -> FastAPI:
    """The app; ``identify`` authenticates (user name or ``WebError(401)``), ``login_url`` is offered on a 401 page,
    ``links`` says where the host shows a run and a step's log (the cards link each event of a bundle's life)."""
    app = FastAPI(title="HMS policy API", docs_url=None, redoc_url=None, openapi_url="/api/openapi.json")
    app.dependency_overrides[deps.authenticated_user] = identify  # the host says who is calling
    for router in API_ROUTERS:
        app.include_router(router, prefix="/api")

    @app.middleware("http")
    async def limits_and_headers(request: Request, call_next: Callable[..., Any]) -> Response:
        length = request.headers.get("content-length")
        limit = next((n for suffix, n in MAX_BODY_FOR.items() if request.url.path.endswith(suffix)), MAX_BODY)
        if length is not None and (not length.isdigit() or int(length) > limit):
            return _error(request, WebError(413, f"request body over {limit} bytes", field="body"), login_url)
        if length is None and request.headers.get("transfer-encoding"):  # a stream of unknown size: FastAPI
            # would buffer all of it before any limit applies (tests/reliability/test_hostile_input.py)
            return _error(
                request,
                WebError(411, f"declare the body's Content-Length (at most {limit} bytes)", field="body"),
                login_url,
            )
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.exception_handler(WebError)
    async def web_error(request: Request, e: WebError) -> Response:
        return _error(request, e, login_url)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, e: RequestValidationError) -> Response:
        first = e.errors()[0] if e.errors() else {"loc": ("body",), "msg": "invalid request"}
        loc = [str(x) for x in first.get("loc", ()) if x not in ("body", "path", "query")]
        return _error(request, WebError(422, str(first.get("msg")), field=".".join(loc) or "body"), login_url)

    @app.exception_handler(HmsError)
    async def core_error(request: Request, e: HmsError) -> Response:  # a refusal no route translated
        status = 409 if isinstance(e, CheckFailed) else 422
        return _error(request, WebError(status, e.message, field=e.where, exit_code=e.exit_code), login_url)

    # ---- pages ----
    @app.get("/", include_in_schema=False)
    def index() -> RedirectResponse:
        return RedirectResponse("reviews")

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        """The pages' stylesheets, script and icons: a fixed list (pages.STATIC), nothing else on disk."""
        if name not in pages.STATIC:
            raise WebError(404, f"no static file {name[:80]!r}", field="name")
        package, path, media_type = pages.STATIC[name]
        return Response(resources.files(package).joinpath(path).read_bytes(), media_type=media_type)

    @app.get("/reviews", response_class=HTMLResponse)
    def reviews_page(who: deps.CallerDep, cfg: deps.ConfigDep) -> HTMLResponse:
        with session_scope(read_only=True) as s:
            waiting, decided = reviews.review_board(s, who, cfg)
            return HTMLResponse(pages.reviews_page(waiting, decided, who, cfg, links))

    @app.get("/ops", response_class=HTMLResponse)
    def ops_page(who: deps.CallerDep, cfg: deps.ConfigDep) -> HTMLResponse:
        with session_scope(read_only=True) as s:
            return HTMLResponse(pages.ops_page(reviews.ops_overview(s, cfg), who, cfg, links))

    @app.get("/reports/{sha256}", response_class=HTMLResponse)
    def simulation_report(sha256: str, who: deps.CallerDep) -> HTMLResponse:
        import json

        from hms import report
        from hms.registry import store
        from hms.simulate import SimulationResult

        with session_scope(read_only=True) as s:
            b = reviews.bundle_for(s, sha256)
            test = store.latest_checks(s, b.sha256).get("test")
        sim = json.loads(test.summary).get("simulation") if test else None
        if not sim or "protocol" not in sim:
            raise WebError(404, f"no simulation recorded for sha256:{b.sha256}", field="sha256")
        # Served with the app's stylesheet and theme script (the CSP allows no inline style); the CLI's file
        # inlines them instead (hms.report.render without assets).
        assets = report.Assets(stylesheet="../static/base.css", script="../static/hms.js")
        return HTMLResponse(report.render(SimulationResult.from_dict(sim), assets=assets))

    return app


def _zone() -> ZoneInfo:
    """The pipeline's zone for an error page's times; UTC when the policy itself cannot be read (the error may
    be about that), so an error page never fails in turn."""
    try:
        return deps.pipeline_config().tz
    except Exception:
        return pages.UTC_ZONE


def _error(request: Request, e: WebError, login_url: str | None) -> Response:
    """JSON for the API (and any client asking for JSON), an escaped HTML page for the browser pages."""
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    wants_html = "/api/" not in request.url.path and "text/html" in request.headers.get("accept", "")
    if wants_html:
        depth = request.url.path.removeprefix(request.scope.get("root_path", "")).count("/") - 1
        return HTMLResponse(
            pages.error_page(e.status, e.message, e.field, login_url, base="../" * max(depth, 0), tz=_zone()),
            status_code=e.status,
            headers=headers,
        )
    return JSONResponse(e.body(), status_code=e.status, headers=headers)
