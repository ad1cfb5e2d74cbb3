"""The streamed commits of a table since a version, per (market, date) partition: what the
Dagster sensor reports as materializations (one per partition and window of commits, not one
per batch). Reads one commit file per new version, so a tick costs what is new."""

from __future__ import annotations

from dataclasses import dataclass, field

from btlake_pipelines.storage import delta_log
from btlake_pipelines.storage.delta import open_table
from btlake_pipelines.streaming.writer import OPERATION

#: Commits read per call at most; the rest is for the next call (cursor = the version reached).
MAX_COMMITS = 2_000


@dataclass
class PartitionWindow:
    market: str
    date: str
    first_version: int
    last_version: int
    commits: int = 0
    rows: int = 0
    writers: dict[str, int] = field(default_factory=dict)


def streamed_since(lake: str, table: str, after: int, *, limit: int = MAX_COMMITS
                   ) -> tuple[int, list[PartitionWindow]]:
    """(the version read up to, the partitions streamed commits after ``after`` wrote to).
    ``after`` = -1 reads from the first commit; a table that does not exist gives
    ``(after, [])``."""
    dt = open_table(lake, table)
    if dt is None:
        return after, []
    upto = min(dt.version(), after + limit)
    windows: dict[tuple[str, str], PartitionWindow] = {}
    for version in range(after + 1, upto + 1):
        commit = delta_log.commit(lake, table, version)
        if commit is None or commit.btlake_operation != OPERATION:
            continue
        writers = commit.info.get("btlake.writers")
        rows = commit.info.get("btlake.partition_rows")
        rows = rows if isinstance(rows, dict) else {}
        for part in commit.partitions:
            market, _, day = part.partition("|")
            w = windows.setdefault((market, day), PartitionWindow(market, day, version,
                                                                  version))
            w.last_version = version
            w.commits += 1
            w.rows += int(rows.get(part) or 0)
            if isinstance(writers, dict):
                w.writers.update({str(k): int(v) for k, v in writers.items()})
    return upto, sorted(windows.values(), key=lambda w: (w.market, w.date))
