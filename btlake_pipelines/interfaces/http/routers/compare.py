"""``/api/v1/compare``: two runs as ``btlake compare --format json`` (contract), and two or more
runs side by side for the browser (extension)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from btlake_pipelines.interfaces.http import insights
from btlake_pipelines.interfaces.http.dependencies import LakeDep, require_read
from btlake_pipelines.interfaces.http.models import Comparison, ManyComparison
from btlake_pipelines.query.search import jsonable

router = APIRouter(prefix="/compare", tags=["compare"], dependencies=[Depends(require_read)])


@router.get("", response_model=Comparison, summary="Compare two runs")
def compare(lake: LakeDep,
            a: Annotated[str, Query(description="first run id")],
            b: Annotated[str, Query(description="second run id")]) -> JSONResponse:
    return JSONResponse(jsonable(lake.compare(a, b)))


@router.get("/runs", response_model=ManyComparison,
            summary="(extension) Compare two or more runs side by side")
def compare_many(lake: LakeDep,
                 run: Annotated[list[str], Query(description=(
                     f"run id, repeated 2 to {insights.MAX_COMPARE} times"))]) -> JSONResponse:
    return JSONResponse(jsonable(insights.compare_many(lake.catalog, run)))
