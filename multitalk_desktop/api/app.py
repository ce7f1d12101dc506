"""The FastAPI application: `/api/v1` with the cloud service's surface, offline interactive docs at
`/api/v1/docs`, JSON errors without stack traces, and body-size limits in front of everything."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from multitalk_desktop import __version__
from multitalk_desktop.api.bodylimit import BodySizeLimit
from multitalk_desktop.api.errors import install_error_handlers
from multitalk_desktop.api.routes import router
from multitalk_desktop.api.state import ApiOptions, ApiState
from multitalk_desktop.config import AppContext

OPENAPI_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/v1/docs"
ASSETS_URL = "/api/v1/docs/assets"

DESCRIPTION = """The cloud MultiTalk service's `/api/v1`, on your own machine.

Every endpoint but `/health` needs `Authorization: Bearer <key>`; `multitalk-desktop api-key`
prints the key. Jobs submitted here appear in the window's queue and the other way round.
"""


def swagger_assets_dir() -> Path | None:
    """Swagger UI's files from the swagger-ui-bundle package, so the docs need no CDN."""
    try:
        import swagger_ui_bundle
    except ImportError:
        return None
    path = Path(swagger_ui_bundle.swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def create_app(ctx: AppContext, options: ApiOptions | None = None, state: ApiState | None = None) -> FastAPI:
    options = options or ApiOptions()
    app = FastAPI(title="MultiTalk Desktop API", version=__version__, description=DESCRIPTION,
                  openapi_url=OPENAPI_URL, docs_url=None, redoc_url=None)
    app.state.api = state or ApiState(ctx, options)
    install_error_handlers(app)
    app.include_router(router)

    assets = swagger_assets_dir()
    if assets is not None:
        app.mount(ASSETS_URL, StaticFiles(directory=assets), name="swagger-assets")

    @app.get(DOCS_URL, include_in_schema=False)
    def docs() -> HTMLResponse:
        if assets is None:
            return PlainTextResponse(f"The interactive docs need the swagger-ui-bundle package; the "
                                     f"schema is at {OPENAPI_URL}.", status_code=503)
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title="MultiTalk Desktop API",
                                   swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
                                   swagger_favicon_url=f"{ASSETS_URL}/favicon-32x32.png")

    limits = options.limits

    def body_limit(scope: dict) -> int:
        # Uploads may be large; nothing else needs more than a small JSON document.
        if scope.get("path", "").rstrip("/") == "/api/v1/generate":
            for name, value in scope.get("headers", []):
                if name == b"content-type" and value.lower().startswith(b"multipart/"):
                    return limits.max_upload_bytes
        return limits.max_json_bytes

    app.add_middleware(BodySizeLimit, limit_for=body_limit)
    return app
