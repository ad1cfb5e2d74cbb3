"""``Lake``: the Python API over one lake root, and the application layer every front end
calls (the CLI, the HTTP API and browser, Dagster).

A ``Lake`` is cheap to create and worth keeping: it caches open tables and the runs table and
refreshes them only when a new commit exists, so repeated searches cost a filter.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from btlake_pipelines.settings import Settings, current, lake_uri
from btlake_pipelines.storage.catalog import Catalog

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from datetime import date

    import polars as pl

    from btlake_pipelines.app.coverage import Coverage, CoverageMap
    from btlake_pipelines.app.partitions import (
        BatchPartitions,
        BatchResult,
        CatchUpPlan,
        PartitionReport,
        Rederived,
    )
    from btlake_pipelines.app.replication import ReplicationReport, ReplicationStatus
    from btlake_pipelines.app.tables import Key
    from btlake_pipelines.app.tags import TagInfo
    from btlake_pipelines.app.validation import ValidationSummary
    from btlake_pipelines.metadata.coverage_table import CoverageRefresh
    from btlake_pipelines.storage.maintenance import LogReport


@dataclass(frozen=True)
class RunSearch:
    """One page of a run search and how many runs matched before ``limit`` / ``offset``.
    ``table`` keeps the stored columns (for exports); :meth:`records` gives the runs as the
    objects of ``btlake runs --format json``."""

    frame: pl.DataFrame
    total: int

    @property
    def table(self) -> pa.Table:
        return self.frame.to_arrow()

    def records(self) -> list[dict[str, Any]]:
        """JSON-ready runs: ``params`` and ``metrics`` as objects, times as ISO-8601."""
        from btlake_pipelines.query.search import runs_to_records

        return runs_to_records(self.frame)


class Lake:
    """One lake root and the use cases over it. ``uri``: the lake root (``--lake``); None
    takes it from ``settings`` (default: :func:`btlake_pipelines.settings.current`)."""

    def __init__(self, uri: str | None = None, *, settings: Settings | None = None) -> None:
        self.settings = settings or current()
        self.uri = lake_uri(uri) if uri else self.settings.lake
        self.catalog = Catalog(self.uri)

    def __repr__(self) -> str:
        return f"Lake({self.uri!r})"

    def runs(self, *, strategy: str | None = None, market: str | list[str] | None = None,
             since: datetime | str | None = None, until: datetime | str | None = None,
             where: str | None = None, order_by: str | None = None, desc: bool = False,
             limit: int | None = None, offset: int = 0,
             as_of: int | str | datetime | None = None, stale: bool = False) -> pa.Table:
        """Runs matching every filter, most recent first unless ``order_by`` is given;
        ``as_of`` and ``stale`` as for :meth:`find_runs`."""
        return self.find_runs(strategy=strategy, market=market, since=since, until=until,
                              where=where, order_by=order_by, desc=desc, limit=limit,
                              offset=offset, as_of=as_of, stale=stale).table

    def search(self, **options: Any):
        """(matching runs as a polars DataFrame, total matches before limit/offset)."""
        from btlake_pipelines.query.search import search_runs

        return search_runs(self.catalog, **options)

    def find_runs(self, *, strategy: str | None = None,
                  market: str | list[str] | None = None, since: datetime | str | None = None,
                  until: datetime | str | None = None, where: str | None = None,
                  order_by: str | None = None, desc: bool = False, limit: int | None = None,
                  offset: int = 0, as_of: int | str | datetime | None = None,
                  stale: bool = False) -> RunSearch:
        """:meth:`runs` with the total before ``limit`` / ``offset`` and the runs as records.
        ``as_of``: the runs as they were at a version, time or ``tag:NAME`` of ``runs``;
        ``stale``: only runs with at least one stale input (see :meth:`lineage`)."""
        if as_of is not None or stale:
            from btlake_pipelines.versions.lineage import search_runs_at

            frame, total = search_runs_at(
                self.catalog, as_of=as_of, stale=stale, strategy=strategy, market=market,
                since=since, until=until, where=where, order_by=order_by, desc=desc,
                limit=limit, offset=offset)
            return RunSearch(frame, total)
        frame, total = self.search(strategy=strategy, market=market, since=since, until=until,
                                   where=where, order_by=order_by, desc=desc, limit=limit,
                                   offset=offset)
        return RunSearch(frame, total)

    def read(self, table: str, *, run_id: str | list[str] | None = None,
             strategy: str | None = None, market: str | list[str] | None = None,
             symbol: str | list[str] | None = None, start: datetime | str | None = None,
             end: datetime | str | None = None, columns: list[str] | None = None,
             as_of: int | str | datetime | None = None) -> pa.Table:
        """A slice of ``table``; ``start`` inclusive, ``end`` exclusive, on ``ts``."""
        from btlake_pipelines.query.read import read_table

        return read_table(self.catalog, table, run_id=run_id, strategy=strategy, market=market,
                          symbol=symbol, start=start, end=end, columns=columns, as_of=as_of)

    def history(self, table: str) -> pa.Table:
        """The table's Delta versions, newest first."""
        from btlake_pipelines.versions.history import table_history

        return table_history(self.catalog, table)

    def history_records(self, table: str) -> list[dict[str, Any]]:
        """:meth:`history` as JSON-ready objects (times ISO-8601), newest first."""
        from btlake_pipelines.query.search import jsonable

        return jsonable(self.history(table).to_pylist())

    def compare(self, run_a: str, run_b: str) -> dict[str, Any]:
        """Params and metrics side by side, with trade and equity summaries."""
        from btlake_pipelines.versions.compare import compare_runs

        return compare_runs(self.catalog, run_a, run_b)

    def run(self, run_id: str) -> dict[str, Any]:
        """One run's metadata snapshot."""
        from btlake_pipelines.versions.compare import run_record

        return run_record(self.catalog, run_id)

    def run_versions(self, run_id: str) -> list[dict[str, Any]]:
        """Every version of one run time travel can still reach, newest first."""
        from btlake_pipelines.versions.run_versions import run_versions

        return run_versions(self.catalog, run_id)

    def run_diff(self, run_id: str, a: int | None = None, b: int | None = None
                 ) -> dict[str, Any]:
        """What changed between two stored versions of a run, named by ``versions.runs`` of
        :meth:`run_versions` (default: the current one and the one before)."""
        from btlake_pipelines.versions.run_diff import run_diff

        return run_diff(self.catalog, run_id, a, b)

    def equity_curve(self, run_id: str, points: int = 2000):
        """The run's equity curve and drawdown, reduced to about ``points`` points that keep
        every spike and trough (:class:`~btlake_pipelines.versions.equity_curve.EquityCurve`)."""
        from btlake_pipelines.versions.equity_curve import equity_curve

        return equity_curve(self.catalog, run_id, points)

    def compare_many(self, run_ids: list[str]) -> dict[str, Any]:
        """Two to twelve runs side by side: metadata, params, metrics and summaries, each as
        ``name -> {"values": {run: value}, "differs": bool}``."""
        from btlake_pipelines.versions.compare_many import compare_many

        return compare_many(self.catalog, run_ids)

    @staticmethod
    def table_names() -> tuple[str, ...]:
        """Every table a lake can hold, as :meth:`read` and :meth:`history` name them."""
        from btlake_pipelines.contract.tables import ALL_TABLES

        return tuple(ALL_TABLES)

    def scan(self, table: str, *, limit: int | None = None, **filters: Any
             ) -> pa.RecordBatchReader:
        """:meth:`read` as a stream of record batches (``filters`` as for :meth:`read`), at
        most ``limit`` rows: for answers larger than memory. Errors of the read raise here."""
        from btlake_pipelines.query.stream import stream_read

        return stream_read(self.catalog, table, limit=limit, **filters)

    def publish(self, folder: str | os.PathLike, *, landing: str | None = None,
                replace: bool = False) -> str:
        """Copy a bundle folder into landing, table files first and the manifest last; returns
        its landing location. A bundle of this run id still waiting needs ``replace``."""
        from btlake_pipelines.app.publish import publish

        return publish(folder, landing or self.settings.landing, replace=replace)

    def publish_upload(self, manifest: bytes, files: dict[str, Any], *,
                       landing: str | None = None, replace: bool = False) -> str:
        """Publish a bundle received as its manifest's bytes and its files (file name ->
        readable binary file), after checking they make one whole bundle; returns its run id."""
        from btlake_pipelines.app.publish import publish_upload
        from btlake_pipelines.landing import open_landing

        return publish_upload(open_landing(landing or self.settings.landing), manifest, files,
                              replace=replace)

    def publish_result(self, result: Any, *, run_id: str, strategy_id: str,
                       markets: str | list[str], params: Mapping[str, Any] | None = None,
                       created_at: datetime | str | None = None, landing: str | None = None,
                       replace: bool = False, **options: Any) -> str:
        """Write an engine's result (backtesting.py ``Stats``, vectorbt ``Portfolio``,
        backtrader ``Strategy``) as a bundle and publish it to landing in one call; returns
        its landing location. See :mod:`btlake_pipelines.adapters`."""
        from btlake_pipelines.app.adapters import publish_result

        return publish_result(result, run_id=run_id, strategy_id=strategy_id, markets=markets,
                              params=params, created_at=created_at,
                              landing=landing or self.settings.landing, replace=replace,
                              **options)

    def ingest(self, landing: str | None = None, names: list[str] | None = None, *,
               progress=None, isolated: bool = True, keep_warm: bool = False):
        """Ingest complete bundles from landing now (the code path the sensor uses).

        ``isolated`` (the default) ingests in a child process: a bundle whose ingestion kills
        its process (a native crash) is retried once and then quarantined as
        ``ingest_crashed``, and this process lives on. ``progress``: a callable
        ``(phase, done, total)``, called in this process either way (isolated, with the
        child's events). ``keep_warm`` (a long-lived caller, such as the HTTP server): leave
        a child process started for the next ingest, which then skips its start-up."""
        from btlake_pipelines.landing import open_landing

        zone = open_landing(landing or self.settings.landing)
        if isolated:
            from btlake_pipelines.ingest.isolated import ingest_isolated

            batch = ingest_isolated(self.uri, zone, names,
                                    progress=progress if callable(progress) else None,
                                    keep_warm=keep_warm)
        else:
            from btlake_pipelines.ingest.batch import ingest

            batch = ingest(self.uri, zone, names, progress=progress)
        if batch.commits:  # only the tables this batch wrote (an empty list means all)
            self._refresh_coverage_after_write(list(batch.commits))
        return batch

    def maintain(self, **options: Any):
        """Compact, Z-order, checkpoint and vacuum; vacuum keeps every version a tag or a
        run's recorded input needs (:meth:`pinned_versions`)."""
        from btlake_pipelines.contract.tables import ALL_TABLES
        from btlake_pipelines.storage.maintenance import maintain
        from btlake_pipelines.versions.lineage import RUN_INPUTS
        from btlake_pipelines.versions.tags import TAGS

        if not options.get("tables") and not options.get("partitions"):
            # btlake's own tables too: one small file per ingest batch or tag, compacted here
            options["tables"] = [*ALL_TABLES, RUN_INPUTS, TAGS]
        return maintain(self.uri, keep_versions=self.pinned_versions(), **options)

    def pinned_versions(self) -> dict[str, set[int]]:
        """Per table, the versions maintenance keeps: those tags and runs' inputs record."""
        from btlake_pipelines.versions.lineage import pinned_versions as by_runs
        from btlake_pipelines.versions.tags import pinned_versions as by_tags

        pins = by_tags(self.uri)
        for table, versions in by_runs(self.catalog).items():
            pins.setdefault(table, set()).update(versions)
        return pins

    def log_upkeep(self) -> list[LogReport]:
        """Checkpoint every table with commits past its last checkpoint and remove log files
        past the log retention: opening a table then replays at most one checkpoint and a few
        commits. It writes no commit and no data file, so it runs beside ingestion."""
        from btlake_pipelines.storage.maintenance import log_upkeep

        return log_upkeep(self.uri, keep_versions=self.pinned_versions())

    # -- tags and lineage (CONTRACT section 7) -----------------------------------------------

    def tag_create(self, name: str, message: str | None = None) -> TagInfo:
        """Record the current version of every table as tag ``name`` (immutable)."""
        from btlake_pipelines.versions.tags import create_tag

        return create_tag(self.uri, name, message)

    def tags(self) -> list[TagInfo]:
        """Every tag, oldest first."""
        from btlake_pipelines.versions.tags import list_tags

        return list_tags(self.uri)

    def tag_delete(self, name: str) -> TagInfo:
        """Remove tag ``name``: maintenance no longer keeps the versions it alone recorded."""
        from btlake_pipelines.versions.tags import delete_tag

        return delete_tag(self.uri, name)

    def lineage(self, run_id: str) -> dict[str, Any]:
        """The run's inputs: ``{"run_id", "inputs": [{"table", "market", "symbols", "start",
        "end", "version", "stale", ...}]}``."""
        from btlake_pipelines.versions.lineage import lineage

        return lineage(self.catalog, run_id)

    def inputs(self, run_id: str) -> dict[str, pa.Table]:
        """Each input's rows exactly as of its resolved version, keyed ``TABLE:MARKET``."""
        from btlake_pipelines.versions.lineage import input_tables

        return input_tables(self.catalog, run_id)

    def table_diff(self, table: str, a: int | str, b: int | str) -> dict[str, Any]:
        """Rows added and removed per partition between versions (or ``tag:NAME``) ``a`` and
        ``b`` of a fact table: ``{"table", "a", "b", "added", "removed", "partitions"}``."""
        from btlake_pipelines.versions.table_diff import table_diff

        return table_diff(self.catalog, table, a, b)

    def table_versions(self) -> dict[str, int]:
        """The latest version of every table that exists (what a tag would record)."""
        from btlake_pipelines.versions.tags import current_versions

        return current_versions(self.uri)

    def stale_runs(self) -> list[str]:
        """Run ids with at least one stale input, sorted."""
        from btlake_pipelines.versions.lineage import stale_runs

        return stale_runs(self.catalog)

    def markets_on(self, day: date) -> list[str]:
        """The markets any fact table stores rows of on ``day``, sorted (from the Delta logs:
        no data file is read); what a day's maintenance compacts."""
        from btlake_pipelines.app.tables import FACT_TABLES
        from btlake_pipelines.ingest.rederive import delta_partition_rows

        return sorted({m for t in FACT_TABLES for (m, d) in delta_partition_rows(self.uri, t)
                       if d == day and m})

    def rederive(self, table: str, keys: Iterable[Key]) -> list[Rederived]:
        """Rewrite catalog partitions of ``table`` from the archived bundles: for a fact table
        each ``(market, month)`` key (any day of the month names it) stands for every daily
        partition of that market in that month the lake stores or the archive holds; for
        ``runs`` each ``(None, day)`` is one day. One result per daily partition."""
        from btlake_pipelines.app.tables import RUNS
        from btlake_pipelines.ingest.rederive import rederive_months, rederive_runs

        if table == RUNS:
            return rederive_runs(self.uri, [d for _, d in keys])
        done = rederive_months(self.uri, table, [(m, d) for m, d in keys if m])
        self._refresh_coverage_after_write([table])
        return done

    def rederive_days(self, table: str, parts: Iterable[Key]) -> list[Rederived]:
        """:meth:`rederive` of exact daily partitions ``(market, date)`` (``(None, date)`` of
        ``runs``), and nothing else of their months."""
        from btlake_pipelines.app.tables import RUNS
        from btlake_pipelines.ingest.rederive import rederive, rederive_runs

        if table == RUNS:
            return rederive_runs(self.uri, [d for _, d in parts])
        done = rederive(self.uri, table, [(m, d) for m, d in parts if m])
        self._refresh_coverage_after_write([table])
        return done

    def catch_up_plan(self, *, since: datetime | None = None,
                      recorded: Callable[[str], set[Key]] | None = None,
                      accept: Callable[[Key], bool] | None = None,
                      limit: int = 500) -> CatchUpPlan:
        """Daily partitions that bundles handled since ``since`` should have made and the lake
        lacks (at most ``limit``, oldest first), and those it holds whose catalog partition is
        not among ``recorded(table)``; ``accept`` leaves out what the catalog cannot show."""
        from btlake_pipelines.app.tables import catalog_key
        from btlake_pipelines.ingest.catchup import plan_catch_up

        return plan_catch_up(self.uri, since=since, recorded=recorded,
                             accept=None if accept is None else lambda _, key: accept(key),
                             group=lambda table, key: catalog_key(table, *key), limit=limit)

    def validation_report(self, results: Iterable[Any] | None = None
                          ) -> dict[str, ValidationSummary]:
        """Per partitioned table, its validation summary: the counts of one batch
        (``results``; default: the latest batch that concerned the table) and the bundles
        refused in the last 7 days not yet published again in a valid form."""
        from btlake_pipelines.ingest.validation_report import validation_report

        return validation_report(self.uri, results)

    def batch_partitions(self, batch: BatchResult) -> BatchPartitions:
        """The daily partitions an ingested ``batch`` committed to, with their versions and
        source bundles."""
        from btlake_pipelines.app.partitions import batch_partitions

        return batch_partitions(self.uri, batch)

    def partition_reports(self, table: str, touched: Mapping[Key, int | None], *,
                          accept: Callable[[Key], bool] = lambda key: True,
                          keys: Iterable[Key] = (),
                          sources: Mapping[Key, list[str]] | None = None,
                          batch_runs: set[str] | None = None,
                          notes: Mapping[Key, str] | None = None
                          ) -> dict[Key, PartitionReport] | None:
        """A report per catalog partition the daily partitions ``touched`` (-> the version
        that wrote them, None: recorded only) fall in, and per catalog key in ``keys``; None
        while the table does not exist. See :mod:`btlake_pipelines.app.partitions`."""
        from btlake_pipelines.app.partitions import partition_reports

        return partition_reports(self.uri, table, touched, accept=accept, keys=keys,
                                 sources=sources, batch_runs=batch_runs, notes=notes)

    def write_demo(self, runs: int = 24, *, seed: int = 7, real_data: bool = True,
                   landing: str | None = None) -> list[str]:
        """Publish demo bundles to landing: ``runs`` realistic synthetic backtests and, with
        ``real_data``, the bundles converted from real market-data samples; returns their
        landing locations. Seeded, so every demo holds the same data (a demo bundle still
        waiting in landing is replaced)."""
        import tempfile
        from pathlib import Path

        from btlake_pipelines.demo import write_demo_bundles, write_real_sample_bundles
        from btlake_pipelines.errors import BtlakeError

        if runs < 0:
            raise BtlakeError("{param} must be >= 0", param="runs")
        with tempfile.TemporaryDirectory(prefix="btlake-demo-") as tmp:
            folders = write_demo_bundles(Path(tmp), runs, seed=seed)
            if real_data:
                folders += write_real_sample_bundles(Path(tmp))
            return [self.publish(f, landing=landing, replace=True) for f in folders]

    # --- replication (CONTRACT section 8) ----------------------------------------------------

    def replicate(self, to: str | None = None, *, pause: Callable[[str], None] | None = None
                  ) -> ReplicationReport:
        """Copy what this lake holds and the replica at ``to`` (default: the settings'
        ``replica``) lacks, so that it is at every moment a valid lake at an earlier point of
        this one; ``pause(point)`` runs between steps (crash tests)."""
        from btlake_pipelines.app.replication import report_of
        from btlake_pipelines.replication import replicate_once

        target = self._replica(to)
        return report_of(target, replicate_once(self.uri, target, pause))

    def replication_status(self, to: str | None = None) -> ReplicationStatus:
        """Per table this lake's latest version and the replica's, and the lag."""
        from btlake_pipelines.app.replication import status_of
        from btlake_pipelines.replication import lag, lag_seconds

        target = self._replica(to)
        lags = lag(self.uri, target)
        return status_of(target, lags, lag_seconds(self.uri, lags))

    def promote(self) -> bool:
        """Make this lake (a replica) a primary: maintenance compacts here again, and
        replicating into it is refused. True when it was a replica."""
        from btlake_pipelines.replication import promote

        return promote(self.uri)

    def _replica(self, to: str | None) -> str:
        from btlake_pipelines.errors import BtlakeError

        target = to or self.settings.replica
        if not target:
            raise BtlakeError("{param} is required: the replica's root (a folder or "
                              "s3://bucket/prefix)", param="to")
        return lake_uri(target)

    # -- streaming and bulk reads (contract section 9) -------------------------------------

    def stream_writer(self, **options: Any):
        """A :class:`~btlake_pipelines.streaming.writer.StreamWriter` over this lake: streamed
        market-data batches validated, micro-batched and appended exactly once per (writer,
        seq). ``options``: ``flush_rows``, ``flush_bytes``, ``max_wait``, ``linger`` (seconds)."""
        from btlake_pipelines.streaming.writer import StreamWriter

        return StreamWriter(self.uri, **options)

    def last_seq(self, writer: str, *, table: str | None = None) -> int | None:
        """The writer's last committed ``seq`` in ``table`` (default: its highest in any
        streamed table), from the tables' Delta ``txn`` actions; None when none is stored."""
        from btlake_pipelines.contract.tables import FACT_TABLES
        from btlake_pipelines.errors import BtlakeError
        from btlake_pipelines.storage.delta import open_table
        from btlake_pipelines.streaming.rows import STREAM_TABLES, check_writer

        check_writer(writer)
        if table is not None and table not in STREAM_TABLES:
            raise BtlakeError(f"bad {{param}}: one of {', '.join(STREAM_TABLES)}", param="table")
        seqs = [dt.transaction_version(writer) for t in ([table] if table else STREAM_TABLES)
                if t in FACT_TABLES and (dt := open_table(self.uri, t)) is not None]
        found = [s for s in seqs if s is not None]
        return max(found) if found else None

    def batches(self, table: str, *, batch_rows: int = 65_536, shard: tuple[int, int] = (0, 1),
                shuffle_seed: int | None = None, **read_filters: Any):
        """:meth:`read` as record batches of one shard ``(i, n)`` of a version-pinned read:
        the ``n`` shards are disjoint and together exactly the read; ``shuffle_seed`` orders
        the data files reproducibly (see :mod:`btlake_pipelines.query.shards`)."""
        from btlake_pipelines.query.shards import shard_batches

        return shard_batches(self.catalog, table, batch_rows=batch_rows, shard=shard,
                             shuffle_seed=shuffle_seed, **read_filters)

    def streamed_since(self, table: str, after: int):
        """The partitions streamed commits of ``table`` wrote after version ``after``, one
        :class:`~btlake_pipelines.app.streaming.StreamedPartition` per partition and window."""
        from btlake_pipelines.app.streaming import StreamedCommits, StreamedPartition
        from btlake_pipelines.streaming.commits import streamed_since

        upto, windows = streamed_since(self.uri, table, after)
        return StreamedCommits(table, upto, [
            StreamedPartition(table, w.market, w.date, w.first_version, w.last_version,
                              w.commits, w.rows, w.writers) for w in windows])

    def token_verdict(self, token: str | None, *, write: bool) -> str:
        """``"ok"``, ``"missing"`` or ``"refused"``: the API tokens' rule
        (:mod:`btlake_pipelines.app.access`) for a network front end's caller."""
        from btlake_pipelines.app.access import verdict

        return verdict(self.settings, token, write=write)

    def compact_streamed(self, day: date) -> list:
        """Bin-pack the small files streams left in ``day``'s partitions (only those files,
        beside the running streams); what the hourly Dagster schedule runs. Nothing on a
        replica: its logs are the primary's copies, a commit there would diverge them."""
        from btlake_pipelines.storage.replica import is_replica
        from btlake_pipelines.streaming.compaction import compact_streamed

        if is_replica(self.uri):
            return []
        return compact_streamed(self.uri, day, self.markets_on(day))

    # --- coverage of the market data (CONTRACT section 10) ---------------------------------

    def refresh_coverage(self, tables: Iterable[str] | None = None) -> list[CoverageRefresh]:
        """Bring the coverage summary (``<lake>/_coverage``) of the market-data ``tables``
        (default: all) up to their latest versions, re-reading only the partitions their
        commits since the last refresh changed. Any writer's commits count (streaming appends
        too); compaction changes nothing."""
        from btlake_pipelines.metadata.coverage_table import (
            COVERAGE,
            MARKET_TABLES,
            refresh,
        )

        out = []
        for table in tables or MARKET_TABLES:
            if table in MARKET_TABLES:
                out.append(refresh(self.uri, table, source=self.catalog.table(table),
                                   coverage=self.catalog.table(COVERAGE)))
        return out

    def coverage(self, table: str = "ticks", *, market: str | list[str] | None = None,
                 symbol: str | list[str] | None = None, start: date | datetime | str | None = None,
                 end: date | datetime | str | None = None) -> Coverage:
        """Per market, symbol and date of market-data ``table``: rows, first and last ``ts``;
        and the gaps: sessions of the market's exchange calendar between a symbol's first and
        last stored date with no rows. ``start`` / ``end``: dates, both inclusive. The summary
        is refreshed first, so it is current whoever wrote last."""
        from btlake_pipelines.app.coverage import Coverage
        from btlake_pipelines.metadata.coverage_table import COVERAGE
        from btlake_pipelines.query.coverage import check_table, coverage

        self.refresh_coverage([check_table(table)])
        return Coverage(table, coverage(self.uri, table, market=market, symbol=symbol,
                                        start=start, end=end,
                                        coverage_dt=self.catalog.table(COVERAGE)))

    def coverage_map(self, market: str, *, table: str = "ticks",
                     start: date | datetime | str | None = None,
                     end: date | datetime | str | None = None, bands: int = 100) -> CoverageMap:
        """One market's coverage as a heat map aggregated here (symbols in at most ``bands``
        bands x days, gaps counted, holidays and weekends named), for the browser page."""
        from btlake_pipelines.app.coverage import CoverageMap
        from btlake_pipelines.metadata.coverage_table import COVERAGE
        from btlake_pipelines.query.coverage import check_table, heat_map

        self.refresh_coverage([check_table(table)])
        return CoverageMap(heat_map(self.uri, table, market, start=start, end=end, bands=bands,
                                    coverage_dt=self.catalog.table(COVERAGE)))

    def coverage_markets(self, table: str = "ticks") -> list[dict[str, Any]]:
        """The markets of ``table``'s coverage, each with its symbols, days, rows and first
        and last date (the coverage page's menu)."""
        from btlake_pipelines.metadata.coverage_table import COVERAGE
        from btlake_pipelines.query.coverage import check_table, markets

        self.refresh_coverage([check_table(table)])
        return markets(self.uri, table, self.catalog.table(COVERAGE))

    def fillable_gaps(self, coverage: Coverage) -> list[tuple[str, date]]:
        """The daily ``(market, date)`` partitions holding a gap of ``coverage`` that an
        archived bundle holds rows for: re-deriving them fills the gap."""
        from btlake_pipelines.ingest.gap_fill import fillable_partitions

        return fillable_partitions(self.uri, coverage.table, coverage.gap_frame)

    def _refresh_coverage_after_write(self, tables: Iterable[str] | None = None) -> None:
        """Refresh coverage after this Lake wrote; a failure here never fails the write (the
        next coverage query refreshes again)."""
        import logging

        try:
            self.refresh_coverage(tables)
        except Exception as exc:  # the rows are stored; only the summary lags
            logging.getLogger(__name__).warning("coverage refresh failed: %s", exc)
