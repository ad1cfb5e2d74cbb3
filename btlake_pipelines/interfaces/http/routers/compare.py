"""``/api/v1/compare``: two runs as ``btlake compare --format json`` (contract), and two or more
runs side by side for the browser (extension)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from btlake_pipelines.interfaces.http.dependencies import LakeDep, require_read
from btlake_pipelines.interfaces.http.models import Comparison, ManyComparison

router = APIRouter(prefix="/compare", tags=["compare"], dependencies=[Depends(require_read)])


@router.get("", response_model=Comparison, summary="Compare two runs")
def compare(lake: LakeDep,
            a: Annotated[str, Query(description="first run id")],
            b: Annotated[str, Query(description="second run id")]) -> dict[str, Any]:
    return lake.compare(a, b)


@router.get("/runs", response_model=ManyComparison,
            summary="(extension) Compare two or more runs side by side")
def compare_many(lake: LakeDep,
                 run: Annotated[list[str], Query(description=(
                     "run id, repeated once per run (two or more)"))]) -> dict[str, Any]:
    return lake.compare_many(run)
