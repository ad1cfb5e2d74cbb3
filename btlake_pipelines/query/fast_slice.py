"""A direct path for the most common market-data read: some markets, maybe some symbols, one
time range (``btlake read ticks --market M --symbol S --start T0 --end T1``).

A polars scan of a Delta table costs a few milliseconds before it reads a byte (the query is
planned, the log's file list turned into a frame, the reader started). For a symbol-hour that
is most of the time, so here the catalog keeps, per table version, the file list with its
partition values and statistics, and per data file its Parquet footer (files are immutable);
a read picks the files and row groups whose statistics can match, reads only those with
pyarrow, filters the rows and casts them to exactly the schema the polars path returns.

Anything else (another table, run filters, time travel, a table whose protocol needs more than
plain Parquet files, files that predate a requested column) returns None and the caller takes
the general path, so results never depend on which path ran.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from btlake_pipelines.contract.tables import FACT_TABLES, PARTITION_COLUMNS, Scope
from btlake_pipelines.storage import delta_log

PARTITIONS = PARTITION_COLUMNS
#: Above this many files the general (parallel) path is at least as fast.
MAX_FILES = 8
#: Delta's file statistics keep timestamps to the millisecond (truncated): widen by that.
_STATS_SLACK = timedelta(milliseconds=1)


def fast_market_slice(catalog, table: str, lazy_general, *, markets: list[str],
                      symbols: list[str], begin: datetime | None, finish: datetime | None,
                      columns: list[str] | None) -> pa.Table | None:
    """The slice as Arrow (timestamps still split), or None when this path does not apply.
    ``lazy_general()``: the general path's LazyFrame, built (once per table version and
    column list) only for its schema, so both paths return the same types and the general
    path's checks (unknown columns, options that do not apply) run before the first read."""
    spec = FACT_TABLES.get(table)
    if spec is None or spec.scope is not Scope.MARKET or not markets or begin is None \
            or finish is None:
        return None
    dt = catalog.table(table)
    if dt is None:
        return None
    version = dt.version()
    files = catalog.derived((f"fast-files:{table}", version), lambda: _files(dt))
    if files is None:
        return None
    target: pa.Schema = catalog.derived(
        (f"fast-schema:{table}:{','.join(columns or [])}", version),
        lambda: lazy_general().head(0).collect().to_arrow().schema)
    stored = set(files["schema"].names)
    wanted = [n for n in target.names if n not in PARTITIONS]
    filter_cols = ["ts", *(["symbol"] if symbols else [])]
    needed = list(dict.fromkeys([*wanted, *filter_cols]))
    if any(c not in stored for c in needed):
        return None
    picked = [f for f in files["files"] if _file_matches(f, markets, symbols, begin, finish)]
    if len(picked) > MAX_FILES:
        return None
    parts = []
    for f in picked:
        meta = catalog.derived((f"fast-footer:{f['path']}",), lambda f=f: _footer(f["uri"]))
        if any(c not in meta["columns"] for c in needed):
            return None
        groups = [i for i, stats in enumerate(meta["groups"])
                  if _group_matches(stats, symbols, begin, finish)]
        if not groups:
            continue
        data = pq.ParquetFile(f["uri"], metadata=meta["metadata"]).read_row_groups(
            groups, columns=needed)
        inside = not symbols and all(_group_inside(meta["groups"][g], begin, finish)
                                     for g in groups)
        if not inside:  # a whole day read needs no row filter, nor its copy
            mask = pc.and_(pc.greater_equal(data["ts"], pa.scalar(begin, data["ts"].type)),
                           pc.less(data["ts"], pa.scalar(finish, data["ts"].type)))
            if symbols:
                mask = pc.and_(mask, pc.is_in(data["symbol"], value_set=pa.array(
                    symbols, data["symbol"].type)))
            data = data.filter(mask)
        for name in PARTITIONS:
            if name in target.names:
                kind = target.field(name).type
                data = data.append_column(name, pc.fill_null(
                    pa.nulls(data.num_rows, kind), pa.scalar(f[name], kind)))
        parts.append(data.select(target.names).cast(target))
    if not parts:
        return pa.Table.from_batches([], schema=target)
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _files(dt) -> dict | None:
    """Data files with partition values and min/max statistics, or None when the table needs
    more than reading its Parquet files (deletion vectors, column mapping: reader > 1)."""
    if dt.protocol().min_reader_version > 1:
        return None
    actions = delta_log.add_actions(dt, flatten=True)
    names = actions.column_names
    rows = actions.to_pylist()
    root = dt.table_uri.rstrip("/")
    if "://" in root and not root.startswith("file://"):
        return None  # object stores: the general path (one request per footer otherwise)
    root = root.removeprefix("file://")
    out = []
    for r in rows:
        out.append({
            "path": r["path"], "uri": f"{root}/{r['path']}",
            "market": r.get("partition.market"), "date": r.get("partition.date"),
            "ts_min": r.get("min.ts"), "ts_max": r.get("max.ts"),
            "sym_min": r.get("min.symbol"), "sym_max": r.get("max.symbol"),
        })
    if "partition.market" not in names or "partition.date" not in names:
        return None
    schema = pa.schema(dt.schema().to_arrow())
    return {"files": out, "schema": schema}


def _file_matches(f: dict, markets: list[str], symbols: list[str], begin: datetime,
                  finish: datetime) -> bool:
    if f["market"] not in markets:
        return False
    if f["date"] is not None and not (begin.date() <= f["date"] <= finish.date()):
        return False
    lo, hi = f["ts_min"], f["ts_max"]
    if isinstance(lo, datetime) and isinstance(hi, datetime) and (
            hi + _STATS_SLACK < begin or lo >= finish):
        return False
    if symbols and f["sym_min"] is not None and f["sym_max"] is not None:
        return any(f["sym_min"] <= s <= f["sym_max"] for s in symbols)  # exact for strings
    return True


def _footer(uri: str) -> dict:
    """A file's footer and the min/max of ts and symbol per row group."""
    pf = pq.ParquetFile(uri)
    meta = pf.metadata
    columns = {meta.schema.column(i).name: i for i in range(meta.num_columns)}
    groups = []
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        stats = {}
        for name in ("ts", "symbol"):
            i = columns.get(name)
            st = rg.column(i).statistics if i is not None else None
            stats[name] = (st.min, st.max) if st is not None and st.has_min_max else None
        groups.append(stats)
    return {"metadata": meta, "columns": set(columns), "groups": groups}


def _group_inside(stats: dict, begin: datetime, finish: datetime) -> bool:
    ts = stats.get("ts")
    return ts is not None and all(isinstance(v, datetime) for v in ts) and (
        ts[0] >= begin and ts[1] < finish)


def _group_matches(stats: dict, symbols: list[str], begin: datetime, finish: datetime) -> bool:
    ts = stats.get("ts")
    if ts is not None and all(isinstance(v, datetime) for v in ts) and (
            ts[1] < begin or ts[0] >= finish):
        return False
    sym = stats.get("symbol")
    if symbols and sym is not None:
        return any(sym[0] <= s <= sym[1] for s in symbols)
    return True

