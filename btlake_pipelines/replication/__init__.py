"""Replication of a lake root to another (CONTRACT section 8): per table, the data files a
version adds, then its log entry, in version order; btlake's plain folders file by file.

- :mod:`.objects`: the two roots, verified and streamed copies, log entries never replaced;
- :mod:`.tables`: one Delta table, version by version, resumable from the replica's own log;
- :mod:`.rounds`: a round over the lake (which tables, in which order, so runs stay whole),
  the replica marker and promotion, and the lag.
"""

from btlake_pipelines.replication.objects import Counts, ReplicationError
from btlake_pipelines.replication.rounds import (
    RoundResult,
    TableLag,
    lag,
    lag_seconds,
    promote,
    replicate_once,
)
from btlake_pipelines.storage.replica import is_replica

__all__ = ["Counts", "ReplicationError", "RoundResult", "TableLag", "is_replica", "lag",
           "lag_seconds", "promote", "replicate_once"]
