"""What ``Lake``'s streaming and bulk-read methods return (contract section 9)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class StreamedPartition:
    """One (market, date) partition of a table that streamed commits wrote to, over a window of
    versions: what Dagster records as one materialization per partition and flush window."""

    table: str
    market: str
    date: str
    first_version: int
    last_version: int
    commits: int
    rows: int
    writers: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamedCommits:
    """The streamed commits of a table after a version, grouped by partition; ``upto`` is the
    version read up to (the next cursor)."""

    table: str
    upto: int
    partitions: list[StreamedPartition]


def stream_tables() -> tuple[str, ...]:
    """The tables a stream may append to (market data; ``events`` as market events)."""
    from btlake_pipelines.streaming.rows import STREAM_TABLES

    return STREAM_TABLES
