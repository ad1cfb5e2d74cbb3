"""What every route shares: the server's state (settings, the one ``Lake``, limits) and the
token checks.

Everything comes from one :class:`~btlake_pipelines.settings.Settings`, given to ``create_app``
or taken from :func:`btlake_pipelines.settings.current` once, when the application is created:

- ``api_token`` (``BTLAKE_API_TOKEN``): when set, writes (``POST``) need
  ``Authorization: Bearer <token>``;
- ``api_read_token`` (``BTLAKE_API_READ_TOKEN``): when set, reads under ``/api/v1`` (but
  ``/api/v1/health``) need that token or the write token;
- ``max_upload_mb`` (``BTLAKE_MAX_UPLOAD_MB``, default 1024) and ``json_rows``
  (``BTLAKE_API_JSON_ROWS``, default 10000);
- ``upload_dir`` (``BTLAKE_UPLOAD_DIR``): where uploads are spooled (default: the system
  temporary folder).

The limits and the upload folder are checked here, so a bad value stops the server at start
rather than failing a request later.

Tokens are compared by the one rule in ``app/access.py`` (constant time). A missing token answers
401, a wrong one 403.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.errors import BtlakeError
from btlake_pipelines.interfaces.http.errors import ApiError, Scrubber
from btlake_pipelines.settings import Settings

DEFAULT_MAX_UPLOAD_MB = 1024
DEFAULT_JSON_ROWS = 10_000
#: The largest integer a query parameter takes: an int64 with room, so no value reaches polars
#: or Delta as an overflow (schemathesis sends huge ones).
MAX_INT = 2**62


def positive(value: str | float | None, name: str, default: float) -> float:
    """A limit from the settings: ``default`` when unset, else a number > 0."""
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not number > 0:
        raise BtlakeError(f"{name} must be a number > 0, got {str(value)[:40]!r}")
    return number


@dataclass
class ServerState:
    """Everything one application instance holds: its settings and limits, the one ``Lake``
    (its catalog keeps tables and the runs table warm between requests) and a lock that
    serializes ``ingest=now`` batches of this process."""

    settings: Settings
    lake: Lake
    max_upload_bytes: int
    json_rows: int
    scrubber: Scrubber
    ingest_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, settings: Settings, *, max_upload_mb: float | None = None,
               json_rows: int | None = None) -> ServerState:
        mb = positive(max_upload_mb if max_upload_mb is not None else settings.max_upload_mb,
                      "BTLAKE_MAX_UPLOAD_MB", DEFAULT_MAX_UPLOAD_MB)
        rows = positive(json_rows if json_rows is not None else settings.json_rows,
                        "BTLAKE_API_JSON_ROWS", DEFAULT_JSON_ROWS)
        if settings.upload_dir and not os.path.isdir(settings.upload_dir):
            raise BtlakeError(f"BTLAKE_UPLOAD_DIR {settings.upload_dir!r} is not a folder")
        return cls(settings=settings, lake=Lake(settings=settings),
                   max_upload_bytes=int(mb * 1024 * 1024), json_rows=int(rows),
                   scrubber=Scrubber(settings.lake, settings.landing, settings.upload_dir,
                                     secrets=(settings.api_token, settings.api_read_token)))


def get_state(request: Request) -> ServerState:
    return request.app.state.btlake


def get_lake(request: Request) -> Lake:
    return request.app.state.btlake.lake


State = Annotated[ServerState, Depends(get_state)]
LakeDep = Annotated[Lake, Depends(get_lake)]

_bearer = HTTPBearer(auto_error=False, description=(
    "Bearer token: BTLAKE_API_TOKEN for uploads; BTLAKE_API_READ_TOKEN (or the write token) "
    "for reads, when the server sets them."))
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def require_read(state: State, credentials: Credentials) -> None:
    """Reads need the read token (or the write token) when ``BTLAKE_API_READ_TOKEN`` is set."""
    _check(state, credentials, write=False)


def require_write(state: State, credentials: Credentials) -> None:
    """Writes need the write token when ``BTLAKE_API_TOKEN`` is set."""
    _check(state, credentials, write=True)


def _check(state: ServerState, credentials: HTTPAuthorizationCredentials | None, *,
           write: bool) -> None:
    """The tokens' one rule (``Lake.token_verdict``, shared with the Flight server), worded
    for HTTP: a missing token is 401, a wrong one 403."""
    token = credentials.credentials if credentials is not None else None
    verdict = state.lake.token_verdict(token or None, write=write)
    if verdict == "missing":
        raise ApiError(401, "this endpoint needs a token: send 'Authorization: Bearer <token>'",
                       headers={"WWW-Authenticate": 'Bearer realm="btlake"'})
    if verdict == "refused":
        raise ApiError(403, "the token was not accepted for this endpoint",
                       headers={"WWW-Authenticate": 'Bearer realm="btlake", '
                                                    'error="invalid_token"'})
