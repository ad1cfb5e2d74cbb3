"""What every ingestion path shares once it writes: the batch result, the writer that makes
one Delta commit (with btlake's metadata and the fault points), the rules of concurrent
writers (:class:`Raced`, :func:`others_appended`), and moving a handled bundle out of landing
(archive, or quarantine with its ``reason.json``). ``ingest/batch.py`` (bundles in memory) and
``ingest/large.py`` (bundles in pieces) both build on it."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from btlake_pipelines.contract.run_ids import printable
from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG
from btlake_pipelines.errors import BundleRefused
from btlake_pipelines.ingest import breadcrumb, destinations, faults
from btlake_pipelines.ingest import market_slices as M
from btlake_pipelines.ingest.ordering import sort_rows
from btlake_pipelines.landing.zone import LandingZone
from btlake_pipelines.metadata.ingest_log import TABLE_PROPERTIES as LOG_PROPERTIES
from btlake_pipelines.metadata.ingest_log import BundleResult, log_rows
from btlake_pipelines.metadata.ingest_log_migration import migrate as migrate_ingest_log
from btlake_pipelines.storage import delta
from btlake_pipelines.storage import predicates as P


@dataclass
class BatchResult:
    batch_id: str
    results: list[BundleResult] = field(default_factory=list)
    #: table -> every version this batch committed, in order
    commits: dict[str, list[int]] = field(default_factory=dict)

    @property
    def quarantined(self) -> list[BundleResult]:
        return [r for r in self.results if r.status == "quarantined"]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("ingested", "unchanged", "replaced", "quarantined")}
        for r in self.results:
            out[r.status] += 1
        return out

    def summary(self) -> str:
        c = self.counts()
        commits = sum(len(v) for v in self.commits.values())
        return (f"{len(self.results)} bundle(s): {c['ingested']} ingested, {c['unchanged']} "
                f"unchanged, {c['replaced']} replaced, {c['quarantined']} quarantined; "
                f"{commits} Delta commit(s)")


def quarantine_claimed(lake: str, zone: LandingZone, refusal: BundleRefused,
                        batch: BatchResult, now: datetime) -> BatchResult:
    name = refusal.bundle
    result = refused_result(refusal, zone)
    result.destination_uri = destinations.quarantine_uri(lake, name, now)
    Writer(lake, batch).write(INGEST_LOG, log_rows([result], batch_id=batch.batch_id,
                                                     handled_at=now), None, [])
    move_out(zone, result, batch.batch_id, now)
    batch.results = [result]
    return batch


class Writer:
    def __init__(self, lake: str, batch: BatchResult) -> None:
        self.lake = lake
        self.batch = batch

    def commit(self, table: str, units: list[M.Unit], *, snapshot=None) -> int | None:
        """One commit of ``units``: their rows, replacing what their clauses name (as of
        ``snapshot``, when given: a conflict then raises instead of being retried)."""
        if not units:
            return None
        frames = [f for u in units for f in u.frames if f is not None and f.height]
        clauses = [u.clause for u in units if u.clause]
        predicate = P.balanced_or(clauses) if clauses else None
        if not frames and predicate is None:
            return None
        spec = FACT_TABLES[table]
        if frames:
            df = _presorted(frames, ("market", "date", *spec.sort_by))
            if df is None:
                df = sort_rows(pl.concat(frames, how="diagonal_relaxed"),
                               ["market", "date", *spec.sort_by])
            data = df.to_arrow()
        else:
            data = None
        runs = sorted({b for u in units for b in u.bundles})
        return self.write(table, data, predicate, runs, removed=sum(u.removed for u in units),
                          added=sum(u.added for u in units), snapshot=snapshot)

    def write(self, table: str, data, predicate: str | None, runs: list[str], *,
              removed: int = 0, added: int | None = None, snapshot=None) -> int | None:
        if data is None:
            data = _empty_like(self.lake, table)
            if data is None:
                return None  # nothing stored, nothing to delete
        if table == INGEST_LOG:
            migrate_ingest_log(self.lake)  # a JSON-text log is typed first (one commit, once)
        faults.point(f"before_commit:{table}")
        breadcrumb.writing(table, runs)
        faults.native_write(runs)
        version = delta.write(self.lake, table, data, predicate=predicate, metadata={
            "btlake.batch": self.batch.batch_id, "btlake.runs": runs[:1000],
            "btlake.run_count": len(runs), "btlake.rows_removed": removed,
            "btlake.rows_added": data.num_rows if added is None else added},
            snapshot=snapshot,
            configuration=LOG_PROPERTIES if table == INGEST_LOG else None)
        faults.point(f"after_commit:{table}")
        self.batch.commits.setdefault(table, []).append(version)
        return version


def _presorted(frames: list[pl.DataFrame], order: tuple[str, ...]) -> pl.DataFrame | None:
    """The frames concatenated in ``order`` without sorting rows, when each frame is one key
    (constant in every column of ``order`` but the last, sorted by the last): a market-data
    slice or one run's rows usually is. Same rows as a stable sort; None when it does not
    apply. Sorting 10M tick rows by strings took seconds, this takes a fraction of one."""
    prefix, last = list(order[:-1]), order[-1]
    keyed = []
    for f in frames:
        if any(c not in f.columns for c in order) or not f.get_column(last).is_sorted():
            return None
        if any(f.get_column(c).n_unique() != 1 for c in prefix):
            return None
        first = f.select(prefix).row(0)
        keyed.append((tuple((v is not None, v) for v in first), f))
    keyed.sort(key=lambda item: item[0])
    return pl.concat([f for _, f in keyed], how="diagonal_relaxed")


def _empty_like(lake: str, table: str):
    dt = delta.open_table(lake, table)
    if dt is None:
        return None
    import pyarrow as pa

    schema = pa.schema(dt.schema().to_arrow())
    return pa.Table.from_batches([], schema=schema)


#: Times a wave of market data is planned again after another writer changed what it read.
REPLANS = 6


class Raced(Exception):
    """Another writer added rows to a partition this wave appended to, after the wave read it."""


def partitions_of(group: list[M.Unit]) -> set[tuple[str, str]]:
    return {(str(m), str(d)) for u in group for f in u.frames
            for m, d in f.select("market", "date").unique().iter_rows()}


def others_appended(lake: str, table: str, read_at: int, ours: int,
                    partitions: set[tuple[str, str]]) -> bool:
    """Whether commits between our read and our append added files to a partition we appended
    to (their rows may overlap ours; a re-plan settles it). Unknown counts as yes."""
    if ours == read_at + 1:
        return False
    from btlake_pipelines.storage.delta_log import changes

    found = changes(lake, table, read_at, ours - 1)
    if found is None:
        return True
    return any((f.partition_values.get("market"), f.partition_values.get("date"))
               in partitions
               for f in found.added)


def settle_market_status(result: BundleResult) -> None:
    """A market_data bundle is ``ingested`` when nothing was stored in its ranges,
    ``unchanged`` when every stored slice was identical, ``replaced`` otherwise."""
    statuses = [s["status"] for s in result.slices]
    if statuses and all(s == "unchanged" for s in statuses):
        result.status = "unchanged"
    elif statuses and all(s == "ingested" for s in statuses):
        result.status = "ingested"
    elif statuses:
        result.status = "replaced"


def refused_result(refusal: BundleRefused, zone: LandingZone) -> BundleResult:
    return BundleResult(refusal.bundle, "quarantined", error=str(refusal),
                        reason={"bundle": refusal.bundle, **refusal.reason()},
                        source_uri=zone.location(printable(refusal.bundle)))


def move_out(zone: LandingZone, result: BundleResult, batch_id: str, now: datetime) -> None:
    """Archive or quarantine one bundle. A refused bundle gets its ``reason.json`` before the
    move, so a crash never leaves a quarantined folder without its reason: written inside the
    bundle folder, which then moves in one rename; for a symlinked folder (never written
    through), into the new quarantine folder, which then receives the link itself."""
    assert result.destination_uri is not None
    if result.status == "quarantined":
        reason = {**(result.reason or {}), "error": result.error, "batch_id": batch_id,
                  "quarantined_at": now.isoformat()}
        if zone.is_link(result.bundle):
            destinations.write_reason(result.destination_uri, reason)
        else:
            zone.write_file(result.bundle, destinations.REASON,
                            io.BytesIO(destinations.reason_bytes(reason)))
    zone.move_to(result.bundle, result.destination_uri)
