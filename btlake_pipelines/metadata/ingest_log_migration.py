"""Moving an ``ingest_log`` table from the JSON-text layout to typed columns.

The layout before kept ``tables``, ``rows``, ``slices`` and ``reason`` as JSON text, which
readers could only filter by substring and had to parse row by row (see
:mod:`btlake_pipelines.metadata.ingest_log`). :func:`migrate` rewrites such a table in place,
the way :mod:`btlake_pipelines.metadata.runs_migration` rewrites ``runs``: one Delta overwrite
commit that also replaces the schema, so readers see the old layout up to the version before it
and the typed one from it on, and time travel still reads the old versions. It runs before
every write of ``ingest_log`` rows (ingestion appends typed rows, which the old schema cannot
take) and at the start of ``btlake maintain``; until then, readers convert in memory
(:func:`~btlake_pipelines.metadata.ingest_log.scan_log`).

The table also carries ``delta.dataSkippingStatsColumns`` (:data:`~btlake_pipelines.metadata.
ingest_log.TABLE_PROPERTIES`): file statistics for its flat columns only. Statistics of the
nested ones would be as large as the slices they describe, and polars' ``scan_delta`` fails a
filter on a struct with list fields (``reason``) when the log holds statistics for its other
fields ("cast from struct[5] to struct[7]"). The first write of a new log sets it;
:func:`migrate` sets it (one metadata commit, before the rewrite) on a table made before.

The rewrite streams one data file at a time. A concurrent commit makes it start over from the
new version (commit retries are off: a retried overwrite would drop rows it never saw); a
writer that finds the table already typed has nothing to do.
"""

from __future__ import annotations

import pyarrow as pa

from btlake_pipelines.contract.tables import INGEST_LOG
from btlake_pipelines.metadata.ingest_log import (
    SCHEMA,
    TABLE_PROPERTIES,
    from_legacy,
    is_legacy,
)

#: Attempts before a migration losing every race to other writers gives up (readers handle
#: both layouts; the next write or maintenance run tries again).
ATTEMPTS = 5
OPERATION = "migrate_ingest_log_layout"


def migrate(lake: str) -> int | None:
    """Make ``lake``'s ``ingest_log`` ready for typed rows: its properties set, and rewritten
    with typed columns if it is not (a missing log is left to its first write). Returns the
    version of the rewrite, None when there was none to do (or every attempt lost a race)."""
    from deltalake import CommitProperties, write_deltalake
    from deltalake.exceptions import CommitFailedError

    from btlake_pipelines.storage import delta_log
    from btlake_pipelines.storage.delta import PARTITIONS, open_table, writer_properties

    for _ in range(ATTEMPTS):
        if open_table(lake, INGEST_LOG) is None:
            return None  # no log yet: its first write creates it typed, with its properties
        dt = _prepared(lake)
        if dt is None:
            continue  # another writer changed it at the same time: look again
        if not is_legacy(pa.schema(dt.schema().to_arrow())):
            return None
        files = delta_log.live_files(dt)
        source = delta_log.table_schema(dt)

        def batches(files=files, source=source):
            for f in files:
                frame = delta_log.read_files(lake, INGEST_LOG, [f], source,
                                             PARTITIONS[INGEST_LOG])
                yield from from_legacy(frame.drop(delta_log.FILE_COLUMN)).to_batches()

        reader = pa.RecordBatchReader.from_batches(SCHEMA, batches())
        try:
            write_deltalake(
                dt, reader, mode="overwrite", schema_mode="overwrite",
                partition_by=PARTITIONS[INGEST_LOG] or None,
                writer_properties=writer_properties(INGEST_LOG, SCHEMA),
                commit_properties=CommitProperties(
                    custom_metadata={"btlake.maintenance": OPERATION}, max_commit_retries=0))
        except CommitFailedError:
            continue
        return dt.version()
    return None


def _prepared(lake: str):
    """The table (a ``DeltaTable``) with :data:`TABLE_PROPERTIES` set, None when it does not
    exist (its first write creates it with them) or when a concurrent writer changed it while
    they were being set (the caller looks again)."""
    from deltalake.exceptions import CommitFailedError

    from btlake_pipelines.storage.delta import open_table

    dt = open_table(lake, INGEST_LOG)
    if dt is None:
        return None
    configuration = dt.metadata().configuration
    if any(configuration.get(k) != v for k, v in TABLE_PROPERTIES.items()):
        try:
            dt.alter.set_table_properties(dict(TABLE_PROPERTIES), raise_if_not_exists=False)
        except CommitFailedError:
            return None  # another writer changed the table (or set them): look again
    return dt
