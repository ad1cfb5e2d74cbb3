"""``/api/v1/tables``: download a slice of a table (streamed) and a table's history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse, Response, StreamingResponse

from btlake_pipelines.contract.run_ids import is_valid_run_id
from btlake_pipelines.contract.tables import ALL_TABLES
from btlake_pipelines.interfaces.http import exports
from btlake_pipelines.interfaces.http.dependencies import LakeDep, SettingsDep, require_read
from btlake_pipelines.interfaces.http.models import TableHistory, TableRows
from btlake_pipelines.query.read import scan_read
from btlake_pipelines.query.search import jsonable

router = APIRouter(prefix="/tables", tags=["tables"], dependencies=[Depends(require_read)])

TableName = Annotated[str, Path(description=f"one of: {', '.join(ALL_TABLES)}",
                                json_schema_extra={"enum": list(ALL_TABLES)})]

_DOWNLOAD_RESPONSES = {
    200: {
        "description": "The slice: Parquet (default), Arrow IPC stream, CSV, or JSON rows "
                       "(capped; see `truncated`).",
        "content": {
            "application/vnd.apache.parquet": {"schema": {"type": "string",
                                                          "format": "binary"}},
            "application/vnd.apache.arrow.stream": {"schema": {"type": "string",
                                                               "format": "binary"}},
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
    settings: SettingsDep,
    table: TableName,
    run_id: Annotated[list[str] | None, Query(description="repeatable")] = None,
    strategy: Annotated[str | None, Query(description="strategy id glob")] = None,
    market: Annotated[list[str] | None, Query(description="repeatable")] = None,
    symbol: Annotated[list[str] | None, Query(description="repeatable")] = None,
    start: Annotated[str | None, Query(description="ts >= start (ISO-8601)")] = None,
    end: Annotated[str | None, Query(description="ts < end (ISO-8601)")] = None,
    columns: Annotated[str | None, Query(description="comma-separated column names")] = None,
    as_of: Annotated[str | None, Query(description="a Delta version (digits) or an ISO-8601 "
                                       "timestamp")] = None,
    format: Annotated[Literal["parquet", "arrow", "csv", "json"], Query(
        description="parquet, arrow (IPC stream), csv or json")] = "parquet",
    limit: Annotated[int | None, Query(ge=0, le=2**62, description=(
        "format=json only: rows to return (at most the server's cap)"))] = None,
) -> Response:
    lazy = scan_read(lake.catalog, table, run_id=run_id or None, strategy=strategy,
                     market=market or None, symbol=symbol or None, start=start, end=end,
                     columns=columns, as_of=as_of)
    single = run_id[0] if run_id and len(run_id) == 1 else None
    name = f"{single}.{table}" if single and is_valid_run_id(single) else table
    if format == "json":
        cap = min(limit if limit is not None else settings.json_row_limit,
                  settings.json_row_limit)
        names, rows, truncated = exports.json_rows(lazy, cap)
        return JSONResponse({"table": table, "columns": names, "rows": rows,
                             "row_count": len(rows), "limit": cap, "truncated": truncated},
                            headers={"X-Btlake-Truncated": str(truncated).lower()})
    opened = exports.open_slice(lazy)
    filename = f"{name}.{exports.EXTENSIONS[format]}"
    return StreamingResponse(
        exports.stream(opened, format), media_type=exports.MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@router.get("/{table}/history", response_model=TableHistory,
            summary="The table's Delta versions, newest first")
def table_history(lake: LakeDep, table: TableName) -> JSONResponse:
    return JSONResponse({"versions": jsonable(lake.history(table).to_pylist())})


__all__ = ["TableRows", "router"]
