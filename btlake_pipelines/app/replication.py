"""Replication as every front end sees it (CONTRACT section 8): what a round copied
(:class:`ReplicationReport`) and how far the replica lags (:class:`ReplicationStatus`, the
document of ``btlake replicate --status --format json``, the health endpoint's ``replica`` and
the Dagster asset check's metadata). The work is :mod:`btlake_pipelines.replication`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Lag past which the Dagster asset check fails, unless the settings say otherwise.
DEFAULT_MAX_LAG_SECONDS = 900


@dataclass(frozen=True)
class TableReplication:
    primary_version: int | None
    replica_version: int | None


@dataclass(frozen=True)
class ReplicationStatus:
    """Per table the primary's and the replica's latest version; ``lag_versions`` summed over
    tables; ``lag_seconds``: how much older the replica's newest commit is than the primary's
    (over all tables; 0 when every table is level)."""

    replica: str
    tables: dict[str, TableReplication] = field(default_factory=dict)
    lag_versions: int = 0
    lag_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"tables": {name: {"primary_version": t.primary_version,
                                  "replica_version": t.replica_version}
                           for name, t in self.tables.items()},
                "lag_versions": self.lag_versions, "lag_seconds": self.lag_seconds}

    def lines(self) -> list[str]:
        rows = [f"{name}: primary {t.primary_version}, replica "
                f"{'-' if t.replica_version is None else t.replica_version}"
                for name, t in self.tables.items()]
        return [*rows, f"lag: {self.lag_versions} version(s), {self.lag_seconds:g} s"]


@dataclass(frozen=True)
class ReplicationReport:
    """One round: the version each table reached and what it copied."""

    replica: str
    versions: dict[str, int]
    files_copied: int
    bytes_copied: int
    files_skipped: int
    log_entries: int
    seconds: float

    def summary(self) -> str:
        mb = self.bytes_copied / 1e6
        rate = f", {mb / self.seconds:.1f} MB/s" if self.seconds > 0 and mb >= 1 else ""
        return (f"{len(self.versions)} table(s), {self.log_entries} log entr"
                f"{'y' if self.log_entries == 1 else 'ies'}, {self.files_copied} file(s) "
                f"copied ({mb:.2f} MB{rate}), {self.files_skipped} already there, "
                f"in {self.seconds:.2f} s")


def status_of(replica: str, lags: dict[str, Any], seconds: float) -> ReplicationStatus:
    """A :class:`ReplicationStatus` from :func:`btlake_pipelines.replication.lag`'s answer
    and :func:`~btlake_pipelines.replication.lag_seconds`."""
    tables = {name: TableReplication(t.primary_version, t.replica_version)
              for name, t in lags.items()}
    versions = sum(max(0, (t.primary_version if t.primary_version is not None else -1)
                       - (t.replica_version if t.replica_version is not None else -1))
                   for t in lags.values())
    return ReplicationStatus(replica, tables, versions, round(seconds, 3) if versions else 0.0)


def report_of(replica: str, result: Any) -> ReplicationReport:
    c = result.counts
    return ReplicationReport(replica, dict(result.versions), c.files_copied, c.bytes_copied,
                             c.files_skipped, c.log_entries, round(result.seconds, 3))
