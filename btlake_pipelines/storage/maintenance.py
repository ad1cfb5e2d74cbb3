"""Maintenance: compact small files, Z-order by each table's sort keys, checkpoint the log and
vacuum files no version inside the retention period needs.

Vacuum never goes below the retention period (7 days by default), so ``--as-of`` keeps working
for every version younger than that; the time of the last vacuum is recorded so btlake can say
which older versions are gone instead of failing obscurely.

:func:`log_upkeep` is the light, frequent part (hourly in Dagster): a checkpoint for every table
with commits past its last one, and removal of log files past the log retention, so that
opening a table under continuous ingestion reads one checkpoint and at most an hour of
commits (see :mod:`btlake_pipelines.storage.checkpoints`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa

from btlake_pipelines.contract.tables import ALL_TABLES, FACT_TABLES
from btlake_pipelines.metadata.ingest_log_migration import migrate as migrate_ingest_log
from btlake_pipelines.metadata.runs_migration import migrate as migrate_runs
from btlake_pipelines.storage import maintenance_state
from btlake_pipelines.storage.checkpoints import log_state
from btlake_pipelines.storage.delta import open_table, table_uri, writer_properties
from btlake_pipelines.storage.replica import is_replica, vacuum_without_commit

DEFAULT_RETENTION_HOURS = 168


@dataclass
class TableReport:
    table: str
    version_before: int
    version_after: int
    files_removed: int = 0
    files_added: int = 0
    vacuumed: int = 0
    partitions: list[str] = field(default_factory=list)


@dataclass
class LogReport:
    table: str
    version: int
    #: the last checkpoint after the upkeep, and whether the upkeep wrote it
    checkpoint: int | None
    checkpointed: bool
    #: commit files a reader replays after that checkpoint
    commits_after: int
    log_files_before: int
    log_files_after: int


def maintain(lake: str, *, tables: list[str] | None = None,
             partitions: list[tuple[str, date]] | None = None,
             retention_hours: int = DEFAULT_RETENTION_HOURS,
             progress: Callable[[str], None] | None = None,
             keep_versions: dict[str, set[int]] | None = None) -> list[TableReport]:
    """Maintain ``tables`` (default all). ``partitions`` limits compaction to (market, date)
    partitions of the fact tables, e.g. yesterday's for the nightly schedule.
    ``keep_versions``: per table, versions whose files vacuum keeps whatever their age (the
    versions tags and runs' inputs record, see ``Lake.maintain``); their commits are kept
    too (:func:`cleanup_log` is skipped while one would be past the log retention)."""
    from deltalake import CommitProperties

    if retention_hours < 0:
        raise ValueError("retention must be >= 0 hours")
    replica = is_replica(lake)  # its logs are the primary's: nothing may commit there
    if not replica:
        migrate_runs(lake)  # a runs table still in the struct layout is rewritten (one commit)
        migrate_ingest_log(lake)  # so is an ingest_log still in the JSON-text layout
    reports = []
    for table in tables or list(ALL_TABLES):
        dt = open_table(lake, table)
        if dt is None:
            continue
        if progress:
            progress(table)
        report = TableReport(table, dt.version(), dt.version())
        schema = pa.schema(dt.schema().to_arrow())
        spec = FACT_TABLES.get(table)
        props = CommitProperties(custom_metadata={"btlake.maintenance": "optimize"})
        filters = _filters(table, partitions)
        for flt in [] if replica else filters:
            if spec is not None:
                metrics = dt.optimize.z_order(
                    list(spec.sort_by[:2]), partition_filters=flt,
                    writer_properties=writer_properties(table, schema), commit_properties=props)
            else:
                metrics = dt.optimize.compact(
                    partition_filters=flt, writer_properties=writer_properties(table, schema),
                    commit_properties=props)
            report.files_removed += int(metrics.get("numFilesRemoved", 0))
            report.files_added += int(metrics.get("numFilesAdded", 0))
            if flt:
                report.partitions.append(",".join(f"{k}={v}" for k, _, v in flt))
        dt.create_checkpoint()
        pins = sorted((keep_versions or {}).get(table, ()))
        if replica:
            report.vacuumed = vacuum_without_commit(dt, table_uri(lake, table), retention_hours,
                                                    pins or None)
        else:
            report.vacuumed = len(dt.vacuum(retention_hours=retention_hours, dry_run=False,
                                            enforce_retention_duration=False,
                                            keep_versions=pins or None))
        if _log_cleanup_keeps(lake, table, pins):
            cleanup_log(dt)
        report.version_after = dt.version()
        reports.append(report)
    state = maintenance_state.load(lake)
    state.update(last_vacuum=datetime.now(UTC).isoformat(),
                 vacuum_retention_hours=retention_hours)
    maintenance_state.save(lake, state)
    return reports


def log_upkeep(lake: str, *, tables: list[str] | None = None,
               keep_versions: dict[str, set[int]] | None = None) -> list[LogReport]:
    """Checkpoint each table (default all) that has commits after its last checkpoint, then
    remove its log files past the log retention. Writes no commit and rewrites no data file,
    so it can run while ingestion writes."""
    reports = []
    for table in tables or list(ALL_TABLES):
        uri = table_uri(lake, table)
        before = log_state(uri)
        if before.version < 0:
            continue
        dt = open_table(lake, table)
        if dt is None:
            continue
        checkpointed = before.commits_after > 0
        if checkpointed:
            dt.create_checkpoint()
        if _log_cleanup_keeps(lake, table, sorted((keep_versions or {}).get(table, ()))):
            cleanup_log(dt)
        after = log_state(uri)
        reports.append(LogReport(table, dt.version(), after.checkpoint, checkpointed,
                                 after.commits_after, before.log_files, after.log_files))
    return reports


def cleanup_log(dt: Any) -> None:
    """Remove log files (commits and checkpoints) that are older than the table's
    ``delta.logRetentionDuration`` (30 days unless set) and precede a checkpoint: versions
    older than that can no longer be loaded, and vacuum (7 days) has removed their data
    files long before. The one place both maintenance and the hourly upkeep clean logs."""
    dt.cleanup_metadata()


#: A pinned commit younger than this is safe from log cleanup (which keeps 30 days of log).
_PIN_LOG_MARGIN = timedelta(days=25)


def _log_cleanup_keeps(lake: str, table: str, pins: list[int]) -> bool:
    """Whether cleaning ``table``'s log keeps every pinned version loadable: yes when the
    oldest pinned commit is well inside the log retention (30 days), or nothing is pinned."""
    if not pins:
        return True
    from btlake_pipelines.storage.delta_log import commit

    oldest = commit(lake, table, pins[0])
    return oldest is not None and oldest.timestamp is not None \
        and oldest.timestamp > datetime.now(UTC) - _PIN_LOG_MARGIN


def _filters(table: str, partitions: list[tuple[str, date]] | None) -> list[Any]:
    if partitions is None:
        return [None]
    if table in FACT_TABLES:
        return [[("market", "=", m), ("date", "=", d.isoformat())] for m, d in partitions]
    if table == "runs":
        return [[("date", "=", d.isoformat())] for d in sorted({d for _, d in partitions})]
    return [None]
