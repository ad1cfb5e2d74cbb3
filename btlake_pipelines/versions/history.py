"""A table's Delta versions, with what btlake knows about each commit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from btlake_pipelines.query.read import check_table
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.delta import commit_runs

HISTORY_SCHEMA = pa.schema([
    ("version", pa.int64()), ("timestamp", pa.timestamp("ms", "UTC")),
    ("operation", pa.string()), ("rows_added", pa.int64()), ("rows_removed", pa.int64()),
    ("files_added", pa.int64()), ("files_removed", pa.int64()),
    ("runs", pa.list_(pa.string())), ("run_count", pa.int64()), ("batch_id", pa.string()),
    ("predicate", pa.string()),
])


def table_history(catalog: Catalog, table: str) -> pa.Table:
    """Every commit of ``table``, newest first (empty when the table does not exist)."""
    check_table(table)
    dt = catalog.table(table)
    if dt is None:
        return HISTORY_SCHEMA.empty_table()
    rows = [_row(entry) for entry in dt.history()]
    rows.sort(key=lambda r: r["version"], reverse=True)
    return pa.Table.from_pylist(rows, HISTORY_SCHEMA)


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    metrics = entry.get("operationMetrics") or {}
    params = entry.get("operationParameters") or {}
    runs = commit_runs(entry)
    removed = entry.get("btlake.rows_removed")
    # btlake's own counts: a slice replacement writes back the stored rows of its partition
    # that it keeps, which Delta counts as added
    added = entry.get("btlake.rows_added")
    return {
        "version": int(entry["version"]),
        "timestamp": datetime.fromtimestamp(entry["timestamp"] / 1000, UTC),
        "operation": entry.get("operation"),
        "rows_added": _int(added if added is not None else metrics.get(
            "num_added_rows", metrics.get("num_output_rows"))),
        "rows_removed": _int(removed if removed is not None else metrics.get(
            "num_removed_rows", metrics.get("num_deleted_rows"))),
        "files_added": _int(metrics.get("num_added_files")),
        "files_removed": _int(metrics.get("num_removed_files")),
        "runs": runs,
        "run_count": _int(entry.get("btlake.run_count")) if entry.get("btlake.run_count")
        else len(runs),
        "batch_id": entry.get("btlake.batch"),
        "predicate": params.get("predicate"),
    }


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None
