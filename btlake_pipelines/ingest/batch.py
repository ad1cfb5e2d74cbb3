"""One ingestion batch: every complete bundle in landing (or a chosen list) into the lake.

The order is what makes a batch safe to kill at any point and run again:

1. load and validate every bundle (nothing written; refusals collected, never raised);
2. write market data, then each run-scoped fact table: one commit per table for the whole
   batch, each an overwrite with an escaped predicate naming exactly the runs / slices written
   (so a re-run after a crash replaces half-written rows instead of duplicating them);
3. write the ``runs`` rows: only now are the batch's runs visible;
4. append ``ingest_log``;
5. move each bundle out of landing, to a fresh archive folder or to quarantine.

A crash before 3 leaves the bundles in landing and the runs invisible; the next batch rewrites
the same rows. A crash after 3 finds them unchanged and only archives them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from btlake_pipelines.bundles.loader import LoadedBundle, load_bundles
from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG, RUNS, Scope
from btlake_pipelines.errors import BundleRefused, is_store_failure
from btlake_pipelines.ingest import destinations, faults
from btlake_pipelines.ingest import market_slices as M
from btlake_pipelines.ingest.large import ingest_large
from btlake_pipelines.ingest.schema_fit import fit_schemas
from btlake_pipelines.ingest.writing import (
    REPLANS,
    BatchResult,
    Raced,
    Writer,
    move_out,
    others_appended,
    partitions_of,
    quarantine_claimed,
    refused_result,
    settle_market_status,
)
from btlake_pipelines.landing.zone import LandingZone
from btlake_pipelines.metadata.ingest_log import BundleResult, log_rows
from btlake_pipelines.metadata.runs_migration import migrate as migrate_runs
from btlake_pipelines.metadata.runs_table import run_rows
from btlake_pipelines.storage import delta
from btlake_pipelines.storage import predicates as P
from btlake_pipelines.storage.scan import scan, scan_table
from btlake_pipelines.versions.lineage import resolve_batch, write_inputs

Progress = Callable[[str, int, int], None]


def ingest(lake: str, zone: LandingZone, names: list[str] | None = None, *,
           progress: Progress | None = None, from_listing: bool = False) -> BatchResult:
    """Ingest ``names`` (default: every complete bundle in landing) as one batch.

    Each bundle is claimed first (:meth:`LandingZone.claim`): one that another ingester (a
    second ``btlake ingest``, the sensor's run) is handling right now is left to it, so
    concurrent ingesters never handle a bundle twice. Given names must be plain folder names
    of landing: anything with a path separator is ignored, never joined into a path, unless
    ``from_listing`` says they came from the zone's own listing (they are checked against it)."""
    if names is None:
        names = zone.complete_bundles()
    else:  # names the zone itself listed are taken as they are (a folder may be named a\\b)
        listed = set(zone.complete_bundles()) if from_listing else set()
        names = [n for n in names if n in listed
                 or (_is_folder_name(n) and zone.has_manifest(n))]
    with zone.claim(names) as claimed:
        faults.pause_after_claim()
        large: dict[str, LoadedBundle] = {}  # left by the loader to the streamed path
        try:
            batch = _ingest(lake, zone, claimed, progress, large)
        except Exception as exc:
            if _is_transient(exc):
                raise
            batch = _ingest_one_by_one(lake, zone, claimed, progress, exc, large)
        for name, b in large.items():  # larger than memory: one at a time, in pieces
            assert b.streamed is not None
            part = ingest_large(lake, zone, name, progress, listed=(b.manifest, b.streamed))
            batch.batch_id = batch.batch_id or part.batch_id
            batch.results += part.results
            for table, versions in part.commits.items():
                batch.commits.setdefault(table, []).extend(versions)
    return batch


def _is_transient(exc: Exception) -> bool:
    """Failures of the store, not of a bundle: raise them, keep every bundle in landing."""
    from deltalake.exceptions import CommitFailedError

    return isinstance(exc, CommitFailedError | OSError | MemoryError) or is_store_failure(exc)


def _ingest_one_by_one(lake: str, zone: LandingZone, names: list[str],
                       progress: Progress | None, cause: Exception,
                       large: dict[str, LoadedBundle]) -> BatchResult:
    """A batch's write failed for a reason no validation rule caught: ingest its bundles one
    at a time (each write replaces whatever the failed attempt left, by its predicates), and
    quarantine only a bundle that fails on its own, so one bundle never blocks the others."""
    merged = BatchResult(batch_id="")
    for name in [n for n in names if n not in large]:
        try:
            part = _ingest(lake, zone, [name], progress, large)
        except Exception as exc:
            if _is_transient(exc) or (len(names) == 1 and exc is cause):
                raise
            now = datetime.now(UTC)  # the bundle is claimed already (by ``ingest``)
            part = quarantine_claimed(lake, zone, BundleRefused(
                name, "write_failed", f"the lake could not store this bundle: "
                f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"),
                BatchResult(batch_id=f"{destinations.stamp(now)}-{uuid.uuid4().hex[:8]}"), now)
        merged.batch_id = merged.batch_id or part.batch_id
        merged.results += part.results
        for table, versions in part.commits.items():
            merged.commits.setdefault(table, []).extend(versions)
    return merged


def quarantine_refused(lake: str, zone: LandingZone, refusal: BundleRefused) -> BatchResult:
    """Quarantine one bundle for a reason found outside validation (its write failed, or its
    ingestion killed the process), logged and moved like any refused bundle."""
    now = datetime.now(UTC)
    batch = BatchResult(batch_id=f"{destinations.stamp(now)}-{uuid.uuid4().hex[:8]}")
    name = refusal.bundle
    with zone.claim([name]) as claimed:
        if not claimed or not zone.has_manifest(name):
            return batch  # another ingester holds it, or it has left landing meanwhile
        return quarantine_claimed(lake, zone, refusal, batch, now)


def _is_folder_name(name: object) -> bool:
    return (isinstance(name, str) and name not in ("", ".", "..")
            and not any(ch in name for ch in "/\\\x00"))


def _ingest(lake: str, zone: LandingZone, names: list[str], progress: Progress | None,
            large: dict[str, LoadedBundle]) -> BatchResult:
    """The in-memory batch of ``names``; a bundle the loader leaves to the streamed path goes
    into ``large`` instead (it has no result here)."""
    now = datetime.now(UTC)
    batch = BatchResult(batch_id=f"{destinations.stamp(now)}-{uuid.uuid4().hex[:8]}")
    if not names:
        return batch

    done = 0

    def tick(name: str) -> None:
        nonlocal done
        done += 1
        if progress:
            progress("validate", done, len(names))

    good, refused = load_bundles(zone, names, tick, stream_large=True)
    large.update({b.name: b for b in good if b.streamed is not None})
    good = [b for b in good if b.streamed is None]
    names = [n for n in names if n not in large]
    if not names:
        return batch
    good, misfits = fit_schemas(lake, good)
    refused += misfits
    good, unresolved, inputs = resolve_batch(lake, good)  # section 7: inputs -> versions
    refused += unresolved
    faults.point("loaded")
    stored = _stored_runs(lake, [b.run_id for b in good if b.manifest.is_backtest])
    results: dict[str, BundleResult] = {}
    changed_runs: list[LoadedBundle] = []
    market_bundles: list[LoadedBundle] = []
    for b in good:
        result = BundleResult(b.name, "ingested", b.run_id, b.manifest.kind, b.content_hash,
                              rows=b.row_counts(), source_uri=b.source_uri)
        results[b.name] = result
        if b.manifest.is_backtest:
            previous = stored.get(b.run_id)
            if previous and previous["content_hash"] == b.content_hash:
                result.status = "unchanged"
                continue
            result.status = "replaced" if previous else "ingested"
            changed_runs.append(b)
        market_bundles.append(b)

    archive = {b.name: destinations.archive_uri(lake, b.run_id, b.content_hash, now)
               for b in good}
    writer = Writer(lake, batch)
    run_parts = _run_writes(changed_runs, stored)
    for table in FACT_TABLES:
        _write_table(writer, table, market_bundles, run_parts.get(table, []), results)
    _settle_market_statuses(market_bundles, results)

    write_inputs(lake, changed_runs, inputs, batch.batch_id)  # before the runs rows
    for i in range(0, len(changed_runs), RUNS_PER_COMMIT):
        _write_runs(writer, changed_runs[i:i + RUNS_PER_COMMIT], stored, results, archive, now)

    for r in refused:
        results[r.bundle] = refused_result(r, zone)
    ordered = [results[n] for n in names]
    for r in ordered:
        if r.status != "quarantined":
            r.destination_uri = archive[r.bundle]
        else:
            r.destination_uri = destinations.quarantine_uri(lake, r.bundle, now)
    writer.write(INGEST_LOG, log_rows(ordered, batch_id=batch.batch_id, handled_at=now), None,
                 [])
    for i, r in enumerate(ordered, 1):
        faults.point("before_move")
        move_out(zone, r, batch.batch_id, now)
        faults.point("after_move")
        if progress:
            progress("archive", i, len(ordered))
    batch.results = ordered
    return batch


def _write_runs(writer: Writer, changed: list[LoadedBundle], stored: dict[str, dict],
                results: dict[str, BundleResult], archive: dict[str, str], now: datetime
                ) -> None:
    """The ``runs`` rows of (at most :data:`RUNS_PER_COMMIT`) new or changed runs, in one
    commit replacing their old rows: from here on these runs are visible."""
    migrate_runs(writer.lake)  # a runs table in the struct layout is rewritten first, once
    rows = run_rows(changed, versions={b.name: results[b.name].tables for b in changed},
                    archive=archive, ingested_at=now, batch_id=writer.batch.batch_id)
    old_dates = {d for b in changed for d in stored.get(b.run_id, {}).get("dates", [])}
    predicate = P.all_of(P.is_in("date", old_dates | {b.manifest.created_at.date()
                                                      for b in changed}),
                         P.is_in("run_id", [b.run_id for b in changed]))
    version = writer.write(RUNS, rows, predicate, [b.run_id for b in changed])
    for b in changed:
        results[b.name].tables[RUNS] = version


@dataclass
class _Part:
    """One run's rows for one table, and the run-date partitions it has or had there."""

    bundle: str
    rows: pl.DataFrame | None
    run_id: str
    dates: frozenset
    removed: int = 0  # stored rows the run had, for history


#: Runs replaced by one commit's predicate (``date IN (...) AND run_id IN (...)``): bounded,
#: like every predicate handed to deltalake (a batch of 10,000 runs is 20 commits).
RUNS_PER_COMMIT = 500


def _run_units(parts: list[_Part]) -> list[M.Unit]:
    """A batch's run rows for one table as commit units, at most :data:`RUNS_PER_COMMIT` runs
    each; a run's rows are always inside one unit."""
    units = []
    for i in range(0, len(parts), RUNS_PER_COMMIT):
        chunk = parts[i:i + RUNS_PER_COMMIT]
        dates = {d for p in chunk for d in p.dates}
        clause = P.all_of(P.is_in("date", dates), P.is_in("run_id", [p.run_id for p in chunk]))
        frames = [p.rows for p in chunk if p.rows is not None]
        units.append(M.Unit(clause, len(chunk) + len(dates), frames, {p.bundle for p in chunk},
                            removed=sum(p.removed for p in chunk),
                            added=sum(f.height for f in frames)))
    return units


def _stored_runs(lake: str, run_ids: list[str]) -> dict[str, dict]:
    """Hash, dates and per-table row counts of the runs already in the lake, by run id."""
    if not run_ids:
        return {}
    lf = scan(lake, RUNS)
    if lf is None:
        return {}
    df = lf.filter(pl.col("run_id").is_in(run_ids)).select(
        "run_id", "content_hash", "date", "rows").collect()
    out: dict[str, dict] = {}
    for row in df.iter_rows(named=True):
        entry = out.setdefault(row["run_id"], {"dates": [], "rows": row["rows"] or {}})
        entry["content_hash"] = row["content_hash"]
        entry["dates"].append(row["date"])
    return out


def _run_writes(bundles: list[LoadedBundle], stored: dict[str, dict]
                ) -> dict[str, list[_Part]]:
    """Per table, the rows of new or changed runs, with the run-date partitions each has or had
    there (old dates included, so a run whose date moved leaves nothing behind). The commit
    replaces ``date IN (...) AND run_id IN (...)``: only the batch's runs are touched."""
    out: dict[str, list[_Part]] = {}
    for table, spec in FACT_TABLES.items():
        if spec.scope is Scope.MARKET:
            continue
        for b in bundles:
            rows = b.run_tables.get(table)
            previous = stored.get(b.run_id)
            had_rows = bool(previous and (previous["rows"] or {}).get(table))
            if rows is None and not had_rows:
                continue
            dates = frozenset({b.manifest.created_at.date(),
                               *(previous["dates"] if previous else [])})
            removed = int((previous["rows"] or {}).get(table) or 0) if previous else 0
            out.setdefault(table, []).append(_Part(b.name, rows, b.run_id, dates, removed))
    return out


def _write_table(writer: Writer, table: str, bundles: list[LoadedBundle],
                 run_parts: list[_Part], results: dict[str, BundleResult]) -> None:
    """All of this batch's rows for ``table``, in as few commits as bounded predicates allow
    (usually one for the runs' rows and one for market data). Market-data slices that overlap
    an earlier bundle's slice in the same batch go in a later wave, after the earlier one is
    stored, so the later bundle's replacement is applied on top of it
    (:mod:`ingest.market_slices`)."""
    for group in M.pack(_run_units(run_parts)):
        _record(results, table, group, writer.commit(table, group))
    items = [M.BundleRows(b.name, df, M.slice_bounds(table, df)) for b in bundles
             if (df := b.market_tables.get(table)) is not None and df.height]
    for wave in M.waves(table, items):
        _write_wave(writer, table, wave, results)


def _write_wave(writer: Writer, table: str, wave: list[M.BundleRows],
                results: dict[str, BundleResult]) -> None:
    """One wave of market data, safe against concurrent writers (Delta's optimistic
    concurrency, no lock): what is stored is read at a snapshot; overwrites commit against that
    snapshot, so deltalake refuses them if anyone changed what they read; appends commit
    blindly and then check the log for rows another writer added to the same partitions
    meanwhile. Either way the wave is planned again from the new state, so each slice ends up
    applied exactly once, as if the writers had taken turns."""
    from deltalake.exceptions import CommitFailedError

    bounds = pl.concat([it.bounds for it in wave], how="vertical_relaxed")
    for attempt in range(REPLANS):
        snapshot = delta.open_table(writer.lake, table)
        stored = _stored_rows(writer.lake, table, bounds, snapshot)
        classified = M.classify(table, wave, stored)
        if attempt == 0:  # what the bundles found; a re-plan only finishes the job
            for it in wave:
                mine = classified.slices.filter(pl.col("bundle") == it.bundle)
                results[it.bundle].slices += M.describe(table, mine)
        try:
            for group in M.pack(M.plan_units(table, wave, stored, classified)):
                blind = all(u.clause is None for u in group)
                version = writer.commit(table, group, snapshot=None if blind else snapshot)
                _record(results, table, group, version)
                if blind and snapshot is not None and version is not None \
                        and others_appended(writer.lake, table, snapshot.version(), version,
                                            partitions_of(group)):
                    raise Raced
            return
        except (CommitFailedError, Raced):
            if attempt == REPLANS - 1:
                raise


def _record(results: dict[str, BundleResult], table: str, group: list[M.Unit],
            version: int | None) -> None:
    if version is None:
        return
    for name in {b for u in group for b in u.bundles}:
        results[name].tables[table] = version


def _settle_market_statuses(bundles: list[LoadedBundle], results: dict[str, BundleResult]
                            ) -> None:
    for b in bundles:
        if not b.manifest.is_backtest:
            settle_market_status(results[b.name])


def _stored_rows(lake: str, table: str, bounds: pl.DataFrame, snapshot) -> pl.DataFrame:
    """The stored rows a wave's slices may touch (see :func:`market_slices.stored_filter`),
    as of ``snapshot`` (a ``DeltaTable``; None: the table does not exist yet)."""
    if snapshot is None:
        return pl.DataFrame()
    lf = scan_table(snapshot, lake, table)
    return M.restrict(table, lf.filter(M.stored_filter(table, bounds)).collect(), bounds)


