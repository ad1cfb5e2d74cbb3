"""What every route shares: the server's settings, the one ``Lake`` and the token checks.

Settings are read once, when the application is created (``create_app``), from arguments or the
environment:

- ``BTLAKE_LAKE`` / ``BTLAKE_LANDING``: the lake and landing zone (as for the CLI);
- ``BTLAKE_API_TOKEN``: when set, writes (``POST``) need ``Authorization: Bearer <token>``;
- ``BTLAKE_API_READ_TOKEN``: when set, reads under ``/api/v1`` (but ``/api/v1/health``) need
  that token or the write token;
- ``BTLAKE_MAX_UPLOAD_MB`` (default 1024): the largest upload body, in MiB;
- ``BTLAKE_API_JSON_ROWS`` (default 10000): the most rows ``format=json`` returns;
- ``BTLAKE_UPLOAD_DIR``: where uploads are spooled before they are published (default: the
  system temporary folder).

Tokens are compared with :func:`hmac.compare_digest` (constant time). A missing token answers
401, a wrong one 403.
"""

from __future__ import annotations

import hmac
import os
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.interfaces.http.errors import ApiError, Scrubber
from btlake_pipelines.app.lake import Lake
from btlake_pipelines.settings import landing_uri

DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_JSON_ROWS = 10_000


@dataclass
class ApiSettings:
    lake_uri: str
    landing_uri: str
    write_token: str | None = None
    read_token: str | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_MB * 1024 * 1024
    json_row_limit: int = DEFAULT_JSON_ROWS
    upload_dir: str | None = None

    @classmethod
    def from_env(cls, lake: str | None = None, landing: str | None = None, *,
                 max_upload_mb: float | None = None, json_row_limit: int | None = None
                 ) -> ApiSettings:
        from btlake_pipelines.settings import lake_uri

        mb = max_upload_mb if max_upload_mb is not None else _number(
            "BTLAKE_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)
        rows = json_row_limit if json_row_limit is not None else int(_number(
            "BTLAKE_API_JSON_ROWS", DEFAULT_JSON_ROWS))
        if mb <= 0 or rows <= 0:
            raise BtlakeError("BTLAKE_MAX_UPLOAD_MB and BTLAKE_API_JSON_ROWS must be > 0")
        return cls(
            lake_uri=lake_uri(lake),
            landing_uri=landing_uri(landing),
            write_token=os.environ.get("BTLAKE_API_TOKEN") or None,
            read_token=os.environ.get("BTLAKE_API_READ_TOKEN") or None,
            max_upload_bytes=int(mb * 1024 * 1024),
            json_row_limit=rows,
            upload_dir=os.environ.get("BTLAKE_UPLOAD_DIR") or None,
        )


def _number(name: str, default: float) -> float:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise BtlakeError(f"{name} must be a number, got {text[:40]!r}") from None


@dataclass
class ServerState:
    """Everything one application instance holds: settings, the one ``Lake`` (its catalog keeps
    tables and the runs table warm between requests) and a lock that serializes ``ingest=now``
    batches of this process."""

    settings: ApiSettings
    lake: Lake
    scrubber: Scrubber
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)


def get_state(request: Request) -> ServerState:
    return request.app.state.btlake


def get_lake(request: Request) -> Lake:
    return request.app.state.btlake.lake


def get_settings(request: Request) -> ApiSettings:
    return request.app.state.btlake.settings


State = Annotated[ServerState, Depends(get_state)]
LakeDep = Annotated[Lake, Depends(get_lake)]
SettingsDep = Annotated[ApiSettings, Depends(get_settings)]

_bearer = HTTPBearer(auto_error=False, description=(
    "Bearer token: BTLAKE_API_TOKEN for uploads; BTLAKE_API_READ_TOKEN (or the write token) "
    "for reads, when the server sets them."))
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _presented(credentials: HTTPAuthorizationCredentials | None) -> str | None:
    if credentials is not None and credentials.credentials:
        return credentials.credentials
    return None


def _matches(token: str, *expected: str | None) -> bool:
    given = token.encode()
    ok = False
    for want in expected:
        if want is not None:
            # no short-circuit: every configured token is compared, in constant time each
            ok |= hmac.compare_digest(given, want.encode())
    return ok


def require_read(request: Request, credentials: Credentials) -> None:
    """Reads need the read token (or the write token) when ``BTLAKE_API_READ_TOKEN`` is set."""
    settings: ApiSettings = request.app.state.btlake.settings
    if settings.read_token is None:
        return
    _check(_presented(credentials), settings.read_token, settings.write_token)


def require_write(request: Request, credentials: Credentials) -> None:
    """Writes need the write token when ``BTLAKE_API_TOKEN`` is set."""
    settings: ApiSettings = request.app.state.btlake.settings
    if settings.write_token is None:
        return
    _check(_presented(credentials), settings.write_token)


def _check(token: str | None, *expected: str | None) -> None:
    if token is None:
        raise ApiError(401, "this endpoint needs a token: send 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": 'Bearer realm="btlake"'})
    if not _matches(token, *expected):
        raise ApiError(403, "the token was not accepted for this endpoint",
                       headers={"WWW-Authenticate": 'Bearer realm="btlake", '
                                                    'error="invalid_token"'})
