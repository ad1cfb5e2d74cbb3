"""``/api/v1/health``: liveness and what the server serves; open even when reads need a token."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from btlake_pipelines.interfaces.http.dependencies import SettingsDep
from btlake_pipelines.interfaces.http.models import Health

router = APIRouter(tags=["health"])


def public_uri(uri: str) -> str:
    """A URI without user info, query or fragment: whatever credentials a URI may carry are
    never shown."""
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


@router.get("/health", response_model=Health, summary="Liveness and the lake URI served")
def health(settings: SettingsDep) -> JSONResponse:
    from importlib.metadata import PackageNotFoundError, version

    try:
        release = version("btlake")
    except PackageNotFoundError:  # pragma: no cover - running from a plain checkout
        release = "unknown"
    return JSONResponse({
        "status": "ok", "lake": public_uri(settings.lake_uri),
        "landing": public_uri(settings.landing_uri), "version": release,
        "auth": {"write_token": settings.write_token is not None,
                 "read_token": settings.read_token is not None},
    })
