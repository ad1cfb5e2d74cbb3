"""What a lake needs to know about being a replica (written by ``btlake replicate``).

A replica's Delta logs are copies of the primary's, entry for entry: nothing else may commit
to them, or the next copied entry would clash with it. Measured on deltalake 1.6.6:
``DeltaTable.vacuum`` commits twice (``VACUUM START`` / ``VACUUM END``) even when it deletes
nothing, ``optimize`` commits, and the runs-layout migration commits. So maintenance on a
replica only checkpoints and deletes what vacuum would (:func:`vacuum_without_commit`).

Vacuum's default ("lite") mode only ever deletes files a ``remove`` action of the log names
(past the retention); measured: a data file no log entry names (one the replicator copied for
an entry not copied yet) is left alone, even at retention 0, while ``full=True`` deletes it.
"""

from __future__ import annotations

from typing import Any

from btlake_pipelines.storage import lake_files

#: Present in a replica's root while it is one; promotion removes it.
MARKER = "_replication/replica.json"


def is_replica(lake: str) -> bool:
    return lake_files.exists(lake_files.join(lake, MARKER))


def vacuum_without_commit(dt: Any, table_uri: str, retention_hours: int,
                          keep_versions: list[int] | None = None) -> int:
    """Delete the files vacuum (lite mode) would, without writing a commit; how many."""
    doomed = dt.vacuum(retention_hours=retention_hours, dry_run=True,
                       enforce_retention_duration=False, keep_versions=keep_versions)
    fs_, root = lake_files.filesystem(table_uri)
    deleted = 0
    for path in doomed:
        target = path if path.startswith(root) else f"{root}/{path}"
        try:
            fs_.delete_file(target)
            deleted += 1
        except FileNotFoundError:
            continue
    return deleted
