"""Reading a slice of a table: filters pushed into the scan, a btlake-consistent view of runs,
and exact nanosecond timestamps restored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.timestamps import join_nanos
from btlake_pipelines.contract.tables import (
    ALL_TABLES,
    FACT_TABLES,
    NANOS_SUFFIX,
    RUNS,
    Scope,
)
from btlake_pipelines.errors import NotFoundError, QueryError
from btlake_pipelines.query.search import strategy_filter, strategy_ids
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.delta_log import Commit, history
from btlake_pipelines.versions.time_travel import parse_time, resolve_as_of


def as_list(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def check_table(table: str) -> None:
    if table not in ALL_TABLES:
        raise NotFoundError(f"unknown table {table!r}; tables: {', '.join(ALL_TABLES)}")


def read_table(catalog: Catalog, table: str, *, run_id=None, strategy=None, market=None,
               symbol=None, start=None, end=None, columns=None, as_of=None,
               pinned=None) -> pa.Table:
    """The rows of ``table`` matching every filter given (see ``btlake read``).

    Runs are read whole: a run whose rows in the latest version belong to a batch that has not
    yet written its ``runs`` rows (in progress, or killed) is read at the version its ``runs``
    row pins, so a reader never sees half of a replace. ``pinned``: see :func:`scan_slice`."""
    def lazy() -> pl.LazyFrame:
        return scan_read(catalog, table, run_id=run_id, strategy=strategy, market=market,
                         symbol=symbol, start=start, end=end, columns=columns, as_of=as_of,
                         pinned=pinned)

    if as_of is None and run_id is None and strategy is None and start is not None \
            and end is not None:
        # market data by market / symbol / time: footers and file stats kept per version
        from btlake_pipelines.query.fast_slice import fast_market_slice

        check_table(table)
        given = SliceFilters.parse(market=market, symbol=symbol, start=start, end=end,
                                   columns=columns)
        fast = fast_market_slice(catalog, table, lazy, markets=given.markets,
                                 symbols=given.symbols, begin=given.begin,
                                 finish=given.finish, columns=given.columns)
        if fast is not None:
            return join_nanos(fast)
    return join_nanos(lazy().collect().to_arrow())


def scan_read(catalog: Catalog, table: str, *, run_id=None, strategy=None, market=None,
              symbol=None, start=None, end=None, columns=None, as_of=None,
              pinned=None) -> pl.LazyFrame:
    """The lazy form of :func:`read_table` (timestamps still split), runs mid-replace included
    at their pinned version: what streaming exports (the HTTP downloads) collect in batches."""
    options = dict(run_id=run_id, strategy=strategy, market=market, symbol=symbol,
                   start=start, end=end, columns=columns)
    frames = [scan_slice(catalog, table, as_of=as_of, pinned=pinned, **options)]
    if as_of is None:
        wanted = set(as_list(run_id))
        for version, runs in _pinned_runs(catalog, table).items():
            runs = [r for r in runs if not wanted or r in wanted]
            if runs:
                pinned = {**options, "run_id": runs}
                frames.append(scan_slice(catalog, table, as_of=version, **pinned))
    elif _run_scoped(table) and _tag_runs(catalog, as_of) is not None:
        frames += _pinned_at_tag(catalog, table, as_of, options)
    return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]


def _pinned_runs(catalog: Catalog, table: str) -> dict[int, list[str]]:
    """Runs caught mid-replace in ``table``, by the version their ``runs`` row pins.

    The latest btlake commits of the table name their batch and runs; a batch whose ``runs``
    rows are not written yet is unfinished. Cheap: a few commit entries, no data files."""
    if table not in FACT_TABLES or FACT_TABLES[table].scope is Scope.MARKET:
        return {}
    dt = catalog.table(table)
    runs = catalog.runs_frame()
    if dt is None or runs.is_empty() or "batch_id" not in runs.columns:
        return {}
    # a function of the two tables' versions only: worked out once per pair, not per read
    key = (f"pinned:{table}", dt.version(), catalog.runs_version())
    return catalog.derived(key, lambda: _pinned_now(dt, runs, table))


def _pinned_now(dt, runs: pl.DataFrame, table: str,
                commits: Iterator[Commit] | None = None) -> dict[int, list[str]]:
    done = set(runs.get_column("batch_id").unique().to_list())
    pending: dict[str, int] = {}  # run -> the newest unfinished commit naming it
    finished = 0
    for commit in _recent_history(dt) if commits is None else commits:
        batch = commit.batch_id
        if batch is None:
            continue  # maintenance (optimize, vacuum) never changes which rows a run has
        if batch in done:
            # a batch that finished after an unfinished one started sits above its commits
            finished += 1
            if finished >= _FINISHED_BATCHES_SCANNED:
                break
            continue
        for name in commit.runs:
            pending.setdefault(name, commit.version)
    if not pending:
        return {}
    rows = runs.filter(pl.col("run_id").is_in(list(pending))).select(
        "run_id", pl.col("versions").struct.field(table).alias("v")).drop_nulls()
    out: dict[int, list[str]] = {}
    for run, version in rows.iter_rows():
        if int(version) < pending[run]:  # rewritten since its runs row was: read it pinned
            out.setdefault(int(version), []).append(run)
    return out


#: How far back :func:`_pinned_runs` looks: past this many finished btlake batches, or this
#: many commits in all (maintenance commits included), whichever comes first.
_FINISHED_BATCHES_SCANNED = 8
_MAX_COMMITS_SCANNED = 512


def _recent_history(dt) -> Iterator[Commit]:
    """The table's commits, newest first, read in growing pages (most reads need one)."""
    seen, limit = 0, 8
    while seen < _MAX_COMMITS_SCANNED:
        entries = history(dt, limit)
        yield from entries[seen:]
        if len(entries) < limit:
            return
        seen, limit = len(entries), limit * 4


def scan_slice(catalog: Catalog, table: str, *, run_id=None, strategy=None, market=None,
               symbol=None, start=None, end=None, columns=None, as_of=None,
               pinned=None) -> pl.LazyFrame:
    """The lazy form of :func:`read_table` (timestamps still split), for streaming exports.
    ``pinned``: ``table`` already loaded at ``as_of`` (by ``Catalog.table_at``), for a caller
    reading several slices of one version that opens it once."""
    check_table(table)
    filters = SliceFilters.parse(run_id=run_id, strategy=strategy, market=market,
                                 symbol=symbol, start=start, end=end, columns=columns)
    version = resolve_as_of(catalog, table, as_of) if as_of is not None else None

    if pinned is not None:
        dt = pinned
    else:
        dt = catalog.table(table) if version is None else catalog.table_at(table, version)
    if dt is None:
        return _empty(table, filters.columns)
    lf = pl.scan_delta(dt)
    if version is None:  # the latest version's schema, worked out once per version
        schema = catalog.derived((f"schema:{table}", dt.version()), lf.collect_schema)
    else:
        schema = lf.collect_schema()
    has = schema.names()
    conditions = filter_conditions(catalog, table, has, filters, lambda: lf, version)
    for cond in conditions + _partition_pruning(catalog, table, filters):
        lf = lf.filter(cond)
    shown = shown_runs(catalog, table, as_of, version, filters.run_ids)
    if shown is not None:
        lf = lf.filter(shown)
    keep = projection(table, has, filters.columns)
    return lf if keep is None else lf.select(keep)


@dataclass(frozen=True)
class SliceFilters:
    """The filters of ``Lake.read``, parsed once, for the two readers that apply them: the
    polars scan here and the file-by-file shards (:mod:`btlake_pipelines.query.shards`)."""

    run_ids: list[str]
    strategy: str | None
    markets: list[str]
    symbols: list[str]
    begin: datetime | None
    finish: datetime | None
    columns: list[str] | None

    @classmethod
    def parse(cls, *, run_id=None, strategy=None, market=None, symbol=None, start=None,
              end=None, columns=None) -> SliceFilters:
        if isinstance(columns, str):
            columns = [c.strip() for c in columns.split(",") if c.strip()]
        return cls(as_list(run_id), strategy, as_list(market), as_list(symbol),
                   parse_time(start, what="start") if start is not None else None,
                   parse_time(end, what="end") if end is not None else None, columns)


def filter_conditions(catalog: Catalog, table: str, has: list[str], filters: SliceFilters,
                      scan: Callable[[], pl.LazyFrame],
                      version: int | datetime | None) -> list[pl.Expr]:
    """The row conditions of ``filters`` on ``version`` (None: the latest) of ``table``, whose
    columns are ``has``; a :class:`QueryError` first for a filter the table has no column for.
    ``scan()``: that version's rows, read only for the strategy ids an old version holds."""
    time_col = _check_applies(table, has, filters)
    out: list[pl.Expr] = []
    if filters.run_ids:
        out.append(pl.col("run_id").is_in(filters.run_ids))
    if filters.strategy:
        out.append(strategy_filter(filters.strategy,
                                   strategy_choices(catalog, scan(), version)))
    if filters.markets:
        out.append(pl.col("market").is_in(filters.markets))
    if filters.symbols:
        out.append(pl.col("symbol").is_in(filters.symbols))
    if filters.begin is not None:
        out.append(pl.col(time_col) >= filters.begin)
    if filters.finish is not None:
        out.append(pl.col(time_col) < filters.finish)
    return out


def _check_applies(table: str, has: list[str], filters: SliceFilters) -> str:
    """The time column the time filters apply to, after checking that every filter given has
    its column in ``table``."""
    for given, column, param in ((filters.run_ids, "run_id", "run_id"),
                                 (filters.strategy, "strategy_id", "strategy"),
                                 (filters.markets, "market", "market"),
                                 (filters.symbols, "symbol", "symbol")):
        if given and column not in has:
            raise QueryError(f"{{param}} does not apply to table '{table}' (it has no "
                             f"'{column}' column)", param=param)
    time_col = "ts" if "ts" in has else "created_at"
    if (filters.begin is not None or filters.finish is not None) and time_col not in has:
        raise QueryError(f"{{param}} does not apply to table '{table}' (it has no time "
                         "column)", param="start" if filters.begin is not None else "end")
    return time_col


def _partition_pruning(catalog: Catalog, table: str, filters: SliceFilters) -> list[pl.Expr]:
    """Conditions on the partition columns that let the scan skip whole partitions: the
    run dates of the runs asked for, and the trading dates of a market-data time range
    (the shards skip files by the log's partition values instead)."""
    out: list[pl.Expr] = []
    if filters.run_ids and _run_scoped(table):
        dates = _run_dates(catalog, filters.run_ids)
        if dates is not None:
            out.append(pl.col("date").is_in(dates))
    if table in FACT_TABLES and not _run_scoped(table):
        # market data is partitioned by the trading date of ts: prune whole days
        if filters.begin is not None:
            out.append(pl.col("date") >= filters.begin.date())
        if filters.finish is not None:
            out.append(pl.col("date") <= filters.finish.date())
    return out


def strategy_choices(catalog: Catalog, lf: pl.LazyFrame, version: int | None) -> list[str]:
    """The strategy ids a ``--strategy`` glob picks among: the runs index's at the latest
    version (every visible row belongs to a run there); at an older version, the ids that
    version's rows hold (a replaced run may have changed strategy since)."""
    if version is None:
        view = catalog.runs_view()
        if view is None:
            return []
        return catalog.derived(("runs:strategies", catalog.runs_version()),
                               lambda: strategy_ids(view.frame))
    return strategy_ids(lf.select(pl.col("strategy_id").unique()).collect())


def _run_scoped(table: str) -> bool:
    return table in FACT_TABLES and FACT_TABLES[table].scope is not Scope.MARKET


def _tag_runs(catalog: Catalog, as_of) -> pl.DataFrame | None:
    """The ``runs`` rows at the version tag ``as_of`` recorded (None: ``as_of`` is no tag);
    what keeps a read at a tag run-consistent (see :mod:`btlake_pipelines.versions.tags`)."""
    from btlake_pipelines.versions.tags import is_tag

    if not is_tag(as_of):
        return None
    try:
        version = resolve_as_of(catalog, RUNS, as_of)
    except NotFoundError:
        return pl.DataFrame(schema={"run_id": pl.String, "content_hash": pl.String,
                                    "batch_id": pl.String})
    assert isinstance(version, int)

    def load() -> pl.DataFrame:
        dt = catalog.table_at(RUNS, version)
        return pl.scan_delta(dt).select("run_id", "content_hash", "batch_id",
                                        "versions").collect()

    return catalog.derived(("tag:runs", version), load)


def _pinned_at_tag(catalog: Catalog, table: str, as_of, options: dict) -> list[pl.LazyFrame]:
    """Runs a batch was replacing when the tag was made: read at the versions their ``runs``
    row (at the tag) pins, as :func:`_pinned_runs` does for the latest version."""
    runs = _tag_runs(catalog, as_of)
    version = resolve_as_of(catalog, table, as_of)
    if runs is None or runs.is_empty() or not isinstance(version, int):
        return []
    wanted = set(as_list(options.get("run_id")))
    frames = []
    commits = _commits_down(catalog.lake, table, version)
    for pinned, names in _pinned_now(None, runs, table, commits).items():
        names = [r for r in names if not wanted or r in wanted]
        if names:
            frames.append(scan_slice(catalog, table, as_of=pinned,
                                     **{**options, "run_id": names}))
    return frames


def _commits_down(lake: str, table: str, version: int) -> Iterator[Commit]:
    """Commits ``version``, ``version - 1``, ... from their commit files (``history()`` of a
    table loaded at an old version labels the latest commits with its own numbers)."""
    from btlake_pipelines.storage.delta_log import commit

    for v in range(version, max(version - _MAX_COMMITS_SCANNED, -1), -1):
        found = commit(lake, table, v)
        if found is None:
            return
        yield found


def _run_dates(catalog: Catalog, run_ids: list[str]) -> list | None:
    """The run-date partitions holding these runs, from the runs table (None: unknown)."""
    runs = catalog.runs_frame()
    if runs.is_empty():
        return None
    return runs.filter(pl.col("run_id").is_in(run_ids)).get_column("date").unique().to_list()


def shown_runs(catalog: Catalog, table: str, as_of, version: int | None,
               run_ids: list[str] | None) -> pl.Expr | None:
    """The filter that keeps a read of ``table`` run-consistent, None when it needs none: at
    the latest version (``version`` None) rows of runs the ``runs`` table records, at a tag
    rows of runs the tag's ``runs`` version shows, at any other version every row."""
    if not _run_scoped(table):
        return None
    if version is None:
        return visible_runs(catalog, run_ids)
    tagged = _tag_runs(catalog, as_of)
    if tagged is None:
        return None
    return _of_runs(tagged.get_column("content_hash").unique().implode())


def visible_runs(catalog: Catalog, run_ids: list[str] | None = None) -> pl.Expr:
    """Keep market rows and rows of runs whose ``runs`` row records this exact content: a run
    still being written, or half-replaced by a crashed batch, is not shown. ``run_ids``: the
    rows are already limited to these runs, so only their hashes are needed."""
    runs = catalog.runs_frame()
    if runs.is_empty():
        return pl.col("run_id").is_null()
    # A filter, not a semi-join + concat of two scans: polars streams it batch by batch (the
    # join made collect_batches hold the whole slice). The content hash covers the manifest,
    # which names the run, so a hash matches exactly one (run_id, content) pair.
    if run_ids:
        hashes = runs.filter(pl.col("run_id").is_in(run_ids)).get_column(
            "content_hash").unique().implode()
    else:
        hashes = catalog.derived(("runs:hashes", catalog.runs_version()), lambda: runs.get_column(
            "content_hash").unique().implode())
    return _of_runs(hashes)


def _of_runs(hashes: pl.Series) -> pl.Expr:
    """Market rows and rows whose ``run_hash`` is one of ``hashes`` (an imploded list)."""
    return pl.col("run_id").is_null() | pl.col("run_hash").is_in(hashes)


def projection(table: str, has: list[str], columns: list[str] | None) -> list[str] | None:
    """The columns to select for ``columns`` (with the nanosecond parts of timestamps), None
    for all; a :class:`QueryError` naming any column ``table`` does not have."""
    if not columns:
        return None
    unknown = [c for c in columns if c not in has]
    if unknown:
        raise QueryError(f"unknown column(s) {', '.join(unknown)} in table '{table}'; columns: "
                         f"{', '.join(c for c in has if not c.endswith(NANOS_SUFFIX))}")
    keep = list(dict.fromkeys(columns))
    keep += [c + NANOS_SUFFIX for c in columns if c + NANOS_SUFFIX in has]
    return keep


def _empty(table: str, columns: list[str] | None) -> pl.LazyFrame:
    spec = FACT_TABLES.get(table)
    names = list(columns or ([*spec.required_names, "market", "date"] if spec else []))
    return pl.LazyFrame({n: [] for n in names})

