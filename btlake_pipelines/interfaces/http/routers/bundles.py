"""``POST /api/v1/bundles``: upload one bundle, publish it to landing, optionally ingest now."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from btlake_pipelines.interfaces.http import uploads
from btlake_pipelines.interfaces.http.dependencies import ServerState, State, require_write
from btlake_pipelines.interfaces.http.models import BundleAccepted, BundleResult, ErrorBody

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
              "in landing (its manifest is there; use replace=true to overwrite it)."},
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
) -> BundleAccepted | JSONResponse:
    upload = await uploads.receive(request, state.max_upload_bytes, state.settings.upload_dir)
    try:
        files = {name: part.file for name, part in upload.files.items()}
        run_id = await run_in_threadpool(state.lake.publish_upload, upload.manifest, files,
                                         replace=replace)
    finally:
        await upload.close()
    if ingest != "now":
        return BundleAccepted(run_id=run_id, status="published",
                              message="published to landing; the sensor will ingest it")
    return await run_in_threadpool(_ingest, state, run_id)


def _ingest(state: ServerState, run_id: str) -> JSONResponse:
    with state.ingest_lock:
        batch = state.lake.ingest(names=[run_id], keep_warm=True)  # the next upload's child
    if not batch.results:
        # another ingester (the sensor) took the bundle between publish and ingest
        accepted = BundleAccepted(run_id=run_id, status="published",
                                  message="published; another ingester picked it up first")
        return JSONResponse(accepted.model_dump(mode="json"), status_code=202)
    result = batch.results[0]
    body = BundleResult.model_validate(state.scrubber(result.to_json()))
    body.run_id = body.run_id or run_id  # a refused bundle has no parsed run id
    # the fields the result has, as `btlake ingest` reports them (no nulls added)
    return JSONResponse(body.model_dump(mode="json", exclude_unset=True),
                        status_code=422 if body.status == "quarantined" else 200)
