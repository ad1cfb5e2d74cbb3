"""``/api/v1/runs``: search runs, one run's snapshot and versions (contract), plus the browser's
extensions: a run's equity curve (downsampled) and the difference between two of its versions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from btlake_pipelines.interfaces.http.dependencies import MAX_INT, LakeDep, require_read
from btlake_pipelines.interfaces.http.models import (
    EquityCurve,
    RunSnapshot,
    RunsPage,
    RunVersions,
    VersionDiff,
)

router = APIRouter(prefix="/runs", tags=["runs"], dependencies=[Depends(require_read)])

MAX_LIMIT = 100_000
RunId = Annotated[str, Path(description="the run id")]


@router.get("", response_model=RunsPage, summary="Search runs")
def search_runs(
    lake: LakeDep,
    strategy: Annotated[str | None, Query(description="strategy id glob, e.g. 'momentum*'")
                        ] = None,
    market: Annotated[list[str] | None, Query(description="runs that traded this market "
                                              "(repeatable: any of them)")] = None,
    since: Annotated[str | None, Query(description="created at or after (ISO-8601)")] = None,
    until: Annotated[str | None, Query(description="created before (ISO-8601)")] = None,
    where: Annotated[str | None, Query(description=(
        "predicate over run fields, e.g. \"params.lookback >= 20 and metrics.sharpe > 1\" "
        "(the language of `btlake runs --where`)"))] = None,
    order_by: Annotated[str | None, Query(description="field to sort by, e.g. metrics.sharpe "
                                          "(default: newest first)")] = None,
    desc: Annotated[bool, Query(description="sort descending")] = False,
    limit: Annotated[int, Query(ge=0, le=MAX_LIMIT, description="runs to return")] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="runs to skip")] = 0,
    as_of: Annotated[str | None, Query(description="the runs as they were at a version of "
                                       "runs, an ISO-8601 time or tag:NAME")] = None,
    stale: Annotated[bool, Query(description="only runs with a stale input")] = False,
) -> dict[str, Any]:
    found = lake.find_runs(strategy=strategy, market=market or None, since=since, until=until,
                           where=where, order_by=order_by, desc=desc, limit=limit,
                           offset=offset, as_of=as_of, stale=stale)
    return {"runs": found.records(), "total": found.total, "limit": limit, "offset": offset}


@router.get("/{run_id}", response_model=RunSnapshot, summary="One run's metadata snapshot")
def get_run(lake: LakeDep, run_id: RunId) -> dict[str, Any]:
    return lake.run(run_id)


@router.get("/{run_id}/versions", response_model=RunVersions,
            summary="Every version of a run time travel can still reach, newest first")
def get_run_versions(lake: LakeDep, run_id: RunId) -> dict[str, Any]:
    return {"run_id": run_id, "versions": lake.run_versions(run_id)}


@router.get("/{run_id}/equity", response_model=EquityCurve,
            summary="(extension) The run's equity curve and drawdown, downsampled")
def get_equity(lake: LakeDep, run_id: RunId,
               points: Annotated[int, Query(ge=10, le=200_000, description=(
                   "about how many points to return; longer curves keep each bucket's "
                   "min, max and deepest drawdown"))] = 2000) -> Any:
    return lake.equity_curve(run_id, points)


@router.get("/{run_id}/diff", response_model=VersionDiff,
            summary="(extension) What changed between two stored versions of a run")
def get_version_diff(
    lake: LakeDep, run_id: RunId,
    a: Annotated[int | None, Query(ge=0, le=MAX_INT, description=(
        "older version: its runs-table version (versions.runs in /versions); default: the "
        "one before b"))] = None,
    b: Annotated[int | None, Query(ge=0, le=MAX_INT, description=(
        "newer version; default: the current one"))] = None,
) -> dict[str, Any]:
    return lake.run_diff(run_id, a, b)
