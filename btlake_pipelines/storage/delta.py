"""Delta table access for the lake: where each table lives, how it is written, and retries.

Written on purpose rather than through an IO manager: every overwrite carries an explicit,
escaped predicate (a bare overwrite could wipe a table), rows are sorted and cut into row groups
so readers can skip inside files, compression is ZSTD, and each commit carries btlake metadata
(batch id, runs) as JSON values, read back by :mod:`btlake_pipelines.storage.delta_log`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG, PARTITION_COLUMNS, RUNS
from btlake_pipelines.settings import storage_options
from btlake_pipelines.storage.checkpoints import maybe_checkpoint
from btlake_pipelines.storage.delta_log import commit_metadata, find_commit, table_uri

PARTITIONS: dict[str, list[str]] = {
    **{name: list(PARTITION_COLUMNS) for name in FACT_TABLES},
    RUNS: ["date"],
    INGEST_LOG: [],
}
#: Rows per Parquet row group: small enough that one symbol-hour or one run is a few groups.
#: 16,384 for market data: a symbol-hour then decodes ~3x fewer rows than with 65,536, and on
#: synthetic ticks the files were no larger (bench/results/latest.md, time_slice).
ROW_GROUP_ROWS = {"ticks": 16_384, "l2": 16_384}
DEFAULT_ROW_GROUP_ROWS = 16_384
COMMIT_RETRIES = 8


def open_table(lake: str, table: str, version: int | str | None = None):
    """The table's ``DeltaTable``, or None when it does not exist yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri = table_uri(lake, table)
    try:
        dt = DeltaTable(uri, storage_options=storage_options(uri))
    except TableNotFoundError:
        return None
    if version is not None:
        dt.load_as_version(version)
    return dt


def writer_properties(table: str, schema: pa.Schema | None = None):
    """How ``table``'s files are written; ``schema``: the columns being written, so that
    timestamps and 64-bit integers (sorted times, ids) get delta encoding instead of a
    dictionary: real BTCUSDT ticks went from 15.8 to 12.1 bytes/row, and writes got faster."""
    from deltalake import ColumnProperties, WriterProperties

    delta_encoded = {
        f.name: ColumnProperties(dictionary_enabled=False, encoding="DELTA_BINARY_PACKED")
        for f in (schema or []) if f.name not in PARTITIONS.get(table, ())
        and (pa.types.is_timestamp(f.type)
             or (pa.types.is_integer(f.type) and f.type.bit_width == 64))}
    return WriterProperties(
        compression="ZSTD",
        # level 1 (zstd's fastest): about twice the write speed of level 3 for ~4% more
        # bytes, still well under plain Parquet zstd (bench/results/latest.md, storage)
        compression_level=1,
        max_row_group_size=ROW_GROUP_ROWS.get(table, DEFAULT_ROW_GROUP_ROWS),
        column_properties=delta_encoded or None,
    )


def write(lake: str, table: str, data: pa.Table | Callable[[], pa.RecordBatchReader], *,
          predicate: str | None, metadata: Mapping[str, Any], snapshot=None,
          transactions: Mapping[str, int] | None = None,
          configuration: Mapping[str, str] | None = None) -> int:
    """Append ``data`` (predicate None) or replace exactly the rows matching ``predicate`` with
    it, in one commit; returns the new version. Conflicting commits are retried.
    ``metadata`` (``btlake.*`` keys) goes into the commit as JSON values.

    ``data`` may be a function returning a fresh ``RecordBatchReader`` per attempt: the rows
    then stream through the writer (a bundle larger than memory), and a retry reads them
    again.

    ``snapshot`` (a ``DeltaTable`` at the version the caller read): the overwrite commits
    against that version, so deltalake refuses it (``CommitFailedError``, raised, not retried)
    when another writer changed what the predicate covers since; the caller plans again.

    ``transactions`` (app id -> version) become Delta ``txn`` actions of the same commit: what
    exactly-once writers read back with ``DeltaTable.transaction_version``.
    ``configuration``: table properties, set when this write creates the table."""
    from deltalake import CommitProperties, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri = table_uri(lake, table)
    commit_id = uuid.uuid4().hex
    props = CommitProperties(custom_metadata=commit_metadata(metadata, commit_id),
                             app_transactions=[Transaction(app_id=a, version=v) for a, v
                                               in (transactions or {}).items()] or None)
    for attempt in range(COMMIT_RETRIES):
        try:
            rows = data() if callable(data) else data
            write_deltalake(
                uri if snapshot is None else snapshot,
                rows,
                mode="append" if predicate is None else "overwrite",
                predicate=predicate,
                partition_by=PARTITIONS[table] or None,
                schema_mode="merge",
                writer_properties=writer_properties(table, rows.schema),
                commit_properties=props,
                configuration=dict(configuration) if configuration else None,
                storage_options=None if snapshot is not None else storage_options(uri),
            )
            break
        except CommitFailedError:
            if snapshot is not None or attempt == COMMIT_RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    dt = open_table(lake, table)
    assert dt is not None
    # other writers may have committed since: the latest version is not necessarily ours
    latest = dt.version()
    version = find_commit(lake, table, commit_id, latest)
    version = latest if version is None else version
    maybe_checkpoint(uri, version)  # deltalake's own interval, caught up if it was missed
    return version

