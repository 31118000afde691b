"""Browser pages: the playground at ``/`` and the interactive API docs at ``/docs``.

Both are served entirely by this service (no CDN, no external font), so they work offline, inside
the container and behind a locked-down network:

- the playground is three static files in ``serve_app/playground/`` that call ``POST /predict``
  like any other client (it is an HTTP client of the API, not a second way in);
- Swagger UI's JavaScript and CSS come from the pinned ``swagger-ui-bundle-v2`` package (Swagger UI 5), in place of
  FastAPI's default page, which loads them from a CDN.

Every file is read once, when the router is built, from a fixed list: no path from the request
ever reaches the file system. SageMaker routes only /ping and /invocations, so none of this is
reachable on an endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path

PLAYGROUND_DIR = Path(__file__).with_name("playground")
DOCS_ASSETS_PREFIX = "/docs/assets"

# The browser enforces what the tests check: the page's scripts, styles and requests all stay on
# this origin (images arrive inline in the JSON, shown as data: URLs).
PLAYGROUND_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
# FastAPI's Swagger page starts Swagger UI from an inline script, hence 'unsafe-inline' there;
# the OpenAPI schema and "Try it out" calls go to this origin only.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class StaticFile:
    content: bytes
    media_type: str


def _load(directory: Path, names: dict[str, str]) -> dict[str, StaticFile]:
    return {name: StaticFile((directory / name).read_bytes(), media) for name, media in names.items()}


PLAYGROUND_FILES = {
    "index.html": "text/html; charset=utf-8",
    "playground.css": "text/css; charset=utf-8",
    "playground.js": "text/javascript; charset=utf-8",
}
DOCS_ASSET_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}


def _static_response(file: StaticFile, *, cache: str = "no-cache", csp: str | None = None) -> Response:
    headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": cache}
    if csp:
        headers["Content-Security-Policy"] = csp
    return Response(file.content, media_type=file.media_type, headers=headers)


def pages_router(*, playground: bool, openapi_url: str = "/openapi.json", title: str = "SD-Turbo") -> APIRouter:
    """The routes of the browser pages; ``playground=False`` leaves only /docs.

    The app that includes this router must be built with ``docs_url=None`` (FastAPI's own /docs
    would load Swagger UI from a CDN).
    """
    router = APIRouter(include_in_schema=False)

    # 1. /docs: FastAPI's Swagger page, pointed at assets served below.
    docs_assets = _load(Path(swagger_ui_path), DOCS_ASSET_FILES)

    @router.get("/docs", response_class=HTMLResponse)
    async def swagger_ui(request: Request) -> HTMLResponse:
        # Behind a route prefix, links must carry it (as FastAPI's own /docs route does).
        root = request.scope.get("root_path", "").rstrip("/")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{root}{DOCS_ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS_PREFIX}/favicon-32x32.png",
            # Swagger UI would otherwise send the schema to validator.swagger.io for its badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @router.get(DOCS_ASSETS_PREFIX + "/{name}")
    async def swagger_asset(name: str) -> Response:
        if name not in docs_assets:
            raise HTTPException(status_code=404)
        # Versioned with the pinned swagger-ui-bundle-v2: safe to cache.
        return _static_response(docs_assets[name], cache="public, max-age=86400")

    # 2. The playground: the page at / and its two assets.
    if playground:
        files = _load(PLAYGROUND_DIR, PLAYGROUND_FILES)

        @router.get("/", response_class=HTMLResponse)
        async def playground_page() -> Response:
            return _static_response(files["index.html"], csp=PLAYGROUND_CSP)

        @router.get("/playground/{name}")
        async def playground_asset(name: str) -> Response:
            if name not in files or name == "index.html":
                raise HTTPException(status_code=404)
            return _static_response(files[name])

    return router
