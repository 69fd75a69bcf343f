"""The API's documentation pages, /docs (Swagger UI) and /redoc, with their scripts, styles
and icon served by the API itself from the fastapi-offline package: they work with no
internet access (no CDN, no web fonts)."""

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse

from api.problems import not_found

DOCS = "/docs"
REDOC = "/redoc"
ASSETS = "/docs/assets"
_FILES = Path(fastapi_offline.__file__).parent / "static"
_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def install(app: FastAPI) -> None:
    """Add the pages to an app made with docs_url=None and redoc_url=None (FastAPI's own
    pages load their assets from a CDN); app.docs_url and app.redoc_url then name these."""
    assert app.openapi_url is not None and app.docs_url is None and app.redoc_url is None
    openapi_url, oauth2_redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url

    @app.get(DOCS, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect_url}" if oauth2_redirect_url else None,
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            # No validator badge: Swagger UI would fetch it from swagger.io.
            swagger_ui_parameters={**(app.swagger_ui_parameters or {}), "validatorUrl": None},
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
            with_google_fonts=False,
        )

    @app.get(f"{ASSETS}/{{name}}", include_in_schema=False)
    async def asset(name: str) -> FileResponse:
        if name not in _TYPES:  # only these files, never a path into the package
            raise not_found("documentation asset", name)
        return FileResponse(_FILES / name, media_type=_TYPES[name], headers={"Cache-Control": "public, max-age=86400"})

    app.docs_url, app.redoc_url = DOCS, REDOC
