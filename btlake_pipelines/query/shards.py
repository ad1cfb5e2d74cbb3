"""``Lake.batches``: a version-pinned read split into disjoint shards, for training jobs.

Every shard pins the same table version (the one given as ``as_of``, else the latest when the
first shard is planned: pass ``as_of`` to make workers started at different times agree).
The unit of work is one data file of that version: the files are listed from the log in a
fixed order, shuffled by ``shuffle_seed`` when given (``random.Random(seed)``: the same order
on every machine), and dealt round-robin to the ``n`` shards, so the shards are disjoint and
together hold every file exactly once. Each file is read alone (one file in memory at a time,
never the whole slice), filtered by the same filters as ``Lake.read`` and cut into record
batches of at most ``batch_rows`` rows. Nothing is materialised beyond one file, and the
shuffle costs nothing: it reorders a list of paths.

Files of a partition that the filters exclude (market, trading date of ``ts``) are skipped
from the log's partition values without being opened.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date

import polars as pl
import pyarrow as pa

from btlake_pipelines.bundles.timestamps import join_nanos
from btlake_pipelines.contract.tables import FACT_TABLES, Scope
from btlake_pipelines.errors import QueryError
from btlake_pipelines.query.read import (
    SliceFilters,
    check_table,
    filter_conditions,
    projection,
    shown_runs,
)
from btlake_pipelines.storage import delta_log
from btlake_pipelines.storage.catalog import Catalog
from btlake_pipelines.storage.delta import PARTITIONS, open_table
from btlake_pipelines.versions.time_travel import resolve_as_of

_COMPAT = pl.CompatLevel.oldest()


def check_shard(shard: tuple[int, int], batch_rows: int) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise QueryError("{param} must be a pair (i, n) of integers", param="shard") from None
    if not (n >= 1 and 0 <= i < n):
        raise QueryError(f"{{param}} must be (i, n) with 0 <= i < n, got ({i}, {n})",
                         param="shard")
    if batch_rows < 1:
        raise QueryError("{param} must be >= 1", param="batch_rows")
    return i, n


def shard_batches(catalog: Catalog, table: str, *, batch_rows: int = 65_536,
                  shard: tuple[int, int] = (0, 1), shuffle_seed: int | None = None,
                  run_id=None, strategy=None, market=None, symbol=None, start=None, end=None,
                  columns=None, as_of=None) -> Iterator[pa.RecordBatch]:
    """Shard ``shard = (i, n)`` of ``table``'s rows matching the filters of ``Lake.read``."""
    i, n = check_shard(shard, batch_rows)
    check_table(table)
    version = resolve_as_of(catalog, table, as_of) if as_of is not None else None
    # a table of its own, loaded once: the catalog's copy moves on with later commits
    dt = open_table(catalog.lake, table) if version is None else catalog.table_at(table, version)
    if dt is None:
        return iter(())
    schema = delta_log.table_schema(dt)
    filters = SliceFilters.parse(run_id=run_id, strategy=strategy, market=market,
                                 symbol=symbol, start=start, end=end, columns=columns)
    conditions = filter_conditions(catalog, table, schema.names(), filters,
                                   lambda: pl.scan_delta(dt), version)
    keep = projection(table, schema.names(), filters.columns)
    shown = shown_runs(catalog, table, as_of, version, filters.run_ids)
    if shown is not None:
        conditions.append(shown)
    spec = FACT_TABLES.get(table)
    market_data = spec is not None and spec.scope is Scope.MARKET
    files = sorted(delta_log.live_files(dt), key=lambda f: f.path)
    files = [f for f in files if _partition_may_match(f.partition_values, filters.markets,
                                                       filters.begin, filters.finish,
                                                       market_data)]
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(files)
    mine = files[i::n]

    def batches() -> Iterator[pa.RecordBatch]:
        for f in mine:
            frame = delta_log.read_files(catalog.lake, table, [f], schema,
                                         PARTITIONS.get(table, []))
            frame = frame.drop(delta_log.FILE_COLUMN)
            for cond in conditions:
                frame = frame.filter(cond)
            if keep:
                frame = frame.select(keep)
            if frame.height:
                yield from join_nanos(frame.to_arrow(compat_level=_COMPAT)).to_batches(
                    max_chunksize=batch_rows)

    return batches()


def _partition_may_match(values: dict[str, str | None], markets: list[str],
                         begin, finish, market_data: bool) -> bool:
    if markets and "market" in values and values["market"] not in markets:
        return False
    day = values.get("date")
    if market_data and day:
        d = date.fromisoformat(day)
        if begin is not None and d < begin.date():
            return False
        if finish is not None and d > finish.date():
            return False
    return True
