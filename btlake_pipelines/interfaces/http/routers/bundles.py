"""``POST /api/v1/bundles``: upload one bundle, publish it to landing, optionally ingest now."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from btlake_pipelines.interfaces.http import uploads
from btlake_pipelines.interfaces.http.dependencies import ServerState, State, require_write
from btlake_pipelines.interfaces.http.errors import ApiError
from btlake_pipelines.interfaces.http.models import BundleAccepted, BundleResult, ErrorBody
from btlake_pipelines.interfaces.publish import publish
from btlake_pipelines.landing.zone import open_landing

router = APIRouter(prefix="/bundles", tags=["bundles"], dependencies=[Depends(require_write)])

_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "required": ["manifest", "files"],
            "properties": {
                "manifest": {"type": "string", "description": "The manifest JSON (section 1 "
                             "of the contract), as a text field or a file part."},
                "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                          "description": "One part per table file; each part's filename is the "
                          "file name the manifest's 'tables' lists (a bare name, no '/' or "
                          "'..')."},
            },
        }}},
    },
}


@router.post(
    "",
    status_code=202,
    response_model=BundleAccepted,
    summary="Upload one bundle",
    description=(
        "Multipart upload of one bundle: a `manifest` field and one `files` part per table "
        "file. The body is streamed to disk (limit `BTLAKE_MAX_UPLOAD_MB`, 413 beyond it), "
        "checked, and published to landing (tables first, manifest last). Without `ingest=now` "
        "the answer is 202 and the sensor ingests it. With `ingest=now` it is ingested before "
        "the answer, by the same function as `btlake ingest`: 200 with the per-bundle result "
        "when it was ingested, unchanged or replaced; 422 with the result (its `error` and "
        "`reason`) when it was quarantined."),
    responses={
        200: {"model": BundleResult, "description": "Ingested, unchanged or replaced."},
        409: {"model": ErrorBody, "description": "A bundle of this run id is still waiting "
              "in landing (use replace=true to overwrite it)."},
        413: {"model": ErrorBody, "description": "The upload is larger than the limit."},
        415: {"model": ErrorBody, "description": "Not multipart/form-data."},
        422: {"model": BundleResult, "description": "Quarantined: the bundle breaks the "
              "contract; `error` and `reason` say how."},
    },
    openapi_extra=_UPLOAD_BODY,
)
async def upload_bundle(
    request: Request,
    state: State,
    ingest: Annotated[Literal["now"] | None, Query(
        description="'now': ingest before answering")] = None,
    replace: Annotated[bool, Query(
        description="overwrite a bundle of the same run id still waiting in landing")] = False,
) -> JSONResponse:
    staging = Path(tempfile.mkdtemp(prefix="btlake-upload-", dir=state.settings.upload_dir))
    try:
        received = await uploads.receive(request, staging, state.settings.max_upload_bytes)
        folder = uploads.stage_bundle(staging, received)
        await run_in_threadpool(_publish, state, folder, received.run_id, replace)
    finally:
        await run_in_threadpool(shutil.rmtree, staging, True)
    if ingest != "now":
        return JSONResponse({"run_id": received.run_id, "status": "published",
                             "message": "published to landing; the sensor will ingest it"},
                            status_code=202)
    return await run_in_threadpool(_ingest, state, received.run_id)


def _publish(state: ServerState, folder: Path, run_id: str, replace: bool) -> None:
    zone = open_landing(state.settings.landing_uri)
    if not replace and run_id in zone.bundle_names():
        raise ApiError(409, f"bundle {run_id!r} is already waiting in landing; wait for it to be "
                       "ingested or upload with replace=true")
    publish(folder, state.settings.landing_uri, replace=replace)


def _ingest(state: ServerState, run_id: str) -> JSONResponse:
    with state.ingest_lock:
        batch = state.lake.ingest(state.settings.landing_uri, names=[run_id])
    if not batch.results:
        # another ingester (the sensor) took the bundle between publish and ingest
        return JSONResponse({"run_id": run_id, "status": "published",
                             "message": "published; another ingester picked it up first"},
                            status_code=202)
    result = batch.results[0]
    body = state.scrubber(result.to_json())
    body["run_id"] = body.get("run_id") or run_id  # a refused bundle has no parsed run id
    return JSONResponse(body, status_code=422 if result.status == "quarantined" else 200)
