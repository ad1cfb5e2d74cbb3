"""The ``runs`` table: everything known about a run, one row each, queryable without JSON.

Params are typed by value into three struct columns (``params_num``, ``params_str``,
``params_bool``) so a param can never change type under a query and a predicate compares
numbers as numbers; the exact manifest values stay in ``params`` (JSON text). Metrics are one
struct of doubles. New names widen the structs (Delta schema evolution); nothing is parsed at
query time.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pyarrow as pa

from btlake_pipelines.bundles.loader import LoadedBundle

VERSIONED_TABLES = ("trades", "equity", "events", "ticks", "l2")
_COUNTS = pa.struct([(t, pa.int64()) for t in VERSIONED_TABLES])
TS = pa.timestamp("us", "UTC")


def run_rows(bundles: list[LoadedBundle], *, versions: dict[str, dict[str, int]],
             archive: dict[str, str], ingested_at: datetime, batch_id: str) -> pa.Table:
    """The ``runs`` rows for runs written in one batch (``versions``: bundle -> table ->
    the version that holds the run's rows there)."""
    rows = [_row(b, versions[b.name], archive[b.name], ingested_at, batch_id) for b in bundles]
    columns: dict[str, pa.Array] = {}
    plain = {
        "run_id": pa.string(), "strategy_id": pa.string(), "created_at": TS, "kind": pa.string(),
        "engine_name": pa.string(), "engine_version": pa.string(), "code_version": pa.string(),
        "markets": pa.list_(pa.string()), "tags": pa.list_(pa.string()),
        "params": pa.string(), "environment": pa.string(), "extra": pa.string(),
        "manifest": pa.string(), "tables": pa.list_(pa.string()), "rows": _COUNTS,
        "versions": _COUNTS, "source_uri": pa.string(), "archive_uri": pa.string(),
        "content_hash": pa.string(), "ingested_at": TS, "batch_id": pa.string(),
    }
    for name, typ in plain.items():
        columns[name] = pa.array([r[name] for r in rows], typ)
    for name, typ in (("params_num", pa.float64()), ("params_str", pa.string()),
                      ("params_bool", pa.bool_()), ("metrics", pa.float64())):
        struct = _struct([r[name] for r in rows], typ)
        if struct is not None:
            columns[name] = struct
    columns["date"] = pa.array([b.manifest.created_at.date() for b in bundles], pa.date32())
    return pa.table(columns)


def _row(b: LoadedBundle, versions: dict[str, int], archive_uri: str, ingested_at: datetime,
         batch_id: str) -> dict[str, Any]:
    m = b.manifest
    counts = b.row_counts()
    data_markets = {mk for df in (*b.run_tables.values(), *b.market_tables.values())
                    for mk in df.get_column("market").unique().to_list()}
    params = m.params
    return {
        "run_id": m.run_id,
        "strategy_id": m.strategy_id,
        "created_at": m.created_at,
        "kind": m.kind,
        "engine_name": m.engine_name,
        "engine_version": m.engine_version,
        "code_version": m.code_version,
        "markets": sorted(set(m.markets) | data_markets),
        "tags": list(m.tags),
        "params": json.dumps(params, sort_keys=True),
        "params_num": {k: float(v) for k, v in params.items()
                       if isinstance(v, int | float) and not isinstance(v, bool)},
        "params_str": {k: v for k, v in params.items() if isinstance(v, str)},
        "params_bool": {k: v for k, v in params.items() if isinstance(v, bool)},
        "metrics": dict(m.metrics),
        "environment": json.dumps(m.environment, sort_keys=True, default=str),
        "extra": json.dumps(m.extra, sort_keys=True, default=str),
        "manifest": json.dumps(m.raw, sort_keys=True, default=str),
        "tables": sorted(m.tables),
        "rows": {t: counts.get(t) for t in VERSIONED_TABLES},
        "versions": {t: versions.get(t) if t in counts else None for t in VERSIONED_TABLES},
        "source_uri": b.source_uri,
        "archive_uri": archive_uri,
        "content_hash": b.content_hash,
        "ingested_at": ingested_at,
        "batch_id": batch_id,
    }


def _struct(values: list[dict[str, Any]], typ: pa.DataType) -> pa.StructArray | None:
    """One struct column over the union of the rows' keys (None when no row has any)."""
    names = sorted({k for v in values for k in v})
    if not names:
        return None
    children = [pa.array([v.get(n) for v in values], typ) for n in names]
    return pa.StructArray.from_arrays(children, names=names)
