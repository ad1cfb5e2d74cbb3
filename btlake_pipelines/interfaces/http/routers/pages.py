"""The lake browser: server-rendered pages (Jinja2) whose data comes from the JSON API through a
little JavaScript (``static/app.js``), so a read token, when set, protects the data and the page
asks for it. Plots use plotly.js from the installed ``plotly`` package: no CDN, no build step."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

HERE = FsPath(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

#: Pages only load what this server serves; styles may be inline (plotly sets them).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'; form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "same-origin", "Cache-Control": "no-cache"}


def plotly_js() -> FsPath:
    """plotly.min.js as shipped inside the ``plotly`` wheel."""
    import plotly

    return FsPath(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"


def render(request: Request, template: str, title: str, *, status_code: int = 200,
           **context) -> HTMLResponse:
    """A page of the browser: its template with the path prefix and asset version every page
    needs, and the security headers."""
    templates = request.app.state.templates
    return templates.TemplateResponse(request, template, {
        "title": title, "base": request.scope.get("root_path", "").rstrip("/"),
        "asset_version": request.app.state.asset_version, **context}, headers=HEADERS,
        status_code=status_code)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    return render(request, "index.html", "Runs", page="index")


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_page(request: Request, run_id: Annotated[str, Path()]) -> HTMLResponse:
    return render(request, "run.html", run_id, page="run", run_id=run_id)


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    return render(request, "compare.html", "Compare runs", page="compare")


@router.get("/tags", response_class=HTMLResponse)
def tags_page(request: Request) -> HTMLResponse:
    return render(request, "tags.html", "Tags", page="tags")


@router.get("/vendor/plotly.min.js")
def plotly_bundle() -> FileResponse:
    return FileResponse(plotly_js(), media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})
