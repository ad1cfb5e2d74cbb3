"""Tags and lineage over HTTP (CONTRACT section 7): ``GET/POST /api/v1/tags``,
``DELETE /api/v1/tags/{name}``, ``GET /api/v1/runs/{run_id}/lineage`` and the extension
``GET /api/v1/tables/{table}/diff``. Reads need the read token, writes the write token, when
the server sets them."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from btlake_pipelines.interfaces.http.dependencies import LakeDep, require_read, require_write

router = APIRouter(tags=["tags and lineage"])


class TagBody(BaseModel):
    name: str = Field(description="1 to 128 characters of A-Z a-z 0-9 . _ -, not starting "
                                  "with '.'")
    message: str | None = None


class TagOut(BaseModel):
    name: str
    created_at: str
    message: str | None
    versions: dict[str, int] = Field(description="table -> the version the tag pins")


class TagList(BaseModel):
    tags: list[TagOut]


class LineageInput(BaseModel):
    table: str
    market: str
    symbols: list[str]
    start: str
    end: str
    version: int | None
    stale: bool
    resolved_by: str | None = None
    tag: str | None = None
    rows: int | None = None


class Lineage(BaseModel):
    run_id: str
    inputs: list[LineageInput]


class PartitionDiff(BaseModel):
    market: str | None
    date: str | None
    added: int
    removed: int


class TableDiff(BaseModel):
    table: str
    a: int
    b: int
    added: int
    removed: int
    partitions: list[PartitionDiff]


@router.get("/tags", response_model=TagList, summary="Every lake tag, oldest first",
            dependencies=[Depends(require_read)])
def list_tags(lake: LakeDep) -> dict[str, Any]:
    return {"tags": [t.record() for t in lake.tags()]}


@router.post("/tags", response_model=TagOut, status_code=201,
             summary="Record the current version of every table as a tag (409 if it exists)",
             dependencies=[Depends(require_write)])
def create_tag(lake: LakeDep, body: TagBody) -> dict[str, Any]:
    return lake.tag_create(body.name, body.message).record()


@router.delete("/tags/{name}", response_model=TagOut, summary="Delete a tag",
               dependencies=[Depends(require_write)])
def delete_tag(lake: LakeDep, name: Annotated[str, Path(description="the tag")]
               ) -> dict[str, Any]:
    return lake.tag_delete(name).record()


@router.get("/runs/{run_id}/lineage", response_model=Lineage,
            summary="A run's inputs, their resolved versions and whether they are stale",
            dependencies=[Depends(require_read)])
def run_lineage(lake: LakeDep, run_id: Annotated[str, Path(description="the run id")]
                ) -> dict[str, Any]:
    return lake.lineage(run_id)


@router.get("/tables/{table}/diff", response_model=TableDiff,
            summary="(extension) Rows added and removed per partition between two versions",
            dependencies=[Depends(require_read)])
def table_diff(lake: LakeDep, table: Annotated[str, Path(description="a fact table")],
               a: Annotated[str, Query(description="a version or tag:NAME")],
               b: Annotated[str, Query(description="a version or tag:NAME")]) -> dict[str, Any]:
    return lake.table_diff(table, a, b)
