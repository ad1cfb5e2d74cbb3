"""``/api/v1/tables``: download a slice of a table (streamed) and a table's history."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response, StreamingResponse

from btlake_pipelines.app.lake import Lake
from btlake_pipelines.interfaces.http import exports
from btlake_pipelines.interfaces.http.dependencies import (
    MAX_INT,
    LakeDep,
    State,
    require_read,
)
from btlake_pipelines.interfaces.http.models import TableHistory

router = APIRouter(prefix="/tables", tags=["tables"], dependencies=[Depends(require_read)])

TABLES = Lake.table_names()
TableName = Annotated[str, Path(description=f"one of: {', '.join(TABLES)}",
                                json_schema_extra={"enum": list(TABLES)})]

_BINARY = {"schema": {"type": "string", "format": "binary"}}
_DOWNLOAD_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "The slice: Parquet (default), Arrow IPC stream, CSV, or JSON rows "
                       "(capped; see `truncated`).",
        "content": {
            exports.MEDIA_TYPES["parquet"]: _BINARY,
            exports.MEDIA_TYPES["arrow"]: _BINARY,
            "text/csv": {"schema": {"type": "string"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/TableRows"}},
        },
    },
}


@router.get(
    "/{table}",
    summary="Download a slice of a table",
    description=(
        "The filters of `btlake read` as query parameters. `format=parquet` (default), "
        "`arrow` (Arrow IPC stream) and `csv` stream the whole slice batch by batch; `json` "
        "returns at most `limit` rows (capped by the server's BTLAKE_API_JSON_ROWS) and says "
        "whether more matched (`truncated`, header `X-Btlake-Truncated`). Timestamps are exact "
        "to the nanosecond (timestamp[ns, UTC])."),
    response_class=Response,
    responses=_DOWNLOAD_RESPONSES,
)
def download_table(
    lake: LakeDep,
    state: State,
    table: TableName,
    run_id: Annotated[list[str] | None, Query(description="repeatable")] = None,
    strategy: Annotated[str | None, Query(description="strategy id glob")] = None,
    market: Annotated[list[str] | None, Query(description="repeatable")] = None,
    symbol: Annotated[list[str] | None, Query(description="repeatable")] = None,
    start: Annotated[str | None, Query(description="ts >= start (ISO-8601)")] = None,
    end: Annotated[str | None, Query(description="ts < end (ISO-8601)")] = None,
    columns: Annotated[str | None, Query(description="comma-separated column names")] = None,
    as_of: Annotated[str | None, Query(description="a Delta version (digits), an ISO-8601 "
                                       "timestamp or tag:NAME")] = None,
    format: Annotated[Literal["parquet", "arrow", "csv", "json"], Query(
        description="parquet, arrow (IPC stream), csv or json")] = "parquet",
    limit: Annotated[int | None, Query(ge=0, le=MAX_INT, description=(
        "format=json only: rows to return (at most the server's cap)"))] = None,
) -> Response:
    filters = {"run_id": run_id or None, "strategy": strategy, "market": market or None,
               "symbol": symbol or None, "start": start, "end": end, "columns": columns,
               "as_of": as_of}
    if format == "json":
        cap = min(limit if limit is not None else state.json_rows, state.json_rows)
        rows = exports.json_rows(table, lake.scan(table, limit=cap + 1, **filters), cap)
        return Response(rows.model_dump_json(), media_type="application/json",
                        headers={"X-Btlake-Truncated": str(rows.truncated).lower()})
    reader = lake.scan(table, **filters)
    name = f"{run_id[0]}.{table}" if run_id and len(run_id) == 1 else table
    filename = quote(f"{name}.{exports.EXTENSIONS[format]}", safe="")
    return StreamingResponse(
        exports.stream(reader, format), media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/{table}/history", response_model=TableHistory,
            summary="The table's Delta versions, newest first")
def table_history(lake: LakeDep, table: TableName) -> dict[str, Any]:
    return {"versions": lake.history_records(table)}
