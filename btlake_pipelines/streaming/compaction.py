"""Compaction of the partitions streams append to, during the day.

A stream that commits once a second leaves up to 86,400 small files a day in its partition;
readers would open them all until the nightly maintenance. Bin-packing (``optimize.compact``)
rewrites only the small files into larger ones, so an hourly pass costs what arrived since
the last one, not the day so far (Z-ordering, which rewrites the whole partition, stays with
the nightly maintenance). It commits beside the stream: the stream's commits are blind
appends and compaction only removes files it rewrote, so neither conflicts with the other
(tested with maintenance running mid-stream).
"""

from __future__ import annotations

from datetime import date

import pyarrow as pa

from btlake_pipelines.storage.delta import open_table, writer_properties
from btlake_pipelines.storage.maintenance import TableReport
from btlake_pipelines.storage.stream_marks import marked
from btlake_pipelines.streaming.rows import STREAM_TABLES


def compact_streamed(lake: str, day: date, markets: list[str]) -> list[TableReport]:
    """Bin-pack the partitions of ``day`` in ``markets`` that streams wrote to, per table."""
    from deltalake import CommitProperties

    reports = []
    for table in STREAM_TABLES:
        parts = sorted(m for m, d in marked(lake, table, markets) if d == day)
        dt = open_table(lake, table) if parts else None
        if dt is None:
            continue
        report = TableReport(table, dt.version(), dt.version())
        schema = pa.schema(dt.schema().to_arrow())
        for market in parts:
            metrics = dt.optimize.compact(
                partition_filters=[("market", "=", market), ("date", "=", day.isoformat())],
                writer_properties=writer_properties(table, schema),
                commit_properties=CommitProperties(
                    custom_metadata={"btlake.maintenance": "compact-streamed"}))
            report.files_removed += int(metrics.get("numFilesRemoved", 0))
            report.files_added += int(metrics.get("numFilesAdded", 0))
            report.partitions.append(f"market={market},date={day.isoformat()}")
        report.version_after = dt.version()
        reports.append(report)
    return reports
