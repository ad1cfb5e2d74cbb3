"""Maintenance as every front end reports it: one line per table, worded here once, so
``btlake maintain`` and the Dagster maintenance and log-upkeep runs say the same thing.

The work itself is :meth:`Lake.maintain <btlake_pipelines.app.lake.Lake.maintain>` and
:meth:`Lake.log_upkeep <btlake_pipelines.app.lake.Lake.log_upkeep>`
(:mod:`btlake_pipelines.storage.maintenance`).
"""

from __future__ import annotations

from collections.abc import Iterable

from btlake_pipelines.storage.maintenance import DEFAULT_RETENTION_HOURS, LogReport, TableReport

__all__ = ["DEFAULT_RETENTION_HOURS", "LogReport", "TableReport", "log_upkeep_report",
           "maintenance_report"]


def maintenance_report(reports: Iterable[TableReport]) -> list[str]:
    """What maintenance did, a line per table (a lake without tables says so)."""
    lines = [f"{r.table}: version {r.version_before} -> {r.version_after}, "
             f"{r.files_removed} file(s) compacted into {r.files_added}, "
             f"{r.vacuumed} file(s) vacuumed" for r in reports]
    return lines or ["no tables yet"]


def log_upkeep_report(reports: Iterable[LogReport]) -> list[str]:
    """What the Delta log upkeep did, a line per table."""
    return [f"{r.table}: version {r.version}, checkpoint {r.checkpoint}"
            f"{' (new)' if r.checkpointed else ''}, {r.commits_after} commit(s) after it, "
            f"log files {r.log_files_before} -> {r.log_files_after}" for r in reports]
