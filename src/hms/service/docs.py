"""The decision service's API docs, served by the service itself: ``/docs`` (Swagger UI) and ``/redoc``.

FastAPI's default pages load their JavaScript and CSS from a CDN (and ReDoc its fonts from Google), so on
a government network without internet ``/docs`` is a blank page. Here the same pages (FastAPI's own
``get_swagger_ui_html`` / ``get_redoc_html``) point at assets shipped in a pinned PyPI package,
``fastapi-offline``, mounted as static files under ``ASSETS``: nothing leaves the host.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def assets_dir() -> str:
    """Where the pinned package keeps swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
    return str(files("fastapi_offline") / "static")


def mount_docs(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from local assets; build the app with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=assets_dir()), name="docs-assets")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} — docs",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters={"validatorUrl": None},  # its default posts the spec to validator.swagger.io
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{title} — ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
