"""The coverage summary of the market-data tables, kept current from their Delta logs.

``<lake>/_coverage`` is a Delta table of btlake's own (names under the root that start with
``_`` are btlake's): one row per ``(table, market, symbol, date)`` that a market-data table
(``ticks``, ``l2``, market ``events``) stores, with its row count and first and last ``ts``.
It is partitioned by ``table``, ``market`` and ``month`` (``YYYY-MM``), so refreshing one day
rewrites one small file of that market's month, and a query for one market reads only its
files.

Per source table it remembers the last version it summarised, as a Delta application
transaction (``CommitProperties(app_transactions=...)``, read back with
``DeltaTable.transaction_version``): the version moves in the same commit as the rows it
describes. A refresh then reads only the commits since that version from the source's log
(:func:`btlake_pipelines.storage.delta_log.changed_partitions`): the ``add`` / ``remove``
actions with ``dataChange`` true name the ``(market, date)`` partitions whose rows changed,
whichever writer made them (bundle ingestion, re-derivation, a streaming append, any Delta
writer); compaction rewrites files with ``dataChange`` false and changes nothing. Only those
partitions are scanned again (count, first and last ``ts`` per symbol) and their coverage rows
replaced: a refresh costs what changed, not what the table holds. When the commits since were
removed by log cleanup, or nothing was summarised yet, the whole table is summarised again.

Refreshing twice at once is safe: both replace the same rows with what they read, and a
refresh that records an older version than another only makes the next one redo those
commits.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date

import polars as pl
import pyarrow as pa

from btlake_pipelines.settings import storage_options
from btlake_pipelines.storage import delta_log
from btlake_pipelines.storage import predicates as P
from btlake_pipelines.storage.checkpoints import maybe_checkpoint
from btlake_pipelines.storage.delta import open_table, table_uri

#: The coverage table's folder under the lake root.
COVERAGE = "_coverage"
#: The tables whose coverage is kept: the market data.
MARKET_TABLES: tuple[str, ...] = ("ticks", "l2", "events")
PARTITION_BY = ["table", "market", "month"]
SCHEMA = pa.schema([
    ("table", pa.string()), ("market", pa.string()), ("month", pa.string()),
    ("symbol", pa.string()), ("date", pa.date32()), ("rows", pa.int64()),
    ("first_ts", pa.timestamp("us", "UTC")), ("last_ts", pa.timestamp("us", "UTC")),
])
#: Daily partitions one coverage commit replaces at most (its predicate stays small: one
#: clause per market-month, TRAPS.md); a larger refresh is several commits, the version
#: recorded with the last.
MAX_DAYS_PER_COMMIT = 186
COMMIT_RETRIES = 8
#: Every this many coverage commits, its files are compacted and old ones vacuumed.
UPKEEP_EVERY = 100
UPKEEP_RETENTION_HOURS = 24

Part = tuple[str, date]


@dataclass(frozen=True)
class CoverageRefresh:
    """What one refresh of one table's coverage did."""

    table: str
    #: the source version summarised before and now (None: nothing / no table)
    previous: int | None
    version: int | None
    #: True when the whole table was summarised (first time, or its log was cleaned up)
    full: bool
    #: daily ``(market, date)`` partitions scanned again (all of them when ``full``)
    partitions: int
    #: coverage rows written
    rows: int = 0


def app_id(table: str) -> str:
    """The application-transaction id under which the coverage of ``table`` records the
    source version it summarised."""
    return f"btlake.coverage/{table}"


def open_coverage(lake: str):
    """The coverage table (a ``DeltaTable``), None before the first refresh."""
    return open_table(lake, COVERAGE)


def summarised_version(coverage, table: str) -> int | None:
    """The version of ``table`` the coverage table (an open ``DeltaTable`` or None) holds."""
    if coverage is None:
        return None
    version = coverage.transaction_version(app_id(table))
    return None if version is None else int(version)


def refresh(lake: str, table: str, *, source=None, coverage=None) -> CoverageRefresh:
    """Bring the coverage of ``table`` up to its latest version (see the module docstring).
    ``source`` and ``coverage``: already open ``DeltaTable`` s at their latest versions (a
    long-lived caller's cached tables); opened here when not given."""
    source = source if source is not None else open_table(lake, table)
    if source is None:
        return CoverageRefresh(table, None, None, False, 0)
    coverage = coverage if coverage is not None else open_coverage(lake)
    latest = source.version()
    previous = summarised_version(coverage, table)
    if previous == latest:
        return CoverageRefresh(table, previous, latest, False, 0)
    touched = None
    if previous is not None and previous < latest:
        touched = delta_log.changed_partitions(lake, table, previous, latest)
    if touched is None:  # first summary, log cleaned up, or a table made anew
        frame = summarise(lake, table, source, None)
        _write(lake, table, frame, P.eq("table", table), latest, create=coverage is None)
        parts = frame.select("market", "date").unique().height
        return CoverageRefresh(table, previous, latest, True, parts, frame.height)
    parts = sorted((m, date.fromisoformat(d)) for m, d in touched if m and d)
    frame = summarise(lake, table, source, parts) if parts else _empty()
    chunks = P.month_chunks(parts, MAX_DAYS_PER_COMMIT) or [[]]
    for i, chunk in enumerate(chunks):
        mine = frame.filter(pl.struct("market", "date").is_in(
            [{"market": m, "date": d} for m, d in chunk])) if chunk else _empty()
        last = i == len(chunks) - 1
        _write(lake, table, mine, _predicate(table, chunk) if chunk else None,
               latest if last else None, create=coverage is None)
    return CoverageRefresh(table, previous, latest, False, len(parts), frame.height)


def summarise(lake: str, table: str, source, parts: list[Part] | None) -> pl.DataFrame:
    """Coverage rows of ``parts`` (None: every partition) of ``table`` at the version
    ``source`` is loaded at: per market, date and symbol, the row count and first and last
    ``ts``. Only market rows count (``events`` of runs carry a ``run_id`` and are a run's own)."""
    lf = pl.scan_delta(source, storage_options=storage_options(table_uri(lake, table)))
    names = lf.collect_schema().names()
    if parts is not None:
        markets = sorted({m for m, _ in parts})
        days = sorted({d for _, d in parts})
        lf = lf.filter(pl.col("market").is_in(markets) & pl.col("date").is_in(days))
    if "run_id" in names:
        lf = lf.filter(pl.col("run_id").is_null())
    symbol = pl.col("symbol").cast(pl.String) if "symbol" in names else pl.lit(None, pl.String)
    frame = (lf.group_by(pl.col("market"), symbol.alias("symbol"), pl.col("date"))
             .agg(pl.len().cast(pl.Int64).alias("rows"),
                  pl.col("ts").min().alias("first_ts"), pl.col("ts").max().alias("last_ts"))
             .collect(engine="streaming"))
    if parts is not None:  # a market's rows on another market's day are not asked for
        wanted = pl.DataFrame({"market": [m for m, _ in parts], "date": [d for _, d in parts]},
                              schema={"market": pl.String, "date": pl.Date})
        frame = frame.join(wanted, on=["market", "date"], how="semi")
    return _shaped(table, frame)


def scan_coverage(lake: str, coverage=None) -> pl.LazyFrame | None:
    """The coverage rows, lazily (None before the first refresh)."""
    coverage = coverage if coverage is not None else open_coverage(lake)
    if coverage is None:
        return None
    return pl.scan_delta(coverage, storage_options=storage_options(table_uri(lake, COVERAGE)))


def _shaped(table: str, frame: pl.DataFrame) -> pl.DataFrame:
    return frame.select(
        pl.lit(table, pl.String).alias("table"), pl.col("market").cast(pl.String),
        pl.col("date").dt.strftime("%Y-%m").alias("month"), pl.col("symbol"),
        pl.col("date").cast(pl.Date), pl.col("rows"),
        pl.col("first_ts").cast(pl.Datetime("us", "UTC")),
        pl.col("last_ts").cast(pl.Datetime("us", "UTC")),
    ).sort("market", "date", "symbol")


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema=delta_log.polars_schema(SCHEMA))


def _predicate(table: str, parts: list[Part]) -> str:
    """Exactly the coverage rows of ``parts``: one clause per market-month (the partition
    folder, so the rewrite touches only its file), OR-ed as a balanced tree."""
    groups: dict[tuple[str, str], list[date]] = {}
    for m, d in parts:
        groups.setdefault((m, d.strftime("%Y-%m")), []).append(d)
    clauses = [P.all_of(P.eq("market", m), P.eq("month", month), P.is_in("date", days))
               for (m, month), days in sorted(groups.items())]
    return P.all_of(P.eq("table", table), P.balanced_or(clauses))


def _write(lake: str, table: str, frame: pl.DataFrame, predicate: str | None,
           version: int | None, *, create: bool) -> None:
    """One commit: replace the rows ``predicate`` matches with ``frame`` (None: add only),
    recording ``version`` as the summarised version of ``table`` when given."""
    from deltalake import CommitProperties, Transaction, write_deltalake
    from deltalake.exceptions import CommitFailedError

    uri = table_uri(lake, COVERAGE)
    data = frame.to_arrow().select(SCHEMA.names).cast(SCHEMA)
    props = CommitProperties(
        custom_metadata={"btlake.operation": "coverage", "btlake.table": table},
        app_transactions=None if version is None else [Transaction(app_id(table), version)])
    for attempt in range(COMMIT_RETRIES):
        try:
            exists = not create or open_coverage(lake) is not None
            write_deltalake(uri, data, mode="overwrite" if predicate and exists else "append",
                            predicate=predicate if exists else None,
                            partition_by=PARTITION_BY, commit_properties=props,
                            storage_options=storage_options(uri))
            break
        except CommitFailedError:
            if attempt == COMMIT_RETRIES - 1:
                raise
            time.sleep(0.05 * 2**attempt)
    dt = open_coverage(lake)
    if dt is not None:
        maybe_checkpoint(uri, dt.version())
        if dt.version() % UPKEEP_EVERY == 0:
            upkeep(dt)


def upkeep(dt) -> None:
    """Compact the coverage table's small files (a refresh writes one file per market-month it
    touches) and remove files no version of the last day needs. The summary is rebuilt from
    the source tables at any time, so it keeps no longer history; a failure (another refresh
    committing meanwhile) waits for the next turn."""
    import contextlib

    with contextlib.suppress(Exception):
        dt.optimize.compact()
        dt.vacuum(retention_hours=UPKEEP_RETENTION_HOURS, enforce_retention_duration=False,
                  dry_run=False)
