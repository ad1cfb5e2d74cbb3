"""The one place that turns an error into an HTTP answer.

Every answer to a caller's mistake is JSON ``{"error": "<what to fix>", "detail": ...}`` with a
4xx status. btlake's errors get their status here, by class (:data:`STATUS`), and their text as
the core wrote it: a core error about one input names it by its neutral name (``run_id``,
``as_of``, ``where``), which is also the query parameter's name, and ``detail.param`` carries
that name for programs. Request validation failures (a query parameter of the wrong type, say)
answer 400, unknown paths 404. An unexpected failure answers 500 with a short id and nothing
else; the traceback goes to the server log only. Messages never carry a server path: known
roots (lake, landing, upload and temporary folders, the home folder) are scrubbed from every
message before it leaves.
"""

from __future__ import annotations

import logging
import os
import tempfile
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from btlake_pipelines.app.publish import BundleWaiting
from btlake_pipelines.errors import (
    BtlakeError,
    BundleRefused,
    NotFoundError,
    RetentionError,
    TagExistsError,
    is_store_failure,
    redact,
)
from btlake_pipelines.interfaces.http.routers.pages import render

log = logging.getLogger("btlake.http")

#: btlake's errors by HTTP status, most specific first; any other BtlakeError is a 400.
STATUS: tuple[tuple[type[BtlakeError], int, str], ...] = (
    (NotFoundError, 404, "not_found"),
    (RetentionError, 410, "gone"),
    (BundleWaiting, 409, "conflict"),
    (TagExistsError, 409, "conflict"),
    (BundleRefused, 400, "bundle_refused"),
)
#: The storage service failed (S3 unreachable, credentials refused): not the caller's doing.
STORE_FAILURE = (502, "store_failure")


class ApiError(Exception):
    """An HTTP-level refusal (tokens, upload framing, limits) with its status and message."""

    def __init__(self, status: int, message: str, detail: Any = None, *,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.detail = detail
        self.headers = headers


class Scrubber:
    """Removes server paths and this server's tokens from text that is about to be sent to a
    caller (beyond :func:`~btlake_pipelines.errors.redact`, which knows the settings in force,
    not those an application was created with)."""

    def __init__(self, *roots: str | None, secrets: tuple[str | None, ...] = ()) -> None:
        self.secrets = [s for s in secrets if s and len(s) >= 4]
        found = {tempfile.gettempdir(), os.path.expanduser("~"), os.getcwd()}
        found |= {r for r in roots if r}
        resolved = set()
        for r in found:
            resolved.add(r)
            if "://" not in r:
                resolved.add(os.path.realpath(r))
        # longest first, so a root inside another root is replaced whole
        self.roots = sorted((r.rstrip("/") for r in resolved if len(r.rstrip("/")) > 1),
                            key=len, reverse=True)

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            value = redact(value)
            for secret in self.secrets:
                value = value.replace(secret, "***")
            for root in self.roots:
                if root in value:
                    value = value.replace(root, "…")
            return value
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        return value


def status_of(exc: BtlakeError) -> tuple[int, str]:
    """The HTTP status of a btlake error and the ``detail.type`` that names it."""
    if is_store_failure(exc):
        return STORE_FAILURE
    return next(((status, kind) for cls, status, kind in STATUS if isinstance(exc, cls)),
                (400, "bad_request"))


def _json(request: Request, status: int, message: str, detail: Any = None,
          headers: dict[str, str] | None = None) -> JSONResponse:
    state = getattr(request.app.state, "btlake", None)
    scrub = getattr(state, "scrubber", None) or Scrubber()
    return JSONResponse(scrub({"error": message, "detail": detail}), status_code=status,
                        headers=headers)


async def _btlake_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BtlakeError)
    status, kind = status_of(exc)
    detail: dict[str, Any] = {"type": kind}
    if exc.param is not None:
        detail["param"] = exc.param
    if isinstance(exc, BundleRefused):
        detail["reason"] = exc.reason()
    return _json(request, status, str(exc), detail)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _json(request, exc.status, exc.message, exc.detail, exc.headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        place = loc[0] if loc else "request"
        problems.append({"in": place, "name": where, "problem": str(err.get("msg", ""))})
    first = problems[0] if problems else {"in": "request", "name": "", "problem": "invalid"}
    message = f"invalid {first['in']} parameter '{first['name']}': {first['problem']}"
    if len(problems) > 1:
        message += f" (and {len(problems) - 1} more problem(s))"
    return _json(request, 400, message, problems)


async def _http_error(request: Request, exc: Exception) -> Any:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: f"no such endpoint: {request.method} {request.url.path}",
                405: f"method {request.method} is not allowed on {request.url.path}"}
    message = messages.get(exc.status_code) or str(exc.detail)
    if exc.status_code == 404 and _wants_html(request):
        return render(request, "error.html", "Not found", status_code=404, message=message,
                      page="error")
    return _json(request, exc.status_code, message, None, getattr(exc, "headers", None))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    incident = uuid.uuid4().hex[:12]
    log.exception("unexpected error %s on %s %s", incident, request.method, request.url.path)
    return JSONResponse({"error": "internal error; the server log has the details",
                         "detail": {"incident": incident}}, status_code=500)


def _wants_html(request: Request) -> bool:
    return (not request.url.path.startswith("/api/")
            and "text/html" in request.headers.get("accept", ""))


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(BtlakeError, _btlake_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
