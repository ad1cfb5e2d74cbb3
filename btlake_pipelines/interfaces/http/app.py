"""``create_app``: the FastAPI application of ``btlake serve``, assembled from its routers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from btlake_pipelines.interfaces.http import errors
from btlake_pipelines.interfaces.http.dependencies import ServerState
from btlake_pipelines.interfaces.http.models import ErrorBody, TableRows
from btlake_pipelines.interfaces.http.routers import (
    bundles,
    compare,
    coverage,
    health,
    pages,
    runs,
    tables,
)
from btlake_pipelines.interfaces.http.routers import tags as tag_routes
from btlake_pipelines.settings import Settings, current

API_PREFIX = "/api/v1"

DESCRIPTION = """\
Upload result bundles, search runs, download table slices, see versions and compare runs,
over the same lake as the `btlake` command line. Errors are JSON `{"error", "detail"}` with a 4xx
status for anything the caller can fix. When the server sets `BTLAKE_API_TOKEN`, uploads need
`Authorization: Bearer <token>`; when it sets `BTLAKE_API_READ_TOKEN`, reads need that token or
the write token (`/api/v1/health` stays open). The lake browser is at `/`.
"""

_ERRORS: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorBody, "description": "A caller mistake: what to fix is in `error`. "
            "401 no token, 403 wrong token, 404 unknown run/table/version, 409 bundle "
            "still waiting, 410 vacuumed version, 400 anything else."},
}


def create_app(lake_uri: str | None = None, landing_uri: str | None = None, *,
               settings: Settings | None = None, max_upload_mb: float | None = None,
               json_row_limit: int | None = None) -> FastAPI:
    """The application over one lake. ``settings``: everything the server reads (default:
    :func:`btlake_pipelines.settings.current`, read here, once); ``lake_uri`` / ``landing_uri``
    override its locations as ``--lake`` and ``--landing`` do, ``max_upload_mb`` and
    ``json_row_limit`` its limits."""
    settings = (settings or current()).with_(lake=lake_uri, landing=landing_uri)
    app = FastAPI(title="btlake", version=_version(), description=DESCRIPTION,
                  openapi_url="/openapi.json", docs_url="/docs", redoc_url=None)
    app.state.btlake = ServerState.create(settings, max_upload_mb=max_upload_mb,
                                          json_rows=json_row_limit)
    app.state.templates = Jinja2Templates(directory=str(pages.TEMPLATES))
    app.state.asset_version = _version()
    errors.install(app)

    for router in (bundles.router, tag_routes.router, runs.router, tables.router,
                   compare.router, health.router):
        app.include_router(router, prefix=API_PREFIX, responses=_ERRORS)
    app.include_router(coverage.router, prefix=API_PREFIX, responses=_ERRORS)
    app.include_router(coverage.page_router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=str(pages.STATIC)), name="static")
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.setdefault("TableRows", TableRows.model_json_schema(
            ref_template="#/components/schemas/{model}"))
        app.openapi_schema = schema
    return app.openapi_schema


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("btlake")
    except PackageNotFoundError:  # pragma: no cover
        return "0"
