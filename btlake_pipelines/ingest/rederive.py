"""Re-derive lake partitions from the archived raw bundles, replacing exactly those partitions.

This is what materializing a partition (or backfilling a range) in Dagster does. The archive
is the source of truth; the lake's metadata says which copies hold a partition:

- a run's own rows (trades, equity, a run's events): the current version of each run dated
  that day with that market, from ``runs.archive_uri``;
- market data (ticks, l2, market events): every handling whose recorded slices touch the
  partition, from ``ingest_log`` (``slices``, ``destination_uri``), replayed in handling
  order with the same rule ingestion applies (a later slice replaces the stored rows of its
  symbol between its first and last ``ts``).

Dagster's fact partitions are months (:func:`rederive_months`): a ``(market, month)`` stands for
the daily Delta partitions of that market in that month, and re-deriving it rewrites each of
them that is stored or that the archive holds, and nothing else.

Every commit is an overwrite whose escaped predicate names exactly the ``(market, date)``
partitions it rewrites, so nothing else can change even when Dagster hands a single run a
whole range (see dagster-io/dagster#34064). A call's partitions go into one commit when they
span at most ``MAX_DAYS_PER_COMMIT`` daily partitions (a few market-months), otherwise into
several, each replacing whole market-months: a backfill over years then neither builds a
predicate deltalake cannot walk (TRAPS.md: thousands of clauses crash the process) nor holds
the whole range in memory. A partition with stored rows but no archived source is left alone
rather than emptied.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import polars as pl
import pyarrow as pa

from btlake_pipelines.contract.tables import FACT_TABLES, INGEST_LOG, RUNS, Scope
from btlake_pipelines.ingest import market_slices as M
from btlake_pipelines.ingest.archive import load_archived
from btlake_pipelines.ingest.report import month_start, rows_per_partition
from btlake_pipelines.metadata.ingest_log import scan_log, slice_parts, touches
from btlake_pipelines.metadata.runs_migration import migrate as migrate_runs
from btlake_pipelines.metadata.runs_table import run_rows
from btlake_pipelines.storage import delta, delta_log
from btlake_pipelines.storage import predicates as P
from btlake_pipelines.storage.scan import scan
from btlake_pipelines.storage.stream_marks import marked

#: A fact-table partition: (market, date).
Part = tuple[str, date]
#: Daily partitions one re-derivation commit rewrites at most: six market-months. Its
#: predicate then has at most that many equality clauses (far below what deltalake walks
#: safely) and its rows are a bounded part of a long backfill.
MAX_DAYS_PER_COMMIT = 186


@dataclass(frozen=True)
class Source:
    """One archived copy that holds rows of a partition."""

    bundle: str
    uri: str
    kind: str  # "run": the run's own rows; "market": market-data slices
    content_hash: str | None = None


@dataclass
class Rederived:
    """What re-deriving one partition did."""

    table: str
    market: str | None
    day: date
    rows: int = 0
    sources: list[str] = field(default_factory=list)
    version: int | None = None
    note: str | None = None  # set when the partition was left unchanged, and why

    @property
    def part(self) -> tuple[str | None, date]:
        return (self.market, self.day)


def partition_predicate(parts: list[Part]) -> str:
    """The partitions named exactly, one clause per market and month
    (``market = 'X' AND date IN (...)``), the clauses OR-ed as a balanced tree: the only
    overwrite predicate re-derivation ever uses. deltalake turns an ``IN`` list into a chain
    of ORs, so a clause never lists more than a month's days."""
    groups: dict[tuple[str, date], list[date]] = {}
    for market, day in sorted(set(parts)):
        groups.setdefault((market, month_start(day)), []).append(day)
    return P.balanced_or([P.all_of(P.eq("market", m), P.is_in("date", days))
                          for (m, _), days in sorted(groups.items())])


@dataclass(frozen=True)
class _Wanted:
    """The partitions a call is about: exact ``(market, date)`` days, or every day of some
    ``(market, first day of month)`` months."""

    parts: frozenset[Part]
    monthly: bool = False

    def __contains__(self, part: Part) -> bool:
        market, day = part
        return ((market, month_start(day)) if self.monthly else part) in self.parts

    def dates(self, column: pl.Expr | None = None) -> pl.Expr:
        """Rows (or, given their ``column``, list elements) dated in one of the wanted days or
        months (any market)."""
        column = pl.col("date") if column is None else column
        days = sorted({d for _, d in self.parts})
        return column.dt.month_start().is_in(days) if self.monthly else column.is_in(days)


def sources_for(lake: str, table: str, parts: list[Part]) -> dict[Part, list[Source]]:
    """Archived copies holding rows of each partition, market-data copies in replay order
    first, then run copies."""
    found = _sources(lake, table, _Wanted(frozenset(parts)))
    return {p: found.get(p, []) for p in set(parts)}


def rederive(lake: str, table: str, parts: list[Part]) -> list[Rederived]:
    """Rewrite each ``(market, date)`` partition of fact ``table`` from the archive; returns
    one :class:`Rederived` per partition, in sorted order."""
    _check_fact(table)
    return _rederive(lake, table, sorted(set(parts)), sources_for(lake, table, parts),
                     delta_partition_rows(lake, table))


def rederive_months(lake: str, table: str, months: Iterable[Part]) -> list[Rederived]:
    """Rewrite every daily partition of each ``(market, month)`` (any day of the month names
    it) that the lake stores or the archive holds; other days, months and markets are not
    touched. Returns one :class:`Rederived` per daily partition found, in sorted order; a
    month with neither stored rows nor archived copies has none."""
    _check_fact(table)
    wanted = _Wanted(frozenset((m, month_start(d)) for m, d in months), monthly=True)
    found = _sources(lake, table, wanted)
    stored = delta_partition_rows(lake, table)
    days = sorted({p for p in stored if p[0] is not None and p in wanted} | set(found))
    return _rederive(lake, table, days, {p: found.get(p, []) for p in days}, stored)


def _check_fact(table: str) -> None:
    if table not in FACT_TABLES:
        raise KeyError(f"not a fact table: {table}")


#: Attempts of a re-derivation that a concurrent ingestion keeps overtaking.
ATTEMPTS = 5
#: How long a re-derivation waits for an ingestion batch that has committed rows but not yet
#: logged them (after that the batch is taken as crashed: its bundles are still in landing and
#: their next ingestion writes their rows again).
IN_FLIGHT_WAIT_SECONDS = 120.0


def _rederive(lake: str, table: str, wanted: list[Part], sources: dict[Part, list[Source]],
              stored: dict[tuple, int]) -> list[Rederived]:
    """Re-derive, safe against ingestion running at the same time: the table is read at a
    snapshot after every batch that committed to it has logged its bundles (so the archive
    holds what the partitions hold), and each commit is made against that snapshot, so
    deltalake refuses it if an ingestion changed those partitions since; then it starts
    over."""
    from deltalake.exceptions import CommitFailedError

    for attempt in range(ATTEMPTS):
        snapshot = wait_for_logged_batches(lake, table)
        if attempt:  # an ingestion got in between: look for its handlings too
            sources = sources_for(lake, table, wanted)
            stored = delta_partition_rows(lake, table)
        try:
            return _rederive_at(lake, table, wanted, sources, stored, snapshot)
        except CommitFailedError:
            if attempt == ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def wait_for_logged_batches(lake: str, table: str, *, timeout: float = IN_FLIGHT_WAIT_SECONDS):
    """The table (a ``DeltaTable``) once no ingestion batch that committed to it recently is
    missing from ``ingest_log``, or when ``timeout`` has passed (None: no table)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        snapshot = delta.open_table(lake, table)
        if snapshot is None or not _unlogged_batches(lake, snapshot) \
                or time.monotonic() >= deadline:
            return snapshot
        time.sleep(0.5)


def _unlogged_batches(lake: str, dt, recent: int = 64) -> set[str]:
    """Batches among the table's recent commits whose bundles have no ``ingest_log`` row from
    that batch or a later handling (a batch still running; or crashed, until its bundles are
    handled again)."""
    commits = [(c.batch_id, c.runs, c.timestamp) for c in delta_log.history(dt, recent)
               if c.batch_id and c.btlake_operation != "rederive"]
    if not commits:
        return set()
    lf = scan(lake, INGEST_LOG)
    if lf is None:
        return {batch for batch, _, _ in commits}
    batches = [b for b, _, _ in commits]
    names = sorted({n for _, runs, _ in commits for n in runs})
    log = lf.filter(pl.col("batch_id").is_in(batches) | pl.col("bundle").is_in(names)).select(
        "batch_id", "bundle", "handled_at").collect()
    logged = set(log.get_column("batch_id").to_list())
    last = dict(log.group_by("bundle").agg(pl.col("handled_at").max()).iter_rows())
    return {batch for batch, runs, at in commits if batch not in logged and not (
        runs and all(last.get(n) is not None and last[n] >= at for n in runs))}


def _rederive_at(lake: str, table: str, wanted: list[Part], sources: dict[Part, list[Source]],
                 stored: dict[tuple, int], snapshot) -> list[Rederived]:
    results = {p: Rederived(table, p[0], p[1], sources=sorted({s.bundle for s in sources[p]}))
               for p in wanted}
    streamed = marked(lake, table, {m for m, _ in wanted})
    for p in wanted:
        if p in streamed:  # streamed rows have no archived copy: re-deriving would drop them
            results[p].rows = stored.get(p, 0)
            results[p].note = "holds streamed rows, which no archived bundle has; left unchanged"
    wanted_writes = [p for p in wanted if p not in streamed]
    for chunk in P.month_chunks(wanted_writes, MAX_DAYS_PER_COMMIT):
        frames = _load_frames(table, {p: sources[p] for p in chunk})
        writes: list[Part] = []
        data: list[pl.DataFrame] = []
        for p in chunk:
            if not sources[p]:
                if stored.get(p):
                    results[p].rows = stored[p]
                    results[p].note = "no archived bundle holds this partition; left unchanged"
                continue
            rows = _partition_rows(table, p, sources[p], frames)
            if rows.height == 0 and not stored.get(p):
                continue  # nothing stored, nothing derived: no commit needed
            results[p].rows = rows.height
            writes.append(p)
            if rows.height:
                data.append(rows)
        if writes:
            version = _write(lake, table, writes, data, sorted({b for p in writes
                                                                for b in results[p].sources}),
                             snapshot)
            snapshot = delta.open_table(lake, table)  # the next chunk builds on this commit
            for p in writes:
                results[p].version = version
    return [results[p] for p in wanted]


def rederive_runs(lake: str, days: list[date]) -> list[Rederived]:
    """Rebuild the ``runs`` rows of each date from the runs' archived manifests, keeping what
    ingestion recorded about them (versions, archive copy, ingestion time, batch)."""
    wanted = sorted(set(days))
    results = {d: Rederived(RUNS, None, d) for d in wanted}
    lf = scan(lake, RUNS)
    if lf is None or not wanted:
        return [results[d] for d in wanted]
    stored = lf.filter(pl.col("date").is_in(wanted)).select(
        "run_id", "date", "archive_uri", "content_hash", "source_uri", "versions",
        "ingested_at", "batch_id").collect()
    tables: list[pa.Table] = []
    for row in stored.iter_rows(named=True):
        bundle = load_archived(row["run_id"], row["archive_uri"],
                               content_hash=row["content_hash"])
        bundle.source_uri = row["source_uri"] or bundle.source_uri
        versions = {k: v for k, v in (row["versions"] or {}).items() if v is not None}
        tables.append(run_rows([bundle], versions={bundle.name: versions},
                               archive={bundle.name: row["archive_uri"]},
                               ingested_at=row["ingested_at"], batch_id=row["batch_id"]))
        result = results[row["date"]]
        result.rows += 1
        result.sources.append(row["run_id"])
    written = sorted({row["date"] for row in stored.iter_rows(named=True)})
    for d in wanted:
        if d not in written:
            results[d].note = "no runs stored for this date"
    if tables:
        migrate_runs(lake)  # a runs table in the struct layout is rewritten first, once
        data = pa.concat_tables(tables, promote_options="permissive")
        version = delta.write(lake, RUNS, data, predicate=P.is_in("date", written),
                              metadata=_commit_metadata([f"{d}" for d in written],
                                                        stored["run_id"].to_list()))
        for d in written:
            results[d].version = version
    return [results[d] for d in wanted]


def delta_partition_rows(lake: str, table: str) -> dict[tuple, int]:
    """Rows per stored partition, from the Delta log alone (no data file is read): keys are
    ``(market, date)`` for fact tables and ``(None, date)`` for ``runs``."""
    dt = delta.open_table(lake, table)
    return {} if dt is None else rows_per_partition(dt)


# --- where a partition's rows are archived ------------------------------------------------


def _sources(lake: str, table: str, wanted: _Wanted) -> dict[Part, list[Source]]:
    """Archived copies per partition in ``wanted``: market-data copies in replay order first,
    then run copies; partitions no copy holds are absent."""
    out: dict[Part, list[Source]] = {}
    for found in (_market_sources(lake, table, wanted), _run_sources(lake, table, wanted)):
        for part, items in found.items():
            out.setdefault(part, []).extend(items)
    return out


def _run_sources(lake: str, table: str, wanted: _Wanted) -> dict[Part, list[Source]]:
    if FACT_TABLES[table].scope is Scope.MARKET or not wanted.parts:
        return {}
    lf = scan(lake, RUNS)
    if lf is None:
        return {}
    df = lf.filter(wanted.dates()).select(
        "run_id", "date", "markets", "archive_uri", "content_hash",
        pl.col("rows").struct.field(table).alias("n")).collect()
    out: dict[Part, list[Source]] = {}
    for row in df.sort("run_id").iter_rows(named=True):
        if not row["n"]:
            continue
        for market in row["markets"] or []:
            part = (market, row["date"])
            if part in wanted:
                out.setdefault(part, []).append(
                    Source(row["run_id"], row["archive_uri"], "run", row["content_hash"]))
    return out


def _market_sources(lake: str, table: str, wanted: _Wanted) -> dict[Part, list[Source]]:
    """Handlings whose slices touch each partition, oldest first; inside one batch, in the
    batch's own order (rows of one append stay in order in its file)."""
    if FACT_TABLES[table].scope is Scope.RUN or not wanted.parts:
        return {}
    lf = scan_log(lake)
    if lf is None:
        return {}
    log = (lf.filter((pl.col("status") != "quarantined") & touches(table, wanted.dates))
           .select("bundle", "slices", "destination_uri", "content_hash", "handled_at")
           .collect().with_row_index("seq").sort("handled_at", "seq"))
    touched: dict[int, set[Part]] = {}
    for i, market, day in slice_parts(log, table).select("row", "market", "date").iter_rows():
        touched.setdefault(i, set()).add((market, day))
    out: dict[Part, list[Source]] = {}
    for i, row in enumerate(log.drop("slices").iter_rows(named=True)):
        for part in sorted(p for p in touched.get(i, ()) if p in wanted):
            out.setdefault(part, []).append(Source(row["bundle"], row["destination_uri"],
                                                   "market", row["content_hash"]))
    return out


# --- reading the copies and rebuilding the rows ----------------------------------------------


def _load_frames(table: str, sources: dict[Part, list[Source]]
                 ) -> dict[tuple[Part, Source], pl.DataFrame]:
    """Each archived copy is loaded once, however many partitions it holds; only the rows of
    the wanted partitions are kept."""
    uses: dict[str, list[tuple[Part, Source]]] = {}
    for part, found in sources.items():
        for source in found:
            uses.setdefault(source.uri, []).append((part, source))
    frames: dict[tuple[Part, Source], pl.DataFrame] = {}
    for uri, items in uses.items():
        first = items[0][1]
        bundle = load_archived(first.bundle, uri, content_hash=first.content_hash)
        for (market, day), source in items:
            tables = bundle.run_tables if source.kind == "run" else bundle.market_tables
            df = tables.get(table)
            if df is not None:
                frames[((market, day), source)] = df.filter(
                    (pl.col("market") == market) & (pl.col("date") == day))
    return frames


def _partition_rows(table: str, part: Part, sources: list[Source],
                    frames: dict[tuple[Part, Source], pl.DataFrame]) -> pl.DataFrame:
    return _replay(table, sources, {s: frames[(part, s)] for s in sources
                                    if (part, s) in frames})


def _replay(table: str, sources: list[Source], frames: dict[Source, pl.DataFrame]
            ) -> pl.DataFrame:
    market: pl.DataFrame | None = None
    runs: list[pl.DataFrame] = []
    for source in sources:
        df = frames.get(source)
        if df is None or df.height == 0:
            continue
        if source.kind == "run":
            runs.append(df)
            continue
        market = M.overlay(table, market, df)  # later handlings replace their slices
    parts = ([market] if market is not None else []) + runs
    if not parts:
        return pl.DataFrame()
    return pl.concat(parts, how="diagonal_relaxed")


def _write(lake: str, table: str, parts: list[Part], data: list[pl.DataFrame],
           bundles: list[str], snapshot=None) -> int:
    spec = FACT_TABLES[table]
    if data:
        df = pl.concat(data, how="diagonal_relaxed")
        order = [c for c in ("market", "date", *spec.sort_by) if c in df.columns]
        arrow = df.sort(order).to_arrow()
    else:
        dt = delta.open_table(lake, table)
        assert dt is not None  # a partition to empty means the table exists
        arrow = pa.Table.from_batches([], schema=pa.schema(dt.schema().to_arrow()))
    return delta.write(lake, table, arrow, predicate=partition_predicate(parts),
                       metadata=_commit_metadata([f"{m}|{d}" for m, d in parts], bundles),
                       snapshot=snapshot)


def _commit_metadata(parts: list[str], runs: list[str]) -> dict:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return {"btlake.batch": f"rederive-{stamp}", "btlake.operation": "rederive",
            "btlake.partitions": parts[:1000], "btlake.runs": sorted(set(runs))[:1000],
            "btlake.run_count": len(set(runs))}
