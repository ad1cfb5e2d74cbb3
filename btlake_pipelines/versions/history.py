"""A table's Delta versions, with what btlake knows about each commit."""

from __future__ import annotations

import pyarrow as pa

from btlake_pipelines.query.read import check_table
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.delta_log import history

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
        return pa.Table.from_batches([], schema=HISTORY_SCHEMA)
    rows = [{"version": c.version, "timestamp": c.timestamp, "operation": c.operation,
             "rows_added": c.rows_added, "rows_removed": c.rows_removed,
             "files_added": c.files_added, "files_removed": c.files_removed, "runs": c.runs,
             "run_count": c.run_count, "batch_id": c.batch_id, "predicate": c.predicate}
            for c in history(dt)]
    return pa.Table.from_pylist(rows, HISTORY_SCHEMA)
