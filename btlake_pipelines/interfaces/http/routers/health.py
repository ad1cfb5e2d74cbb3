"""``/api/v1/health``: liveness and what the server serves; open even when reads need a token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from fastapi import APIRouter, Request

from btlake_pipelines.errors import redact
from btlake_pipelines.interfaces.http.dependencies import State
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
def health(request: Request, state: State) -> dict[str, Any]:
    settings = state.settings
    return {
        "status": "ok", "lake": public_uri(settings.lake),
        "landing": public_uri(settings.landing), "version": request.app.version,
        "auth": {"write_token": settings.api_token is not None,
                 "read_token": settings.api_read_token is not None},
        "replica": replica_lag(state) if settings.replica else None,
    }


def replica_lag(state: State) -> dict[str, Any]:
    """The replica's lag; a replica that cannot be read is reported, never a failed health."""
    target = public_uri(state.settings.replica or "")
    try:
        found = state.lake.replication_status()
    except Exception as exc:
        return {"replica": target, "error": redact(f"{type(exc).__name__}: {exc}")[:300]}
    return {"replica": target, **found.to_dict()}
